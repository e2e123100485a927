"""Retrieval for the shared core: text encoders, faiss dense index, BM25, a retriever and the search service.

The service speaks the Search-R1 `POST /retrieve` contract so agents and rollout workers share one index.
Names are imported on first use, so `from shared.retrieval import SearchClient` does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BM25Error": "bm25",
    "BM25Index": "bm25",
    "CachedRetriever": "cache",
    "EncoderLoadError": "encoders",
    "TextEncoder": "encoders",
    "default_model_path": "encoders",
    "pool_hidden_states": "encoders",
    "DenseIndex": "index",
    "DenseIndexError": "index",
    "faiss_gpu_available": "index",
    "CorpusError": "retriever",
    "Retriever": "retriever",
    "load_corpus": "retriever",
    "normalize_doc": "retriever",
    "SearchClient": "service",
    "SearchServer": "service",
    "SearchServiceError": "service",
    "MissingAPIKey": "web",
    "RateLimited": "web",
    "WebSearchClient": "web",
    "WebSearchError": "web",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'shared.retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
