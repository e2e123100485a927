"""QA loaders on the bundled real slices and on malformed copies (errors must name file, line and field)."""

import json

import pytest
from benchmarks.data import (
    DataError,
    bundled_path,
    load_2wiki,
    load_bundled,
    load_flashrag,
    load_hotpotqa,
    load_musique,
    load_nq_open,
    load_passage_corpus,
    load_popqa,
    load_qa_pairs,
)


def _damaged_jsonl(src, dst, line_no, edit):
    """Copy the first 5 lines of a bundled jsonl, applying `edit` to the object on `line_no` (1-based)."""
    lines = bundled_path(src).read_text(encoding="utf-8").splitlines()[:5]
    obj = json.loads(lines[line_no - 1])
    lines[line_no - 1] = edit(obj) if callable(edit) else edit
    if isinstance(lines[line_no - 1], dict):
        lines[line_no - 1] = json.dumps(lines[line_no - 1])
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dst


def _drop(field):
    return lambda o: {k: v for k, v in o.items() if k != field}


def test_flashrag_bundled_and_malformed(tmp_path):
    recs = load_bundled("triviaqa")
    assert len(recs) == 500 and recs[0].id == "test_6233" and "Mark Twain" in recs[0].golden_answers
    assert load_bundled("bamboogle")[0].golden_answers == ["james madison"]
    bad = _damaged_jsonl("qa/bamboogle/test.jsonl", tmp_path / "b.jsonl", 3, _drop("golden_answers"))
    with pytest.raises(DataError, match=r"b\.jsonl:3: field 'golden_answers': missing"):
        load_flashrag(bad)
    bad = _damaged_jsonl("qa/bamboogle/test.jsonl", tmp_path / "c.jsonl", 2, '{"id": "x", "question": ')
    with pytest.raises(DataError, match=r"c\.jsonl:2: invalid JSON"):
        load_flashrag(bad)


def test_nq_open_bundled_and_malformed(tmp_path):
    recs = load_bundled("nq_open")
    assert len(recs) == 1805
    assert recs[0].question == "when was the last time anyone was on the moon"
    assert recs[0].golden_answers == ["14 December 1972 UTC", "December 1972"]
    bad = _damaged_jsonl("qa/nq_open/NQ-open.dev.jsonl", tmp_path / "nq.jsonl", 4, lambda o: {**o, "answer": []})
    with pytest.raises(DataError, match=r"nq\.jsonl:4: field 'answer': expected a non-empty list"):
        load_nq_open(bad)


def test_popqa_official_tsv(tmp_path):
    good = tmp_path / "popQA.tsv"
    good.write_text(
        "id\tsubj\tprop\tobj\tquestion\tpossible_answers\ts_pop\n"
        '4222362\tGeorge Rankin\toccupation\tpolitician\tWhat is George Rankin\'s occupation?\t["politician", "political leader"]\t142\n',
        encoding="utf-8",
    )
    rec = load_popqa(good)[0]
    assert rec.id == "4222362" and rec.golden_answers == ["politician", "political leader"]
    assert rec.metadata["prop"] == "occupation"
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tquestion\tpossible_answers\n1\tWho?\tnot-json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.tsv:2: field 'possible_answers': not a JSON list"):
        load_popqa(bad)


def test_qa_pairs_2wiki_musique(tmp_path):
    wiki = load_bundled("2wikimultihopqa")
    assert len(wiki) == 6288 and wiki[0].golden_answers == ["Małgorzata Braunek"]
    assert len(load_bundled("musique")) == 1209
    bad = tmp_path / "qa.json"
    bad.write_text(json.dumps([{"question": "q", "answer": "a"}, {"answer": "b"}]))
    with pytest.raises(DataError, match=r"qa\.json:1: field 'question': missing"):
        load_qa_pairs(bad)


def test_hotpotqa_both_schemas(tmp_path):
    dev = load_bundled("hotpotqa")
    assert len(dev) == 300
    first = dev[0]
    assert first.id == "5a8ce55f554299441c6b9f62" and first.golden_answers == ["Tulsa"]
    assert len(first.paragraphs) == 10
    assert first.supporting_facts == [("Tinted Windows (album)", 0), ("Tinted Windows (band)", 3)]
    assert {p.title for p in first.paragraphs if p.is_supporting} == {"Tinted Windows (album)", "Tinted Windows (band)"}
    train = load_bundled("hipporag_hotpotqa")  # original schema: context as [title, sentences] pairs, `_id`
    assert len(train) == 50 and train[0].supporting_facts == [("Alû", 3), ("Lilu (mythology)", 0)]
    bad = _damaged_jsonl("qa/hotpotqa/dev.jsonl", tmp_path / "h.jsonl", 2, _drop("context"))
    with pytest.raises(DataError, match=r"h\.jsonl:2: field 'context': missing"):
        load_hotpotqa(bad)


def test_2wiki_official_format(tmp_path):
    rec = {
        "_id": "a1", "type": "compositional", "question": "Who is the mother of the director of X?",
        "context": [["X", ["X is a film by Y."]], ["Y", ["Y is the son of Z."]]],
        "supporting_facts": [["X", 0], ["Y", 0]], "evidences": [["X", "director", "Y"]], "answer": "Z",
    }  # fmt: skip
    path = tmp_path / "dev.json"
    path.write_text(json.dumps([rec]))
    out = load_2wiki(path)[0]
    assert out.golden_answers == ["Z"] and out.paragraphs[1].text == "Y is the son of Z."
    rec["context"] = [["X", "not a list of sentences"]]
    path.write_text(json.dumps([rec]))
    with pytest.raises(DataError, match=r"dev\.json:0: field 'context'"):
        load_2wiki(path)


def test_musique_with_paragraphs_and_corpora(tmp_path):
    recs = load_bundled("hipporag_musique")
    assert len(recs) == 50 and recs[0].golden_answers[:2] == ["G. Stanley Hall", "Stanley Hall"]
    assert recs[0].decomposition[0]["paragraph_support_idx"] == 6
    assert sum(p.is_supporting for p in recs[0].paragraphs) == 2
    corpus = load_bundled("hipporag_hotpotqa_corpus")
    assert len(corpus) == 994 and corpus[0]["contents"].startswith('"Demon Dice"\n')
    assert len(load_bundled("hipporag_musique_corpus")) == 1890
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps([{"id": "1", "question": "q", "answer": "a", "paragraphs": [{"title": "t"}]}]))
    with pytest.raises(DataError, match=r"m\.json:0: field 'paragraphs': each paragraph needs paragraph_text"):
        load_musique(bad)
    bad.write_text(json.dumps({"T": "not sentences"}))
    with pytest.raises(DataError, match=r"m\.json:0: field 'T'"):
        load_passage_corpus(bad)
