"""Ranked-retrieval measures with trec_eval conventions, computed by pytrec_eval where it has the measure.

Conventions (those of trec_eval, which pytrec_eval wraps):
- each query's run is ordered by score descending, ties broken by document id descending (string order);
  we apply the same order for MRR@k, which trec_eval has no cut-off version of;
- relevance grades are integers; a document counts as relevant for Recall/P/MRR/MAP/hit when its grade is
  >= ``relevance_level`` (default 1); nDCG uses the grade itself as the gain (trec_eval's linear gain, not
  2^rel - 1) with log2(rank + 1) discount;
- queries in the run but not in the qrels are ignored;
- queries in the qrels but absent from the run score 0 (trec_eval ``-c``) by default — a retriever that
  returns nothing should not look better for it; ``missing="skip"`` averages over answered queries only;
- queries whose qrels hold no relevant document are dropped from the mean by default (every measure is 0 for
  every system there, so they only dilute differences); ``no_relevant="zero"`` keeps them as zeros.
Keys: ``recall@k``, ``p@k``, ``ndcg@k``, ``mrr@k``, ``hit@k`` (at least one relevant doc in the top k),
``map@k`` for each k, plus ``mrr`` and ``map`` without cut-off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import pytrec_eval

Run = Mapping[str, Mapping[str, float]] | Mapping[str, Sequence[str]]
Qrels = Mapping[str, Mapping[str, int]]


def _check_qrels(qrels: Qrels) -> dict[str, dict[str, int]]:
    if not isinstance(qrels, Mapping) or not qrels:
        raise ValueError("qrels must be a non-empty mapping {query_id: {doc_id: grade}}")
    clean: dict[str, dict[str, int]] = {}
    for qid, judged in qrels.items():
        if not isinstance(judged, Mapping):
            raise ValueError(f"qrels[{qid!r}] must be a mapping {{doc_id: grade}}, got {type(judged).__name__}")
        row: dict[str, int] = {}
        for doc, grade in judged.items():
            if isinstance(grade, bool) or not isinstance(grade, int):
                raise ValueError(f"qrels[{qid!r}][{doc!r}]: grade must be an int, got {grade!r}")
            row[str(doc)] = grade
        clean[str(qid)] = row
    return clean


def _check_run(run: Run) -> dict[str, dict[str, float]]:
    """Accept {qid: {doc: score}} or {qid: [doc, ...]} (ranked list; earlier = higher score)."""
    if not isinstance(run, Mapping):
        raise ValueError("run must be a mapping {query_id: {doc_id: score}} or {query_id: [doc_id, ...]}")
    clean: dict[str, dict[str, float]] = {}
    for qid, ranked in run.items():
        if isinstance(ranked, Mapping):
            row: dict[str, float] = {}
            for doc, score in ranked.items():
                if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
                    raise ValueError(f"run[{qid!r}][{doc!r}]: score must be a finite number, got {score!r}")
                row[str(doc)] = float(score)
        elif isinstance(ranked, Sequence) and not isinstance(ranked, str):
            docs = [str(d) for d in ranked]
            if len(set(docs)) != len(docs):
                raise ValueError(f"run[{qid!r}]: ranked list repeats a document id")
            row = {doc: float(len(docs) - rank) for rank, doc in enumerate(docs)}
        else:
            raise ValueError(f"run[{qid!r}] must be a mapping of scores or a list of doc ids, got {ranked!r:.80}")
        clean[str(qid)] = row
    return clean


def trec_order(scores: Mapping[str, float]) -> list[str]:
    """Documents in trec_eval order: score descending, then document id descending."""
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def _mrr_at(ranking: list[str], judged: Mapping[str, int], k: int, level: int) -> float:
    for rank, doc in enumerate(ranking[:k], start=1):
        if judged.get(doc, 0) >= level:
            return 1.0 / rank
    return 0.0


def retrieval_metrics(
    run: Run,
    qrels: Qrels,
    ks: Sequence[int] = (1, 5, 10, 20, 100),
    relevance_level: int = 1,
    missing: Literal["zero", "skip"] = "zero",
    no_relevant: Literal["skip", "zero"] = "skip",
    per_query: bool = False,
) -> dict[str, Any]:
    """Mean Recall@k, P@k, nDCG@k, MRR@k, hit@k, MAP@k over queries (see module docstring for conventions).

    With per_query=True returns {"mean": {...}, "per_query": {qid: {...}}}; otherwise the mean dict.
    """
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive ints, got {ks!r}")
    if missing not in ("zero", "skip") or no_relevant not in ("skip", "zero"):
        raise ValueError("missing must be 'zero'|'skip' and no_relevant must be 'skip'|'zero'")
    clean_qrels = _check_qrels(qrels)
    clean_run = _check_run(run)
    cut = ",".join(str(k) for k in sorted(set(ks)))
    measures = {f"recall.{cut}", f"P.{cut}", f"ndcg_cut.{cut}", f"success.{cut}", f"map_cut.{cut}", "recip_rank", "map"}
    evaluator = pytrec_eval.RelevanceEvaluator(clean_qrels, measures, relevance_level=relevance_level)
    raw = evaluator.evaluate({qid: docs for qid, docs in clean_run.items() if qid in clean_qrels and docs})
    names = [f"{m}@{k}" for k in ks for m in ("recall", "p", "ndcg", "mrr", "hit", "map")] + ["mrr", "map"]
    rows: dict[str, dict[str, float]] = {}
    for qid, judged in clean_qrels.items():
        if no_relevant == "skip" and not any(g >= relevance_level for g in judged.values()):
            continue
        if qid not in raw:
            if missing == "skip":
                continue
            rows[qid] = dict.fromkeys(names, 0.0)
            continue
        values = raw[qid]
        ranking = trec_order(clean_run[qid])
        row: dict[str, float] = {}
        for k in ks:
            row[f"recall@{k}"] = values[f"recall_{k}"]
            row[f"p@{k}"] = values[f"P_{k}"]
            row[f"ndcg@{k}"] = values[f"ndcg_cut_{k}"]
            row[f"mrr@{k}"] = _mrr_at(ranking, judged, k, relevance_level)
            row[f"hit@{k}"] = values[f"success_{k}"]
            row[f"map@{k}"] = values[f"map_cut_{k}"]
        row["mrr"] = values["recip_rank"]
        row["map"] = values["map"]
        rows[qid] = row
    if not rows:
        raise ValueError("no query left to evaluate: none of the qrels queries has a relevant document in range")
    mean = {name: sum(r[name] for r in rows.values()) / len(rows) for name in names}
    return {"mean": mean, "per_query": rows} if per_query else mean
