"""BM25 sparse index over bm25s, returning document ids and scores in the same shape as DenseIndex.

bm25s does the tokenisation (scikit-learn style, English stop words) and the scoring matrix; ranking is done
here per query so that queries made only of unknown or stop words get all-zero scores instead of an error,
and ties break by corpus order (deterministic).

Parameters: the default k1 = 1.5, b = 0.75 are bm25s' (and Robertson's textbook) values; `BM25_PRESETS["pyserini"]`
= k1 0.9, b 0.4 are Anserini/pyserini's defaults, the usual BM25 baseline of BEIR and MS MARCO papers
(`BM25Index.preset(texts, ids, "pyserini")`). The tokenisation stays bm25s' (lower-case words, English stop words,
no stemming), so scores are not pyserini's own (its Lucene analyser stems).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

BM25_PRESETS: dict[str, tuple[float, float]] = {"bm25s": (1.5, 0.75), "pyserini": (0.9, 0.4)}


class BM25Error(ValueError):
    """Bad input to BM25Index (empty corpus, non-string text, mismatched ids)."""


def _check_texts(texts: Sequence[str], what: str) -> list[str]:
    if isinstance(texts, str):
        raise BM25Error(f"{what} must be a list of strings, got a single str")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise BM25Error(f"{what}[{i}] must be a str, got {type(text).__name__}")
    return texts


class BM25Index:
    """Okapi BM25 (Lucene variant) over a list of texts with parallel document ids."""

    def __init__(
        self,
        texts: Sequence[str],
        ids: Sequence[Hashable] | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        stopwords: str | list[str] | None = "en",
    ) -> None:
        import bm25s

        texts = _check_texts(texts, "texts")
        if not texts:
            raise BM25Error("BM25Index needs at least one document")
        self.ids = list(range(len(texts))) if ids is None else list(ids)
        if len(self.ids) != len(texts):
            raise BM25Error(f"got {len(texts)} texts but {len(self.ids)} ids")
        self.k1, self.b, self.stopwords = k1, b, stopwords
        self._bm25s = bm25s
        tokens = bm25s.tokenize(texts, stopwords=stopwords, return_ids=False, show_progress=False)
        self._model = bm25s.BM25(k1=k1, b=b, method="lucene")
        # create_empty_token keeps documents that tokenise to nothing indexable.
        self._model.index(tokens, show_progress=False, create_empty_token=True)
        self._vocab = self._model.vocab_dict

    @classmethod
    def preset(
        cls, texts: Sequence[str], ids: Sequence[Hashable] | None = None, name: str = "bm25s", **kwargs
    ) -> BM25Index:
        """An index with the (k1, b) of a named preset: "bm25s" (1.5, 0.75) or "pyserini" (0.9, 0.4)."""
        if name not in BM25_PRESETS:
            raise BM25Error(f"unknown BM25 preset {name!r}; presets: {sorted(BM25_PRESETS)}")
        k1, b = BM25_PRESETS[name]
        return cls(texts, ids, k1=k1, b=b, **kwargs)

    def __len__(self) -> int:
        return len(self.ids)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for one query (zeros when no query term is in the vocabulary)."""
        (tokens,) = self._bm25s.tokenize([query], stopwords=self.stopwords, return_ids=False, show_progress=False)
        known = [t for t in tokens if t in self._vocab and t != ""]
        if not known:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._model.get_scores(known), dtype=np.float32)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, list[list[Hashable]]]:
        """Top-k per query: (scores [n, min(k, len)], document ids per query, best first; ties by corpus order)."""
        queries = _check_texts(queries, "queries")
        if k < 1:
            raise BM25Error(f"k must be >= 1, got {k}")
        k = min(k, len(self.ids))
        all_scores = np.zeros((len(queries), k), dtype=np.float32)
        all_ids: list[list[Hashable]] = []
        for qi, query in enumerate(queries):
            doc_scores = self.scores(query)
            order = np.argsort(-doc_scores, kind="stable")[:k]
            all_scores[qi] = doc_scores[order]
            all_ids.append([self.ids[i] for i in order])
        return all_scores, all_ids
