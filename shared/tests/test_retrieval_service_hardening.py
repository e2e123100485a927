"""Search service under hostile and faulty conditions: caps answered 4xx by name, every parse error answered 400,
stalled clients cut off by the socket timeout, a huge batch not starving small requests, a BM25 server without
torch, and a client that survives truncated bodies, bad status lines and a restart, naming the URL when not."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time

import pytest
from shared.retrieval.retriever import Retriever
from shared.retrieval.service import LISTEN_BACKLOG, SearchClient, SearchServer, SearchServiceError

DOCS = [
    {"id": "paris", "contents": "Paris is the capital of France."},
    {"id": "berlin", "contents": "Berlin is the capital of Germany."},
    {"id": "leaf", "contents": "Photosynthesis turns sunlight into sugar."},
]


@pytest.fixture(scope="module")
def server():
    with SearchServer(Retriever("bm25", DOCS), max_topk=5, max_queries=4, max_body_bytes=20_000,
                      socket_timeout=0.5) as running:
        yield running


def _raw(server: SearchServer, payload: bytes, timeout: float = 5.0) -> tuple[int, dict]:
    """POST exactly `payload` as the body; returns (status, JSON reply)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request("POST", "/retrieve", body=payload, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_listen_backlog_and_many_simultaneous_connections(server):
    assert server._httpd.request_queue_size >= 128 == LISTEN_BACKLOG
    socks = [socket.create_connection((server.host, server.port), timeout=5) for _ in range(150)]
    try:
        status, body = _raw(server, json.dumps({"queries": ["France"], "topk": 1}).encode())
        assert status == 200 and body["result"][0][0]["id"] == "paris"
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        (json.dumps({"queries": ["a"], "topk": 6}).encode(), 400, r"'topk' is 6, above the cap of 5 \(max_topk\)"),
        (json.dumps({"queries": ["a"] * 5}).encode(), 400, r"holds 5 queries, above the cap of 4 \(max_queries\)"),
        (json.dumps({"queries": ["a" * 30_000]}).encode(), 413, r"above the cap of 20000 bytes \(max_body_bytes\)"),
        (b"[" * 5000 + b"]" * 5000, 400, "nested too deeply"),
        (b'{"queries": ["a"], "topk": 1' + b"0" * 5000 + b"}", 400, "not valid JSON.*integer"),
        (b'{"queries": ["a"], "topk": 1' + b"0" * 300 + b"}", 400, r"'topk' is a huge number, above the cap"),
        (b"\xff\xfe not utf-8", 400, "not valid JSON"),
        (json.dumps({"queries": ["a"], "topk": 2.0}).encode(), 400, "'topk' must be a positive integer"),
    ],
    ids=["topk", "queries", "body", "deep-nesting", "huge-integer", "huge-topk", "not-utf8", "float-topk"],
)
def test_caps_and_parse_errors_are_answered(server, payload, status, message):
    import re

    got, body = _raw(server, payload)
    assert got == status and re.search(message, body["error"]), body


def test_client_splits_batches_above_the_cap(server):
    queries = ["France", "Germany", "sugar"] * 4  # 12 queries, server cap 4
    result = SearchClient(server.url, max_queries=4).retrieve(queries, topk=1)
    assert [hits[0]["document"]["id"] for hits in result] == ["paris", "berlin", "leaf"] * 4


def test_missing_and_negative_content_length(server):
    for header in ("", "Content-Length: -5\r\n"):
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(f"POST /retrieve HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode())
            reply = sock.recv(4096).decode()
        assert reply.startswith(("HTTP/1.1 411", "HTTP/1.1 400")), reply


def test_stalled_clients_are_cut_off_and_others_served(server):
    stalled_headers = socket.create_connection((server.host, server.port), timeout=5)
    stalled_headers.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
    stalled_body = socket.create_connection((server.host, server.port), timeout=5)
    stalled_body.sendall(b"POST /retrieve HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"queries\"")
    try:
        status, body = _raw(server, json.dumps({"queries": ["Germany"], "topk": 1}).encode())
        assert status == 200 and body["result"][0][0]["id"] == "berlin"
        start = time.monotonic()
        for sock in (stalled_headers, stalled_body):
            assert sock.recv(4096) in (b"",) or True  # drained; the server must close it within the timeout
            while sock.recv(4096):
                pass
        assert time.monotonic() - start < 3.0  # socket_timeout is 0.5 s
    finally:
        stalled_headers.close()
        stalled_body.close()


class _SlowRetriever:
    """A retriever whose every call takes 50 ms, to see how the search lock is shared."""

    def __init__(self) -> None:
        self.inner = Retriever("bm25", DOCS)
        self.docs = self.inner.docs

    def retrieve(self, queries, topk):
        time.sleep(0.05)
        return self.inner.retrieve(queries, topk)


def test_a_huge_batch_does_not_hold_the_lock_throughout():
    with SearchServer(_SlowRetriever(), lock_chunk=4) as running:
        client = SearchClient(running.url)
        big = threading.Thread(target=client.retrieve, args=(["capital"] * 200,), kwargs={"topk": 1})
        big.start()  # 50 chunks x 50 ms = 2.5 s of searching
        time.sleep(0.3)
        start = time.monotonic()
        small = SearchClient(running.url).retrieve(["France"], topk=1)
        waited = time.monotonic() - start
        big.join()
    assert small[0][0]["document"]["id"] == "paris"
    assert waited < 1.0  # with one lock hold per request this would wait ~2 s for the batch


def test_bm25_server_never_imports_torch(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(doc) + "\n" for doc in DOCS))
    code = (
        "import sys\nfrom shared.retrieval.service import SearchClient, SearchServer, build_parser, build_retriever\n"
        f"args = build_parser().parse_args(['--corpus', {str(corpus)!r}, '--port', '0'])\n"
        "with SearchServer(build_retriever(args)) as s:\n"
        "    hit = SearchClient(s.url).retrieve(['Germany'], topk=1)[0][0]['document']['id']\n"
        "print(hit, 'torch' in sys.modules, 'faiss' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["berlin", "False", "False"]


# ---------------------------------------------------------------------------------------------------------
# Client retries against a scripted server: the first connections misbehave, then a good answer comes
# ---------------------------------------------------------------------------------------------------------

GOOD = json.dumps({"result": [[{"document": {"id": "paris", "contents": "Paris"}, "score": 1.0}]]}).encode()


class _Scripted:
    """Loopback server answering connection i with behaviours[i] (then always a good answer)."""

    def __init__(self, behaviours: list[bytes]) -> None:
        self.behaviours = list(behaviours)
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                index, self.connections = self.connections, self.connections + 1
                if index < len(self.behaviours):
                    conn.sendall(self.behaviours[index])
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(GOOD), GOOD))

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    "bad",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"result\": [[",  # truncated body
        b"garbage instead of a status line\r\n\r\n",  # bad status line
        b"",  # connection closed without an answer
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\n{}",  # overloaded
        b"HTTP/1.0 200 OK\r\n\r\n{\"result\": [[{\"document\"",  # no length, cut short
    ],
    ids=["truncated", "bad-status-line", "empty", "503", "cut-short"],
)
def test_client_retries_faulty_answers(bad):
    scripted = _Scripted([bad, bad])
    try:
        result = SearchClient(scripted.url, backoff=0.01).retrieve(["France"], topk=1)
    finally:
        scripted.close()
    assert result[0][0]["document"]["id"] == "paris" and scripted.connections == 3


def test_client_rides_out_a_restart():
    first = SearchServer(Retriever("bm25", DOCS)).start()
    port = first.port
    client = SearchClient(first.url)
    assert client.retrieve(["France"], topk=1)[0][0]["document"]["id"] == "paris"
    first.stop()
    restarted: list[SearchServer] = []
    timer = threading.Timer(1.5, lambda: restarted.append(SearchServer(Retriever("bm25", DOCS), port=port).start()))
    timer.start()
    try:
        # the kept-alive connection is dead and nothing listens for 1.5 s: the default budget covers it
        assert client.retrieve(["Germany"], topk=1)[0][0]["document"]["id"] == "berlin"
    finally:
        timer.join()
        for running in restarted:
            running.stop()


def test_client_gives_up_after_its_budget_naming_the_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(SearchServiceError, match=rf"http://127\.0\.0\.1:{port}/retrieve unavailable after \d+ attempts"):
        SearchClient(f"http://127.0.0.1:{port}", retry_budget_s=0.5, backoff=0.05).retrieve(["q"])
    assert time.monotonic() - start < 2.0
    with pytest.raises(ValueError, match="must be http"):
        SearchClient("ftp://example/retrieve")
