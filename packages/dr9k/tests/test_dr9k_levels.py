"""Levels by construction on the hand-built KB (conftest): obfuscation hides the start entity behind a description
that fits it alone and never leaks the answer; composition keeps the answer verifiable (the object of the last
hop); depths 2/3/4; the filters' drops are counted; real-data obfuscation and bad seed records."""

import json

import pytest
from benchmarks.data.errors import DataError
from dr9k.config import FilterSettings, LevelSettings, SeedSettings
from dr9k.filters import apply_filters
from dr9k.levels import build_levels, real_levels
from dr9k.seeds import load_seeds
from shared.rewards.qa import normalize_answer
from shared.stages import DropStats


def _matches(kb, facts):
    return [p for p in kb.entities["person"] if all(kb.facts.get((p, rel)) == o for rel, o in facts)]


def test_l1_l2_l3_by_hand(kb, seed_of):
    stats = DropStats()
    seeds = [seed_of(kb, "Ce Lo", ("born_in", "located_in")), seed_of(kb, "Ce Lo", ("mentor", "born_in", "located_in"))]
    rows = {r["level"]: r for r in build_levels(seeds, ["L1", "L2", "L3"], LevelSettings(), kb, stats)}
    assert rows["L1"]["question"] == "In which country was Ce Lo born?" and rows["L1"]["depth"] == 2
    l2 = rows["L2"]
    assert l2["question"] == "In which country was the person who works for Yu Corp and whose mentor is Ala Mi born?"
    assert "Ce Lo" not in l2["question"] and l2["depth"] == 3 and l2["golden_answers"] == ["Raland"]
    assert normalize_answer("Raland") not in normalize_answer(l2["question"])
    assert _matches(kb, l2["plan"]["describe"]["facts"]) == ["Ce Lo"]  # the description fits one entity only
    l3 = rows["L3"]
    assert l3["question"] == ("In which country was the mentor of the person who was born in Paville and who works "
                              "for Yu Corp born?")
    # the answer is the object of the last hop: Ce Lo -mentor-> Ala Mi -born_in-> Paville -located_in-> Raland
    assert l3["golden_answers"] == [kb.facts[(kb.facts[(kb.facts[("Ce Lo", "mentor")], "born_in")], "located_in")]]
    assert l3["depth"] == 4 and _matches(kb, l3["plan"]["describe"]["facts"]) == ["Ce Lo"]
    assert l2["parent_ids"] == [seeds[0]["id"]] and l2["stage"] == "levels" and l2["op"] == "make_L2"


def test_ambiguous_description_is_dropped(kb, seed_of):
    stats = DropStats()
    # Ala Mi and Du Ne both work for Xo Corp under Bo Ka: no description of two facts singles Ala Mi out
    rows = build_levels([seed_of(kb, "Ala Mi", ("born_in", "located_in"))], ["L1", "L2"], LevelSettings(), kb, stats)
    assert [r["level"] for r in rows] == ["L1"] and stats.dropped["L2:ambiguous"] == 1


def test_filters_count_every_drop(kb, seed_of):
    stats = DropStats()
    seeds = [seed_of(kb, "Bo Ka", ("works_for", "headquartered_in")), seed_of(kb, "Ce Lo", ("born_in", "located_in"))]
    rows = build_levels(seeds, ["L1", "L2"], LevelSettings(), kb, DropStats())
    # Bo Ka's L2 describes him as born in Quville, which is also the answer: a leak
    assert any(r["level"] == "L2" and "Quville" in r["question"] and r["golden_answers"] == ["Quville"] for r in rows)
    long = {**rows[0], "id": "long", "golden_answers": ["one two three four five six"], "question": "Which city?"}
    dup = {**rows[-1], "id": "dup", "question": rows[-1]["question"].upper()}
    kept = apply_filters([*rows, long, dup], FilterSettings(validity="rule", max_answer_words=5), stats)
    assert stats.dropped == {"L2:leak": 1, "L1:not_short": 1, "L2:duplicate": 1}
    assert stats.kept == len(kept) == 3
    with pytest.raises(ValueError, match="validity=judge needs the judge"):
        apply_filters(rows, FilterSettings(validity="judge"), DropStats())


def _real_seed(**kw):
    seed = {"id": "h1", "question": "Which city is the birthplace of the director of Moon Rise?",
            "golden_answers": ["Leeds"], "source": "hotpotqa", "split": "", "hops": 2, "parent_ids": [],
            "support": [{"title": "Moon Rise", "on_path": [1],
                         "sentences": ["Moon Rise is a 1999 British drama film shot on the coast of Wales.",
                                       "Moon Rise was directed by Ann Vale."]},
                        {"title": "Ann Vale", "on_path": [0], "sentences": ["Ann Vale was born in Leeds."]}]}
    return {**seed, **kw}


def test_real_seed_obfuscation_uses_an_off_path_sentence():
    stats = DropStats()
    rows = {r["level"]: r for r in real_levels(_real_seed(), ["L1", "L2", "L3"], 5, stats)}
    assert rows["L2"]["question"] == ('Which city is the birthplace of the director of the subject of "___ is a 1999 '
                                      'British drama film shot on the coast of Wales."?')
    assert rows["L2"]["depth"] == 3 and "L3" not in rows and stats.dropped["L3:too_few_entities"] == 1
    stats = DropStats()
    assert [r["level"] for r in real_levels(_real_seed(support=[]), ["L1", "L2"], 5, stats)] == ["L1"]
    assert stats.dropped["L2:no_supporting_facts"] == 1


def test_bad_seed_records_name_file_line_and_field(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "Who?", "golden_answers": ["X"],
                                "supporting_facts": [{"title": "X", "text": "X is a person."}]}) + "\n"
                    + json.dumps({"id": "b", "question": "Where?"}) + "\n")
    with pytest.raises(DataError, match=r"seeds.jsonl:2: field 'golden_answers': missing"):
        load_seeds(SeedSettings(source="jsonl", path=str(path)), ["L1"])
    path.write_text(json.dumps({"id": "c", "question": "Where?", "golden_answers": ["Y"]}) + "\n")
    with pytest.raises(DataError, match=r"seeds.jsonl:1: field 'supporting_facts': missing: L2/L3"):
        load_seeds(SeedSettings(source="jsonl", path=str(path)), ["L1", "L2"])
    seeds, corpus = load_seeds(SeedSettings(source="jsonl", path=str(path), missing_support="skip"), ["L1", "L2"])
    assert [s["id"] for s in seeds] == ["c"] and corpus == []
