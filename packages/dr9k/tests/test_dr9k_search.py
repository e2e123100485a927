"""The web backend as dr9k builds it (rate limit, on-disk cache, retries) against a loopback Serper stub: answer box
and organic snippets become documents in the Search-R1 observation; a 429 is retried; a 429 that never ends is an
error naming the URL, through the CLI as one line with exit 2; a missing API key names its variable first."""

import json

import pytest
from dr9k.cli import main
from dr9k.config import SearchSettings
from dr9k.search import make_env_factory, make_retriever
from shared.retrieval.web import MissingAPIKey, WebSearchError
from shared.rollout.envs import Action
from shared.serving import HttpResponse, LoopbackServer, ReplyError

SERPER = {"answerBox": {"title": "Paris", "answer": "Paris is the capital of France.", "link": "https://a"},
          "organic": [{"title": "France", "snippet": "France is a country.", "link": "https://b"},
                      {"title": "Lyon", "snippet": "Lyon is a city.", "link": "https://c"}]}


def _server(script):
    def handle(request):
        step = script.pop(0) if script else HttpResponse.of_json(SERPER)
        if isinstance(step, ReplyError):
            raise step
        return step

    return LoopbackServer(handle)


def test_web_backend_documents_cache_and_retry(tmp_path, monkeypatch):
    monkeypatch.setenv("SERPER_API_KEY", "secret")
    with _server([ReplyError(429, retry_after=0)]) as server:
        s = SearchSettings(backend="web", url=server.url, backoff_s=0.0, cache_dir=str(tmp_path / "cache"), rate=1000)
        env = make_env_factory(make_retriever(s), topk=3)({"question": "q"})
        env.reset({"question": "q"})
        obs = env.step(Action("search", "capital of France", "")).observation
        assert obs == ("\n\n<information>Doc 1(Title: Paris) Paris is the capital of France.\n"
                       "Doc 2(Title: France) France is a country.\nDoc 3(Title: Lyon) Lyon is a city.</information>\n\n")
        assert server.count == 2  # the 429, then the answer
        env.step(Action("search", "capital of France", ""))
        assert server.count == 2  # the same query again: from the cache
        assert json.loads(server.requests[-1].body) == {"q": "capital of France", "num": 3}
        assert server.requests[-1].headers["x-api-key"] == "secret"


def test_endless_429_names_the_url(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SERPER_API_KEY", "secret")
    with _server([ReplyError(429)] * 20) as server:
        s = SearchSettings(backend="web", url=server.url, backoff_s=0.0, max_retries=2, rate=1000)
        with pytest.raises(WebSearchError, match=f"web search {server.url} failed after 3 attempt.*HTTP 429"):
            make_retriever(s).retrieve(["q"], topk=3)
    monkeypatch.delenv("SERPER_API_KEY")
    with pytest.raises(MissingAPIKey, match="SERPER_API_KEY"):
        make_retriever(SearchSettings(backend="web"))
    assert main(["synthesize", "--out", str(tmp_path / "o"), "search.backend=web"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "SERPER_API_KEY" in err and err.startswith("dr9k synthesize: ")
    assert not (tmp_path / "o").exists()  # refused before any work
