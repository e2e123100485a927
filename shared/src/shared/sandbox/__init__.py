"""Run untrusted Python (model-written code, tool code) in a child process isolated by the Linux kernel.

What a run guarantees on Linux with Landlock, seccomp and user + mount namespaces (the default, required
set; `probe()` shows what this machine gives, each `SandboxResult.mechanisms` what a run got):

- **No process survives the run and none can be started.** seccomp refuses fork, vfork, execve(at), clone
  without CLONE_THREAD (clone3 answers ENOSYS so glibc falls back to clone for threads), setsid and setpgid;
  the child is its own process group and the parent SIGKILLs that group after every run, normal or not. With a
  PID namespace the code runs under a reaper that is PID 1, so the kernel also kills anything left in it.
- **Filesystem: read the interpreter, write scratch only.** Landlock (every right the kernel's ABI knows)
  allows reading only the interpreter's prefixes and sys.path, /usr and /lib*, ld.so.cache, localtime,
  /dev/{zero,urandom,random} and /proc/self; writing only in the scratch folder and /dev/null. Landlock
  follows the real path, so dir_fd, symlinks, /proc/self/root and hard links (REFER) cannot reach further;
  mknod is refused by seccomp, and truncation is covered (ABI >= 3; below that, truncate-by-path is refused).
  Landlock does not govern metadata, so seccomp refuses chmod, chown, utime and xattr changes everywhere
  (also in scratch: `shutil.copy`, which copies the mode, fails there; `shutil.copyfile` works).
- **Memory, CPU, disk, files:** RLIMIT_AS (memory_mb), RLIMIT_CPU, RLIMIT_FSIZE (64 MiB a file), no core
  dumps, RLIMIT_NPROC inside a user namespace; scratch is a tmpfs of scratch_mb in a private mount namespace
  (so the disk cannot be filled, and it vanishes with the run; tmpfs pages are memory, so a run holds at most
  memory_mb + scratch_mb); memfd_create is refused (memory-backed files would escape RLIMIT_AS) and /dev/shm
  is not writable. RLIMIT_NPROC does not bind a sandbox started by root (the kernel exempts uid 0); seccomp's
  ban on process creation is what holds there, and threads are bounded by RLIMIT_AS (each reserves a stack).
- **No network.** seccomp refuses socket() for every family (socketpair stays: it reaches nothing outside);
  Landlock (ABI >= 4) also refuses TCP bind/connect and (ABI >= 6) abstract UNIX sockets and signals out of
  the sandbox; a network namespace (no interface up) is added where the kernel allows.
- **No tampering with the caller.** seccomp refuses ptrace, process_vm_*, prlimit64 on other processes or with
  a new limit, setrlimit, kill/tgkill/sigqueue to anything but the sandboxed process itself, pidfd calls,
  mount/namespace/key/module/bpf/io_uring/privilege calls; all capabilities are dropped (root in a container
  keeps none); no_new_privs is set.
- **Second layer:** an audit hook refuses writes outside scratch, process starts, sockets and ctypes calls
  with readable messages. It is not a boundary (Python code can reach around it); the kernel is.

Mechanism choice: Landlock and seccomp are driven through ctypes (`kernel.py`, a hand-written classic-BPF
filter) instead of the PyPI `landlock`/`pyseccomp` packages: no new dependency, no libseccomp.so needed on a
user's machine, the child stays standard-library only, and every rule is visible in one file. bubblewrap
was not used because it is an external binary a user may not have.

Missing mechanisms: when Landlock, seccomp or the scratch quota (mount namespace) is unavailable, the child
says which and why, and `SandboxUnavailable` is raised — unless the caller opts into weaker isolation with
`allow_missing=[...]` (or True) or the environment variable SHARED_SANDBOX_ALLOW_MISSING=<names>|all.
Network and PID namespaces are used where available and reported, never assumed (seccomp already refuses
sockets and process creation). Outside Linux only the rlimits and the audit hook remain.

Results: `run_python` -> `SandboxResult` (status ok/timeout/memory/error, stdout/stderr capped, seconds);
`call_function` -> the JSON-decoded return value of a named function or `SandboxError`. `SandboxFusionClient`
sends the same calls to a SandboxFusion-style HTTP service and answers with the same result type.
"""

from __future__ import annotations

from .child import MEMORY_EXIT_CODE, REQUIRED
from .local import ALLOW_MISSING_ENV, call_function, probe, run_python
from .remote import SandboxFusionClient
from .result import SandboxError, SandboxResult, SandboxUnavailable

__all__ = [
    "ALLOW_MISSING_ENV",
    "MEMORY_EXIT_CODE",
    "REQUIRED",
    "SandboxError",
    "SandboxFusionClient",
    "SandboxResult",
    "SandboxUnavailable",
    "call_function",
    "probe",
    "run_python",
]
