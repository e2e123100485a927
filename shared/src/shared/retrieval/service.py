"""Search service speaking the Search-R1 retrieval contract, and a retrying client for it.

`POST /retrieve` with `{"queries": [...], "topk": int, "return_scores": bool}` answers
`{"result": [[{"document": {"id", "contents"}, "score": float}, ...], ...]}` (or plain document lists without
scores), so agents and rollout workers share one index. The server is stdlib `ThreadingHTTPServer` in a
background thread (port 0 picks a free loopback port); `python -m shared.retrieval.service` serves a corpus.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 10 * 1024 * 1024


class SearchServiceError(RuntimeError):
    """The search service could not be reached, or rejected or mangled a request."""


class RequestError(ValueError):
    """A malformed /retrieve request (answered with HTTP 400)."""


def parse_request(body: bytes, default_topk: int) -> tuple[list[str], int, bool]:
    """Validate a /retrieve body into (queries, topk, return_scores)."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(f"body is not valid JSON: {err}") from err
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
    for i, query in enumerate(queries):
        if not isinstance(query, str):
            raise RequestError(f"field 'queries'[{i}] must be a string, got {type(query).__name__}")
    topk = payload.get("topk", default_topk)
    if not isinstance(topk, int) or isinstance(topk, bool) or topk < 1:
        raise RequestError(f"field 'topk' must be a positive integer, got {topk!r}")
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


def _make_handler(server: SearchServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server naming)
            if self.path == "/health":
                self._reply(200, {"status": "ok", "documents": len(server.retriever.docs)})
            else:
                self._reply(404, {"error": f"unknown path {self.path}; use POST /retrieve"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/retrieve":
                self._reply(404, {"error": f"unknown path {self.path}; use POST /retrieve"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                self._reply(400, {"error": "bad Content-Length header"})
                return
            if length > MAX_BODY_BYTES:
                self._reply(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"})
                return
            try:
                queries, topk, return_scores = parse_request(self.rfile.read(length), server.default_topk)
            except RequestError as err:
                self._reply(400, {"error": str(err)})
                return
            try:
                # One search at a time: torch and faiss calls are not guaranteed re-entrant.
                with server.lock:
                    hits = server.retriever.retrieve(queries, topk)
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
        self, retriever, host: str = "127.0.0.1", port: int = 0, default_topk: int = 3, verbose: bool = False
    ) -> None:
        self.retriever = retriever
        self.host, self.port = host, port
        self.default_topk = default_topk
        self.verbose = verbose
        self.lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:54321 (the real port once started)."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> SearchServer:
        if self._httpd is not None:
            return self
        self._httpd = ThreadingHTTPServer((self.host, self.port), _make_handler(self))
        self._httpd.daemon_threads = True
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


class SearchClient:
    """Client for a Search-R1 style /retrieve endpoint with retries and exponential back-off."""

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5) -> None:
        url = url.rstrip("/")
        self.url = url if url.endswith("/retrieve") else url + "/retrieve"
        self.timeout, self.retries, self.backoff = timeout, retries, backoff

    def retrieve(self, queries: list[str], topk: int = 3, return_scores: bool = True) -> list[list[dict]]:
        """The service's "result": per query a list of {"document", "score"} (or documents without scores)."""
        if isinstance(queries, str):
            raise TypeError("queries must be a list of strings, got a single str")
        body = json.dumps({"queries": list(queries), "topk": topk, "return_scores": return_scores}).encode()
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                detail = err.read().decode("utf-8", "replace")
                if 400 <= err.code < 500:  # the request itself is wrong; retrying cannot help
                    raise SearchServiceError(f"{self.url} rejected the request (HTTP {err.code}): {detail}") from err
                last_error = SearchServiceError(f"HTTP {err.code}: {detail}")
                continue
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
                last_error = err
                continue
            except json.JSONDecodeError as err:
                raise SearchServiceError(f"{self.url} answered with invalid JSON: {err}") from err
            if not isinstance(payload, dict) or not isinstance(payload.get("result"), list):
                raise SearchServiceError(f"{self.url} answered without a 'result' list: {str(payload)[:200]}")
            return payload["result"]
        raise SearchServiceError(
            f"search service at {self.url} unavailable after {self.retries + 1} attempts: {last_error}"
        )


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
    return parser


def build_retriever(args: argparse.Namespace):
    """The Retriever the CLI serves, reusing a saved dense index when --index-dir holds one."""
    from pathlib import Path

    from .encoders import TextEncoder
    from .index import META_FILE, DenseIndex
    from .retriever import Retriever, load_corpus

    docs = load_corpus(args.corpus)
    if args.index == "bm25":
        return Retriever("bm25", docs)
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
    from .encoders import EncoderLoadError
    from .index import DenseIndexError
    from .retriever import CorpusError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        retriever = build_retriever(args)
    except (CorpusError, EncoderLoadError, DenseIndexError) as err:
        parser.exit(2, f"error: {err}\n")
    server = SearchServer(retriever, host=args.host, port=args.port, default_topk=args.topk, verbose=args.verbose)
    server.start()
    print(f"serving {len(server.retriever.docs)} documents at {server.url}/retrieve", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
