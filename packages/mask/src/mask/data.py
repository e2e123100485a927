"""Questions and corpus: the synthetic multi-hop KB split by (entity, chain), or FlashRAG-style JSONL files.

Synthetic (default): `benchmarks.synthetic.kb.make_kb` with the configured sizes, questions of `data.hops` hops,
split with `split_by="entity_chain"`: every hop (entity, relation) belongs to one split and a question to the split
all its hops are in, so no (sub-question, gold passage) pair of a test question occurs in any training question
(`overlap` counts them; the replication expects 0). Dev questions are the first `n_dev` train-split questions (a
seeded order) and are never trained on; RL trains on the rest, the warm starts on every train-split question of
`data.sft_hops` hops except the dev ones. The corpus (one passage per entity) is what the retriever indexes.

Files: `data.{train,dev,test}_file` hold `{id, question, golden_answers}` records (FlashRAG), `data.corpus_file`
`{id, contents}` documents; a record without `golden_answers` is a DataError naming file, line and field. Oracle
warm starts need the KB's `sub_questions`, so file data serves `mask eval` and RL from a saved policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from mask.config import DataSettings


def check_record(record: Any, source: str = "record") -> None:
    """A question record needs a string `question` and a non-empty list of string `golden_answers`."""
    rid = record.get("id", "?") if isinstance(record, Mapping) else "?"
    if not isinstance(record, Mapping):
        raise ValueError(f"{source}: expected a mapping, got {type(record).__name__}")
    if not isinstance(record.get("question"), str) or not record["question"].strip():
        raise ValueError(f"{source} {rid!r}: field 'question' must be a non-empty string")
    golds = record.get("golden_answers")
    if not isinstance(golds, list) or not golds or not all(isinstance(g, str) for g in golds):
        raise ValueError(f"{source} {rid!r}: field 'golden_answers' must be a non-empty list of strings")


def _kb_args(d: DataSettings) -> dict[str, int]:
    return {"n_people": d.n_people, "n_companies": d.n_companies, "n_cities": d.n_cities,
            "n_countries": d.n_countries, "seed": d.kb_seed}


@lru_cache(maxsize=4)
def _kb(n_people: int, n_companies: int, n_cities: int, n_countries: int, seed: int) -> Any:
    from benchmarks.synthetic.kb import make_kb

    return make_kb(n_people, n_companies, n_cities, n_countries, seed)


def knowledge_base(d: DataSettings) -> Any:
    return _kb(**_kb_args(d))


def _questions(d: DataSettings, split: str, hops: Sequence[int]) -> list[dict]:
    """Every question of a split with the given hop counts, in the KB's seeded order, as record dicts."""
    from benchmarks.synthetic.kb import make_kb_questions, question_pool

    kb = knowledge_base(d)
    hops = tuple(sorted(set(hops)))
    n = len(question_pool(kb, split, hops, d.split_by))
    return [q.to_dict() for q in make_kb_questions(kb, n, seed=d.kb_seed, hops=hops, split=split,
                                                     split_by=d.split_by)]


def synthetic_splits(d: DataSettings) -> dict[str, list[dict]]:
    """{"train", "dev", "test", "sft"} record lists of the synthetic KB (see the module docstring)."""
    train_all = _questions(d, "train", d.hops)
    test_all = _questions(d, "test", d.hops)
    if len(train_all) < d.n_dev + 1:
        raise ValueError(f"data: only {len(train_all)} train-split questions with hops {d.hops}; n_dev={d.n_dev} "
                         "leaves none for training (grow the KB)")
    if len(test_all) < d.n_test:
        raise ValueError(f"data: only {len(test_all)} test-split questions with hops {d.hops} (split_by="
                         f"{d.split_by}); lower data.n_test or grow the KB (data.n_people, ...)")
    dev, train = train_all[: d.n_dev], train_all[d.n_dev :]
    if d.n_train:
        train = train[: d.n_train]
    held = {q["question"] for q in dev}
    sft = [q for q in _questions(d, "train", d.sft_hops) if q["question"] not in held]
    return {"train": train, "dev": dev, "test": test_all[: d.n_test], "sft": sft}


def corpus(d: DataSettings) -> list[dict]:
    if d.corpus_file:
        from shared.retrieval.retriever import load_corpus

        return load_corpus(d.corpus_file)
    return knowledge_base(d).corpus()


def load_split(d: DataSettings, split: str) -> list[dict]:
    """Records of a split: from its file when given (FlashRAG layout, checked), else the synthetic KB's."""
    path = getattr(d, f"{split}_file", "") if split in ("train", "dev", "test") else ""
    if path:
        from benchmarks.data.qa import load_flashrag

        return [{"id": r.id, "question": r.question, "golden_answers": list(r.golden_answers), **r.metadata}
                for r in load_flashrag(path)]
    if d.train_file or d.test_file or d.dev_file:
        raise ValueError(f"data.{split}_file is empty while other question files are given; give every split's "
                         "file (the synthetic KB fills only a whole run)")
    return synthetic_splits(d)[split]


def overlap(train: Sequence[Mapping[str, Any]], test: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """What test questions share with training ones: identical questions, and (KB records) (sub-question, gold
    passage) hops."""
    out = {"questions": len({q["question"] for q in test} & {q["question"] for q in train})}
    if all("sub_questions" in q for q in (*train, *test)):
        from benchmarks.synthetic.kb import shared_hops

        out["hops"] = shared_hops(list(train), list(test))
    return out


def data_name(d: DataSettings) -> str:
    if d.test_file:
        return d.test_file
    return (f"synthetic KB (seed {d.kb_seed}; {d.n_people} people, {d.n_companies} companies, {d.n_cities} cities, "
            f"{d.n_countries} countries), {'/'.join(map(str, d.hops))}-hop questions split by {d.split_by}")


def make_retrieve(retriever: Any, topk: int):
    """retrieve(query) -> the top-k documents {id, contents} (an empty query returns no documents)."""

    def retrieve(query: str) -> list[dict]:
        if not query.strip():
            return []
        return [{"id": h["id"], "contents": h["contents"]} for h in retriever.retrieve([query], topk=topk)[0]]

    return retrieve


def build_retriever(d: DataSettings, backend: str = "bm25") -> Any:
    from shared.retrieval import Retriever

    return Retriever(backend, corpus(d))
