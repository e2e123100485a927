"""Shared fixtures of arr's tests: a character tokenizer (one token per character, so masks count by hand), a fixed
evidence source and a record; one torch thread per process (the shared 2-core box)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def char_tok():
    from shared.modeling.tiny import build_tokenizer

    return build_tokenizer(kind="char")


DOCS = [{"id": "p1", "contents": '"Kara Nelo"\nKara Nelo was born in Lomiville.'},
        {"id": "p2", "contents": '"Zo Ra"\nThe mentor of Zo Ra is Kara Nelo.'},
        {"id": "p3", "contents": '"Mi Ka"\nMi Ka works for Lo Corp.'}]


class FixedEvidence:
    """search() returns the same documents every turn (without the gold passage p1 when `drop`)."""

    def __init__(self, drop: bool = False) -> None:
        self.drop = drop

    def search(self, record, query, seen=None, sample=0, turn=0):
        docs = [d for d in DOCS if not (self.drop and d["id"] == "p1")]
        return docs, self.drop


@pytest.fixture
def record():
    return {"id": "q1", "question": "Where was Kara Nelo born?", "golden_answers": ["Lomiville"],
            "sub_questions": [{"question": "Where was Kara Nelo born?", "answer": "Lomiville", "passage_id": "p1"}],
            "supporting_passage_ids": ["p1"]}


@pytest.fixture
def evidence():
    return FixedEvidence
