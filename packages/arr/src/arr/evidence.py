"""The evidence a search turn returns: top-k retrieval with the release's de-duplication and the DropGold noise.

- De-duplication (the release's search cache): documents already shown in an episode are skipped and the next
  ranked ones fill the top-k, so searching the same query again brings new documents.
- DropGold(p): per (seed, record, sample, search turn) a seeded coin decides whether the record's gold passages
  (`supporting_passage_ids`) are removed from the turn's top-k; the next ranked documents take their places. About
  half of the verifier's contexts then lack the hop answer at p = 0.5, so both classes of the rejection rate are
  estimable. p = 0 returns the plain (de-duplicated) top-k; p = 1 never shows a gold passage.

The rejection probe (`probe_items`) holds held-out hops fixed: the gold sub-question as query with its top-k BM25
documents once with the gold passage (forced into the top-k when ranked lower) and once without it (the next ranked
document instead); the verifier's greedy reply to each is scored as a rejection when it selects no document.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from shared.rollout.envs import SearchEnv


def drop_coin(p: float, seed: int, record_id: Any, sample: int, turn: int) -> bool:
    """The seeded DropGold decision of one search turn."""
    if p <= 0.0:
        return False
    if p >= 1.0:
        return True
    return random.Random(f"dropgold|{seed}|{record_id}|{sample}|{turn}").random() < p


class Evidence:
    """Top-k documents for a search turn: `search(record, query, seen, sample, turn)` over any retriever with
    `retrieve(queries, topk)` (e.g. `shared.retrieval.Retriever("bm25", corpus)`)."""

    def __init__(self, retriever: Any, topk: int = 3, drop_gold: float = 0.0, dedup: bool = True, seed: int = 0,
                 pool: int = 12) -> None:
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if not 0.0 <= drop_gold <= 1.0:
            raise ValueError(f"drop_gold must lie in [0, 1], got {drop_gold}")
        self.retriever, self.topk, self.drop_gold, self.dedup, self.seed = retriever, topk, drop_gold, dedup, seed
        self.pool = max(pool, topk)

    def ranked(self, query: str, n: int) -> list[dict]:
        """The first n documents for a query, as {id, contents} dicts."""
        return [dict(SearchEnv.unwrap(h)) for h in self.retriever.retrieve([query], topk=n)[0]]

    def search(self, record: Mapping[str, Any], query: str, seen: set[str] | None = None, sample: int = 0,
               turn: int = 0) -> tuple[list[dict], bool]:
        """(documents, dropped): the turn's top-k after de-duplication and DropGold; `seen` (ids shown earlier in the
        episode) is updated in place when de-duplicating."""
        seen = set() if seen is None else seen
        gold = {str(i) for i in record.get("supporting_passage_ids", [])}
        dropped = bool(gold) and drop_coin(self.drop_gold, self.seed, record.get("id", ""), sample, turn)
        want = self.topk + (len(seen) if self.dedup else 0) + (len(gold) if dropped else 0)
        docs = []
        for doc in self.ranked(query, min(max(want, self.topk), self.pool + len(seen))):
            did = str(doc.get("id"))
            if (self.dedup and did in seen) or (dropped and did in gold):
                continue
            docs.append(doc)
            if len(docs) == self.topk:
                break
        if self.dedup:
            seen.update(str(d.get("id")) for d in docs)
        return docs, dropped


def probe_items(records: Sequence[Mapping[str, Any]], evidence: Evidence, n: int, seed: int = 0) -> list[dict]:
    """2n probe items from n distinct held-out hops of `records` (their `sub_questions`): for each hop a `with`
    item (top-k including the gold passage) and a `without` item (gold removed), both with the hop's answer and the
    question's final answers. Raises ValueError naming the record when `sub_questions` is missing."""
    hops: list[tuple[Mapping[str, Any], int, Mapping[str, Any]]] = []
    seen: set[tuple[str, str]] = set()
    for i, rec in enumerate(records):
        subs = rec.get("sub_questions")
        if not isinstance(subs, list) or not subs:
            raise ValueError(f"probe record {rec.get('id', i)!r}: field 'sub_questions' is missing or empty (the "
                             f"rejection probe needs each hop's question, answer and passage_id)")
        for k, sub in enumerate(subs):
            for name in ("question", "answer", "passage_id"):
                if name not in sub:
                    raise ValueError(f"probe record {rec.get('id', i)!r}: sub_questions[{k}] has no field {name!r}")
            key = (str(sub["question"]), str(sub["passage_id"]))
            if key not in seen:
                seen.add(key)
                hops.append((rec, k, sub))
    rng = random.Random(f"probe|{seed}")
    rng.shuffle(hops)
    if len(hops) < n:
        raise ValueError(f"only {len(hops)} distinct hops for a probe of {n}; lower probe.items or add records")
    items = []
    for rec, k, sub in hops[:n]:
        gold = str(sub["passage_id"])
        ranked = evidence.ranked(str(sub["question"]), evidence.topk + 1)
        others = [d for d in ranked if str(d.get("id")) != gold]
        gold_doc = next((d for d in ranked if str(d.get("id")) == gold), None)
        if gold_doc is None:  # ranked below the top-k: fetch it by a deeper search, then force it in
            deep = evidence.ranked(str(sub["question"]), evidence.pool * 4)
            gold_doc = next((d for d in deep if str(d.get("id")) == gold), None)
        if gold_doc is None:
            continue
        pos = next((j for j, d in enumerate(ranked) if str(d.get("id")) == gold), evidence.topk - 1)
        with_docs = others[: evidence.topk - 1]
        with_docs.insert(min(pos, len(with_docs)), gold_doc)
        base = {"record_id": rec.get("id"), "question": rec["question"], "hop": k, "query": str(sub["question"]),
                "hop_answer": str(sub["answer"]), "golden_answers": [str(g) for g in rec["golden_answers"]],
                "hops": len(rec["sub_questions"])}
        items.append({**base, "class": "with", "docs": with_docs})
        items.append({**base, "class": "without", "docs": others[: evidence.topk]})
    return items
