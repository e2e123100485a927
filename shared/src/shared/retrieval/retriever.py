"""Retriever: a corpus plus a backend (dense encoder + faiss index, or BM25) answering top-k queries.

A BM25 retriever imports neither torch nor faiss (the dense modules load only for a TextEncoder backend).
The corpus loader accepts the two common jsonl layouts (`{"id", "contents"}` as in Search-R1/Pyserini, and
`{"id", "title", "text"}` which becomes contents "title\\ntext") and reports bad lines by file, line and field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .bm25 import BM25Index

if TYPE_CHECKING:  # the dense modules import torch/faiss; a BM25 retriever never loads them
    from .encoders import TextEncoder
    from .index import DenseIndex


class CorpusError(ValueError):
    """A corpus file or document list is malformed."""


def normalize_doc(record: object, where: str) -> dict:
    """Turn one corpus record into {"id", "contents", ...extra fields}; `where` names it in errors."""
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if "id" not in record:
        raise CorpusError(f"{where}: missing field 'id'")
    doc_id = record["id"]
    if not isinstance(doc_id, (str, int)) or isinstance(doc_id, bool):
        raise CorpusError(f"{where}: field 'id' must be a string or integer, got {type(doc_id).__name__}")
    if "contents" in record:
        contents = record["contents"]
        if not isinstance(contents, str):
            raise CorpusError(f"{where}: field 'contents' must be a string, got {type(contents).__name__}")
    elif "text" in record:
        for field in ("title", "text"):
            if field in record and not isinstance(record[field], str):
                raise CorpusError(f"{where}: field {field!r} must be a string, got {type(record[field]).__name__}")
        title = record.get("title", "")
        contents = f"{title}\n{record['text']}" if title else record["text"]
    else:
        raise CorpusError(f"{where}: missing field 'contents' (or 'text' with optional 'title')")
    return {**record, "id": doc_id, "contents": contents}


def load_corpus(path: str | os.PathLike) -> list[dict]:
    """Read a corpus jsonl; blank lines are allowed, duplicate ids and malformed lines are errors."""
    file = Path(path)
    if not file.exists():
        raise CorpusError(f"corpus file not found: {file}")
    docs: list[dict] = []
    seen: dict = {}
    with file.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{file}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise CorpusError(f"{where}: invalid JSON ({err.msg})") from err
            doc = normalize_doc(record, where)
            if doc["id"] in seen:
                raise CorpusError(f"{where}: field 'id' value {doc['id']!r} duplicates line {seen[doc['id']]}")
            seen[doc["id"]] = line_no
            docs.append(doc)
    if not docs:
        raise CorpusError(f"corpus file {file} holds no documents")
    return docs


class Retriever:
    """Top-k search over `docs` with a TextEncoder (dense), a BM25Index, or the string "bm25".

    Dense: passages are encoded once and put in a DenseIndex (pass `index` to reuse a saved one; it must hold
    the same ids as docs). Scores are inner products of (normalised) embeddings, or BM25 scores.
    """

    def __init__(
        self,
        backend: TextEncoder | BM25Index | str,
        docs: Sequence[dict],
        index: DenseIndex | None = None,
        index_kind: str = "flat",
        nlist: int = 100,
        nprobe: int = 8,
        use_gpu: bool | str = "auto",
    ) -> None:
        self.docs = [normalize_doc(doc, f"docs[{i}]") for i, doc in enumerate(docs)]
        if not self.docs:
            raise CorpusError("Retriever needs at least one document")
        self.by_id = {doc["id"]: doc for doc in self.docs}
        if len(self.by_id) != len(self.docs):
            raise CorpusError("docs contain duplicate 'id' values")
        ids = [doc["id"] for doc in self.docs]
        self.encoder: TextEncoder | None = None
        if isinstance(backend, str):
            if backend != "bm25":
                raise ValueError(f"backend string must be 'bm25', got {backend!r}; pass a TextEncoder for dense")
            backend = BM25Index([doc["contents"] for doc in self.docs], ids)
        if isinstance(backend, BM25Index):
            if set(backend.ids) != set(ids):
                raise CorpusError("BM25Index ids do not match the docs' ids")
            self.searcher = backend
            return
        from .encoders import TextEncoder
        from .index import DenseIndex

        if isinstance(backend, TextEncoder):
            self.encoder = backend
            if index is None:
                index = DenseIndex(backend.dim, kind=index_kind, nlist=nlist, nprobe=nprobe, use_gpu=use_gpu)
                index.add(
                    backend.encode_passages([doc["contents"] for doc in self.docs], progress=len(ids) > 1000), ids
                )
            elif set(index.ids) != set(ids) or index.dim != backend.dim:
                raise CorpusError("the given DenseIndex does not hold the docs' ids at the encoder's dimension")
            self.searcher = index
        else:
            raise TypeError(f"backend must be a TextEncoder, a BM25Index or 'bm25', got {type(backend).__name__}")

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike, backend: TextEncoder | BM25Index | str, **kwargs) -> Retriever:
        """Build a retriever over a corpus jsonl file."""
        return cls(backend, load_corpus(path), **kwargs)

    @property
    def index(self) -> DenseIndex | None:
        return None if self.encoder is None else self.searcher

    def retrieve(self, queries: Sequence[str], topk: int = 3) -> list[list[dict]]:
        """Per query, the top-k documents as {"id", "contents", "score"}, best first."""
        if isinstance(queries, str):
            raise TypeError("queries must be a list of strings, got a single str")
        queries = list(queries)
        if topk < 1:
            raise ValueError(f"topk must be >= 1, got {topk}")
        if not queries:
            return []
        if self.encoder is not None:
            scores, ids = self.searcher.search(self.encoder.encode_queries(queries), topk)
        else:
            scores, ids = self.searcher.search(queries, topk)
        results = []
        for row_scores, row_ids in zip(scores, ids):
            results.append(
                [
                    {"id": doc_id, "contents": self.by_id[doc_id]["contents"], "score": float(score)}
                    for doc_id, score in zip(row_ids, row_scores)
                ]
            )
        return results
