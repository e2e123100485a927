"""Difficulty by construction: L1, L2 and L3 questions from a seed (inferred from the paper; no code was released).

Synthetic KB seeds (exact):
- L1 = the seed's 2-hop question ("In which country was X born?"), depth 2;
- L2 = the same chain with the start entity X replaced by a description from off-path facts
  (`benchmarks.synthetic.kb.entity_description`, the chain's first relation excluded): "In which country was the
  person who works for Lomi Corp and whose mentor is Kara Nelo born?"; the description must fit X alone among
  the KB's facts, else the question is dropped as `ambiguous`; depth 3;
- L3 = a 3-hop seed with its start entity described the same way, depth 4.
Depth (reasoning-chain depth) = hops + 1 per obfuscated entity: the searches a solver needs.

Real seeds (HotpotQA, MuSiQue; heuristic):
- L1 = the original question;
- L2 = the first supporting-paragraph title that occurs in the question replaced by an off-path sentence of that
  paragraph with the title masked ("the subject of \"___ is a 1995 film by ...\""): a sentence that is not a
  supporting fact (HotpotQA) or, when the source marks no sentences (MuSiQue), any sentence without the answer or
  another supporting title; fewer than `min_description_words` words is `ambiguous`;
- L3 = every such title in the question obfuscated (at least two, else `too_few_entities`).
Drop reasons: `no_supporting_facts`, `no_entity_in_question`, `no_off_path_fact`, `ambiguous`, `too_few_entities`.

Each level row carries provenance (`shared.stages.derive`: id, parent_ids, stage, op, params) and a `plan` for the
scripted teacher: the chain's relations and the description's facts (KB), never the entities to be found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.stages import DropStats, derive

from dr9k.judge import contains_answer_anywhere

STAGE = "levels"


def _row(seed: Mapping[str, Any], level: str, question: str, depth: int, plan: Mapping[str, Any],
         params: Mapping[str, Any]) -> dict[str, Any]:
    return derive(seed, STAGE, f"make_{level}", {"level": level, **params}, id=f"{seed['id']}#{level}",
                  question=question, golden_answers=list(seed["golden_answers"]), level=level, depth=depth,
                  split=seed.get("split", ""), source=seed.get("source", ""), seed_question=seed["question"],
                  first_passage=(seed.get("sub_questions") or [{}])[0].get("passage_id"),
                  sub_questions=list(seed.get("sub_questions", [])),  # the hops: test/train overlap is counted on them
                  plan=dict(plan))


def seed_id(row: Mapping[str, Any]) -> str:
    """The seed question a level row was built from (level row ids are `<seed id>#<level>`)."""
    return str(row["id"]).rsplit("#", 1)[0]


# ---- synthetic KB -------------------------------------------------------------------------------------------
def described_facts(kb: Any, entity: str, description: str) -> list[list[str]]:
    """The (relation, object) facts a KB description states about `entity`, read back from its clauses."""
    from benchmarks.synthetic.kb import CLAUSES

    return [[rel, kb.facts[(entity, rel)]] for rel in CLAUSES if (entity, rel) in kb.facts
            and CLAUSES[rel].format(o=kb.facts[(entity, rel)]) in description]


def kb_levels(seed: Mapping[str, Any], kb: Any, levels: Sequence[str], k: int, stats: DropStats) -> list[dict]:
    """The L1/L2 (2-hop seed) or L3 (3-hop seed) rows of one KB seed (module docstring)."""
    from benchmarks.synthetic.kb import TEMPLATES, entity_description

    start, relations = seed["kb"]["start"], tuple(seed["kb"]["relations"])
    wanted = [lv for lv in (("L1", "L2") if len(relations) == 2 else ("L3",)) if lv in levels]
    out = []
    for level in wanted:
        if level == "L1":
            plan = {"relations": list(relations), "describe": None, "start": start}  # the start is named in L1
            out.append(_row(seed, "L1", seed["question"], len(relations), plan, {}))
            continue
        description = entity_description(kb, start, exclude=(relations[0],), k=k)
        if description is None:
            stats.drop(f"{level}:ambiguous")
            continue
        plan = {"relations": list(relations), "describe": {"kind": kb.type_of(start),
                                                           "facts": described_facts(kb, start, description),
                                                           "text": description}}
        out.append(_row(seed, level, TEMPLATES[relations].format(s=description), len(relations) + 1, plan,
                        {"facts": k}))
    return out


# ---- real seeds ----------------------------------------------------------------------------------------------
def _mentioned(question: str, support: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    found = [(question.find(p["title"]), p) for p in support if p["title"] and p["title"] in question]
    return [p for _, p in sorted(found, key=lambda x: x[0])]


def off_path_description(paragraph: Mapping[str, Any], answers: Iterable[str], others: Sequence[str],
                         min_words: int) -> tuple[str | None, str]:
    """(description, reason): an off-path sentence of the paragraph (one naming its title preferred), the title
    masked."""
    title = paragraph["title"]
    on_path = set(paragraph.get("on_path") or [])
    candidates = [s for i, s in enumerate(paragraph["sentences"]) if i not in on_path
                  and not any(contains_answer_anywhere(s, a) for a in answers) and not any(o and o in s for o in others)]
    candidates.sort(key=lambda s: title not in s)  # sentences naming the title first (the others say "he", "it")
    if not candidates:
        return None, "no_off_path_fact"
    masked = candidates[0].replace(title, "___").strip()
    if len(re.findall(r"\w+", masked.replace("___", ""))) < min_words:
        return None, "ambiguous"
    return f'the subject of "{masked}"', ""


def real_levels(seed: Mapping[str, Any], levels: Sequence[str], min_words: int, stats: DropStats) -> list[dict]:
    """The L1/L2/L3 rows of one real seed (module docstring)."""
    out = []
    if "L1" in levels:
        out.append(_row(seed, "L1", seed["question"], seed["hops"], {"describe": None}, {}))
    deep = [lv for lv in ("L2", "L3") if lv in levels]
    if not deep:
        return out
    if not seed["support"]:
        for lv in deep:
            stats.drop(f"{lv}:no_supporting_facts")
        return out
    mentioned = _mentioned(seed["question"], seed["support"])
    if not mentioned:
        for lv in deep:
            stats.drop(f"{lv}:no_entity_in_question")
        return out
    titles = [p["title"] for p in seed["support"]]
    described: list[tuple[str, str]] = []
    reason = ""
    for p in mentioned:
        text, reason = off_path_description(p, seed["golden_answers"], [t for t in titles if t != p["title"]],
                                            min_words)
        if text is not None:
            described.append((p["title"], text))
    for level in deep:
        chosen = described[:1] if level == "L2" else described
        if level == "L3" and len(mentioned) < 2:
            stats.drop("L3:too_few_entities")
            continue
        if not chosen or (level == "L3" and len(chosen) < len(mentioned)):
            stats.drop(f"{level}:{reason or 'no_off_path_fact'}")
            continue
        question = seed["question"]
        for title, text in chosen:
            question = question.replace(title, text, 1)
        out.append(_row(seed, level, question, seed["hops"] + len(chosen),
                        {"describe": [{"title_masked": True, "text": t} for _, t in chosen]},
                        {"obfuscated": len(chosen)}))
    return out


def build_levels(seeds: Sequence[Mapping[str, Any]], levels: Sequence[str], settings: Any, kb: Any = None,
                 stats: DropStats | None = None) -> list[dict]:
    """Level rows of every seed; drops are counted in `stats` under "<level>:<reason>"."""
    stats = stats if stats is not None else DropStats()
    out = []
    for seed in seeds:
        if seed.get("kb") is not None:
            if kb is None:
                raise ValueError(f"seed {seed['id']!r} is a KB seed but no knowledge base was given")
            rows = kb_levels(seed, kb, levels, settings.description_facts, stats)
        else:
            rows = real_levels(seed, levels, settings.min_description_words, stats)
        for row in rows:
            stats.count(f"built_{row['level']}")
        out += rows
    stats.keep(len(out))
    return out
