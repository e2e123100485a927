"""Tests for shared.retrieval.bm25.BM25Index: hand-computed Lucene BM25 scores and ranking on a 3-doc corpus."""

from __future__ import annotations

import math

import numpy as np
import pytest
from shared.retrieval.bm25 import BM25Error, BM25Index

# After English stop-word removal every document has 3 tokens, so avgdl = dl = 3 and the length norm is 1.
DOCS = ["the cat sat on the mat", "dogs chase the cat", "quantum physics lecture"]
IDS = ["a", "b", "c"]


def lucene_term(df: int, n_docs: int = 3, tf: int = 1, k1: float = 1.5) -> float:
    """idf * tf / (tf + k1) when dl == avgdl (bm25s' Lucene variant has no (k1 + 1) factor)."""
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5)) * tf / (tf + k1)


def test_ranking_and_hand_computed_scores() -> None:
    index = BM25Index(DOCS, IDS)
    scores, ids = index.search(["cat mat", "quantum cat"], k=3)
    # "cat" is in a and b (df=2), "mat" only in a (df=1).
    assert ids[0] == ["a", "b", "c"]
    assert np.allclose(scores[0], [lucene_term(2) + lucene_term(1), lucene_term(2), 0.0], atol=1e-5)
    # "quantum" (df=1) outweighs "cat" (df=2); a and b tie on "cat" and keep corpus order.
    assert ids[1] == ["c", "a", "b"]
    assert np.allclose(scores[1], [lucene_term(1), lucene_term(2), lucene_term(2)], atol=1e-5)


def test_unknown_and_stopword_queries_score_zero() -> None:
    scores, ids = BM25Index(DOCS, IDS).search(["zebra", "the on"], k=2)
    assert np.all(scores == 0.0) and ids == [["a", "b"], ["a", "b"]]


def test_k_clipped_and_default_ids() -> None:
    scores, ids = BM25Index(DOCS).search(["lecture"], k=10)
    assert scores.shape == (1, 3) and ids[0][0] == 2


def test_bad_inputs() -> None:
    with pytest.raises(BM25Error, match="at least one document"):
        BM25Index([])
    with pytest.raises(BM25Error, match=r"texts\[1\] must be a str"):
        BM25Index(["ok", None])
    with pytest.raises(BM25Error, match="3 texts but 2 ids"):
        BM25Index(DOCS, ["a", "b"])
    index = BM25Index(DOCS)
    with pytest.raises(BM25Error, match="single str"):
        index.search("cat", 1)
    with pytest.raises(BM25Error, match="k must be >= 1"):
        index.search(["cat"], 0)


def test_pyserini_preset_hand_computed_with_length_norm() -> None:
    # lengths after stop words: 1, 3, 1 -> avgdl 5/3; "cat" is in the first two (df 2 of 3)
    docs, ids = ["cat", "cat dog bird", "fish"], ["s", "l", "f"]
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))

    def term(k1: float, b: float, dl: int) -> float:
        return idf / (1 + k1 * (1 - b + b * dl / (5 / 3)))

    index = BM25Index.preset(docs, ids, "pyserini")
    assert (index.k1, index.b) == (0.9, 0.4)
    assert np.allclose(index.scores("cat"), [term(0.9, 0.4, 1), term(0.9, 0.4, 3), 0.0], atol=1e-6)
    # the default (bm25s) parameters give other values: k1 1.5, b 0.75
    assert np.allclose(BM25Index(docs, ids).scores("cat"), [term(1.5, 0.75, 1), term(1.5, 0.75, 3), 0.0], atol=1e-6)
    with pytest.raises(BM25Error, match="unknown BM25 preset 'lucene'"):
        BM25Index.preset(docs, ids, "lucene")
