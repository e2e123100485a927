"""JudgeClient against a scripted OpenAI-compatible server on a free loopback port (retries, timeouts, parsing)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from shared.rewards import JudgeClient, JudgeError, parse_verdict
from shared.rewards.judge import JudgeParseError


class ScriptedServer:
    """Serves scripted replies in order: ("reply", text) | ("status", code) | ("sleep", seconds) | ("raw", bytes)."""

    def __init__(self, script: list[tuple[str, object]]):
        self.script = list(script)
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                owner.requests.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
                kind, value = owner.script.pop(0) if owner.script else ("status", 500)
                if kind == "sleep":
                    time.sleep(value)
                    kind, value = "reply", "Verdict: correct"
                if kind == "raw":  # a 200 reply whose body is not a chat completion
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(value)))
                    self.end_headers()
                    self.wfile.write(value)
                    return
                if kind == "status":
                    self.send_response(value)
                    self.end_headers()
                    self.wfile.write(b'{"error": "scripted"}')
                    return
                body = json.dumps({"choices": [{"message": {"role": "assistant", "content": value}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _client(url: str, **kw) -> JudgeClient:
    kw.setdefault("backoff_s", 0.01)
    return JudgeClient(url, model="judge-model", **kw)


def test_normal_reply_is_parsed_and_request_is_chat_completions():
    with ScriptedServer([("reply", "The capital matches.\nVerdict: correct")]) as server:
        verdict = _client(server.url + "/v1").judge("Capital of France?", "Paris", "Paris")
    assert verdict.verdict == "correct" and verdict.reward == 1.0
    assert server.requests[0]["path"] == "/v1/chat/completions"
    body = server.requests[0]["body"]
    assert body["model"] == "judge-model" and "Candidate answer: Paris" in body["messages"][0]["content"]


def test_500_then_success_is_retried():
    with ScriptedServer([("status", 500), ("status", 503), ("reply", "Verdict: incorrect")]) as server:
        verdict = _client(server.url, max_retries=3).judge("q", "a", "b")
    assert verdict.verdict == "incorrect" and verdict.reward == 0.0
    assert len(server.requests) == 3


def test_429_is_retried_but_400_is_not():
    with ScriptedServer([("status", 429), ("reply", "yes")]) as server:
        assert _client(server.url).judge("q", "a", "a").verdict == "correct"
    with ScriptedServer([("status", 400), ("reply", "yes")]) as server:
        with pytest.raises(JudgeError, match=r"refused the request \(HTTP 400"):
            _client(server.url).judge("q", "a", "a")
        assert len(server.requests) == 1


def test_timeout_raises_judge_error_naming_endpoint():
    with ScriptedServer([("sleep", 1.0), ("sleep", 1.0)]) as server:
        start = time.monotonic()
        with pytest.raises(JudgeError, match=rf"{server.url}/v1/chat/completions failed after 2 attempt"):
            _client(server.url, timeout_s=0.2, max_retries=1).judge("q", "a", "b")
        assert time.monotonic() - start < 1.5


def test_unparseable_reply_gives_unparsed_or_raises():
    with ScriptedServer([("reply", "I am not sure."), ("reply", "I am not sure.")]) as server:
        verdict = _client(server.url).judge("q", "a", "b")
        assert verdict.verdict == "unparsed" and verdict.score is None and verdict.reward == 0.0
        with pytest.raises(JudgeParseError, match="no readable verdict"):
            _client(server.url, on_unparsed="raise").judge("q", "a", "b")


def test_server_down_raises_after_retries():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on the port now
    with pytest.raises(JudgeError, match=rf"127.0.0.1:{port}/v1/chat/completions failed after 3 attempt"):
        _client(f"http://127.0.0.1:{port}", max_retries=2).judge("q", "a", "b")


def test_parse_verdict_forms():
    assert parse_verdict('reasoning... {"verdict": "correct", "score": 0.8}').score == 0.8
    assert parse_verdict('{"correct": false}').verdict == "incorrect"
    assert parse_verdict("Verdict: correct\nVerdict: **incorrect**").verdict == "incorrect"
    assert parse_verdict("No.").verdict == "incorrect"
    assert parse_verdict('{"score": 7}').verdict == "unparsed"  # score outside [0, 1] is not trusted


def test_bad_client_settings():
    with pytest.raises(ValueError, match="must start with http"):
        JudgeClient("localhost:8000", model="m")


def test_malformed_response_bodies_raise():
    with ScriptedServer([("raw", b"<html>oops</html>"), ("raw", b'{"choices": []}')]) as server:
        with pytest.raises(JudgeError, match="returned non-JSON body"):
            _client(server.url).judge("q", "a", "b")
        with pytest.raises(JudgeError, match=r"returned no choices\[0\]\.message\.content"):
            _client(server.url).judge("q", "a", "b")
