"""Adapter for SandboxFusion-style code-execution services, behind the local sandbox's result type.

For users who already run untrusted code in a service (SandboxFusion, or a container farm speaking its API):
`POST {url}/run_code` with ``{"code", "language": "python", "run_timeout", "compile_timeout",
"memory_limit_MB", "stdin", "files": {name: base64}}`` answers ``{"status": "Success" | "Failed" |
"SandboxError", "message", "run_result": {"status": "Finished" | "TimeLimitExceeded" | "Error",
"execution_time", "return_code", "stdout", "stderr"}}``. `SandboxFusionClient.run_python` maps that to a
`SandboxResult`; `call_function` wraps the code so the function's JSON return value comes back on stdout
behind a one-time marker. The isolation is then the service's; `SandboxResult.mechanisms` stays empty.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.error
import urllib.request
from typing import Any

from .result import SandboxError, SandboxResult


class SandboxServiceError(RuntimeError):
    """The remote sandbox could not be reached or answered something other than a run result."""


class SandboxFusionClient:
    """`run_python` / `call_function` against a SandboxFusion-style `/run_code` endpoint."""

    def __init__(self, url: str, request_timeout_s: float = 30.0, retries: int = 2, backoff_s: float = 0.5) -> None:
        url = url.rstrip("/")
        self.url = url if url.endswith("/run_code") else url + "/run_code"
        self.request_timeout_s, self.retries, self.backoff_s = request_timeout_s, retries, backoff_s

    def _post(self, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=timeout_s + self.request_timeout_s) as response:
                    payload = json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as err:
                detail = err.read().decode("utf-8", "replace")[:300]
                if 400 <= err.code < 500:
                    raise SandboxServiceError(f"{self.url} rejected the request (HTTP {err.code}): {detail}") from err
                last = SandboxServiceError(f"HTTP {err.code}: {detail}")
                continue
            except json.JSONDecodeError as err:
                raise SandboxServiceError(f"{self.url} answered with invalid JSON: {err}") from err
            except (urllib.error.URLError, OSError) as err:  # refused, reset, timed out: the service may be restarting
                last = err
                continue
            if not isinstance(payload, dict):
                raise SandboxServiceError(f"{self.url} answered {type(payload).__name__}, expected an object")
            return payload
        raise SandboxServiceError(f"sandbox service at {self.url} unavailable after {self.retries + 1} attempts: {last}")

    def run_python(
        self,
        code: str,
        timeout_s: float = 5.0,
        memory_mb: int = 512,
        files: dict[str, str | bytes] | None = None,
        stdin: str | bytes | None = None,
        max_output_bytes: int = 1_000_000,
    ) -> SandboxResult:
        """Run `code` remotely; the same statuses as the local sandbox (ok / timeout / memory / error)."""
        if not isinstance(code, str):
            raise TypeError(f"sandbox code must be a str, got {type(code).__name__}")
        encoded = {}
        for name, content in (files or {}).items():
            raw = content.encode() if isinstance(content, str) else content
            encoded[name] = base64.b64encode(raw).decode("ascii")
        body = {
            "code": code, "language": "python", "run_timeout": timeout_s, "compile_timeout": timeout_s,
            "memory_limit_MB": memory_mb, "files": encoded,
            "stdin": stdin.decode("utf-8", "replace") if isinstance(stdin, bytes) else (stdin or ""),
        }
        start = time.monotonic()
        payload = self._post(body, timeout_s)
        if payload.get("status") == "SandboxError":
            raise SandboxServiceError(f"{self.url}: the service failed to run the code: {payload.get('message')}")
        run = payload.get("run_result")
        if not isinstance(run, dict):
            raise SandboxServiceError(f"{self.url} answered without a run_result: {str(payload)[:200]}")
        stdout, stderr = str(run.get("stdout") or ""), str(run.get("stderr") or "")
        truncated = len(stdout) > max_output_bytes or len(stderr) > max_output_bytes
        stdout, stderr = stdout[:max_output_bytes], stderr[:max_output_bytes]
        returncode = run.get("return_code")
        status, error = _classify(str(run.get("status")), returncode, stderr)
        seconds = run.get("execution_time")
        return SandboxResult(
            status=status,  # type: ignore[arg-type]
            returncode=returncode if isinstance(returncode, int) else None,
            stdout=stdout,
            stderr=stderr,
            seconds=float(seconds) if isinstance(seconds, int | float) else time.monotonic() - start,
            error=error,
            truncated=truncated,
            extra={"backend": self.url},
        )

    def call_function(self, code: str, name: str, kwargs: dict[str, Any] | None = None, timeout_s: float = 5.0,
                      memory_mb: int = 512, files: dict[str, str | bytes] | None = None) -> Any:
        """Define `code` remotely, call `name(**kwargs)` and return its JSON-decoded value (SandboxError if none)."""
        if not name.isidentifier():
            raise ValueError(f"call_function: {name!r} is not a valid function name")
        try:
            kwargs_json = json.dumps(kwargs or {})
        except (TypeError, ValueError) as err:
            raise ValueError(f"call_function({name}): kwargs are not JSON-serialisable: {err}") from err
        marker = f"@@sandbox-result-{secrets.token_hex(8)}@@"
        driver = (
            f"\n\nimport json as _sandbox_json\n"
            f"if not callable(globals().get({name!r})):\n"
            f"    raise NameError({f'the code defines no function named {name!r}'!r})\n"
            f"_sandbox_value = {name}(**_sandbox_json.loads({kwargs_json!r}))\n"
            f"try:\n    _sandbox_out = _sandbox_json.dumps({{'value': _sandbox_value}})\n"
            f"except (TypeError, ValueError) as _sandbox_err:\n"
            f"    raise TypeError(f'the result of {name} is not JSON-serialisable: {{_sandbox_err}}') from None\n"
            f"print({marker!r} + _sandbox_out)\n"
        )
        result = self.run_python(code + driver, timeout_s=timeout_s, memory_mb=memory_mb, files=files)
        if not result.ok:
            raise SandboxError(f"call_function({name}) failed: {result.status}: {result.error}", result)
        lines = result.stdout.splitlines()
        found = [i for i, line in enumerate(lines) if line.startswith(marker)]
        if not found:
            raise SandboxError(f"call_function({name}) produced no readable result (no marker line)", result)
        try:
            value = json.loads(lines[found[-1]][len(marker):])["value"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise SandboxError(f"call_function({name}) produced no readable result ({err})", result) from err
        result.stdout = "".join(line + "\n" for i, line in enumerate(lines) if i != found[-1])
        result.extra["value"] = value
        return value


def _classify(run_status: str, returncode: Any, stderr: str) -> tuple[str, str | None]:
    """SandboxFusion's run status and return code -> (status, error) as the local sandbox reports them."""
    if run_status == "TimeLimitExceeded":
        return "timeout", "wall-time limit exceeded"
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if last.startswith("MemoryError"):
        return "memory", "memory limit exceeded (MemoryError)"
    if run_status == "Finished" and returncode == 0:
        return "ok", None
    return "error", last or f"{run_status} (exit code {returncode})"
