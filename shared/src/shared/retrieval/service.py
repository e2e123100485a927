"""Search service speaking the Search-R1 retrieval contract, and a retrying client for it.

`POST /retrieve` with `{"queries": [...], "topk": int, "return_scores": bool}` answers
`{"result": [[{"document": {"id", "contents"}, "score": float}, ...], ...]}` (or plain document lists without
scores), so agents and rollout workers share one index. The server is stdlib `ThreadingHTTPServer` in a
background thread (port 0 picks a free loopback port); `python -m shared.retrieval.service` serves a corpus.

Hardening: a listen backlog of 128; caps on topk, queries per request and body size, each answered 4xx naming
the cap; every malformed body (bad JSON, deep nesting, huge integers, wrong types) answered 400 instead of a
dropped connection; a socket timeout so stalled or slow clients free their thread; HTTP/1.1 keep-alive; the
search lock taken per chunk of queries, so one huge batch cannot starve small requests. A BM25 server never
imports torch. The client splits batches above the cap, keeps one connection per thread and retries refused/reset connections, truncated
bodies, bad status lines and 5xx answers until a time budget (default 60 s, longer than a server restart)
runs out; every error names the URL.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LISTEN_BACKLOG = 128
MAX_BODY_BYTES = 1024 * 1024
MAX_TOPK = 100
MAX_QUERIES = 256
SOCKET_TIMEOUT_S = 15.0  # a client silent this long (mid-request or idle on keep-alive) is disconnected
LOCK_CHUNK = 8  # queries searched per hold of the search lock


class SearchServiceError(RuntimeError):
    """The search service could not be reached, or rejected or mangled a request."""


class RequestError(ValueError):
    """A malformed /retrieve request (answered with HTTP 400)."""


def parse_request(
    body: bytes, default_topk: int, max_topk: int = MAX_TOPK, max_queries: int = MAX_QUERIES
) -> tuple[list[str], int, bool]:
    """Validate a /retrieve body into (queries, topk, return_scores); RequestError names the problem."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(f"body is not valid JSON: {err}") from err
    except RecursionError:
        raise RequestError("body is not valid JSON: nested too deeply") from None
    except ValueError as err:  # e.g. an integer with more digits than int() accepts
        raise RequestError(f"body is not valid JSON: {err}") from None
    if not isinstance(payload, dict):
        raise RequestError("body must be a JSON object")
    unknown = set(payload) - {"queries", "topk", "return_scores"}
    if unknown:
        raise RequestError(f"unknown field(s): {sorted(unknown)}")
    if "queries" not in payload:
        raise RequestError("missing field 'queries'")
    queries = payload["queries"]
    if not isinstance(queries, list):
        raise RequestError("field 'queries' must be a list of strings")
    if len(queries) > max_queries:
        raise RequestError(f"field 'queries' holds {len(queries)} queries, above the cap of {max_queries} "
                           "(max_queries); split the batch")
    for i, query in enumerate(queries):
        if not isinstance(query, str):
            raise RequestError(f"field 'queries'[{i}] must be a string, got {type(query).__name__}")
    topk = payload.get("topk", default_topk)
    if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
        shown = repr(topk) if len(repr(topk)) < 40 else repr(topk)[:40] + "..."
        raise RequestError(f"field 'topk' must be a positive integer, got {shown}")
    if topk > max_topk:
        shown = str(topk) if topk < 10**12 else "a huge number"
        raise RequestError(f"field 'topk' is {shown}, above the cap of {max_topk} (max_topk)")
    return_scores = payload.get("return_scores", False)
    if not isinstance(return_scores, bool):
        raise RequestError(f"field 'return_scores' must be a boolean, got {return_scores!r}")
    return queries, topk, return_scores


def format_result(hits: list[list[dict]], return_scores: bool) -> dict:
    """Search-R1 response body from Retriever.retrieve output."""
    result = []
    for per_query in hits:
        docs = [({"document": {"id": h["id"], "contents": h["contents"]}, "score": h["score"]}) for h in per_query]
        result.append(docs if return_scores else [d["document"] for d in docs])
    return {"result": result}


class _HTTPServer(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG  # socketserver's default of 5 refuses bursts of new connections
    daemon_threads = True
    allow_reuse_address = True  # a restarted server gets its port back at once

    def __init__(self, address: tuple[str, int], handler: type, verbose: bool) -> None:
        self.verbose = verbose
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # clients that vanish or stall are normal under load; report them only when asked to
        if self.verbose:
            super().handle_error(request, client_address)


def _make_handler(server: SearchServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection per client thread, not one per request
        # headers and body leave in two writes; with Nagle on, the second waits for the client's delayed ACK
        disable_nagle_algorithm = True
        timeout = server.socket_timeout

        def _reply(self, status: int, body: dict, close: bool = False) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            if self.path == "/health":
                self._reply(200, {"status": "ok", "documents": len(server.retriever.docs)})
            else:
                self._reply(404, {"error": f"unknown path {self.path}; use POST /retrieve"})

        def _read_body(self) -> bytes | None:
            """The request body, or None after answering why it cannot be read (the connection then closes)."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self._reply(411, {"error": "chunked bodies are not accepted; send a Content-Length"}, close=True)
                return None
            raw = self.headers.get("Content-Length")
            if raw is None:
                self._reply(411, {"error": "missing Content-Length header"}, close=True)
                return None
            try:
                length = int(raw)
            except ValueError:
                length = -1
            if length < 0:
                self._reply(400, {"error": f"bad Content-Length header {raw[:40]!r}"}, close=True)
                return None
            if length > server.max_body_bytes:
                self._reply(413, {"error": f"body of {length} bytes is above the cap of {server.max_body_bytes} "
                                           "bytes (max_body_bytes)"}, close=True)
                return None
            try:
                body = self.rfile.read(length)
            except (TimeoutError, OSError):
                self.close_connection = True  # stalled mid-body: free the thread
                return None
            if len(body) < length:
                self.close_connection = True  # the client went away mid-body
                return None
            return body

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/retrieve":
                self._reply(404, {"error": f"unknown path {self.path}; use POST /retrieve"}, close=True)
                return
            body = self._read_body()
            if body is None:
                return
            try:
                queries, topk, return_scores = parse_request(body, server.default_topk, server.max_topk,
                                                             server.max_queries)
            except RequestError as err:
                self._reply(400, {"error": str(err)})
                return
            try:
                hits: list[list[dict]] = []
                for start in range(0, len(queries), server.lock_chunk):
                    # torch and faiss calls are not guaranteed re-entrant: one search at a time, but released
                    # between chunks so a huge batch interleaves with other clients' requests
                    with server.lock:
                        hits.extend(server.retriever.retrieve(queries[start : start + server.lock_chunk], topk))
            except Exception as err:  # the client gets a JSON 500 instead of a dropped connection
                self._reply(500, {"error": f"{type(err).__name__}: {err}"})
                return
            self._reply(200, format_result(hits, return_scores))

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            if server.verbose:
                super().log_message(format, *args)

    return Handler


class SearchServer:
    """Serve a Retriever over HTTP in a background thread; use as a context manager or start()/stop()."""

    def __init__(
        self,
        retriever,
        host: str = "127.0.0.1",
        port: int = 0,
        default_topk: int = 3,
        verbose: bool = False,
        max_topk: int = MAX_TOPK,
        max_queries: int = MAX_QUERIES,
        max_body_bytes: int = MAX_BODY_BYTES,
        socket_timeout: float = SOCKET_TIMEOUT_S,
        lock_chunk: int = LOCK_CHUNK,
    ) -> None:
        if min(max_topk, max_queries, max_body_bytes, lock_chunk) < 1 or socket_timeout <= 0:
            raise ValueError("SearchServer caps, lock_chunk and socket_timeout must be positive")
        self.retriever = retriever
        self.host, self.port = host, port
        self.default_topk = default_topk
        self.verbose = verbose
        self.max_topk, self.max_queries, self.max_body_bytes = max_topk, max_queries, max_body_bytes
        self.socket_timeout, self.lock_chunk = socket_timeout, lock_chunk
        self.lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (the real port once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> SearchServer:
        if self._httpd is not None:
            return self
        self._httpd = _HTTPServer((self.host, self.port), _make_handler(self), self.verbose)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="search-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def serve_forever(self) -> None:
        """Block serving requests (the CLI's foreground mode)."""
        self.start()
        try:
            while self._thread.is_alive():
                self._thread.join(timeout=1.0)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> SearchServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# Failures worth another attempt: the service is down, restarting, overloaded or cut the answer short.
_RETRYABLE = (OSError, http.client.HTTPException, json.JSONDecodeError, UnicodeDecodeError)


class SearchClient:
    """Client for a Search-R1 style /retrieve endpoint: one keep-alive connection per thread, retries on failure.

    A failed attempt (refused or reset connection, timeout, truncated body, bad status line, 5xx, unreadable
    JSON) is retried with exponential back-off (`backoff` doubling up to `max_backoff` seconds) until
    `retry_budget_s` has passed since the first attempt, or `retries` retries were made when given. 4xx answers
    are not retried: the request itself is wrong.
    """

    def __init__(self, url: str, timeout: float = 30.0, retries: int | None = None, backoff: float = 0.1,
                 retry_budget_s: float = 60.0, max_backoff: float = 2.0, max_queries: int = MAX_QUERIES) -> None:
        url = url.rstrip("/")
        self.url = url if url.endswith("/retrieve") else url + "/retrieve"
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"search service URL must be http(s)://host[:port][/retrieve], got {url!r}")
        self._scheme, self._host, self._port, self._path = parts.scheme, parts.hostname, parts.port, parts.path
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.retry_budget_s, self.max_backoff = retry_budget_s, max_backoff
        if max_queries < 1:
            raise ValueError(f"max_queries must be >= 1, got {max_queries}")
        self.max_queries = max_queries
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            conn = kind(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._drop_connection()

    def _attempt(self, body: bytes) -> tuple[int, bytes]:
        conn = self._connection()
        try:
            conn.request("POST", self._path, body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            self._drop_connection()
            raise
        if response.will_close:
            self._drop_connection()
        return response.status, data

    def retrieve(self, queries: list[str], topk: int = 3, return_scores: bool = True) -> list[list[dict]]:
        """The service's "result": per query a list of {"document", "score"} (or documents without scores).

        Batches above `max_queries` (the server's default cap) go out as several requests, answers in order."""
        if isinstance(queries, str):
            raise TypeError("queries must be a list of strings, got a single str")
        queries = list(queries)
        result: list[list[dict]] = []
        for start in range(0, len(queries), self.max_queries):
            result.extend(self._retrieve_batch(queries[start : start + self.max_queries], topk, return_scores))
        return result

    def _retrieve_batch(self, queries: list[str], topk: int, return_scores: bool) -> list[list[dict]]:
        body = json.dumps({"queries": queries, "topk": topk, "return_scores": return_scores}).encode()
        start = time.monotonic()
        attempts = 0
        last_error: BaseException | None = None
        while True:
            attempts += 1
            try:
                status, data = self._attempt(body)
                if 400 <= status < 500:  # the request itself is wrong; retrying cannot help
                    detail = data.decode("utf-8", "replace")[:500]
                    raise SearchServiceError(f"{self.url} rejected the request (HTTP {status}): {detail}")
                if status != 200:
                    raise http.client.HTTPException(f"HTTP {status}: {data.decode('utf-8', 'replace')[:200]}")
                payload = json.loads(data.decode("utf-8"))
            except _RETRYABLE as err:
                last_error = err
            else:
                result = payload.get("result") if isinstance(payload, dict) else None
                if not isinstance(result, list) or len(result) != len(queries):
                    raise SearchServiceError(f"{self.url} answered without a 'result' list of {len(queries)} "
                                             f"entries: {str(payload)[:200]}")
                return result
            elapsed = time.monotonic() - start
            pause = min(self.max_backoff, self.backoff * 2 ** (attempts - 1))
            out_of_retries = self.retries is not None and attempts > self.retries
            if out_of_retries or elapsed + pause > self.retry_budget_s:
                raise SearchServiceError(
                    f"search service at {self.url} unavailable after {attempts} attempts over {elapsed:.1f} s: "
                    f"{type(last_error).__name__}: {last_error}"
                ) from last_error
            time.sleep(pause)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shared.retrieval.service",
        description="Serve a corpus over the Search-R1 POST /retrieve contract (dense faiss or BM25).",
    )
    parser.add_argument("--corpus", required=True, help="corpus jsonl with {id, contents} or {id, title, text}")
    parser.add_argument(
        "--index",
        choices=("bm25", "flat", "ivf"),
        default="bm25",
        help="bm25, or a dense faiss index kind (flat / ivf)",
    )
    parser.add_argument(
        "--index-dir",
        default=None,
        help="dense only: load the saved faiss index here if present, else build and save it",
    )
    parser.add_argument("--encoder", default=None, help="dense only: encoder path or hub id (default offline MiniLM)")
    parser.add_argument("--pooling", choices=("mean", "cls", "last"), default="mean")
    parser.add_argument("--query-prefix", default="")
    parser.add_argument("--passage-prefix", default="")
    parser.add_argument("--nlist", type=int, default=100, help="IVF lists")
    parser.add_argument("--nprobe", type=int, default=8, help="IVF lists probed per query")
    parser.add_argument("--topk", type=int, default=3, help="topk when a request omits it")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--verbose", action="store_true", help="log each request")
    parser.add_argument("--max-topk", type=int, default=MAX_TOPK, help="largest topk a request may ask for")
    parser.add_argument("--max-queries", type=int, default=MAX_QUERIES, help="most queries in one request")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES, help="largest request body")
    parser.add_argument("--socket-timeout", type=float, default=SOCKET_TIMEOUT_S,
                        help="seconds a silent client keeps its connection")
    return parser


def build_retriever(args: argparse.Namespace):
    """The Retriever the CLI serves, reusing a saved dense index when --index-dir holds one (BM25: no torch)."""
    from pathlib import Path

    from .retriever import Retriever, load_corpus

    docs = load_corpus(args.corpus)
    if args.index == "bm25":
        return Retriever("bm25", docs)
    from .encoders import TextEncoder
    from .index import META_FILE, DenseIndex

    encoder = TextEncoder(
        args.encoder, pooling=args.pooling, query_prefix=args.query_prefix, passage_prefix=args.passage_prefix
    )
    index = None
    if args.index_dir and (Path(args.index_dir) / META_FILE).exists():
        index = DenseIndex.load(args.index_dir)
    retriever = Retriever(encoder, docs, index=index, index_kind=args.index, nlist=args.nlist, nprobe=args.nprobe)
    if args.index_dir and index is None:
        retriever.index.save(args.index_dir)
    return retriever


def main(argv: list[str] | None = None) -> None:
    from .retriever import CorpusError

    parser = build_parser()
    args = parser.parse_args(argv)
    expected: tuple[type[Exception], ...] = (CorpusError,)
    if args.index != "bm25":  # the dense modules import torch; a BM25 server never loads them
        from .encoders import EncoderLoadError
        from .index import DenseIndexError

        expected += (EncoderLoadError, DenseIndexError)
    try:
        retriever = build_retriever(args)
    except expected as err:
        parser.exit(2, f"error: {err}\n")
    try:
        server = SearchServer(retriever, host=args.host, port=args.port, default_topk=args.topk,
                              verbose=args.verbose, max_topk=args.max_topk, max_queries=args.max_queries,
                              max_body_bytes=args.max_body_bytes, socket_timeout=args.socket_timeout)
        server.start()
    except (ValueError, OSError) as err:
        parser.exit(2, f"error: cannot serve on {args.host}:{args.port}: {err}\n")
    print(f"serving {len(server.retriever.docs)} documents at {server.url}/retrieve", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
