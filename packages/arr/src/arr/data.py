"""Question records and the corpus: the synthetic KB split by (entity, chain), or JSONL files, validated up front.

A record is `{id, question, golden_answers, sub_questions?, supporting_passage_ids?}`. `sub_questions`
(`[{question, answer, passage_id}]`, one per hop) feed the warm start's oracle traces and the rejection probe;
`supporting_passage_ids` feed DropGold (a record without them gets no evidence noise). The synthetic data comes
from `benchmarks.synthetic.kb`: 1-2-hop questions over `make_kb(300 people, 40 companies, 30 cities, 8 countries)`
split with `split_by="entity_chain"`, so no (sub-question, gold passage) pair of a test question occurs in any
training or dev question (`overlap` counts them; the replication expects 0), while every entity name still occurs
in training questions about its other relations. Dev questions are train-split questions after the training ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_jsonl


def check_record(rec: Any, path: str | Path = "<records>", line: int | None = None, need_hops: bool = False) -> dict:
    """A validated copy of one record; DataError names file, record (line) and field."""
    where = {"path": path, "line": line}
    if not isinstance(rec, Mapping):
        raise DataError(problem=f"expected an object, got {type(rec).__name__}", **where)
    for name in ("question",):
        if not isinstance(rec.get(name), str) or not rec[name].strip():
            raise DataError(problem="missing or not a non-empty string", field=name, **where)
    golds = rec.get("golden_answers")
    if golds is None:
        raise DataError(problem="missing (a list of gold answer strings)", field="golden_answers", **where)
    if not isinstance(golds, list) or not golds or not all(isinstance(g, str) and g.strip() for g in golds):
        raise DataError(problem="expected a non-empty list of non-empty strings", field="golden_answers", **where)
    subs = rec.get("sub_questions")
    if subs is None and need_hops:
        raise DataError(problem="missing (the rejection probe and oracle traces need each hop's question, answer "
                                "and passage_id)", field="sub_questions", **where)
    if subs is not None:
        if not isinstance(subs, list) or not subs:
            raise DataError(problem="expected a non-empty list of {question, answer, passage_id}",
                            field="sub_questions", **where)
        for k, sub in enumerate(subs):
            if not isinstance(sub, Mapping) or not all(isinstance(sub.get(f), str) for f in ("question", "answer")) \
                    or "passage_id" not in sub:
                raise DataError(problem=f"entry {k} needs string 'question' and 'answer' and a 'passage_id'",
                                field="sub_questions", **where)
    ids = rec.get("supporting_passage_ids", [])
    if not isinstance(ids, list):
        raise DataError(problem="expected a list of passage ids", field="supporting_passage_ids", **where)
    out = dict(rec)
    out.setdefault("id", f"line{line}" if line is not None else rec["question"])
    return out


def load_records(path: str | Path, need_hops: bool = False) -> list[dict]:
    """Validated records of a JSONL file (DataError on the first bad one, or on an empty file)."""
    out = [check_record(obj, path, line, need_hops) for line, obj in iter_jsonl(path)]
    if not out:
        raise DataError(path, "no records in file")
    return out


def load_corpus_file(path: str | Path) -> list[dict]:
    from shared.retrieval.retriever import load_corpus

    return load_corpus(path)


def kb_records(questions: Sequence[Any]) -> list[dict]:
    """`KBQuestion`s as records."""
    return [check_record(q.to_dict()) for q in questions]


def synthetic(d: Any) -> dict[str, Any]:
    """{"kb", "corpus", "train", "dev", "test"} from `DataSettings` (see the module docstring)."""
    from benchmarks.synthetic.kb import make_kb, make_kb_questions

    kb = make_kb(d.n_people, d.n_companies, d.n_cities, d.n_countries, seed=d.kb_seed)
    hops = tuple(int(h) for h in d.hops)
    pool = make_kb_questions(kb, d.train_questions + d.dev_questions, seed=d.seed, hops=hops, split="train",
                             split_by=d.split_by)
    test = make_kb_questions(kb, d.test_questions, seed=d.seed, hops=hops, split="test", split_by=d.split_by)
    return {"kb": kb, "corpus": kb.corpus(), "train": kb_records(pool[: d.train_questions]),
            "dev": kb_records(pool[d.train_questions:]), "test": kb_records(test)}


def load_data(d: Any) -> dict[str, Any]:
    """The corpus and record splits named by `DataSettings`: JSONL files when given, else the synthetic KB."""
    if d.train_file or d.test_file:
        if not d.corpus_file:
            raise DataError(d.train_file or d.test_file, "records from files need data.corpus_file ({id, contents})")
        corpus = load_corpus_file(d.corpus_file)
        train = load_records(d.train_file) if d.train_file else []
        test = load_records(d.test_file) if d.test_file else []
        return {"kb": None, "corpus": corpus, "train": train, "dev": [], "test": test}
    return synthetic(d)


def hop_pairs(records: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    return {(str(s["question"]), str(s["passage_id"])) for r in records for s in r.get("sub_questions") or []}


def overlap(test: Sequence[Mapping[str, Any]], *others: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """What the test records share with the other splits: identical questions and (sub-question, gold passage)
    hops. The replication expects both 0."""
    other = [r for rs in others for r in rs]
    questions = {r["question"] for r in other}
    return {"questions": sum(r["question"] in questions for r in test),
            "hops": len(hop_pairs(test) & hop_pairs(other))}


def data_digest(records: Sequence[Mapping[str, Any]]) -> str:
    from shared.eval import sha256_of

    return sha256_of(json.dumps([r["question"] for r in records]).encode())
