"""An on-disk cache in front of any retriever (web search, the search service, a local index).

`CachedRetriever(inner, cache_dir, name)` answers `retrieve(queries, topk)` from `shared.cache.JsonCache` entries
keyed by (name, query, topk) and sends only the missing queries to `inner`, in one call, in first-seen order (a
query repeated inside a call is fetched once). Entries are written atomically as they arrive, so a killed run
keeps every answer it had paid for and a rerun asks only the rest. `name` separates backends sharing a folder:
change it when the backend, its index or its settings change, because a cache cannot tell.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from shared.cache import MISSING, JsonCache


class CachedRetriever:
    """Retriever protocol over `inner` with a persistent (name, query, topk) -> documents cache."""

    def __init__(self, inner: Any, cache_dir: str | os.PathLike, name: str) -> None:
        if not hasattr(inner, "retrieve"):
            raise TypeError(f"CachedRetriever needs an object with retrieve(queries, topk); got {type(inner).__name__}")
        if not name:
            raise ValueError("CachedRetriever needs a name for its backend (it is part of every cache key)")
        self.inner, self.name = inner, name
        self.cache = JsonCache(cache_dir)
        self.fetched = 0  # queries sent to `inner`

    def _key(self, query: str, topk: int) -> dict[str, Any]:
        return {"name": self.name, "query": query, "topk": topk}

    def retrieve(self, queries: Sequence[str], topk: int = 3) -> list[list[dict[str, Any]]]:
        if isinstance(queries, str):
            raise TypeError("queries must be a list of strings, got a single str")
        found: dict[str, Any] = {}
        for query in queries:
            if query not in found:
                found[query] = self.cache.get(self._key(query, topk))
        missing = [q for q, hits in found.items() if hits is MISSING]
        if missing:
            answers = self.inner.retrieve(missing, topk=topk)
            if len(answers) != len(missing):
                raise ValueError(f"{self.name}: retriever answered {len(answers)} lists for {len(missing)} queries")
            self.fetched += len(missing)
            for query, hits in zip(missing, answers):
                hits = [dict(h) for h in hits]
                self.cache.put(self._key(query, topk), hits)
                found[query] = hits
        return [found[q] for q in queries]
