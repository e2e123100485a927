"""Web search as a retriever: Serper- and SerpAPI-style JSON APIs -> `{id, contents}` documents, and a rate limiter.

`WebSearchClient(provider).retrieve(queries, topk)` has the retriever protocol `SearchEnv` and the caches use, so a
web backend drops in where BM25 or the dense service stood. One request per query:
- serper: `POST {url}` with `{"q", "num"}` and the key in the `X-API-KEY` header; reads `answerBox` and `organic`;
- serpapi: `GET {url}?engine=google&q=...&num=...&api_key=...`; reads `answer_box` and `organic_results`.
The answer box (when present) comes first, then the organic results in rank order, cut to `topk`, duplicates of
one link dropped. A document is `{"id": link, "contents": "title\\nsnippet"}` (the answer box's text is its
`answer`, else its `snippet`), which `SearchEnv` shows as `Doc i(Title: title) snippet`.

The API key is read only from an environment variable (`api_key_env`; defaults SERPER_API_KEY / SERPAPI_API_KEY):
a missing one raises `MissingAPIKey` naming the variable before any request. HTTP 429 and 5xx, timeouts and
connection errors are retried with exponential back-off through an injectable `sleep`
(`shared.serving.fetch_with_retries`; a numeric Retry-After is honoured within `max_backoff_s`); other 4xx, a body that is not JSON, or an API error object raise
`WebSearchError` naming the URL. The key never appears in an error: URLs are shown without their query string.

`RateLimited(inner, rate, burst, clock, sleep)` spaces calls with a token bucket; with a fake clock and sleep, tests
need no real time. Put it under a `CachedRetriever` (`shared.retrieval.cache`) so cached queries cost no token.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.retrieval.service import SearchServiceError
from shared.serving import HttpFailure, fetch_with_retries

PROVIDERS = {
    "serper": {"url": "https://google.serper.dev/search", "key_env": "SERPER_API_KEY"},
    "serpapi": {"url": "https://serpapi.com/search.json", "key_env": "SERPAPI_API_KEY"},
}


class MissingAPIKey(ValueError):
    """The environment variable that should hold the web search API key is unset or empty."""


class WebSearchError(SearchServiceError):
    """The web search API failed, refused the request or answered with something that is not its JSON."""


def _doc(link: Any, title: Any, text: Any, fallback_id: str) -> dict[str, str]:
    title = " ".join(str(title or "").split())
    text = " ".join(str(text or "").split())
    return {"id": str(link) if link else fallback_id, "contents": f"{title}\n{text}"}


def parse_results(payload: Mapping[str, Any], provider: str, topk: int, query: str) -> list[dict[str, str]]:
    """Documents from one API answer: answer box first, then organic results, distinct ids, at most `topk`."""
    box_key, organic_key = ("answerBox", "organic") if provider == "serper" else ("answer_box", "organic_results")
    docs: list[dict[str, str]] = []
    box = payload.get(box_key)
    if isinstance(box, Mapping):
        text = box.get("answer") or box.get("snippet") or box.get("result")
        if text:
            docs.append(_doc(box.get("link"), box.get("title") or query, text, f"answer_box:{query}"))
    organic = payload.get(organic_key)
    organic = [] if organic is None else organic
    if not isinstance(organic, list):
        raise ValueError(f"'{organic_key}' is a {type(organic).__name__}, expected a list")
    for i, hit in enumerate(organic):
        if isinstance(hit, Mapping):
            docs.append(_doc(hit.get("link"), hit.get("title"), hit.get("snippet"), f"organic:{query}:{i}"))
    out, seen = [], set()
    for doc in docs:
        if doc["id"] not in seen:
            seen.add(doc["id"])
            out.append(doc)
    return out[:topk]


class WebSearchClient:
    """Retriever over a Serper/SerpAPI-style web search API (see module docstring)."""

    def __init__(self, provider: str = "serper", api_key_env: str | None = None, url: str | None = None,
                 timeout_s: float = 15.0, max_retries: int = 3, backoff_s: float = 1.0, max_backoff_s: float = 16.0,
                 extra_params: Mapping[str, Any] | None = None, sleep: Callable[[float], None] = time.sleep,
                 environ: Mapping[str, str] | None = None) -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"unknown web search provider {provider!r}; use one of {sorted(PROVIDERS)}")
        if max_retries < 0 or timeout_s <= 0:
            raise ValueError("WebSearchClient needs max_retries >= 0 and timeout_s > 0")
        self.provider = provider
        self.api_key_env = api_key_env or PROVIDERS[provider]["key_env"]
        key = (os.environ if environ is None else environ).get(self.api_key_env, "")
        if not key.strip():
            raise MissingAPIKey(f"web search ({provider}) needs an API key in the environment variable "
                                f"{self.api_key_env}, which is not set")
        self._key = key.strip()
        self.url = url or PROVIDERS[provider]["url"]
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"web search url must start with http:// or https://, got {self.url!r}")
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.extra_params = dict(extra_params or {})
        self.sleep = sleep
        self.requests = 0

    def _request(self, query: str, topk: int) -> urllib.request.Request:
        if self.provider == "serper":
            body = json.dumps({"q": query, "num": topk, **self.extra_params}).encode()
            headers = {"X-API-KEY": self._key, "Content-Type": "application/json"}
            return urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        params = {"engine": "google", "q": query, "num": topk, **self.extra_params, "api_key": self._key}
        return urllib.request.Request(f"{self.url}?{urllib.parse.urlencode(params)}", method="GET")

    def search(self, query: str, topk: int = 3) -> list[dict[str, str]]:
        """The documents of one query (retries as in the module docstring)."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError(f"web search query must be a non-empty string, got {query!r}")
        try:
            text = fetch_with_retries(lambda: self._request(query, topk), self.timeout_s, self.max_retries,
                                      self.backoff_s, self.max_backoff_s, self.sleep, self._count,
                                      redact=lambda t: t.replace(self._key, "***"))
        except HttpFailure as err:
            if err.refused:
                raise WebSearchError(f"web search {self.url} refused the request ({err.detail})") from None
            raise WebSearchError(f"web search {self.url} failed after {err.attempts} attempt(s): {err.detail}") from None
        return self._parse(text, query, topk)

    def _count(self, what: str) -> None:
        if what == "http_requests":
            self.requests += 1

    def _parse(self, text: str, query: str, topk: int) -> list[dict[str, str]]:
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            raise WebSearchError(f"web search {self.url} answered with a body that is not JSON: "
                                 f"{text[:200].replace(self._key, '***')!r}") from None
        if not isinstance(payload, Mapping):
            raise WebSearchError(f"web search {self.url} answered with a JSON {type(payload).__name__}, "
                                 f"expected an object")
        if payload.get("error"):
            raise WebSearchError(f"web search {self.url} answered with an error: "
                                 f"{str(payload['error'])[:200].replace(self._key, '***')}")
        try:
            return parse_results(payload, self.provider, topk, query)
        except ValueError as err:
            raise WebSearchError(f"web search {self.url} answered with malformed results: {err}") from None

    def retrieve(self, queries: Sequence[str], topk: int = 3) -> list[list[dict[str, str]]]:
        """Per query, its documents (the retriever protocol)."""
        if isinstance(queries, str):
            raise TypeError("queries must be a list of strings, got a single str")
        return [self.search(q, topk) for q in queries]


class RateLimited:
    """Token bucket in front of a retriever: `rate` tokens per second, at most `burst` saved up; each query costs
    one token and is sent to `inner` on its own, so a burst of queries is spaced too (`per_query=False`: each call
costs one token and goes through whole, for batched backends). `clock` and `sleep` are injectable for tests."""

    def __init__(self, inner: Any, rate: float, burst: int = 1, per_query: bool = True,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"RateLimited needs rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
        self.inner, self.rate, self.burst, self.per_query = inner, rate, burst, per_query
        self.clock, self.sleep = clock, sleep
        self.tokens, self.last = float(burst), clock()
        self.waited = 0.0
        self._lock = threading.Lock()

    def acquire(self, cost: int = 1) -> None:
        """Take `cost` tokens, sleeping until they are there."""
        with self._lock:
            for _ in range(cost):
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens < 1:
                    wait = (1 - self.tokens) / self.rate
                    self.sleep(wait)
                    self.waited += wait
                    now = self.clock()
                    self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
                    self.last = now
                    self.tokens = max(self.tokens, 1.0)  # a sleep that returned early still pays for one call
                self.tokens -= 1

    def retrieve(self, queries: Sequence[str], topk: int = 3) -> list[list[dict[str, Any]]]:
        """Each query waits for its token and goes to `inner` alone (per_query), or the call waits for one."""
        if isinstance(queries, str):
            raise TypeError("queries must be a list of strings, got a single str")
        if not self.per_query:
            self.acquire(1)
            return self.inner.retrieve(queries, topk=topk)
        out = []
        for query in queries:
            self.acquire(1)
            out.extend(self.inner.retrieve([query], topk=topk))
        return out
