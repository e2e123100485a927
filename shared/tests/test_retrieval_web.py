"""Web search adapter, retrieval cache and rate limiter against a loopback stub of the Serper / SerpAPI JSON APIs.
Nothing leaves 127.0.0.1; back-off sleeps and the rate limiter's clock are fakes."""

from __future__ import annotations

import json
import threading

import pytest
from shared.cache import JsonCache
from shared.retrieval import CachedRetriever, MissingAPIKey, RateLimited, WebSearchClient, WebSearchError
from shared.retrieval.web import parse_results
from shared.rollout.envs import Action, SearchEnv
from shared.serving import HttpResponse, LoopbackServer, ReplyError

SERPER = {
    "answerBox": {"title": "Paris", "answer": "Paris is the capital of France.", "link": "https://a.example/paris"},
    "organic": [
        {"title": "France", "link": "https://b.example/france", "snippet": "France is a country.", "position": 1},
        {"title": "Paris  city", "link": "https://c.example/city", "snippet": "Paris has\n2M people.", "position": 2},
        {"title": "Dup", "link": "https://a.example/paris", "snippet": "same link as the answer box"},
    ],
}
SERPAPI = {
    "answer_box": {"title": "Paris", "snippet": "Capital of France", "link": "https://a.example/paris"},
    "organic_results": [{"title": "France", "link": "https://b.example/france", "snippet": "A country."}],
}
KEY = "sk-test-123"


class Stub:
    """A loopback web search API: scripted answers per request (dict -> 200 JSON, bytes -> raw 200 body,
    ReplyError -> that status), default SERPER/SERPAPI."""

    def __init__(self, script=(), provider="serper"):
        self.script, self.provider = list(script), provider
        self.lock = threading.Lock()
        self.server = LoopbackServer(self.handle)

    def handle(self, request):
        if self.provider == "serper":
            assert request.method == "POST" and request.headers["x-api-key"] == KEY
        else:
            assert request.method == "GET" and request.query["api_key"] == KEY and request.query["engine"] == "google"
        with self.lock:
            step = self.script.pop(0) if self.script else (SERPER if self.provider == "serper" else SERPAPI)
        if isinstance(step, ReplyError):
            raise step
        if isinstance(step, bytes):
            return HttpResponse(200, step)
        return HttpResponse.of_json(step)

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop()


def _client(stub, provider="serper", **kw):
    kw.setdefault("sleep", lambda s: None)
    return WebSearchClient(provider, url=stub.server.url + "/search", environ={"MY_KEY": KEY}, api_key_env="MY_KEY",
                           **kw)


def test_serper_answer_box_then_organic_in_order():
    with Stub() as stub:
        docs = _client(stub).retrieve(["capital of france"], topk=5)[0]
        body = json.loads(stub.server.requests[0].body)
    assert body == {"q": "capital of france", "num": 5}
    assert docs == [
        {"id": "https://a.example/paris", "contents": "Paris\nParis is the capital of France."},
        {"id": "https://b.example/france", "contents": "France\nFrance is a country."},
        {"id": "https://c.example/city", "contents": "Paris city\nParis has 2M people."},
    ]  # the organic duplicate of the answer box link is dropped; whitespace collapsed
    with Stub() as stub:
        assert len(_client(stub).retrieve(["q"], topk=2)[0]) == 2


def test_serpapi_shape_and_key_in_query():
    with Stub(provider="serpapi") as stub:
        docs = _client(stub, provider="serpapi").retrieve(["q1", "q2"], topk=3)
        assert stub.server.requests[1].query["q"] == "q2" and stub.server.requests[1].query["num"] == "3"
    assert docs[0] == [{"id": "https://a.example/paris", "contents": "Paris\nCapital of France"},
                       {"id": "https://b.example/france", "contents": "France\nA country."}]


def test_parse_results_edge_cases():
    assert parse_results({}, "serper", 3, "q") == []
    no_link = parse_results({"answerBox": {"snippet": "42"}, "organic": [{"title": "t"}]}, "serper", 3, "life")
    assert no_link == [{"id": "answer_box:life", "contents": "life\n42"}, {"id": "organic:life:0", "contents": "t\n"}]
    with pytest.raises(ValueError, match="'organic' is a dict"):
        parse_results({"organic": {}}, "serper", 3, "q")


def test_docs_feed_search_env():
    with Stub() as stub:
        env = SearchEnv(_client(stub), topk=2)
        env.reset({})
        obs = env.step(Action("search", "capital", "<search>capital</search>")).observation
    assert "Doc 1(Title: Paris) Paris is the capital of France." in obs and "Doc 2(Title: France)" in obs


def test_429_and_5xx_are_retried_with_backoff():
    sleeps = []
    script = [ReplyError(429, retry_after=3), ReplyError(500), ReplyError(503), SERPER]
    with Stub(script) as stub:
        docs = _client(stub, sleep=sleeps.append, backoff_s=1.0, max_retries=3).retrieve(["q"])[0]
        assert stub.server.count == 4
    assert len(docs) == 3 and sleeps == [3.0, 2.0, 4.0]  # Retry-After, then 1*2**1, 1*2**2


def test_outages_raise_naming_the_url_never_the_key():
    with Stub([ReplyError(503)] * 3) as stub:
        url = stub.server.url + "/search"
        with pytest.raises(WebSearchError, match=rf"web search {url} failed after 3 attempt\(s\): HTTP 503"):
            _client(stub, max_retries=2).retrieve(["q"])
    with Stub([ReplyError(401, message=f"bad key {KEY}")]) as stub:
        with pytest.raises(WebSearchError, match=r"refused the request \(HTTP 401") as err:
            _client(stub).retrieve(["q"])
        assert KEY not in str(err.value) and stub.server.count == 1  # 4xx: not retried
    with Stub([b"<html>rate limited</html>"], provider="serpapi") as stub:
        with pytest.raises(WebSearchError, match=rf"{stub.server.url}/search answered with a body that is not JSON"):
            _client(stub, provider="serpapi").retrieve(["q"])
        assert stub.server.count == 1
    with Stub([{"error": "Invalid API key"}]) as stub:
        with pytest.raises(WebSearchError, match="answered with an error: Invalid API key"):
            _client(stub).retrieve(["q"])
    with Stub([{"organic": "nope"}]) as stub:
        with pytest.raises(WebSearchError, match="malformed results"):
            _client(stub).retrieve(["q"])


def test_timeout_is_retried_then_raises():
    import time as real_time

    def slow(request):
        real_time.sleep(0.6)
        return HttpResponse.of_json(SERPER)

    with LoopbackServer(slow) as server:
        client = WebSearchClient(url=server.url, environ={"SERPER_API_KEY": KEY}, timeout_s=0.2, max_retries=1,
                                 sleep=lambda s: None)
        with pytest.raises(WebSearchError, match=r"failed after 2 attempt\(s\): (timeout|TimeoutError)"):
            client.retrieve(["q"])


def test_missing_key_names_the_variable_and_bad_arguments():
    with pytest.raises(MissingAPIKey, match="environment variable SERPER_API_KEY, which is not set"):
        WebSearchClient("serper", environ={})
    with pytest.raises(MissingAPIKey, match="SERPAPI_API_KEY"):
        WebSearchClient("serpapi", environ={"SERPAPI_API_KEY": "  "})
    with pytest.raises(ValueError, match="unknown web search provider 'bing'"):
        WebSearchClient("bing", environ={})
    client = WebSearchClient(environ={"SERPER_API_KEY": KEY}, url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match="non-empty string"):
        client.search("  ")
    with pytest.raises(TypeError, match="single str"):
        client.retrieve("q")


def test_cache_serves_repeats_without_requests(tmp_path):
    with Stub() as stub:
        cached = CachedRetriever(_client(stub), tmp_path / "cache", name="serper")
        first = cached.retrieve(["a", "b", "a"], topk=3)
        assert stub.server.count == 2 and first[0] == first[2]
        again = CachedRetriever(_client(stub), tmp_path / "cache", name="serper")  # a rerun: same files
        assert again.retrieve(["b", "a"], topk=3) == [first[1], first[0]]
        assert stub.server.count == 2 and again.fetched == 0 and again.cache.hits == 2
        again.retrieve(["a"], topk=2)  # another topk is another key
        CachedRetriever(_client(stub), tmp_path / "cache", name="serpapi-index").retrieve(["a"], topk=3)
        assert stub.server.count == 4


def test_rate_limiter_with_a_fake_clock():
    now = [0.0]
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        now[0] += s

    class Inner:
        calls = []

        def retrieve(self, queries, topk=3):
            self.calls.append((now[0], list(queries)))
            return [[{"id": q, "contents": q}] for q in queries]

    inner = Inner()
    limited = RateLimited(inner, rate=2.0, clock=lambda: now[0], sleep=sleep)
    for i in range(5):
        limited.retrieve([f"q{i}"])
    assert sum(sleeps) == pytest.approx(2.0) and sleeps == pytest.approx([0.5] * 4)
    assert [t for t, _ in inner.calls] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    now[0] += 10.0  # idle time refills at most `burst` tokens
    sleeps.clear()
    limited.retrieve(["x", "y"])  # per query: the second waits
    assert sleeps == pytest.approx([0.5])
    burst = RateLimited(Inner(), rate=1.0, burst=3, clock=lambda: now[0], sleep=sleep)
    sleeps.clear()
    burst.retrieve(["a", "b", "c", "d"])
    assert sleeps == pytest.approx([1.0])
    with pytest.raises(ValueError, match="rate > 0"):
        RateLimited(inner, rate=0)


def test_json_cache_entries_are_atomic_checked_and_thread_safe(tmp_path):
    cache = JsonCache(tmp_path)
    key = {"endpoint": "e", "q": "x"}
    assert cache.get(key, None) is None
    cache.put(key, [1, 2])
    assert cache.get(key) == [1, 2] and len(cache) == 1 and (cache.hits, cache.misses) == (1, 1)
    threads = [threading.Thread(target=cache.put, args=({"k": i % 3}, i)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(cache) == 4 and not list(tmp_path.glob("*/*.tmp"))
    cache.path(key).write_text("{broken")
    with pytest.raises(ValueError, match=r"cache entry .* is unreadable"):
        cache.get(key)
