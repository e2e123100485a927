"""Tests for the Search-R1 search service, its client, the Retriever and the corpus loader.

The server runs on a free loopback port; the client's retries are exercised against a port nobody listens on.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.request

import pytest
from shared.retrieval.retriever import CorpusError, Retriever, load_corpus
from shared.retrieval.service import SearchClient, SearchServer, SearchServiceError, build_parser, build_retriever

DOCS = [
    {"id": "paris", "contents": "Paris is the capital of France."},
    {"id": "berlin", "contents": "Berlin is the capital of Germany."},
    {"id": "leaf", "title": "Plants", "text": "Photosynthesis turns sunlight into sugar."},
]


@pytest.fixture(scope="module")
def server():
    with SearchServer(Retriever("bm25", DOCS)) as running:
        yield running


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/retrieve", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_round_trip_with_scores(server: SearchServer) -> None:
    result = SearchClient(server.url).retrieve(["capital of Germany", "photosynthesis sugar"], topk=2)
    assert [hit["document"]["id"] for hit in result[0]] == ["berlin", "paris"]
    assert result[0][0]["score"] > result[0][1]["score"] > 0
    assert result[1][0]["document"] == {"id": "leaf", "contents": "Plants\nPhotosynthesis turns sunlight into sugar."}


def test_round_trip_without_scores_matches_search_r1_shape(server: SearchServer) -> None:
    status, body = _post(server.url, json.dumps({"queries": ["France"], "topk": 1, "return_scores": False}).encode())
    assert status == 200
    assert body == {"result": [[{"id": "paris", "contents": "Paris is the capital of France."}]]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"topk": 2}).encode(), "missing field 'queries'"),
        (json.dumps({"queries": "France"}).encode(), "'queries' must be a list"),
        (json.dumps({"queries": ["ok", 5]}).encode(), r"'queries'\[1\] must be a string"),
        (json.dumps({"queries": ["ok"], "topk": 0}).encode(), "'topk' must be a positive integer"),
        (json.dumps({"queries": ["ok"], "return_scores": "yes"}).encode(), "'return_scores' must be a boolean"),
        (json.dumps({"queries": ["ok"], "top_k": 3}).encode(), "unknown field"),
    ],
)
def test_malformed_request_gets_400_with_json_error(server: SearchServer, body: bytes, message: str) -> None:
    status, reply = _post(server.url, body)
    assert status == 400
    assert re.search(message, reply["error"])


def test_client_reports_400_without_retrying(server: SearchServer) -> None:
    with pytest.raises(SearchServiceError, match="HTTP 400"):
        SearchClient(server.url, retries=3, backoff=30.0).retrieve(["x"], topk=0)


def test_service_down_raises_naming_url_after_retries() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago and has no listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(SearchServiceError, match=rf"127\.0\.0\.1:{port}/retrieve unavailable after 3 attempts"):
        SearchClient(url, timeout=1.0, retries=2, backoff=0.01).retrieve(["q"])


def test_server_stop_frees_the_service() -> None:
    running = SearchServer(Retriever("bm25", DOCS)).start()
    url = running.url
    assert SearchClient(url).retrieve(["France"], topk=1)[0][0]["document"]["id"] == "paris"
    running.stop()
    with pytest.raises(SearchServiceError, match="unavailable"):
        SearchClient(url, timeout=1.0, retries=0).retrieve(["France"])


def test_corpus_loader_formats_and_errors(tmp_path) -> None:
    good = tmp_path / "corpus.jsonl"
    good.write_text('{"id": "1", "contents": "alpha"}\n\n{"id": 2, "title": "T", "text": "beta"}\n')
    docs = load_corpus(good)
    assert [(d["id"], d["contents"]) for d in docs] == [("1", "alpha"), (2, "T\nbeta")]
    cases = [
        ('{"id": "1", "contents": "a"}\n{"id": "1", "contents": "b"}\n', r"corpus.jsonl:2: field 'id' value '1' dup"),
        ('{"id": "1", "contents": "a"}\n{oops\n', r"corpus.jsonl:2: invalid JSON"),
        ('{"contents": "a"}\n', r"corpus.jsonl:1: missing field 'id'"),
        ('{"id": "1", "body": "a"}\n', r"corpus.jsonl:1: missing field 'contents'"),
        ('{"id": "1", "contents": 7}\n', r"corpus.jsonl:1: field 'contents' must be a string"),
        ('{"id": "1", "title": 3, "text": "x"}\n', r"corpus.jsonl:1: field 'title' must be a string"),
        ("\n", "holds no documents"),
    ]
    for text, message in cases:
        good.write_text(text)
        with pytest.raises(CorpusError, match=message):
            load_corpus(good)
    with pytest.raises(CorpusError, match="corpus file not found"):
        load_corpus(tmp_path / "missing.jsonl")


def test_retriever_bad_inputs() -> None:
    with pytest.raises(CorpusError, match="at least one document"):
        Retriever("bm25", [])
    with pytest.raises(CorpusError, match=r"docs\[1\]: missing field 'id'"):
        Retriever("bm25", [DOCS[0], {"contents": "x"}])
    with pytest.raises(ValueError, match="must be 'bm25'"):
        Retriever("dense", DOCS)
    retriever = Retriever("bm25", DOCS)
    assert retriever.retrieve([], 3) == []
    with pytest.raises(ValueError, match="topk must be >= 1"):
        retriever.retrieve(["France"], 0)


def test_dense_retriever_and_cli_index_reuse(tmp_path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    args = build_parser().parse_args(["--corpus", str(corpus), "--index", "flat", "--index-dir", str(tmp_path / "ix")])
    built = build_retriever(args)
    assert (tmp_path / "ix" / "index.faiss").exists()
    reused = build_retriever(args)  # loads the saved index instead of rebuilding
    for retriever in (built, reused):
        hits = retriever.retrieve(["Which city is the capital of Germany?"], topk=3)[0]
        assert hits[0]["id"] == "berlin" and hits[0]["score"] > hits[2]["score"]
    with SearchServer(reused) as running:
        result = SearchClient(running.url).retrieve(["How do plants make sugar from light?"], topk=1)
    assert result[0][0]["document"]["id"] == "leaf"


def test_cli_reports_bad_corpus_line_and_exits(tmp_path, capsys) -> None:
    from shared.retrieval.service import main

    corpus = tmp_path / "bad.jsonl"
    corpus.write_text('{"id": "1", "contents": "ok"}\n{"id": "2"}\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["--corpus", str(corpus), "--port", "0"])
    assert exit_info.value.code == 2
    assert "bad.jsonl:2: missing field 'contents'" in capsys.readouterr().err
