"""Red-team suite for `shared.sandbox`: escape attempts as an attacker would write them, each checked twice.

Every attempt asserts the verdict of the run AND the host afterwards: the files of a sentinel folder outside
scratch unchanged (content, mode, mtime, listing), no process left (none of this test's children, none
carrying the attempt's marker), and this process's rlimits unchanged. Most attempts first switch the audit
hook off (`UNHOOK`, one line of gc) to show that the kernel mechanisms hold on their own; the error then
is the kernel's errno, not the hook's message.
"""

from __future__ import annotations

import os
import random
import resource
import socket
import sys
import time
from pathlib import Path

import pytest
from shared.sandbox import probe, run_python

# The audit hook keeps a thread-local "busy" flag to avoid re-entry; setting it on the main thread turns the
# hook off for good. That is the point: the hook is a second layer, and the kernel must stop what follows.
UNHOOK = """
import gc as _gc, threading as _threading
for _obj in _gc.get_objects():
    if type(_obj) is _threading.local:
        _obj.active = True
"""
EPERM = "[Errno 1] Operation not permitted"
EACCES = "[Errno 13] Permission denied"
_RLIMITS = [getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")]


def _mechanisms() -> dict[str, str]:
    try:
        return probe()
    except Exception as err:  # noqa: BLE001  (reported in the skip reason)
        return {"error": f"off: {err}"}


MECHANISMS = _mechanisms()
_MISSING = not all(MECHANISMS.get(name, "off").startswith("on") for name in ("landlock", "seccomp", "scratch_quota"))
if _MISSING and os.environ.get("SHARED_SANDBOX_REQUIRE_KERNEL") == "1":  # CI (.ci/run): a skip would hide a failure
    raise RuntimeError(f"SHARED_SANDBOX_REQUIRE_KERNEL=1 but the sandbox mechanisms are not all on: {MECHANISMS}")
pytestmark = pytest.mark.skipif(_MISSING, reason=f"this machine lacks a required sandbox mechanism: {MECHANISMS}")


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _with_marker(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _snapshot(folder: Path) -> dict[str, tuple]:
    state = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        state[str(path.relative_to(folder))] = (info.st_mode, info.st_mtime_ns, info.st_nlink, content)
    return state


class Host:
    """The host-side state a sandbox run must leave alone."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "host"
        self.dir.mkdir()
        self.target = self.dir / "target.txt"
        self.target.write_text("original\n")
        self.secret = self.dir / "secret.txt"
        self.secret.write_text("TOPSECRET\n")
        (self.dir / "sub").mkdir()
        (self.dir / "sub" / "keep.txt").write_text("keep\n")
        self.marker = f"{random.randint(10**6, 10**7)}.{random.randint(10**5, 10**6)}"  # a unique `sleep` argument
        self.before = _snapshot(self.dir)
        self.children = _children(os.getpid())
        self.limits = {kind: resource.getrlimit(kind) for kind in _RLIMITS}

    def assert_unchanged(self) -> None:
        assert _snapshot(self.dir) == self.before, "a file outside scratch changed"
        assert _children(os.getpid()) <= self.children, "the run left a child process"
        assert _with_marker(self.marker) == [], "a process started by the attack is still running"
        assert {kind: resource.getrlimit(kind) for kind in _RLIMITS} == self.limits, "the caller's limits changed"


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def attack(host: Host, code: str, unhook: bool = True, **kwargs):
    """Run `code` (after UNHOOK unless told otherwise), check the host, return the result."""
    start = time.monotonic()
    result = run_python((UNHOOK if unhook else "") + code, **{"timeout_s": 5.0, **kwargs})
    assert time.monotonic() - start < kwargs.get("timeout_s", 5.0) + 5, "the run did not end in time"
    host.assert_unchanged()
    return result


def refused(result, errno_text: str = EPERM) -> None:
    assert result.status == "error", result
    assert errno_text in result.stderr, result.stderr[-500:]


# ---------------------------------------------------------------------------------------------------------
# Guard removal: the hook really is off after UNHOOK, and the kernel answers instead
# ---------------------------------------------------------------------------------------------------------


def test_unhook_switches_the_audit_hook_off_and_the_kernel_still_refuses(host):
    hooked = attack(host, f"open({str(host.target)!r}, 'a').write('x')", unhook=False)
    assert hooked.status == "error" and "writing outside the scratch directory" in hooked.error
    unhooked = attack(host, f"open({str(host.target)!r}, 'a').write('x')")
    refused(unhooked, EACCES)
    assert "sandbox:" not in unhooked.stderr  # the refusal came from Landlock, not from the hook


def test_clearing_the_hooks_tables_does_not_allow_process_starts(host):
    code = (
        "import sys, subprocess\n"
        "sys.modules['__main__']._FORBIDDEN_EVENTS.clear()\n"
        f"subprocess.run(['sleep', {host.marker!r}])\n"
    )
    refused(attack(host, code, unhook=False))


def test_capabilities_cannot_be_regained(host):
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)\ndata = (ctypes.c_uint32 * 6)(*([0xFFFFFFFF] * 6))\n"
        "rc = libc.capset(hdr, data)\nprint(rc, ctypes.get_errno())\n"
        "print(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
    )
    result = attack(host, code)
    assert result.status == "ok", result
    rc, err, cap_eff = result.stdout.split()
    assert (rc, err) == ("-1", "1") and int(cap_eff, 16) == 0


# ---------------------------------------------------------------------------------------------------------
# Process creation
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "import os\nos.fork()",
        "import os\nos.posix_spawn('/bin/sleep', ['sleep', MARKER], {})",
        "import os, sys\nsys.exit(0 if os.system('sleep ' + MARKER) == 0 else 3)",  # system() returns -1
        "import os\nos.execv('/bin/sleep', ['sleep', MARKER])",
        "import os\nos.forkpty()",  # /dev/ptmx is not reachable, and the fork would be refused
        "import subprocess\nsubprocess.Popen(['sleep', MARKER])",
    ],
    ids=["fork", "posix_spawn", "system", "execv", "forkpty", "popen"],
)
def test_process_creation_is_refused(host, code):
    result = attack(host, code.replace("MARKER", repr(host.marker)))
    assert result.status == "error", result
    assert EPERM in result.stderr or EACCES in result.stderr or "exit code 3" == result.error, result.stderr[-400:]


def test_low_level_fork_exec_is_refused(host):
    code = (
        "import _posixsubprocess, os\nr, w = os.pipe()\n"
        f"args = ([b'/bin/sleep', {host.marker.encode()!r}], [b'/bin/sleep'], True, (w,), None, None,"
        " -1, -1, -1, -1, -1, -1, r, w, True, False, -1, None, None, None, -1, None)\n"
        "try:\n    _posixsubprocess.fork_exec(*args, True)  # 3.11+: allow_vfork last\n"
        "except TypeError:\n    _posixsubprocess.fork_exec(*args)\n"
    )
    refused(attack(host, code))


@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_multiprocessing_is_refused(host, method):
    code = (
        "import multiprocessing as mp, time\n"
        f"p = mp.get_context({method!r}).Process(target=time.sleep, args=(30,))\np.start()\nprint('started')\n"
    )
    result = attack(host, code)
    assert result.status == "error" and "started" not in result.stdout, result
    assert EPERM in result.stderr, result.stderr[-400:]


def test_clone_through_ctypes_is_refused(host):
    # clone(SIGCHLD) without CLONE_THREAD is a fork; x86_64 56, aarch64 220
    code = (
        "import ctypes, platform\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "nr = 56 if platform.machine() == 'x86_64' else 220\n"
        "pid = libc.syscall(ctypes.c_long(nr), ctypes.c_long(17), ctypes.c_long(0), ctypes.c_long(0),"
        " ctypes.c_long(0), ctypes.c_long(0))\n"
        "if pid == 0:\n    import time\n    time.sleep(30)\n"
        "print(pid, ctypes.get_errno())\n"
    )
    result = attack(host, code)
    assert result.status == "ok" and result.stdout.split() == ["-1", "1"], result


def test_fork_bomb_ends_at_once(host):
    result = attack(host, "import os\nwhile True:\n    os.fork()")
    refused(result)
    assert result.seconds < 3


def test_thread_bomb_is_bounded(host):
    code = (
        "import threading, time, os\nthreads = []\n"
        "try:\n    while True:\n"
        "        t = threading.Thread(target=time.sleep, args=(30,), daemon=True)\n        t.start()\n"
        "        threads.append(t)\n"
        "except (RuntimeError, MemoryError) as err:\n    print(len(threads), type(err).__name__)\n"
    )
    result = attack(host, code, memory_mb=256)
    assert result.status == "ok", result
    count, _ = result.stdout.split()
    assert 1 <= int(count) < 200  # address space (256 MB) or the task limit stops it, within seconds


def test_leftover_child_holding_the_output_pipe(host):
    # if the fork went through, the child would keep stdout open and the parent's reader would wait for it
    code = (
        "import os, time\npid = os.fork()\n"
        f"if pid == 0:\n    os.execv('/bin/sleep', ['sleep', {host.marker!r}])\n"
        "print('parent done')\n"
    )
    result = attack(host, code)
    refused(result)
    assert "pipe_held" not in result.extra and result.seconds < 3


def test_setsid_cannot_leave_the_process_group(host):
    refused(attack(host, "import os\nos.setsid()"))
    refused(attack(host, "import os\nos.setpgid(0, 0)"))


# ---------------------------------------------------------------------------------------------------------
# Filesystem: writes and reads outside scratch
# ---------------------------------------------------------------------------------------------------------


def test_direct_write_read_list_and_delete_outside_scratch(host):
    refused(attack(host, f"open({str(host.target)!r}, 'w').write('pwned')"), EACCES)
    refused(attack(host, f"print(open({str(host.secret)!r}).read())"), EACCES)
    refused(attack(host, f"import os\nprint(os.listdir({str(host.dir)!r}))"), EACCES)
    refused(attack(host, f"import os\nos.unlink({str(host.target)!r})"), EACCES)
    refused(attack(host, f"import os\nos.mkdir({str(host.dir / 'new')!r})"), EACCES)


def test_dir_fd_write_outside_scratch(host):
    code = (
        f"import os\nfd = os.open({str(host.dir)!r}, os.O_PATH)\n"
        "w = os.open('target.txt', os.O_WRONLY | os.O_TRUNC, dir_fd=fd)\nos.write(w, b'pwned')\n"
    )
    refused(attack(host, code), EACCES)


def test_dir_fd_create_outside_scratch(host):
    code = (
        f"import os\nfd = os.open({str(host.dir)!r}, os.O_PATH)\n"
        "os.open('planted.txt', os.O_WRONLY | os.O_CREAT, dir_fd=fd)\n"
    )
    refused(attack(host, code), EACCES)


def test_hard_link_into_scratch_then_write(host):
    code = f"import os\nos.link({str(host.target)!r}, 'h')\nopen('h', 'w').write('pwned')\n"
    result = attack(host, code)
    assert result.status == "error" and ("Errno 18" in result.stderr or EACCES in result.stderr), result.stderr


def test_symlink_in_scratch_pointing_outside(host):
    code = f"import os\nos.symlink({str(host.target)!r}, 's')\nopen('s', 'w').write('pwned')\n"
    refused(attack(host, code), EACCES)
    code = f"import os\nos.symlink({str(host.secret)!r}, 's')\nprint(open('s').read())\n"
    refused(attack(host, code), EACCES)


def test_rename_outside_scratch(host):
    refused(attack(host, f"import os\nos.rename({str(host.target)!r}, {str(host.target) + '.bak'!r})"), EACCES)
    result = attack(host, f"import os\nos.rename({str(host.target)!r}, 'stolen.txt')")
    assert result.status == "error" and ("Errno 18" in result.stderr or EACCES in result.stderr), result.stderr


def test_chmod_utime_and_xattr_outside_scratch(host):
    refused(attack(host, f"import os\nos.chmod({str(host.target)!r}, 0o777)"))
    code = f"import os\nfd = os.open({str(host.target)!r}, os.O_PATH)\nos.chmod(f'/proc/self/fd/{{fd}}', 0o777)"
    refused(attack(host, code))
    refused(attack(host, f"import os\nos.utime({str(host.target)!r}, (0, 0))"))
    refused(attack(host, f"import os\nos.setxattr({str(host.target)!r}, 'user.x', b'1')"))


def test_chmod_through_a_readable_descriptor(host):
    # a file the sandbox may read (its own interpreter's library) must not change mode either
    library = os.path.realpath(os.__file__)
    mode = os.stat(library).st_mode
    refused(attack(host, f"import os\nfd = os.open({library!r}, os.O_RDONLY)\nos.fchmod(fd, 0o777)"))
    assert os.stat(library).st_mode == mode


def test_mknod_in_and_outside_scratch(host):
    refused(attack(host, "import os, stat\nos.mknod('fifo', stat.S_IFIFO | 0o600)"))
    refused(attack(host, f"import os, stat\nos.mknod({str(host.dir / 'dev')!r}, stat.S_IFCHR | 0o600, os.makedev(1, 3))"))


def test_proc_self_root_and_other_processes(host):
    refused(attack(host, f"open('/proc/self/root' + {str(host.target)!r}, 'w').write('pwned')"), EACCES)
    refused(attack(host, f"print(open('/proc/self/root' + {str(host.secret)!r}).read())"), EACCES)
    refused(attack(host, f"print(open('/proc/{os.getpid()}/environ').read())"), EACCES)
    refused(attack(host, "print(open('/proc/1/cmdline').read())"), EACCES)


def test_truncate_outside_scratch(host):
    refused(attack(host, f"import os\nos.truncate({str(host.target)!r}, 0)"), EACCES)


def test_host_secrets_are_not_readable(host):
    refused(attack(host, "print(open('/etc/passwd').read())"), EACCES)
    refused(attack(host, "import os\nprint(os.listdir('/root'))"), EACCES)


# ---------------------------------------------------------------------------------------------------------
# Limit tampering
# ---------------------------------------------------------------------------------------------------------


def test_prlimit_on_the_caller(host):
    code = f"import resource\nresource.prlimit({os.getpid()}, resource.RLIMIT_NOFILE, (16, 16))"
    refused(attack(host, code))


def test_raising_own_limits(host):
    code = (
        "import resource\nbefore = resource.getrlimit(resource.RLIMIT_AS)\n"
        "try:\n    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "except (ValueError, OSError) as err:\n    print('refused', type(err).__name__)\n"
        "print(before == resource.getrlimit(resource.RLIMIT_AS), before[0] // 2**20)\n"
    )
    result = attack(host, code, memory_mb=300)
    assert result.status == "ok" and result.stdout.split() == ["refused", "ValueError", "True", "300"], result


def test_setrlimit_through_ctypes(host):
    code = (
        "import ctypes, resource\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "lim = (ctypes.c_ulong * 2)(2**62, 2**62)\n"
        "print(libc.setrlimit(resource.RLIMIT_CPU, lim), ctypes.get_errno())\n"
    )
    result = attack(host, code)
    assert result.status == "ok" and result.stdout.split() == ["-1", "1"], result


# ---------------------------------------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------------------------------------


def test_tcp_to_a_loopback_listener(host):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    try:
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')"
        refused(attack(host, code))
        with pytest.raises(TimeoutError):
            server.accept()  # nothing ever reached the listener
    finally:
        server.close()


def test_udp_to_a_loopback_listener(host):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    port = receiver.getsockname()[1]
    try:
        code = f"import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))"
        refused(attack(host, code))
        with pytest.raises(TimeoutError):
            receiver.recvfrom(10)
    finally:
        receiver.close()


def test_af_unix_to_a_host_socket(host):
    path = host.dir.parent / "host.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(0.2)
    host.before = _snapshot(host.dir)
    try:
        code = f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({str(path)!r})\ns.sendall(b'x')"
        refused(attack(host, code))
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_abstract_unix_socket(host):
    name = f"\0sandbox-redteam-{host.marker}"
    server = socket.socket(socket.AF_UNIX)
    server.bind(name)
    server.listen(1)
    server.settimeout(0.2)
    try:
        code = f"import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect({name!r})"
        refused(attack(host, code))
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_raw_socket_syscall_through_ctypes(host):
    code = (
        "import ctypes, platform\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "nr = 41 if platform.machine() == 'x86_64' else 198\n"
        "print(libc.syscall(ctypes.c_long(nr), ctypes.c_long(2), ctypes.c_long(1), ctypes.c_long(0)),"
        " ctypes.get_errno())\n"
    )
    result = attack(host, code)
    assert result.status == "ok" and result.stdout.split() == ["-1", "1"], result


def test_socketpair_and_asyncio_still_work(host):
    code = "import asyncio\nasync def f():\n    return 7\nprint(asyncio.run(f()))"
    result = attack(host, code)
    assert result.status == "ok" and result.stdout == "7\n", result


# ---------------------------------------------------------------------------------------------------------
# Resource exhaustion
# ---------------------------------------------------------------------------------------------------------


def test_memory_bomb(host):
    result = attack(host, "blocks = []\nwhile True:\n    blocks.append(bytearray(32 * 2**20))", memory_mb=200)
    assert result.status == "memory", result


def test_memfd_is_refused(host):
    refused(attack(host, "import os\nfd = os.memfd_create('x')\nos.ftruncate(fd, 2**33)"))


def test_dev_shm_is_not_writable(host):
    refused(attack(host, f"open('/dev/shm/sandbox-{host.marker}', 'wb').write(b'x' * 2**20)"), EACCES)
    assert not Path(f"/dev/shm/sandbox-{host.marker}").exists()


def test_scratch_disk_is_capped(host):
    code = (
        "import os\nwritten = 0\nchunk = b'x' * 2**20\n"
        "try:\n    for i in range(10_000):\n"
        "        with open(f'f{i}', 'wb') as f:\n            f.write(chunk)\n        written += len(chunk)\n"
        "except OSError as err:\n    print(written // 2**20, err.errno)\n"
    )
    result = attack(host, code, scratch_mb=8)
    assert result.status == "ok", result
    mib, err = result.stdout.split()
    assert int(mib) <= 8 and err == "28"  # ENOSPC at the tmpfs cap, not the host disk


def test_single_file_size_is_capped(host):
    code = "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 2**20)\n    f.flush()"
    result = attack(host, code, scratch_mb=256, timeout_s=10)
    assert result.status == "error" and ("SIGXFSZ" in (result.error or "") or "Errno 27" in result.stderr), result


def test_output_flood_is_capped(host):
    result = attack(host, "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", timeout_s=1.0,
                    max_output_bytes=100_000)
    assert result.status == "timeout" and result.truncated and len(result.stdout) == 100_000


def test_stderr_flood_is_capped(host):
    result = attack(host, "import sys\nfor _ in range(2000):\n    sys.stderr.write('e' * 10000)",
                    max_output_bytes=50_000)
    assert result.status == "ok" and result.truncated and len(result.stderr) == 50_000


# ---------------------------------------------------------------------------------------------------------
# Signals
# ---------------------------------------------------------------------------------------------------------


def test_signals_to_the_caller_are_refused(host):
    refused(attack(host, f"import os, signal\nos.kill({os.getpid()}, signal.SIGTERM)"))
    refused(attack(host, "import os, signal\nos.kill(-1, signal.SIGKILL)"))


def test_ptrace_the_caller_is_refused(host):
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"print(libc.ptrace(ctypes.c_long(16), ctypes.c_long({os.getpid()}), None, None), ctypes.get_errno())\n"
    )
    result = attack(host, code)  # PTRACE_ATTACH
    assert result.status == "ok" and result.stdout.split() == ["-1", "1"], result


def test_runs_report_their_mechanisms():
    result = run_python("pass")
    assert result.ok and result.mechanisms["landlock"].startswith("on: ABI")
    assert result.mechanisms["seccomp"] == "on" and result.mechanisms["scratch_quota"].startswith("on")
    assert sys.platform == "linux"
