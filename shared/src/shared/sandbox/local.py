"""Parent side of the local sandbox: start the child (`child.py`), feed it, drain its output, kill its group.

`run_python` and `call_function` write the code, the input files and a JSON config into a private control
folder, start ``python -I child.py CONFIG`` in a new session (so the process group is the sandbox), wait up to
the wall-time limit, kill the whole group (always, also after a normal exit) and turn the return code into a
`SandboxResult`. A child that reports a required mechanism missing becomes `SandboxUnavailable`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .child import MEMORY_EXIT_CODE, REFUSED_EXIT_CODE, REQUIRED, USERNS_RETRY_EXIT_CODE
from .result import SandboxError, SandboxResult, SandboxUnavailable

ALLOW_MISSING_ENV = "SHARED_SANDBOX_ALLOW_MISSING"
_CHILD = Path(__file__).resolve().with_name("child.py")
_userns_unusable = False  # set once a child could not map its ids in a user namespace on this machine
_PIPE_GRACE_S = 2.0  # how long to wait for the output pipes to close after the group was killed


def allowed_missing(allow_missing: Iterable[str] | bool) -> list[str]:
    """The required mechanisms the caller accepts to run without: the argument plus $SHARED_SANDBOX_ALLOW_MISSING."""
    names: set[str] = set()
    if allow_missing is True:
        names.update(REQUIRED)
    elif allow_missing is not False:
        names.update(allow_missing)
    env = os.environ.get(ALLOW_MISSING_ENV, "").strip()
    if env:
        names.update(REQUIRED if env == "all" else (part.strip() for part in env.split(",") if part.strip()))
    unknown = names - set(REQUIRED)
    if unknown:
        raise ValueError(f"sandbox allow_missing: unknown mechanism(s) {sorted(unknown)}; known: {list(REQUIRED)}")
    return sorted(names)


def _write_files(folder: Path, files: dict[str, str | bytes] | None) -> None:
    """Copy caller-supplied input files into `folder` (the child copies them into scratch); names stay inside."""
    for name, content in (files or {}).items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"sandbox files: name {name!r} must be a relative path inside the scratch dir")
        if not isinstance(content, str | bytes):
            raise TypeError(f"sandbox files: content of {name!r} must be str or bytes, got {type(content).__name__}")
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)


def _drain(stream: Any, cap: int, sink: bytearray, flags: dict[str, bool]) -> None:
    """Read a pipe to EOF, keeping the first `cap` bytes (the rest is read and dropped so the child never blocks)."""
    try:
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            room = cap - len(sink)
            if room > 0:
                sink.extend(chunk[:room])
            if len(chunk) > max(room, 0):
                flags["truncated"] = True
    except (OSError, ValueError):
        pass  # the pipe was closed under us after the grace period
    finally:
        try:
            stream.close()
        except OSError:
            pass


def _feed(stream: Any, data: bytes) -> None:
    try:
        stream.write(data)
    except (BrokenPipeError, OSError, ValueError):
        pass  # the child exited without reading all of stdin
    finally:
        try:
            stream.close()
        except OSError:
            pass


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _classify(returncode: int, killed_by_us: bool, stderr: str) -> tuple[str, str | None]:
    """Map the child's exit to (status, error message)."""
    if killed_by_us:
        return "timeout", "wall-time limit exceeded"
    if returncode == 0:
        return "ok", None
    if returncode == MEMORY_EXIT_CODE:
        return "memory", "memory limit exceeded (MemoryError)"
    if returncode == -signal.SIGXCPU:
        return "timeout", "CPU-time limit exceeded"
    if returncode == -signal.SIGXFSZ:
        return "error", "file-size limit exceeded (SIGXFSZ)"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    if last.startswith("MemoryError"):
        return "memory", "memory limit exceeded (MemoryError)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return "error", f"killed by signal {name}"
    return "error", last or f"exit code {returncode}"


def _read_report(control: Path) -> dict[str, str]:
    try:
        report = json.loads((control / "mechanisms.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return report if isinstance(report, dict) else {}


def _run(
    config: dict[str, Any],
    code: str,
    timeout_s: float,
    memory_mb: int,
    files: dict[str, str | bytes] | None,
    stdin: str | bytes | None,
    cpu_s: float | None,
    max_output_bytes: int,
    network_namespace: bool,
    scratch_mb: int,
    allow_missing: Iterable[str] | bool,
) -> tuple[SandboxResult, Path]:
    """Shared driver of run_python/call_function; returns the result and the control dir (caller removes it)."""
    global _userns_unusable
    if not isinstance(code, str):
        raise TypeError(f"sandbox code must be a str, got {type(code).__name__}")
    if timeout_s <= 0 or memory_mb <= 0 or max_output_bytes <= 0 or scratch_mb <= 0:
        raise ValueError("sandbox needs timeout_s > 0, memory_mb > 0, max_output_bytes > 0 and scratch_mb > 0")
    allowed = allowed_missing(allow_missing)
    control = Path(tempfile.mkdtemp(prefix="sandbox-ctl-"))
    scratch = Path(tempfile.mkdtemp(prefix="sandbox-run-"))
    try:
        _write_files(control / "files", files)
        (control / "code.py").write_text(code, encoding="utf-8")
        full_config = {
            **config,
            "code_path": str(control / "code.py"),
            "files_dir": str(control / "files"),
            "scratch": str(scratch),
            "scratch_bytes": int(scratch_mb) * 1024 * 1024,
            "memory_bytes": int(memory_mb) * 1024 * 1024,
            # one second above the wall limit by default, so a busy loop is reported as a wall-time kill
            "cpu_s": int(math.ceil(cpu_s if cpu_s is not None else timeout_s + 1)),
            "network_namespace": network_namespace,
            "user_namespace": not _userns_unusable,
            "allow_missing": allowed,
        }
        (control / "config.json").write_text(json.dumps(full_config), encoding="utf-8")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(scratch),
            "TMPDIR": str(scratch),
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            # one thread per numeric library: threads would multiply the address-space reservation
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        stdin_bytes = stdin.encode() if isinstance(stdin, str) else stdin
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-I", str(_CHILD), str(control / "config.json")],
            cwd=scratch,
            env=env,
            stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        out, err, flags = bytearray(), bytearray(), {"truncated": False}
        drains = [
            threading.Thread(target=_drain, args=(proc.stdout, max_output_bytes, out, flags), daemon=True),
            threading.Thread(target=_drain, args=(proc.stderr, max_output_bytes, err, flags), daemon=True),
        ]
        threads = list(drains)
        if stdin_bytes is not None:
            threads.append(threading.Thread(target=_feed, args=(proc.stdin, stdin_bytes), daemon=True))
        for thread in threads:
            thread.start()
        killed = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            killed = True
            _kill_group(proc.pid)
            proc.wait()
        _kill_group(proc.pid)  # the whole tree, after every run: nothing the code started outlives it
        pipe_held = False
        for thread in drains:
            thread.join(timeout=_PIPE_GRACE_S)
            pipe_held = pipe_held or thread.is_alive()
        if pipe_held:  # something outside the group still holds a pipe: stop reading, do not hang
            for stream in (proc.stdout, proc.stderr):
                try:
                    os.close(stream.fileno())
                except (OSError, ValueError):
                    pass
        seconds = time.monotonic() - start
        stdout = out.decode("utf-8", errors="replace")
        stderr = err.decode("utf-8", errors="replace")
        report = _read_report(control)
        if proc.returncode == USERNS_RETRY_EXIT_CODE and report == {}:
            _userns_unusable = True  # this machine's user namespaces cannot keep our ids: never try again
            shutil.rmtree(control, ignore_errors=True)
            return _run(config, code, timeout_s, memory_mb, files, stdin, cpu_s, max_output_bytes,
                        network_namespace, scratch_mb, allow_missing)
        status, error = _classify(proc.returncode, killed, stderr)
        result = SandboxResult(
            status=status,  # type: ignore[arg-type]
            returncode=proc.returncode,
            stdout=stdout,
            stderr=stderr,
            seconds=seconds,
            error=error,
            truncated=flags["truncated"],
            network_namespace=report.get("network_namespace") == "on",
            mechanisms=report,
        )
        if pipe_held:
            result.extra["pipe_held"] = True
        try:
            code_started = (control / "started").read_text(encoding="utf-8") == "1"
        except OSError:
            code_started = False
        if proc.returncode == REFUSED_EXIT_CODE and not killed and not code_started:
            reason = next((ln for ln in reversed(stderr.splitlines()) if ln.startswith("sandbox: ")), stderr.strip())
            raise SandboxUnavailable(
                f"{reason}. Run on a machine that has it, or accept weaker isolation explicitly with "
                f"allow_missing=[...] or {ALLOW_MISSING_ENV}=<names>|all",
                result,
            )
        return result, control
    except BaseException:
        shutil.rmtree(control, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_python(
    code: str,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    files: dict[str, str | bytes] | None = None,
    stdin: str | bytes | None = None,
    cpu_s: float | None = None,
    max_output_bytes: int = 1_000_000,
    network_namespace: bool = True,
    scratch_mb: int = 64,
    allow_missing: Iterable[str] | bool = (),
) -> SandboxResult:
    """Run `code` as a script in the sandbox and return its SandboxResult.

    files: name -> content written into the scratch dir before the run. cpu_s defaults to timeout_s (rounded
    up) plus one second. scratch_mb caps everything written to scratch. network_namespace=False skips that
    namespace (sockets stay refused by seccomp). allow_missing names required mechanisms ("landlock",
    "seccomp", "scratch_quota", or True for all) the caller accepts to run without; otherwise a machine that
    lacks one raises SandboxUnavailable.
    """
    result, control = _run({"mode": "run"}, code, timeout_s, memory_mb, files, stdin, cpu_s, max_output_bytes,
                           network_namespace, scratch_mb, allow_missing)
    shutil.rmtree(control, ignore_errors=True)
    return result


def call_function(
    code: str,
    name: str,
    kwargs: dict[str, Any] | None = None,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    files: dict[str, str | bytes] | None = None,
    cpu_s: float | None = None,
    max_output_bytes: int = 1_000_000,
    network_namespace: bool = True,
    scratch_mb: int = 64,
    allow_missing: Iterable[str] | bool = (),
) -> Any:
    """Define `code` in the sandbox, call its function `name(**kwargs)` and return the JSON-decoded result.

    kwargs and the return value must be JSON-serialisable. Raises SandboxError (with `.result`) when the code
    fails, times out, runs out of memory, lacks the function or returns something JSON cannot encode.
    """
    kwargs = kwargs or {}
    if not name.isidentifier():
        raise ValueError(f"call_function: {name!r} is not a valid function name")
    try:
        kwargs_json = json.dumps(kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"call_function({name}): kwargs are not JSON-serialisable: {err}") from err
    result, control = _run({"mode": "call", "name": name, "kwargs": kwargs_json}, code, timeout_s, memory_mb,
                           files, None, cpu_s, max_output_bytes, network_namespace, scratch_mb, allow_missing)
    try:
        if not result.ok:
            raise SandboxError(f"call_function({name}) failed: {result.status}: {result.error}", result)
        try:
            payload = json.loads((control / "result.json").read_text(encoding="utf-8"))
            value = payload["value"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise SandboxError(f"call_function({name}) produced no readable result ({err})", result) from err
        result.extra["value"] = value
        return value
    finally:
        shutil.rmtree(control, ignore_errors=True)


def probe() -> dict[str, str]:
    """Which mechanisms this machine gives the sandbox: name -> "on..." or "off: reason" (runs a no-op child)."""
    return run_python("pass", timeout_s=30, allow_missing=True).mechanisms
