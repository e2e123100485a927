"""Run untrusted Python (model-written code, tool code) in a separate, limited process.

Every run gets:
- a child process ``python -I`` (no user site, no PYTHON* variables, no script dir on sys.path) in its own
  session, so a wall-time timeout kills the whole process group;
- CPU-time (RLIMIT_CPU), address-space (RLIMIT_AS), file-size and core limits, set by the child itself before
  any user code runs (the same effect as ``preexec_fn``, without ``preexec_fn``'s deadlock risk when the
  parent has threads, e.g. rollout workers);
- no network: where the kernel allows unprivileged user namespaces the child moves into a fresh network
  namespace (no interfaces up), and in every case an audit hook refuses to create non-AF_UNIX sockets;
- a fresh scratch working directory (deleted afterwards; also HOME and TMPDIR), and an audit hook that refuses
  writes, deletes, renames, mkdir/chmod and similar outside it, plus process spawning (a child process would
  not carry the hooks), signals to other processes and new ctypes loads/calls;
- stdout/stderr captured up to a size cap, and a structured `SandboxResult`.

Limits of this design: audit hooks are a guard against accidents and naive code, not a security boundary
against a determined attacker with access to CPython internals; the hard boundaries are the separate process,
the rlimits, the network namespace (when available) and the wall-time kill. Run truly hostile code inside a
container or VM as well.

This file is also the child's bootstrap: it is executed as ``python -I sandbox.py CONFIG``, so it imports only
the standard library at module level.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

MEMORY_EXIT_CODE = 86  # the child exits with this after a MemoryError escaped the user's code
NETNS_FAILED_EXIT_CODE = 87  # the child entered a user namespace but could not map its uid: retry without
_netns_unusable = False  # set once that happened: this machine's namespaces cannot keep our uid
_FSIZE_LIMIT_BYTES = 64 * 1024 * 1024
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_MUTATING_EVENTS = {
    # event name -> indices of the path arguments that must lie inside the scratch directory
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.link": (1,),
    "os.symlink": (1,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "os.chflags": (0,),
    "os.lchflags": (0,),
    "os.setxattr": (0,),
    "os.removexattr": (0,),
    "shutil.rmtree": (0,),
    "shutil.move": (0, 1),
}
_FORBIDDEN_EVENTS = {
    "subprocess.Popen": "starting processes",
    "os.system": "starting processes",
    "os.exec": "starting processes",
    "os.posix_spawn": "starting processes",
    "os.spawn": "starting processes",
    "os.fork": "starting processes",
    "os.forkpty": "starting processes",
    "pty.spawn": "starting processes",
    "ctypes.dlopen": "loading native libraries",
    "ctypes.dlsym": "resolving native symbols",
    "ctypes.dlsym/handle": "resolving native symbols",
    "ctypes.call_function": "calling native functions",
    "ctypes.cdata": "reading raw memory",
    "socket.getaddrinfo": "network access",
    "socket.gethostbyname": "network access",
    "socket.gethostbyaddr": "network access",
}


class SandboxError(RuntimeError):
    """A sandboxed call did not return a value; `.result` holds the full SandboxResult."""

    def __init__(self, message: str, result: SandboxResult):
        super().__init__(message)
        self.result = result


@dataclass
class SandboxResult:
    """Outcome of one sandboxed run. status: "ok" | "timeout" | "memory" | "error"."""

    status: Literal["ok", "timeout", "memory", "error"]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    error: str | None = None
    truncated: bool = False
    network_namespace: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# ---------------------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------------------


def _write_files(scratch: Path, files: dict[str, str | bytes] | None) -> None:
    """Copy caller-supplied input files into the scratch dir; names must stay inside it."""
    for name, content in (files or {}).items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"sandbox files: name {name!r} must be a relative path inside the scratch dir")
        if not isinstance(content, str | bytes):
            raise TypeError(f"sandbox files: content of {name!r} must be str or bytes, got {type(content).__name__}")
        target = scratch / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)


def _drain(stream: Any, cap: int, sink: bytearray, flags: dict[str, bool]) -> None:
    """Read a pipe to EOF, keeping the first `cap` bytes (the rest is read and dropped so the child never blocks)."""
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        room = cap - len(sink)
        if room > 0:
            sink.extend(chunk[:room])
        if len(chunk) > max(room, 0):
            flags["truncated"] = True
    stream.close()


def _feed(stream: Any, data: bytes) -> None:
    try:
        stream.write(data)
    except (BrokenPipeError, OSError):
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
) -> tuple[SandboxResult, Path]:
    """Shared driver of run_python/call_function; returns the result and the control dir (caller removes it)."""
    if not isinstance(code, str):
        raise TypeError(f"sandbox code must be a str, got {type(code).__name__}")
    if timeout_s <= 0 or memory_mb <= 0 or max_output_bytes <= 0:
        raise ValueError("sandbox needs timeout_s > 0, memory_mb > 0 and max_output_bytes > 0")
    network_namespace = network_namespace and not _netns_unusable
    control = Path(tempfile.mkdtemp(prefix="sandbox-ctl-"))
    scratch = Path(tempfile.mkdtemp(prefix="sandbox-run-"))
    try:
        _write_files(scratch, files)
        (control / "code.py").write_text(code, encoding="utf-8")
        config = {
            **config,
            "code_path": str(control / "code.py"),
            "scratch": str(scratch),
            "memory_bytes": int(memory_mb) * 1024 * 1024,
            # one second above the wall limit by default, so a busy loop is reported as a wall-time kill
            "cpu_s": int(math.ceil(cpu_s if cpu_s is not None else timeout_s + 1)),
            "network_namespace": network_namespace,
            "netns_flag_path": str(control / "netns"),
        }
        (control / "config.json").write_text(json.dumps(config), encoding="utf-8")
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
            [sys.executable, "-I", str(Path(__file__).resolve()), str(control / "config.json")],
            cwd=scratch,
            env=env,
            stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        out, err, flags = bytearray(), bytearray(), {"truncated": False}
        threads = [
            threading.Thread(target=_drain, args=(proc.stdout, max_output_bytes, out, flags), daemon=True),
            threading.Thread(target=_drain, args=(proc.stderr, max_output_bytes, err, flags), daemon=True),
        ]
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
        _kill_group(proc.pid)  # leftovers the code may have left behind in its group
        for thread in threads:
            thread.join(timeout=5)
        if network_namespace and proc.returncode == NETNS_FAILED_EXIT_CODE:
            _mark_netns_unusable()
            shutil.rmtree(control, ignore_errors=True)
            return _run(config, code, timeout_s, memory_mb, files, stdin, cpu_s, max_output_bytes, False)
        seconds = time.monotonic() - start
        stdout = out.decode("utf-8", errors="replace")
        stderr = err.decode("utf-8", errors="replace")
        status, error = _classify(proc.returncode, killed, stderr)
        result = SandboxResult(
            status=status,  # type: ignore[arg-type]
            returncode=proc.returncode,
            stdout=stdout,
            stderr=stderr,
            seconds=seconds,
            error=error,
            truncated=flags["truncated"],
            network_namespace=(control / "netns").exists(),
        )
        return result, control
    except BaseException:
        shutil.rmtree(control, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _mark_netns_unusable() -> None:
    global _netns_unusable
    _netns_unusable = True


def run_python(
    code: str,
    timeout_s: float = 5.0,
    memory_mb: int = 512,
    files: dict[str, str | bytes] | None = None,
    stdin: str | bytes | None = None,
    cpu_s: float | None = None,
    max_output_bytes: int = 1_000_000,
    network_namespace: bool = True,
) -> SandboxResult:
    """Run `code` as a script in the sandbox and return its SandboxResult.

    files: name -> content written into the scratch dir before the run. cpu_s defaults to timeout_s (rounded
    up) plus one second. network_namespace=False skips the namespace step (sockets are still refused by the audit hook).
    """
    result, control = _run(
        {"mode": "run"}, code, timeout_s, memory_mb, files, stdin, cpu_s, max_output_bytes, network_namespace
    )
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
    result, control = _run(
        {"mode": "call", "name": name, "kwargs": kwargs_json},
        code,
        timeout_s,
        memory_mb,
        files,
        None,
        cpu_s,
        max_output_bytes,
        network_namespace,
    )
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


# ---------------------------------------------------------------------------------------------------------
# Child side (runs inside `python -I sandbox.py CONFIG`; standard library only)
# ---------------------------------------------------------------------------------------------------------


def _enter_network_namespace(flag_path: str) -> None:
    """Move into a new user+network namespace where the kernel allows it; keep our uid/gid mapped."""
    import ctypes

    uid, gid = os.getuid(), os.getgid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return
    # without these maps we would be "nobody" and lose access to our own scratch dir
    for path, text, required in (
        ("/proc/self/setgroups", "deny", False),  # absent on old kernels
        ("/proc/self/uid_map", f"{uid} {uid} 1", True),
        ("/proc/self/gid_map", f"{gid} {gid} 1", True),
    ):
        try:
            with open(path, "w") as handle:
                handle.write(text)
        except OSError as err:
            if required:
                sys.stderr.write(f"sandbox: cannot map ids in the new namespace ({path}: {err})\n")
                os._exit(NETNS_FAILED_EXIT_CODE)  # the parent retries without a namespace
    Path(flag_path).touch()


def _set_limits(memory_bytes: int, cpu_s: int) -> None:
    import resource

    def lower(kind: int, soft: int, hard: int) -> None:
        # never ask for more than the hard limit we inherited (that would fail, not loosen anything)
        _, inherited = resource.getrlimit(kind)
        if inherited != resource.RLIM_INFINITY:
            soft, hard = min(soft, inherited), min(hard, inherited)
        resource.setrlimit(kind, (soft, hard))

    lower(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    lower(resource.RLIMIT_AS, memory_bytes, memory_bytes)
    lower(resource.RLIMIT_FSIZE, _FSIZE_LIMIT_BYTES, _FSIZE_LIMIT_BYTES)
    lower(resource.RLIMIT_CORE, 0, 0)


def _install_guards(scratch: str) -> None:
    """Audit hook: writes and mutations only inside scratch, no sockets but AF_UNIX, no processes, no ctypes."""
    import socket

    root = os.path.realpath(scratch)
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    allowed_devices = {"/dev/null", "/dev/stdout", "/dev/stderr"}
    busy = threading.local()

    def inside(path: Any) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real == root or real.startswith(root + os.sep) or real in allowed_devices

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if getattr(busy, "active", False):
            return
        busy.active = True
        try:
            if event == "open":
                path, mode, flags = args
                writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                    isinstance(flags, int) and flags & write_flags
                )
                if writing and not inside(path):
                    raise PermissionError(f"sandbox: writing outside the scratch directory is not allowed: {path}")
            elif event in _MUTATING_EVENTS:
                for index in _MUTATING_EVENTS[event]:
                    if index < len(args) and args[index] is not None and not inside(args[index]):
                        raise PermissionError(f"sandbox: {event} outside the scratch directory: {args[index]}")
            elif event in _FORBIDDEN_EVENTS:
                raise PermissionError(f"sandbox: {_FORBIDDEN_EVENTS[event]} is not allowed ({event})")
            elif event in ("os.kill", "os.killpg"):
                # signals only to the sandboxed process (group) itself, never to the caller or others
                own = (0, os.getpid()) if event == "os.kill" else (0, os.getpgid(0))
                if args[0] not in own:
                    raise PermissionError(f"sandbox: signalling other processes is not allowed ({event})")
            elif event == "socket.__new__":
                family = args[1] if len(args) > 1 else None
                if family != socket.AF_UNIX:
                    raise PermissionError("sandbox: network access is not allowed (socket creation)")
            elif event in ("socket.connect", "socket.bind", "socket.sendto"):
                if getattr(args[0], "family", None) != socket.AF_UNIX:
                    raise PermissionError(f"sandbox: network access is not allowed ({event})")
        finally:
            busy.active = False

    sys.addaudithook(hook)


def _child_main(config_path: str) -> None:
    import traceback

    with open(config_path, encoding="utf-8") as handle:
        cfg = json.load(handle)
    with open(cfg["code_path"], encoding="utf-8") as handle:
        source = handle.read()
    if cfg["network_namespace"]:
        try:
            _enter_network_namespace(cfg["netns_flag_path"])
        except OSError:
            pass  # no namespaces here: the socket audit hook still blocks the network
    import ctypes  # noqa: F401  (imported before the hook so libraries that import it keep working)

    result_handle = open(os.path.join(os.path.dirname(config_path), "result.json"), "w", encoding="utf-8")
    _set_limits(cfg["memory_bytes"], cfg["cpu_s"])
    sys.dont_write_bytecode = True
    os.chdir(cfg["scratch"])
    _install_guards(cfg["scratch"])
    namespace: dict[str, Any] = {"__name__": "__main__" if cfg["mode"] == "run" else "__sandbox__"}
    try:
        compiled = compile(source, "<sandbox>", "exec")
        exec(compiled, namespace)
        if cfg["mode"] == "call":
            func = namespace.get(cfg["name"])
            if not callable(func):
                raise NameError(f"the code defines no function named {cfg['name']!r}")
            value = func(**json.loads(cfg["kwargs"]))
            try:
                encoded = json.dumps({"value": value})
            except (TypeError, ValueError) as err:
                raise TypeError(f"the result of {cfg['name']} is not JSON-serialisable: {err}") from None
            result_handle.write(encoded)
            result_handle.flush()
    except MemoryError:
        namespace.clear()
        try:
            sys.stdout.flush()
            sys.stderr.write("MemoryError: sandbox memory limit exceeded\n")
            sys.stderr.flush()
        finally:
            os._exit(MEMORY_EXIT_CODE)
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)


if __name__ == "__main__":
    _child_main(sys.argv[1])
