"""Questions, sub-queries and the passage corpus of a run, and the jsonl files that carry them between stages.

The replication runs on `benchmarks.synthetic.kb`: invented entities written out as one passage each, and 1-3-hop
questions whose records carry one sub-question per hop with the passage that answers it (the held-out sub-query
qrels). Every stage reads and writes jsonl; bad lines are errors naming the file, line and field, and each file
is written atomically so an interrupted stage leaves either the old file or the new one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_jsonl
from benchmarks.synthetic.kb import RELATIONS, TEMPLATES, make_kb, make_kb_questions, split_of
from shared.atomic import write_jsonl as atomic_write_jsonl

SEP = " [SEP] "


class RecordError(ValueError):
    """A malformed record in one of the pipeline's jsonl files."""


@dataclass
class KBSettings:
    """Size of the synthetic knowledge base and of the question splits."""

    n_people: int = 120
    n_companies: int = 25
    n_cities: int = 20
    n_countries: int = 6
    n_train: int = 100
    n_test: int = 60
    n_agent_train: int = 500  # oracle-trace questions for the tiny agent's SFT (train-split starts; capped by the KB)
    hops: list[int] | None = None  # default (1, 2, 3)


def retriever_query(question: str, sub_query: str, with_question: bool = True) -> str:
    """Agentic-R's retriever input `question [SEP] sub-query` (or the bare sub-query)."""
    return f"{question}{SEP}{sub_query}" if with_question else sub_query


def build_kb_data(settings: KBSettings, seed: int) -> dict:
    """`{"corpus", "train", "test", "kb"}`: corpus `[{id, contents}]`, questions as plain dicts."""
    kb = make_kb(settings.n_people, settings.n_companies, settings.n_cities, settings.n_countries, seed=seed)
    hops = tuple(settings.hops or (1, 2, 3))
    train = make_kb_questions(kb, settings.n_train, seed=seed, hops=hops, split="train")
    test = make_kb_questions(kb, settings.n_test, seed=seed, hops=hops, split="test")
    return {
        "kb": kb,
        "corpus": kb.corpus(),
        "train": [q.to_dict() for q in train],
        "test": [q.to_dict() for q in test],
    }


def agent_train_questions(settings: KBSettings, seed: int, train: Sequence[dict]) -> list[dict]:
    """Questions for the trainable agent: the run's training questions, then more from training-split start
    entities (never held-out ones) up to `n_agent_train` or as many as the knowledge base has."""
    kb = make_kb(settings.n_people, settings.n_companies, settings.n_cities, settings.n_countries, seed=seed)
    hops = tuple(settings.hops or (1, 2, 3))
    available = sum(
        split_of(entity) == "train"
        for chain in TEMPLATES
        if len(chain) in hops
        for entity in kb.entities[RELATIONS[chain[0]][0]]
    )  # the distinct (start, chain) pairs make_kb_questions draws from
    out = list(train)[: settings.n_agent_train]
    seen = {q["question"] for q in out}
    for q in make_kb_questions(kb, available, seed=seed + 1, hops=hops, split="train"):
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
