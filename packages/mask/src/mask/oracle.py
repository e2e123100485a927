"""Scripted replies for the five roles on KB questions: the warm start's per-call SFT records come from the real loop.

`oracle_episode` plays `episode.mask_loop` in the real environment (the retriever, the parsers, the memory) with
these replies, so every record is a prompt the policy will see and the reply that acts correctly there:

- plan: the chain's sub-questions (the first names the question's entity; a later one asks about "the answer to
  q(i-1)", since a closed-book planner cannot name it) with the unknown marker as every answer and as the final
  answer;
- search: the first gold hop not yet answered by a useful summary in the search history, else `<end>`;
- summary: the sentence of the hop's gold passage that states the hop's fact (relation phrase and answer), or
  "No useful information" when that passage is not among the retrieved documents;
- update: with `memory.after_plan=keep_plan`, `<Update>t(k)</Update>` for hop k's still-unknown plan slot; else
  `<Update>ti</Update>` when slot ti already holds the same query (a repeated search), otherwise `<Add>t(n+1)</Add>`;
- answer: the answer of the last hop answered so far, else the unknown marker.

It needs the KB record fields `sub_questions` (question, answer, passage_id) and `relations`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from mask.config import MaskConfig
from mask.episode import Call, EpisodeLog, mask_loop
from mask.roles import NO_INFO


def _hops(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    subs = record.get("sub_questions")
    if not isinstance(subs, list) or not subs or not isinstance(record.get("relations"), list):
        raise ValueError(f"record {record.get('id', '?')!r}: the oracle needs KB fields 'sub_questions' and "
                         "'relations' (synthetic KB questions)")
    return subs


def resolved_hops(record: Mapping[str, Any], history: list) -> int:
    """How many gold hops, in order, were searched with a useful summary."""
    subs, k = _hops(record), 0
    for query, summary in history:
        if k < len(subs) and query == subs[k]["question"] and summary != NO_INFO:
            k += 1
    return k


def relation_phrase(relation: str) -> str:
    """The longest literal piece of the relation's passage sentence (e.g. " was born in ")."""
    from benchmarks.synthetic.kb import RELATIONS

    pieces = re.split(r"\{[a-z_]+\}", RELATIONS[relation][2])
    return max(pieces, key=lambda p: len(p.strip())).strip()


def fact_sentence(contents: str, relation: str, answer: str) -> str | None:
    """The sentence of a passage that states `relation` with `answer`, or None."""
    text = contents.partition("\n")[2] or contents
    phrase = relation_phrase(relation)
    for sentence in re.split(r"(?<=\.)\s+", text.strip()):
        if phrase in sentence and answer in sentence:
            return sentence.strip()
    return None


def plan_reply(record: Mapping[str, Any], unknown: str) -> str:
    from benchmarks.synthetic.kb import RELATIONS

    subs, rels = _hops(record), record["relations"]
    parts = []
    for i, rel in enumerate(rels, start=1):
        question = subs[0]["question"] if i == 1 else RELATIONS[rel][3].format(s=f"the answer to q{i - 1}")
        parts.append(f"<q{i}>{question}</q{i}><a{i}>{unknown}</a{i}>")
    return "".join(parts) + f"<final_answer>{unknown}</final_answer>"


def oracle_reply(call: Call, record: Mapping[str, Any], cfg: MaskConfig) -> str:
    """The scripted reply to one call (see the module docstring)."""
    unk, subs = cfg.prompt.unknown_token, _hops(record)
    history = call.memory.get("history", [])
    slots = call.memory.get("slots", {})
    if call.role == "plan":
        return plan_reply(record, unk)
    k = resolved_hops(record, history)
    if call.role == "search":
        return "<end>" if k >= len(subs) else f"<search>{subs[k]['question']}</search>"
    if call.role == "summary":
        hop = next((i for i, s in enumerate(subs) if s["question"] == call.query), None)
        if hop is not None:
            doc = next((d for d in call.docs if str(d["id"]) == str(subs[hop]["passage_id"])), None)
            if doc is not None:
                sentence = fact_sentence(doc["contents"], record["relations"][hop], subs[hop]["answer"])
                if sentence:
                    return f"<evidence>{sentence}</evidence>"
        return f"<evidence>{NO_INFO}</evidence>"
    if call.role == "update":
        keys = list(slots)
        if cfg.memory.after_plan == "keep_plan" and k >= 1 and f"t{k}" in slots and slots[f"t{k}"][1] == unk:
            return f"<Update>t{k}</Update>"
        same = next((key for key, (q, _) in slots.items() if q == call.query), None)
        return f"<Update>{same}</Update>" if same else f"<Add>t{len(keys) + 1}</Add>"
    if call.role == "answer":
        return f"<final_answer>{subs[k - 1]['answer'] if k >= 1 else unk}</final_answer>"
    raise ValueError(f"unknown role {call.role!r}")


def oracle_episode(record: Mapping[str, Any], retrieve: Callable[[str], list[dict]], cfg: MaskConfig,
                   tokenizer: Any = None) -> tuple[list[dict[str, Any]], EpisodeLog]:
    """Play one question with the scripted replies; returns the per-call SFT records and the episode log."""
    loop = mask_loop(record, retrieve, cfg, tokenizer)
    records = []
    call = next(loop)
    while True:
        reply = oracle_reply(call, record, cfg)
        records.append({"id": f"{record.get('id', '?')}:{len(records)}", "role": call.role,
                        "iteration": call.iteration, "prompt": call.prompt, "completion": reply})
        try:
            call = loop.send(reply)
        except StopIteration as stop:
            return records, stop.value
