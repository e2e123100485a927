"""OpenAI-compatible chat endpoints on loopback: a server for deterministic or local models, and the client.

- `LoopbackServer(handle)`: a stdlib `ThreadingHTTPServer` on 127.0.0.1 (port 0 picks a free port) in a background
  thread, answering every request through `handle(HttpRequest) -> HttpResponse`. It refuses any non-loopback host:
  these servers exist for tests and CPU runs, never for a network. Web-search stubs build on it too.
- `ChatServer(reply)`: `POST /v1/chat/completions` and `GET /v1/models` over a Python `reply(messages, params)`
  returning the assistant text (or `n` texts). Stop strings are applied as the OpenAI API does (the reply is cut
  before the first stop string, `finish_reason: "stop"`), and the matched string is returned as vLLM's
  `stop_reason`. `max_tokens` is passed to `reply` but not enforced (a stub has no tokens). It counts requests
  (`requests`, `count`). A reply function may raise `ReplyError(status)` or return `RawReply(bytes)` to rehearse
  outages; `ScriptedReplies` plays such a script in order. `generator_reply(generator)` serves a local
  `shared.generation` model (HF on CPU), so CPU runs of judges and teachers go through the real HTTP client.
- `ChatClient`: the client for any such endpoint (vLLM, SGLang, OpenAI, the server above), stdlib urllib only.
  Connection errors, timeouts, HTTP 5xx and 429 are retried with exponential back-off (`backoff_s * 2**attempt`,
  capped at `max_backoff_s`; a numeric Retry-After on 429/503 is honoured within that cap); any other 4xx is not
  retried; every final failure raises `ChatError` naming the endpoint, the status and an excerpt of the body.
  Per call: `n`, `temperature`, `max_tokens`, `stop`, `seed`, `top_p`. With `cache_dir`, replies are stored on
  disk keyed by (endpoint, model, messages, sampling fields): a rerun asks only what it has not asked yet, and a
  cached request replays the same reply even at temperature > 0 (so only cache where replays are wanted).

`python -m shared.serving --model PATH` serves a local HF causal LM on loopback.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY_BYTES = 10 * 1024 * 1024


# ---- a loopback HTTP server ------------------------------------------------------------------------------------
@dataclass
class HttpRequest:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON; raises ReplyError(400) naming the problem."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ReplyError(400, f"body is not valid JSON: {err}") from err


@dataclass
class HttpResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> HttpResponse:
        return cls(status, json.dumps(payload).encode("utf-8"), {"Content-Type": "application/json", **(headers or {})})


class ReplyError(Exception):
    """Raised by a handler or reply function: answer with this HTTP status (and Retry-After, for 429 rehearsals)."""

    def __init__(self, status: int, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message or f"HTTP {status}")
        self.status, self.message, self.retry_after = status, message or f"HTTP {status}", retry_after

    def response(self) -> HttpResponse:
        headers = {"Retry-After": f"{self.retry_after:g}"} if self.retry_after is not None else {}
        return HttpResponse.of_json({"error": {"message": self.message, "code": self.status}}, self.status, headers)


def check_loopback(host: str) -> None:
    """Refuse any host that is not a loopback address: these servers are for tests and local runs only."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"refusing to serve on {host!r}: only loopback hosts (127.0.0.1, ::1, localhost) are allowed")


class LoopbackServer:
    """`handle(HttpRequest) -> HttpResponse` served on loopback in a background thread; a context manager."""

    def __init__(self, handle: Callable[[HttpRequest], HttpResponse], host: str = "127.0.0.1", port: int = 0) -> None:
        check_loopback(host)
        self.handle, self.host, self.port = handle, host, port
        self.requests: list[HttpRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def count(self) -> int:
        """Requests received so far (every path)."""
        with self._lock:
            return len(self.requests)

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(handler.path)
        try:
            length = int(handler.headers.get("Content-Length", "0") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            response = ReplyError(400 if length < 0 else 413, "bad or too large Content-Length").response()
            body = b""
        else:
            body = handler.rfile.read(length) if length else b""
            request = HttpRequest(method, parsed.path, dict(urllib.parse.parse_qsl(parsed.query)),
                                  {k.lower(): v for k, v in handler.headers.items()}, body)
            with self._lock:
                self.requests.append(request)
            try:
                response = self.handle(request)
            except ReplyError as err:
                response = err.response()
            except Exception as err:  # a broken reply function answers 500, the server keeps running
                response = ReplyError(500, f"{type(err).__name__}: {err}").response()
        try:
            handler.send_response(response.status)
            for key, value in response.headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(response.body)))
            handler.end_headers()
            handler.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout rehearsal): nothing to tell
            pass

    def start(self) -> LoopbackServer:
        if self._httpd is not None:
            return self
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                owner._serve(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                owner._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (quiet by design)
                pass

        server_cls = ThreadingHTTPServer
        if ":" in self.host:
            import socket

            class V6(ThreadingHTTPServer):
                address_family = socket.AF_INET6

            server_cls = V6
        self._httpd = server_cls((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="loopback-server",
                                        daemon=True)  # short poll: stop() returns fast
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---- the chat server -------------------------------------------------------------------------------------------
@dataclass
class RawReply:
    """A reply function's way to answer with a body that is not a chat completion (malformed-server rehearsals)."""

    body: bytes
    status: int = 200


ReplyFn = Callable[[list[dict[str, Any]], dict[str, Any]], "str | Sequence[str] | RawReply"]


def cut_before_stop(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """(text before the earliest stop string, that stop string) as the OpenAI API returns it; (text, None) when
    no stop string occurs."""
    best: tuple[int, str] | None = None
    for s in stops:
        pos = text.find(s)
        if pos >= 0 and (best is None or pos < best[0] or (pos == best[0] and len(s) > len(best[1]))):
            best = (pos, s)
    return (text, None) if best is None else (text[: best[0]], best[1])


def _chat_params(body: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if not isinstance(body, dict):
        raise ReplyError(400, "body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ReplyError(400, "field 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ReplyError(400, f"messages[{i}] must be an object with string 'role' and 'content'")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ReplyError(400, f"field 'n' must be a positive integer, got {n!r}")
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise ReplyError(400, "field 'stop' must be a string or a list of non-empty strings")
    params = {"model": body.get("model"), "n": n, "temperature": body.get("temperature"),
              "max_tokens": body.get("max_tokens"), "stop": stop, "seed": body.get("seed"),
              "top_p": body.get("top_p")}
    return messages, params


class ChatServer(LoopbackServer):
    """An OpenAI-compatible chat endpoint over `reply(messages, params) -> str | [str] * n | RawReply`."""

    def __init__(self, reply: ReplyFn, model: str = "stub", host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(self._handle, host, port)
        self.reply, self.model = reply, model

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """The JSON bodies of the chat-completion requests received so far."""
        with self._lock:
            return [json.loads(r.body) for r in self.requests if r.path.endswith("/chat/completions")]

    def _handle(self, request: HttpRequest) -> HttpResponse:
        path = request.path.rstrip("/")
        if request.method == "GET" and path in ("/v1/models", "/models"):
            return HttpResponse.of_json({"object": "list", "data": [{"id": self.model, "object": "model"}]})
        if request.method != "POST" or path not in ("/v1/chat/completions", "/chat/completions"):
            raise ReplyError(404, f"unknown path {request.path}; use POST /v1/chat/completions")
        messages, params = _chat_params(request.json())
        out = self.reply(messages, params)
        if isinstance(out, RawReply):
            return HttpResponse(out.status, out.body, {"Content-Type": "text/plain"})
        texts = [out] if isinstance(out, str) else list(out)
        if len(texts) != params["n"] or not all(isinstance(t, str) for t in texts):
            raise ReplyError(500, f"reply function gave {len(texts)} text(s) for n={params['n']}")
        choices = []
        for i, text in enumerate(texts):
            content, stop = cut_before_stop(text, params["stop"])
            choices.append({"index": i, "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop", "stop_reason": stop})
        return HttpResponse.of_json({"id": f"chatcmpl-{self.count}", "object": "chat.completion",
                                     "created": int(time.time()), "model": params["model"] or self.model,
                                     "choices": choices})


@dataclass
class Delay:
    """A scripted step that waits `seconds` (longer than a client's timeout: a timeout rehearsal), then answers
    with `then`."""

    seconds: float
    then: Any = "Verdict: correct"


class ScriptedReplies:
    """A reply function that plays `script` in order, one entry per request: a text; a `ReplyError` to raise (HTTP
    status); a `RawReply`; a `Delay`; or a callable (messages, params) -> any of these. Past the end it answers
    HTTP 500 "script exhausted" (or keeps answering `default` when one is given)."""

    def __init__(self, script: Iterable[Any], default: Any = None) -> None:
        self.script = list(script)
        self.default = default
        self._lock = threading.Lock()

    def __call__(self, messages: list[dict[str, Any]], params: dict[str, Any]) -> Any:
        with self._lock:
            step = self.script.pop(0) if self.script else self.default
        if step is None:
            raise ReplyError(500, "script exhausted")
        if isinstance(step, Delay):
            time.sleep(step.seconds)
            step = step.then
        if isinstance(step, ReplyError):
            raise step
        if callable(step):
            step = step(messages, params)
        if isinstance(step, str) and params["n"] > 1:
            return [step] * params["n"]
        return step


def render_messages(messages: Sequence[Mapping[str, str]], tokenizer: Any = None) -> str:
    """Messages as one prompt: the tokenizer's chat template when it has one, else "role: content" lines ending
    with "assistant:"."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


def generator_reply(generator: Any, default_max_tokens: int = 256, chat_template: bool = True) -> ReplyFn:
    """A reply function over a `shared.generation.Generator` (e.g. `HFGenerator` on a local model): messages are
    rendered with the tokenizer's chat template; n, temperature, top_p, max_tokens, stop and seed are honoured.
    Requests are served one at a time (torch modules are not re-entrant)."""
    from shared.generation import SamplingParams

    lock = threading.Lock()

    def reply(messages: list[dict[str, Any]], params: dict[str, Any]) -> list[str]:
        prompt = render_messages(messages, generator.tokenizer if chat_template else None)
        temperature = params["temperature"]
        sampling = SamplingParams(
            max_new_tokens=int(params["max_tokens"] or default_max_tokens),
            temperature=1.0 if temperature is None else float(temperature),
            top_p=1.0 if params["top_p"] is None else float(params["top_p"]),
            n=params["n"], stop=tuple(params["stop"]), seed=params["seed"],
        )
        with lock:
            outs = generator.generate([prompt], sampling)[0]
        return [c.text for c in outs]

    return reply


# ---- the client ----------------------------------------------------------------------------------------------
class HttpFailure(Exception):
    """`fetch_with_retries` gave up: the server refused the request (a 4xx other than 429), or every attempt
    failed; `detail` names the last problem."""

    def __init__(self, refused: bool, detail: str, attempts: int) -> None:
        super().__init__(detail)
        self.refused, self.detail, self.attempts = refused, detail, attempts


def fetch_with_retries(make_request: Callable[[], urllib.request.Request], timeout_s: float, max_retries: int,
                       backoff_s: float, max_backoff_s: float, sleep: Callable[[float], None] = time.sleep,
                       count: Callable[[str], None] | None = None, redact: Callable[[str], str] = str) -> str:
    """The body of the first successful response. HTTP 429 and 5xx, timeouts and connection errors are retried
    after `backoff_s * 2**attempt` seconds (capped at `max_backoff_s`; a numeric Retry-After on 429/503 is honoured
    within the cap); any other 4xx raises `HttpFailure(refused=True)` at once. `count("http_requests")` and
    `count("retries")` are called per attempt and per retry; `redact` cleans error excerpts (API keys)."""
    last_problem = ""
    for attempt in range(max_retries + 1):
        delay = min(backoff_s * 2**attempt, max_backoff_s)
        if count is not None:
            count("http_requests")
        try:
            with urllib.request.urlopen(make_request(), timeout=timeout_s) as response:
                return response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as err:
            last_problem = f"HTTP {err.code}: {redact(err.read().decode('utf-8', errors='replace')[:300])}"
            if err.code != 429 and err.code < 500:
                raise HttpFailure(True, last_problem, attempt + 1) from None
            retry_after = err.headers.get("Retry-After") if err.headers else None
            if err.code in (429, 503) and retry_after and retry_after.replace(".", "", 1).isdigit():
                delay = min(float(retry_after), max_backoff_s)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            reason = getattr(err, "reason", err)
            last_problem = f"{type(reason).__name__}: {reason}"
        if attempt < max_retries:
            if count is not None:
                count("retries")
            sleep(delay)
    raise HttpFailure(False, last_problem, max_retries + 1)


class ChatError(RuntimeError):
    """The chat endpoint could not produce a usable reply (network, HTTP status, malformed response)."""


@dataclass(frozen=True)
class ChatChoice:
    """One returned choice: the text, the finish reason and (vLLM, this module's server) the matched stop string."""

    text: str
    finish_reason: str | None = None
    stop_reason: str | None = None


class ChatClient:
    """Client of an OpenAI-compatible `/v1/chat/completions` endpoint with retries, per-call sampling fields, an
    optional on-disk reply cache and thread-safe counters (`counts`: calls, http_requests, retries, failures,
    cache_hits). base_url is the server root or its `/v1`; the client posts to `{root}/v1/chat/completions`."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 30.0,
                 max_retries: int = 3, backoff_s: float = 0.5, max_backoff_s: float = 8.0, temperature: float = 0.0,
                 max_tokens: int = 256, cache_dir: str | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{type(self).__name__} base_url must start with http:// or https://, got {base_url!r}")
        if max_retries < 0 or timeout_s <= 0:
            raise ValueError(f"{type(self).__name__} needs max_retries >= 0 and timeout_s > 0")
        root = base_url.rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root
        self.endpoint = f"{root}/v1/chat/completions"
        self.model, self.api_key = model, api_key
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.temperature, self.max_tokens = temperature, max_tokens
        self.sleep = sleep
        self.cache = None
        if cache_dir:
            from shared.cache import JsonCache

            self.cache = JsonCache(cache_dir)
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def count(self, key: str, k: int = 1) -> None:
        with self._lock:
            self.counts[key] += k

    def stats(self) -> dict[str, int]:
        """A copy of the counters, for results files."""
        with self._lock:
            return dict(self.counts)

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            text = fetch_with_retries(
                lambda: urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST"),
                self.timeout_s, self.max_retries, self.backoff_s, self.max_backoff_s, self.sleep, self.count)
        except HttpFailure as err:
            self.count("failures")
            if err.refused:
                raise ChatError(f"chat endpoint {self.endpoint} refused the request ({err.detail})") from None
            raise ChatError(f"chat endpoint {self.endpoint} failed after {err.attempts} attempt(s): "
                            f"{err.detail}") from None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            self.count("failures")
            raise ChatError(f"chat endpoint {self.endpoint} returned non-JSON body: {text[:300]!r}") from None

    def _choices(self, data: Any) -> list[ChatChoice]:
        try:
            raw = data["choices"]
            # vLLM gives a token id as stop_reason when a stop *token* matched: only strings are kept
            out = [ChatChoice(c["message"]["content"], c.get("finish_reason"),
                              c.get("stop_reason") if isinstance(c.get("stop_reason"), str) else None) for c in raw]
        except (KeyError, IndexError, TypeError) as err:
            raise ChatError(f"chat endpoint {self.endpoint} returned no choices[].message.content: "
                            f"{str(data)[:300]}") from err
        if not out:
            raise ChatError(f"chat endpoint {self.endpoint} returned no choices[0].message.content: {str(data)[:300]}")
        for c in out:
            if not isinstance(c.text, str):
                raise ChatError(f"chat endpoint {self.endpoint} returned non-text content: {c.text!r:.300}")
        return out

    def chat(self, messages: Sequence[Mapping[str, str]], n: int = 1, temperature: float | None = None,
             max_tokens: int | None = None, stop: Sequence[str] | str | None = None, seed: int | None = None,
             top_p: float | None = None) -> list[ChatChoice]:
        """Send chat messages; returns the `n` choices. None fields take the client's defaults (temperature,
        max_tokens) or are left out of the request (stop, seed, top_p)."""
        if not messages:
            raise ValueError(f"{type(self).__name__}.chat needs at least one message")
        payload: dict[str, Any] = {
            "model": self.model, "messages": [dict(m) for m in messages],
            "temperature": self.temperature if temperature is None else temperature,
            "max_tokens": self.max_tokens if max_tokens is None else max_tokens,
        }
        if n != 1:
            payload["n"] = n
        if stop:
            payload["stop"] = [stop] if isinstance(stop, str) else list(stop)
        if seed is not None:
            payload["seed"] = seed
        if top_p is not None:
            payload["top_p"] = top_p
        self.count("calls")
        key = {"endpoint": self.endpoint, **payload}
        if self.cache is not None:
            cached = self.cache.get(key, None)
            if cached is not None:
                self.count("cache_hits")
                return [ChatChoice(**c) for c in cached]
        choices = self._choices(self._post(payload))
        if len(choices) != n:
            raise ChatError(f"chat endpoint {self.endpoint} returned {len(choices)} choice(s) for n={n}")
        if self.cache is not None:
            self.cache.put(key, [asdict(c) for c in choices])
        return choices

    def complete(self, messages: Sequence[Mapping[str, str]], **sampling: Any) -> str:
        """The assistant text of one choice (sampling fields as in `chat`)."""
        return self.chat(messages, **sampling)[0].text


# ---- serving a local model from the command line ---------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.serving",
                                     description="Serve a local HF causal LM as an OpenAI-compatible chat endpoint "
                                                 "on loopback (POST /v1/chat/completions).")
    parser.add_argument("--model", required=True, help="model folder (save_pretrained) or hub id when online")
    parser.add_argument("--name", default=None, help="model name the endpoint reports (default: the path)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address only")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--max-tokens", type=int, default=256, help="max_tokens when a request omits it")
    args = parser.parse_args(argv)
    try:
        check_loopback(args.host)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    from shared.generation import HFGenerator
    from shared.modeling import load_model

    model, tokenizer = load_model(args.model, kind="causal")
    server = ChatServer(generator_reply(HFGenerator(model, tokenizer), args.max_tokens), model=args.name or args.model,
                        host=args.host, port=args.port).start()
    print(f"serving {args.model} at {server.url}/v1/chat/completions", flush=True)
    try:
        while server._thread is not None and server._thread.is_alive():
            server._thread.join(timeout=1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
