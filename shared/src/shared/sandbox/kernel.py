"""Linux kernel isolation for the sandbox child, through ctypes: namespaces, Landlock, seccomp-BPF, capabilities.

Standard library only: the sandbox child loads this file by path before any untrusted code runs. Every function
either applies its mechanism or raises `MechanismError` naming it; none fails silently.

- Namespaces: `unshare` one kind at a time, so each is reported on its own (user first: inside a fresh user
  namespace an unprivileged caller may create the others).
- Landlock (kernel >= 5.13, ABI read from the kernel): a ruleset handling every filesystem right the ABI knows,
  read-only rules on the interpreter's directories and a few device/proc files, all rights on scratch; network
  (TCP bind/connect, ABI >= 4) and scopes (signals and abstract UNIX sockets, ABI >= 6) handled with no rule, so
  they are denied outright.
- seccomp: a classic-BPF filter written here (no libseccomp needed), with syscall numbers of x86_64 and aarch64
  taken from the kernel's uapi tables. Calls outside the filter's architecture kill the process.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_THREAD = 0x00010000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000
PR_SET_NO_NEW_PRIVS = 38

# Landlock (include/uapi/linux/landlock.h)
LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
LL_REMOVE_DIR, LL_REMOVE_FILE, LL_MAKE_CHAR, LL_MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
LL_MAKE_REG, LL_MAKE_SOCK, LL_MAKE_FIFO, LL_MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
LL_MAKE_SYM, LL_REFER, LL_TRUNCATE, LL_IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
LL_NET_BIND_TCP, LL_NET_CONNECT_TCP = 1 << 0, 1 << 1
LL_SCOPE_ABSTRACT_UNIX_SOCKET, LL_SCOPE_SIGNAL = 1 << 0, 1 << 1
_LL_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}  # ABI >= 5: 16 rights
_LL_FILE_ONLY = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV
READ_ONLY = LL_READ_FILE | LL_READ_DIR
# scratch gets everything but device nodes (seccomp also refuses mknod)
READ_WRITE = ((1 << 16) - 1) & ~(LL_MAKE_CHAR | LL_MAKE_BLOCK | LL_EXECUTE)

# seccomp (include/uapi/linux/seccomp.h, filter.h, audit.h)
_SECCOMP_SET_MODE_FILTER, _SECCOMP_GET_ACTION_AVAIL = 1, 2
_SECCOMP_FILTER_FLAG_TSYNC = 1
_RET_KILL_PROCESS, _RET_ALLOW, _RET_ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
_LD_W_ABS, _JEQ_K, _JSET_K, _JGE_K, _RET_K = 0x20, 0x15, 0x45, 0x35, 0x06

# Per architecture: the AUDIT_ARCH value and the numbers of the syscalls the filter names (None: not on this arch).
_ARCH = {
    "x86_64": {"audit": 0xC000003E, "x32_bit": 0x40000000},
    "aarch64": {"audit": 0xC00000B7, "x32_bit": None},
}
_SYSCALLS = {
    # name: (x86_64, aarch64)
    "fork": (57, None), "vfork": (58, None), "clone": (56, 220), "clone3": (435, 435),
    "execve": (59, 221), "execveat": (322, 281), "ptrace": (101, 117),
    "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "prlimit64": (302, 261), "setrlimit": (160, 164), "mknod": (133, None), "mknodat": (259, 33),
    "memfd_create": (319, 279), "memfd_secret": (447, 447), "setsid": (112, 157), "setpgid": (109, 154),
    "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40), "umount2": (166, 39),
    "pivot_root": (155, 41), "chroot": (161, 51), "move_mount": (429, 429), "open_tree": (428, 428),
    "fsopen": (430, 430), "fsconfig": (431, 431), "fsmount": (432, 432), "fspick": (433, 433),
    "mount_setattr": (442, 442), "bpf": (321, 280), "perf_event_open": (298, 241), "keyctl": (250, 219),
    "add_key": (248, 217), "request_key": (249, 218), "init_module": (175, 105), "finit_module": (313, 273),
    "delete_module": (176, 106), "kexec_load": (246, 104), "kexec_file_load": (320, 294), "reboot": (169, 142),
    "swapon": (167, 224), "swapoff": (168, 225), "syslog": (103, 116), "acct": (163, 89),
    "quotactl": (179, 60), "quotactl_fd": (443, 443), "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264), "userfaultfd": (323, 282), "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426), "io_uring_register": (427, 427), "setuid": (105, 146), "setgid": (106, 144),
    "setreuid": (113, 145), "setregid": (114, 143), "setresuid": (117, 147), "setresgid": (119, 149),
    "setgroups": (116, 159), "setfsuid": (122, 151), "setfsgid": (123, 152), "kill": (62, 129),
    "tkill": (200, 130), "tgkill": (234, 131), "rt_sigqueueinfo": (129, 138), "rt_tgsigqueueinfo": (297, 240),
    "pidfd_open": (434, 434), "pidfd_send_signal": (424, 424), "pidfd_getfd": (438, 438),
    "socket": (41, 198), "kcmp": (312, 272), "fanotify_init": (300, 262), "ioperm": (173, None),
    "iopl": (172, None), "settimeofday": (164, 170), "clock_settime": (227, 112), "clock_adjtime": (305, 266),
    "adjtimex": (159, 171), "sethostname": (170, 161), "setdomainname": (171, 162), "seccomp": (317, 277),
    "capset": (126, 91), "vhangup": (153, 58), "uselib": (134, None), "lookup_dcookie": (212, 18),
    "truncate": (76, 45), "landlock_create_ruleset": (444, 444), "landlock_add_rule": (445, 445),
    "landlock_restrict_self": (446, 446),
    "chmod": (90, None), "fchmod": (91, 52), "fchmodat": (268, 53), "fchmodat2": (452, 452), "chown": (92, None),
    "fchown": (93, 55), "lchown": (94, None), "fchownat": (260, 54), "utime": (132, None), "utimes": (235, None),
    "futimesat": (261, None), "utimensat": (280, 88), "setxattr": (188, 5), "lsetxattr": (189, 6),
    "fsetxattr": (190, 7), "removexattr": (197, 14), "lremovexattr": (198, 15), "fremovexattr": (199, 16),
    "setxattrat": (463, 463), "removexattrat": (466, 466), "open_tree_attr": (467, 467),
    "file_setattr": (469, 469),
}
# Refused outright with EPERM: process creation and replacement, debugging other processes, limit changes,
# device nodes, memory-backed files (they would escape RLIMIT_AS), namespace/mount/privilege changes, kernel
# interfaces no Python program needs (io_uring would also bypass this filter's view of its operations),
# sockets (socketpair stays allowed: it reaches nothing outside the process; asyncio uses it), and metadata
# changes (mode, owner, times, xattrs), which Landlock does not cover: a sandbox running as the owner of host
# files could otherwise chmod them anywhere it can name a path.
DENIED = (
    "fork", "vfork", "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "setrlimit",
    "mknod", "mknodat", "memfd_create", "memfd_secret", "setsid", "setpgid", "unshare", "setns", "mount",
    "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "init_module", "finit_module",
    "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl",
    "quotactl_fd", "open_by_handle_at", "name_to_handle_at", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid", "tkill", "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "socket", "kcmp",
    "fanotify_init", "ioperm", "iopl", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "sethostname", "setdomainname", "capset", "vhangup", "uselib", "lookup_dcookie", "open_tree_attr",
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "utime", "utimes",
    "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr",
    "setxattrat", "removexattrat", "file_setattr",
)


class MechanismError(OSError):
    """An isolation mechanism could not be applied; `.mechanism` names it."""

    def __init__(self, mechanism: str, message: str) -> None:
        super().__init__(f"{mechanism}: {message}")
        self.mechanism = mechanism


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _syscall(number: int, *args: int | ctypes._Pointer | ctypes.Array | None) -> int:
    """Raw syscall; integers travel as C longs (variadic: a plain int would be passed as a 32-bit int)."""
    call = _libc().syscall
    call.restype = ctypes.c_long
    converted = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = call(ctypes.c_long(number), *converted)
    if result == -1:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def arch() -> str | None:
    """The filter's architecture key, or None when this machine has no syscall table here."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return machine if sys.platform == "linux" and machine in _ARCH else None


def _nr(name: str) -> int | None:
    key = arch()
    if key is None:
        return None
    return _SYSCALLS[name][0 if key == "x86_64" else 1]


# ---------------------------------------------------------------------------------------------------------
# Namespaces
# ---------------------------------------------------------------------------------------------------------


def unshare(flag: int) -> None:
    """Move into a new namespace of one kind (raises OSError with the kernel's reason)."""
    if sys.platform != "linux":
        raise OSError(errno.ENOSYS, "namespaces exist only on Linux")
    if _libc().unshare(ctypes.c_int(flag)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def map_ids(uid: int, gid: int) -> None:
    """In a fresh user namespace, keep our own uid/gid (else we would be `nobody` and lose our own files)."""
    try:
        with open("/proc/self/setgroups", "w") as handle:
            handle.write("deny")
    except FileNotFoundError:
        pass  # kernels before 3.19 have no setgroups file
    for path, text in (("/proc/self/uid_map", f"{uid} {uid} 1"), ("/proc/self/gid_map", f"{gid} {gid} 1")):
        with open(path, "w") as handle:
            handle.write(text)


def mount_tmpfs(target: str, size_bytes: int) -> None:
    """Stop mount propagation to the host, then put a size-capped tmpfs on `target` (in our mount namespace)."""
    libc = _libc()
    if libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"making / private: {os.strerror(code)}")
    options = f"size={int(size_bytes)},mode=0700".encode()
    flags = ctypes.c_ulong(MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if libc.mount(b"tmpfs", os.fsencode(target), b"tmpfs", flags, options) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"mounting tmpfs on {target}: {os.strerror(code)}")


# ---------------------------------------------------------------------------------------------------------
# Landlock
# ---------------------------------------------------------------------------------------------------------


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """Landlock ABI version of the running kernel, 0 when Landlock is absent or disabled."""
    nr = _nr("landlock_create_ruleset")
    if nr is None:
        return 0
    try:
        return _syscall(nr, None, 0, 1)  # LANDLOCK_CREATE_RULESET_VERSION
    except OSError:
        return 0


def landlock_restrict(read_only: list[str], read_write: list[str], deny_network: bool) -> dict[str, object]:
    """Restrict this thread (and all it later starts) to `read_only` and `read_write` paths; returns what was done.

    Missing paths are skipped (e.g. /lib64 on aarch64). Single files get only the file rights, as the kernel
    requires. Must run while the process has a single thread; needs no_new_privs (set here) or CAP_SYS_ADMIN.
    """
    abi = landlock_abi()
    if abi < 1:
        raise MechanismError("landlock", "not available on this kernel (needs Linux >= 5.13 with Landlock enabled)")
    handled_fs = _LL_FS_BY_ABI.get(abi, (1 << 16) - 1)
    attr = _RulesetAttr(handled_fs, (LL_NET_BIND_TCP | LL_NET_CONNECT_TCP) if deny_network and abi >= 4 else 0,
                        (LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 4 else 8  # older kernels reject sizes they do not know
    try:
        ruleset = _syscall(_nr("landlock_create_ruleset"), ctypes.byref(attr), size, 0)
    except OSError as err:
        raise MechanismError("landlock", f"creating the ruleset failed: {err}") from None
    added: list[str] = []
    try:
        for paths, rights in ((read_only, READ_ONLY), (read_write, READ_WRITE)):
            for path in paths:
                try:
                    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    allowed = rights & handled_fs
                    if not os.path.isdir(path):
                        allowed &= _LL_FILE_ONLY
                    rule = _PathBeneathAttr(allowed, fd)
                    _syscall(_nr("landlock_add_rule"), ruleset, 1, ctypes.byref(rule), 0)  # RULE_PATH_BENEATH
                    added.append(path)
                except OSError as err:
                    raise MechanismError("landlock", f"adding a rule for {path} failed: {err}") from None
                finally:
                    os.close(fd)
        if _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise MechanismError("landlock", f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")
        try:
            _syscall(_nr("landlock_restrict_self"), ruleset, 0)
        except OSError as err:
            raise MechanismError("landlock", f"landlock_restrict_self failed: {err}") from None
    finally:
        os.close(ruleset)
    return {"abi": abi, "rules": len(added), "network": bool(attr.handled_access_net), "scoped": bool(attr.scoped)}


# ---------------------------------------------------------------------------------------------------------
# seccomp
# ---------------------------------------------------------------------------------------------------------


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _arg(index: int, high: bool = False) -> tuple[int, int, int, int]:
    """Load the low (or high) 32 bits of syscall argument `index` from struct seccomp_data (little-endian)."""
    return (_LD_W_ABS, 0, 0, 16 + 8 * index + (4 if high else 0))


def _ret(value: int) -> tuple[int, int, int, int]:
    return (_RET_K, 0, 0, value)


def _one_of(values: list[int]) -> list[tuple[int, int, int, int]]:
    """With an argument in A: allow when it equals one of `values`, else EPERM (the block ends in a return)."""
    block = []
    for i, value in enumerate(values):
        block.append((_JEQ_K, len(values) - i, 0, value & 0xFFFFFFFF))  # jump to the ALLOW after the EPERM
    return block + [_ret(_RET_ERRNO | errno.EPERM), _ret(_RET_ALLOW)]


def seccomp_program(own_pid: int, deny_truncate: bool = False) -> list[tuple[int, int, int, int]]:
    """The BPF filter: arch check, plain denials, then argument checks for clone, kill-like calls and prlimit64."""
    key = arch()
    if key is None:
        raise MechanismError("seccomp", f"no syscall table for {platform.machine()} (filters cover x86_64, aarch64)")
    spec = _ARCH[key]
    prog: list[tuple[int, int, int, int]] = [(_LD_W_ABS, 0, 0, 4), (_JEQ_K, 1, 0, spec["audit"]),
                                             _ret(_RET_KILL_PROCESS), (_LD_W_ABS, 0, 0, 0)]
    if spec["x32_bit"]:
        prog += [(_JGE_K, 0, 1, spec["x32_bit"]), _ret(_RET_KILL_PROCESS)]
    denied = [n for n in (_nr(name) for name in DENIED + (("truncate",) if deny_truncate else ())) if n is not None]
    for number in denied:
        prog += [(_JEQ_K, 0, 1, number), _ret(_RET_ERRNO | errno.EPERM)]
    # glibc starts threads with clone3 when it exists and falls back to clone on ENOSYS; clone3's flags live in
    # memory BPF cannot read, so clone3 is reported missing and clone is checked instead.
    prog += [(_JEQ_K, 0, 1, _nr("clone3")), _ret(_RET_ERRNO | errno.ENOSYS)]
    blocks: list[tuple[int, list[tuple[int, int, int, int]]]] = [
        # threads only: a clone without CLONE_THREAD is a new process
        (_nr("clone"), [_arg(0), (_JSET_K, 0, 1, CLONE_THREAD), _ret(_RET_ALLOW), _ret(_RET_ERRNO | errno.EPERM)]),
        # signals only to ourselves (0 = our own process group, which is the sandbox's)
        (_nr("kill"), [_arg(0)] + _one_of([0, own_pid])),
        (_nr("tgkill"), [_arg(0)] + _one_of([own_pid])),
        (_nr("rt_sigqueueinfo"), [_arg(0)] + _one_of([own_pid])),
        (_nr("rt_tgsigqueueinfo"), [_arg(0)] + _one_of([own_pid])),
        # prlimit64 may only read our own limits (glibc's getrlimit is prlimit64(0, res, NULL, &old))
        # (pid 0 and new limit NULL: each failed test jumps to the EPERM return, 6, 4 and 2 instructions on)
        (_nr("prlimit64"), [_arg(0), (_JEQ_K, 0, 6, 0), _arg(0, True), (_JEQ_K, 0, 4, 0), _arg(2), (_JEQ_K, 0, 2, 0),
                            _arg(2, True), (_JEQ_K, 1, 0, 0), _ret(_RET_ERRNO | errno.EPERM), _ret(_RET_ALLOW)]),
    ]
    for number, block in blocks:
        prog += [(_JEQ_K, 0, len(block), number)] + block
        prog.append((_LD_W_ABS, 0, 0, 0))  # not reached after a block (each ends in a return); reloads nr
    prog.append(_ret(_RET_ALLOW))
    return prog


def seccomp_available() -> str | None:
    """None when a filter returning errno can be installed here, else the reason it cannot."""
    nr = _nr("seccomp")
    if nr is None:
        return f"no syscall table for {platform.machine()} on {sys.platform}"
    action = ctypes.c_uint32(_RET_ERRNO)
    try:
        _syscall(nr, _SECCOMP_GET_ACTION_AVAIL, 0, ctypes.byref(action))
    except OSError as err:
        return f"seccomp filters unsupported by this kernel ({err})"
    return None


def seccomp_apply(own_pid: int, deny_truncate: bool = False) -> int:
    """Install the filter on every thread of this process (TSYNC); returns the number of BPF instructions."""
    reason = seccomp_available()
    if reason:
        raise MechanismError("seccomp", reason)
    program = seccomp_program(own_pid, deny_truncate)
    filters = (_SockFilter * len(program))(*[_SockFilter(*ins) for ins in program])
    fprog = _SockFprog(len(program), ctypes.cast(filters, ctypes.POINTER(_SockFilter)))
    if _libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise MechanismError("seccomp", f"prctl(NO_NEW_PRIVS) failed: {os.strerror(ctypes.get_errno())}")
    try:
        _syscall(_nr("seccomp"), _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(fprog))
    except OSError as err:
        raise MechanismError("seccomp", f"installing the filter failed: {err}") from None
    return len(program)


# ---------------------------------------------------------------------------------------------------------
# Capabilities
# ---------------------------------------------------------------------------------------------------------


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (root in a container keeps none of its powers)."""
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    try:
        _syscall(_nr("capset"), ctypes.byref(header), data)
    except OSError as err:
        raise MechanismError("capabilities", f"capset failed: {err}") from None
