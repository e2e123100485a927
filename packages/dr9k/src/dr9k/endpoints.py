"""The judge and teacher endpoints: every call goes through the real OpenAI-compatible client (`shared.serving`).

`serve(settings, stub, name)` yields `(base_url, model, info)`:
- `kind: stub`: the deterministic CPU stand-in `stub(messages, params)` behind a loopback `ChatServer`, so retries,
  parsing and counters run exactly as against a real server;
- `kind: hf`: a local causal LM folder served on loopback (`shared.serving.generator_reply`);
- `kind: endpoint`: `base_url` as given, the API key read from the environment variable `api_key_env` (a missing
  variable is an error naming it, before any request).
`info` names what served the calls (it goes into results.json and the stage stamps).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any


def api_key(settings: Any, what: str) -> str | None:
    """The API key from the environment variable named by `settings.api_key_env` (None when no variable is named)."""
    if not settings.api_key_env:
        return None
    key = os.environ.get(settings.api_key_env, "").strip()
    if not key:
        raise ValueError(f"{what}.api_key_env names the environment variable {settings.api_key_env}, which is not set")
    return key


@contextlib.contextmanager
def serve(settings: Any, stub: Callable[..., Any], name: str, what: str) -> Iterator[tuple[str, str, dict]]:
    """Yield (base_url, model, info) of the configured endpoint (module docstring); loopback servers stop after."""
    from shared.serving import ChatServer

    if settings.kind == "endpoint":
        api_key(settings, what)
        yield settings.base_url, settings.model or "default", {"kind": "endpoint", "url": settings.base_url,
                                                               "model": settings.model or "default"}
        return
    if settings.kind == "hf":
        from shared.generation import HFGenerator
        from shared.modeling import load_model
        from shared.serving import generator_reply

        model, tok = load_model(settings.path, kind="causal", dtype="float32", device="auto")
        reply, model_name = generator_reply(HFGenerator(model, tok), settings.max_tokens), settings.path
    elif settings.kind == "stub":
        reply, model_name = stub, name
    else:
        raise ValueError(f"{what}.kind must be stub, hf or endpoint, got {settings.kind!r}")
    server = ChatServer(reply, model=model_name).start()
    try:
        yield server.url, model_name, {"kind": settings.kind, "model": model_name}
    finally:
        server.stop()


def client_kwargs(settings: Any, what: str) -> dict[str, Any]:
    """Keyword arguments of a `ChatClient`/`JudgeClient` from endpoint settings."""
    return {"api_key": api_key(settings, what) if settings.kind == "endpoint" else None,
            "timeout_s": settings.timeout_s, "max_retries": settings.max_retries, "backoff_s": settings.backoff_s,
            "temperature": settings.temperature, "max_tokens": settings.max_tokens,
            "cache_dir": settings.cache_dir or None}
