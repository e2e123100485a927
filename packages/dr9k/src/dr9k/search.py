"""Search backends behind one retriever interface (`retrieve(queries, topk)`), and the Search-R1 environment.

- `bm25`: `shared.retrieval.Retriever("bm25", corpus)` over the synthesis corpus (the CPU default);
- `dense`: the same corpus under a `TextEncoder` (`search.encoder`, "" = the offline MiniLM) and a faiss index;
- `web`: `shared.retrieval.web.WebSearchClient` (Serper / SerpAPI JSON: answer box, then organic snippets), spaced
  by a token bucket (`search.rate` per second) and cached on disk per (provider, query, topk) when
  `search.cache_dir` is set. The API key is read only from the environment variable (`search.api_key_env`, default
  SERPER_API_KEY / SERPAPI_API_KEY); a missing one is an error naming the variable before any request.
`make_env_factory` gives `shared.rollout.SearchEnv` episodes over a backend: top-k documents as
`<information>Doc i(Title: t) text</information>`, `<answer>` ends the episode, rewards come from the reward
function (not the environment, so they are not counted twice).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


def make_retriever(settings: Any, corpus: Sequence[Mapping[str, Any]] | None = None) -> Any:
    """The configured backend (module docstring); `corpus` is needed by bm25 and dense."""
    if settings.backend == "web":
        from shared.retrieval.web import RateLimited, WebSearchClient

        client = WebSearchClient(settings.provider, api_key_env=settings.api_key_env or None, url=settings.url or None,
                                 max_retries=settings.max_retries, backoff_s=settings.backoff_s)
        backend: Any = RateLimited(client, rate=settings.rate)
        if settings.cache_dir:
            from shared.retrieval.cache import CachedRetriever

            backend = CachedRetriever(backend, settings.cache_dir, name=f"web-{settings.provider}")
        return backend
    if not corpus:
        raise ValueError(f"search.backend={settings.backend} needs a corpus (the synthesis seed stage writes one)")
    from shared.retrieval import Retriever

    if settings.backend == "bm25":
        return Retriever("bm25", list(corpus))
    if settings.backend == "dense":
        from shared.retrieval import TextEncoder

        encoder = TextEncoder(settings.encoder) if settings.encoder else TextEncoder()
        return Retriever(encoder, list(corpus))
    raise ValueError(f"search.backend must be bm25, dense or web, got {settings.backend!r}")


def check_search(settings: Any) -> None:
    """Cheap checks before any work: a web backend needs its API key variable (no request is sent)."""
    if settings.backend == "web":
        from shared.retrieval.web import WebSearchClient

        WebSearchClient(settings.provider, api_key_env=settings.api_key_env or None, url=settings.url or None)


def make_env_factory(retriever: Any, topk: int) -> Callable[[Mapping[str, Any]], Any]:
    from shared.rollout.envs import SearchEnv

    return lambda record: SearchEnv(retriever, topk=topk, answer_reward=None)


def first_hop_recall(retriever: Any, rows: Sequence[Mapping[str, Any]], topk: int) -> float:
    """Model-free difficulty: the share of rows whose first gold passage is among the top-k documents retrieved
    with the question text itself (KB rows: the first sub-question's passage)."""
    hits, n = 0, 0
    results = retriever.retrieve([r["question"] for r in rows], topk=topk)
    for row, docs in zip(rows, results):
        gold = row.get("first_passage")
        if gold is None:
            continue
        n += 1
        ids = {str((d.get("document") or d).get("id")) for d in docs}
        hits += str(gold) in ids
    return hits / n if n else 0.0
