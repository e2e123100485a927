"""Questions, sub-queries and the passage corpus of a run, and the jsonl files that carry them between stages.

The replication runs on `benchmarks.synthetic.kb`: invented entities written out as one passage each, and 1-3-hop
questions whose records carry one sub-question per hop with the passage that answers it (the held-out sub-query
qrels). Questions are split by hop (`split_by: entity_chain`), so no held-out (sub-question, gold passage) pair is
a training question's hop; `unseen_subqueries` also leaves out the pairs the training groups hold. Every stage reads and writes jsonl; bad lines are errors naming the file, line and field, and each file
is written atomically so an interrupted stage leaves either the old file or the new one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_jsonl
from benchmarks.synthetic.kb import hop_pairs, make_kb, make_kb_questions, question_pool
from shared.atomic import write_jsonl as atomic_write_jsonl

SEP = " [SEP] "


class RecordError(ValueError):
    """A malformed record in one of the pipeline's jsonl files."""


@dataclass
class KBSettings:
    """Size of the synthetic knowledge base and of the question splits."""

    n_people: int = 300  # benchmarks.synthetic.kb.LARGE_KB: 378 passages, room for >= 512 held-out questions
    n_companies: int = 40
    n_cities: int = 30
    n_countries: int = 8
    n_train: int = 100
    n_test: int = 512
    n_agent_train: int = 500  # oracle-trace questions for the tiny agent's SFT (training split; capped by the KB)
    hops: list[int] | None = None  # default (1, 2, 3)
    # entity_chain: by hop, no held-out (sub-question, passage) is a training hop; entity: by start entity only
    # (the split of versions <= 0.2: 28-32% of held-out sub-queries were training hops)
    split_by: Literal["entity", "entity_chain"] = "entity_chain"


def retriever_query(question: str, sub_query: str, with_question: bool = True) -> str:
    """Agentic-R's retriever input `question [SEP] sub-query` (or the bare sub-query)."""
    return f"{question}{SEP}{sub_query}" if with_question else sub_query


def build_kb_data(settings: KBSettings, seed: int) -> dict:
    """`{"corpus", "train", "test", "kb"}`: corpus `[{id, contents}]`, questions as plain dicts."""
    kb = make_kb(settings.n_people, settings.n_companies, settings.n_cities, settings.n_countries, seed=seed)
    hops = tuple(settings.hops or (1, 2, 3))
    train = make_kb_questions(kb, settings.n_train, seed=seed, hops=hops, split="train", split_by=settings.split_by)
    test = make_kb_questions(kb, settings.n_test, seed=seed, hops=hops, split="test", split_by=settings.split_by)
    return {
        "kb": kb,
        "corpus": kb.corpus(),
        "train": [q.to_dict() for q in train],
        "test": [q.to_dict() for q in test],
    }


def agent_train_questions(settings: KBSettings, seed: int, train: Sequence[dict]) -> list[dict]:
    """Questions for the trainable agent: the run's training questions, then more from the training split (never
    held-out questions or hops) up to `n_agent_train` or as many as the knowledge base has."""
    kb = make_kb(settings.n_people, settings.n_companies, settings.n_cities, settings.n_countries, seed=seed)
    hops = tuple(settings.hops or (1, 2, 3))
    available = len(question_pool(kb, "train", hops, settings.split_by))  # the pool make_kb_questions draws from
    out = list(train)[: settings.n_agent_train]
    seen = {q["question"] for q in out}
    for q in make_kb_questions(kb, available, seed=seed + 1, hops=hops, split="train", split_by=settings.split_by):
        if len(out) >= settings.n_agent_train:
            break
        if q.question not in seen:
            seen.add(q.question)
            out.append({**q.to_dict(), "id": f"agent-{q.id}"})
    return out


def check_question(record: object, where: str) -> dict:
    """A question record needs id, question and golden_answers; sub_questions are optional."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name, kind in (("id", str), ("question", str), ("golden_answers", list)):
        if name not in record:
            raise RecordError(f"{where}: missing field {name!r}")
        if not isinstance(record[name], kind):
            raise RecordError(f"{where}: field {name!r} must be a {kind.__name__}")
    if not record["golden_answers"] or not all(isinstance(a, str) for a in record["golden_answers"]):
        raise RecordError(f"{where}: field 'golden_answers' must be a non-empty list of strings")
    for i, sub in enumerate(record.get("sub_questions", [])):
        if not isinstance(sub, dict) or not isinstance(sub.get("question"), str) or "passage_id" not in sub:
            raise RecordError(f"{where}: field 'sub_questions'[{i}] needs 'question' and 'passage_id'")
    return record


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write rows atomically (tmp file, then rename)."""
    return atomic_write_jsonl(path, rows)


def read_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> list[dict]:
    """Rows of a jsonl file; invalid JSON or a missing required field is a RecordError naming file and line."""
    rows = []
    try:
        for line_no, row in iter_jsonl(path):
            for name in required:
                if name not in row:
                    raise RecordError(f"{path}:{line_no}: missing field {name!r}")
            rows.append(row)
    except DataError as err:
        raise RecordError(str(err)) from err
    return rows


def read_questions(path: str | os.PathLike) -> list[dict]:
    """Question records from jsonl, each checked (see `check_question`)."""
    return [check_question(row, f"{path}:{i + 1}") for i, row in enumerate(read_jsonl(path))]


def training_pairs(questions: Iterable[dict], groups: Iterable[dict]) -> set[tuple[str, str]]:
    """(sub-query, passage id) pairs a retriever or agent was trained on: every hop of the training questions and,
    per training group, its sub-query (the part after `[SEP]`) with each positive passage."""
    pairs = hop_pairs(questions)
    for g in groups:
        sub_query = g["query"].rsplit(SEP, 1)[-1]
        pairs |= {(sub_query, str(p)) for p in g["positives"]}
    return pairs


def unseen_subqueries(questions: Sequence[dict], seen: set[tuple[str, str]]) -> list[str]:
    """Ids (`subquery_eval_set` ids) of the held-out sub-queries whose (sub-question, gold passage) is not in `seen`."""
    return [f"{q['id']}#{i}" for q in questions for i, sub in enumerate(q.get("sub_questions", []))
            if (sub["question"], str(sub["passage_id"])) not in seen]


def subquery_eval_set(questions: Sequence[dict]) -> tuple[list[str], list[str], dict[str, dict[str, int]]]:
    """(query ids, retriever queries `question [SEP] sub-question`, qrels) for the held-out sub-query recall."""
    qids, queries, qrels = [], [], {}
    for record in questions:
        for i, sub in enumerate(record.get("sub_questions", [])):
            qid = f"{record['id']}#{i}"
            qids.append(qid)
            queries.append(retriever_query(record["question"], sub["question"]))
            qrels[qid] = {str(sub["passage_id"]): 1}
    return qids, queries, qrels
