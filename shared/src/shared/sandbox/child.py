"""The sandbox child: executed as ``python -I child.py CONFIG`` by `shared.sandbox`; standard library only.

Process layout (all in one process group, which the parent kills at the end of every run):

- the *bootstrap* (this script's first process) enters the namespaces, mounts the size-capped scratch tmpfs,
  copies the input files in, writes the mechanism report, and refuses to go on when a required mechanism is off;
- with a PID namespace, a *reaper* (PID 1 of the namespace, our code only) starts the worker and passes its exit
  status back; when the reaper ends, the kernel kills everything left in the namespace. Without one the
  bootstrap starts the worker itself;
- the *worker* lowers its rlimits, applies Landlock, drops capabilities, installs the seccomp filter and the
  audit hook, and only then runs the untrusted code.

The bootstrap finally exits the way the worker did (same exit code, or the same signal), so the parent
classifies the run from one return code.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
import threading
from typing import Any

MEMORY_EXIT_CODE = 86  # the worker exits with this after a MemoryError escaped the user's code
USERNS_RETRY_EXIT_CODE = 87  # entered a user namespace but could not map our ids: the parent retries without
REFUSED_EXIT_CODE = 88  # a required mechanism is off (stderr says which); only before the code starts
REQUIRED = ("landlock", "seccomp", "scratch_quota")
_FSIZE_LIMIT_BYTES = 64 * 1024 * 1024
_NPROC_LIMIT = 64  # tasks (threads included) per sandbox; counted per user namespace, so only set inside one
_MUTATING_EVENTS = {
    # event name -> indices of the path arguments that must lie inside the scratch directory
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1), "os.link": (0, 1),
    "os.symlink": (1,), "os.chmod": (0,), "os.chown": (0,), "os.truncate": (0,), "os.utime": (0,),
    "os.chflags": (0,), "os.lchflags": (0,), "os.setxattr": (0,), "os.removexattr": (0,),
    "shutil.rmtree": (0,), "shutil.move": (0, 1),
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


def _load_kernel() -> Any:
    """kernel.py from this file's folder, by path (the child may not be able to import the `shared` package)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel.py")
    spec = importlib.util.spec_from_file_location("_sandbox_kernel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _off(reason: str) -> str:
    return f"off: {reason}"


def _enter_namespaces(kernel: Any, cfg: dict[str, Any], report: dict[str, str]) -> None:
    """User namespace first (it grants the rights to create the others), then mount, network and PID."""
    uid, gid = os.getuid(), os.getgid()
    if not cfg["user_namespace"]:
        report["user_namespace"] = _off("skipped: this machine could not map ids in one before")
    else:
        try:
            kernel.unshare(kernel.CLONE_NEWUSER)
        except OSError as err:
            report["user_namespace"] = _off(err.strerror or str(err))
        else:
            try:
                kernel.map_ids(uid, gid)
            except OSError as err:
                sys.stderr.write(f"sandbox: cannot map ids in the new user namespace ({err})\n")
                os._exit(USERNS_RETRY_EXIT_CODE)
            report["user_namespace"] = "on"
    wanted = (("mount_namespace", kernel.CLONE_NEWNS, True),
              ("network_namespace", kernel.CLONE_NEWNET, cfg["network_namespace"]),
              ("pid_namespace", kernel.CLONE_NEWPID, True))
    for name, flag, want in wanted:
        if not want:
            report[name] = _off("not requested")
            continue
        try:
            kernel.unshare(flag)
            report[name] = "on"
        except OSError as err:
            report[name] = _off(err.strerror or str(err))


def _prepare(kernel: Any, cfg: dict[str, Any]) -> dict[str, str]:
    """Namespaces, scratch quota and the availability of Landlock and seccomp, as name -> "on..." / "off: why"."""
    report: dict[str, str] = {}
    _enter_namespaces(kernel, cfg, report)
    scratch_mb = cfg["scratch_bytes"] // (1024 * 1024)
    if report["mount_namespace"] == "on":
        try:
            kernel.mount_tmpfs(cfg["scratch"], cfg["scratch_bytes"])
            report["scratch_quota"] = f"on: tmpfs of {scratch_mb} MiB"
        except OSError as err:
            report["scratch_quota"] = _off(str(err))
    else:
        report["scratch_quota"] = _off("needs a mount namespace for the size-capped tmpfs")
    abi = kernel.landlock_abi()
    report["landlock"] = f"on: ABI {abi}" if abi >= 1 else _off("not available on this kernel (Linux >= 5.13)")
    reason = kernel.seccomp_available()
    report["seccomp"] = _off(reason) if reason else "on"
    return report


def _read_only_paths() -> list[str]:
    """What the interpreter may still read: its own prefixes, sys.path, system libraries and a few files."""
    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.realpath(sys.executable)), *sys.path,
                  "/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/etc/localtime",
                  "/dev/zero", "/dev/urandom", "/dev/random", os.path.realpath("/proc/self")]
    seen, paths = set(), []
    for path in candidates:
        if not path:
            continue
        real = os.path.realpath(path)
        if real not in seen and os.path.exists(real):
            seen.add(real)
            paths.append(real)
    return paths


def _set_limits(cfg: dict[str, Any], in_user_namespace: bool) -> None:
    import resource

    def lower(kind: int, soft: int, hard: int) -> None:
        # never ask for more than the hard limit we inherited (that would fail, not loosen anything)
        _, inherited = resource.getrlimit(kind)
        if inherited != resource.RLIM_INFINITY:
            soft, hard = min(soft, inherited), min(hard, inherited)
        resource.setrlimit(kind, (soft, hard))

    lower(resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1)
    lower(resource.RLIMIT_AS, cfg["memory_bytes"], cfg["memory_bytes"])
    lower(resource.RLIMIT_FSIZE, _FSIZE_LIMIT_BYTES, _FSIZE_LIMIT_BYTES)
    lower(resource.RLIMIT_CORE, 0, 0)
    if in_user_namespace:
        lower(resource.RLIMIT_NPROC, _NPROC_LIMIT, _NPROC_LIMIT)


def _install_guards(scratch: str) -> None:
    """Audit hook (second layer, behind the kernel): no writes outside scratch, no processes, sockets or ctypes."""
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
                raise PermissionError(f"sandbox: network access is not allowed ({event})")
        finally:
            busy.active = False

    sys.addaudithook(hook)


def _lock_down(kernel: Any, cfg: dict[str, Any], report: dict[str, str]) -> None:
    """In the worker: limits, Landlock, capabilities, seccomp, audit hook; a failure of a required one exits."""
    allowed = set(cfg["allow_missing"])
    _set_limits(cfg, report.get("user_namespace") == "on")
    try:
        if report["landlock"].startswith("on"):
            kernel.landlock_restrict(_read_only_paths(), [cfg["scratch"], "/dev/null"], deny_network=True)
        if sys.platform == "linux":
            kernel.drop_capabilities()
        if report["seccomp"].startswith("on"):
            # without Landlock's truncate right (ABI < 3) truncating by path is refused altogether
            kernel.seccomp_apply(os.getpid(), deny_truncate=kernel.landlock_abi() < 3)
    except kernel.MechanismError as err:
        if err.mechanism not in allowed:
            sys.stderr.write(f"sandbox: refusing to run: {err}\n")
            os._exit(REFUSED_EXIT_CODE)
    _install_guards(cfg["scratch"])


def _run_code(cfg: dict[str, Any], source: str, result_handle: Any) -> int:
    """Run the untrusted code (and call the named function in call mode); returns the exit code."""
    import traceback

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
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            return exit_.code or 0
        sys.stderr.write(f"{exit_.code}\n")
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _worker(kernel: Any, cfg: dict[str, Any], report: dict[str, str], source: str, result_handle: Any,
            started_handle: Any) -> int:
    try:
        sys.dont_write_bytecode = True
        os.chdir(cfg["scratch"])
        import ctypes  # noqa: F401  (before the hook, so libraries that import it keep working)

        _lock_down(kernel, cfg, report)
    except BaseException as err:  # our own set-up failed: say so, never run the code half-guarded
        sys.stderr.write(f"sandbox: set-up failed: {type(err).__name__}: {err}\n")
        os._exit(REFUSED_EXIT_CODE)
    # from here on an exit code is the untrusted code's own (a sys.exit(88) must not read as a refusal)
    started_handle.write("1")
    started_handle.close()
    return _run_code(cfg, source, result_handle)


def _wait_status(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return status
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue


def _reap_until(pid: int) -> int:
    """As PID 1: reap every child (orphans land here) until `pid` has ended; return its wait status."""
    while True:
        try:
            done, status = os.wait()
        except ChildProcessError:
            return 0
        if done == pid:
            return status


def _exit_like(status: int) -> None:
    """End this process the way a child with wait status `status` ended (exit code, or the same signal)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # only reached for a signal whose default is not to end the process
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main(config_path: str) -> tuple[Any, ...]:
    """Bootstrap; returns only in the worker (its arguments), so that the worker ends through a normal exit."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # replaying a worker's fatal signal must not dump core
    with open(config_path, encoding="utf-8") as handle:
        cfg = json.load(handle)
    with open(cfg["code_path"], encoding="utf-8") as handle:
        source = handle.read()
    kernel = _load_kernel()
    report = _prepare(kernel, cfg)
    report_path = os.path.join(os.path.dirname(config_path), "mechanisms.json")
    with open(report_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle)
    missing = [name for name in REQUIRED if report[name].startswith("off") and name not in cfg["allow_missing"]]
    if missing:
        reasons = "; ".join(f"{name} is {report[name]}" for name in missing)
        sys.stderr.write(f"sandbox: refusing to run: {reasons}\n")
        os._exit(REFUSED_EXIT_CODE)
    if os.path.isdir(cfg["files_dir"]):
        try:
            shutil.copytree(cfg["files_dir"], cfg["scratch"], dirs_exist_ok=True)
        except OSError as err:
            sys.stderr.write(f"sandbox: input files do not fit in the scratch directory: {err}\n")
            os._exit(1)
    result_handle = open(os.path.join(os.path.dirname(config_path), "result.json"), "w", encoding="utf-8")
    started_handle = open(os.path.join(os.path.dirname(config_path), "started"), "w", encoding="utf-8")
    worker_args = (kernel, cfg, report, source, result_handle, started_handle)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        if report["pid_namespace"] != "on":
            os.close(write_end)
            return worker_args
        # we are PID 1 of the new namespace: start the worker, reap, pass its status up
        worker = os.fork()
        if worker == 0:
            os.close(write_end)
            return worker_args
        status = _reap_until(worker)
        os.write(write_end, str(status).encode())
        os._exit(0)
    os.close(write_end)
    status = _wait_status(child)
    relayed = os.read(read_end, 64)
    _exit_like(int(relayed) if relayed else status)
    raise AssertionError("unreachable")


if __name__ == "__main__":
    sys.exit(_worker(*main(sys.argv[1])))
