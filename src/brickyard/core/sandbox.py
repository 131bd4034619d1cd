"""Confinement for a worker process that runs untrusted code or parses untrusted bytes.

A worker calls :func:`confine` on itself after it has started Python and imported what it needs, and
before it touches the untrusted input. The layers, each applied when the machine offers it:

* **resource limits** (``setrlimit``): address space, CPU seconds, size of written files, no core dumps;
* **Landlock** (Linux 5.13+, unprivileged): from then on the process may only read beneath the given
  read-only directories (the Python installation) and write beneath the given scratch directory; with
  Landlock ABI 4+ it may not open or accept TCP connections; with ABI 6+ it may not signal processes
  outside its sandbox (the server) or reach abstract UNIX sockets;
* **no capabilities** when the worker starts as root (CI, containers): it cannot mount, trace other
  processes, load kernel modules or bypass file permissions;
* **a network namespace of its own** (:func:`isolate_network`): no interface but a loopback that is down,
  so no packet of any protocol (TCP, UDP, ICMP, DNS) leaves, whatever the process manages to open;
* **a seccomp filter** (:func:`deny_syscalls`), applied last: no new processes (``fork``, ``vfork``,
  ``clone`` without ``CLONE_THREAD``), no ``execve``, no ``socket`` at all, no signals to any process
  but itself, and none of the kernel interfaces an escape needs (``ptrace``, ``io_uring``, ``bpf``,
  ``userfaultfd``, ``mount``, namespaces, keyrings, module loading, ``process_vm_*``). The filter is
  checked by the kernel on every system call, so it holds for code that reaches the kernel without
  Python (``_posixsubprocess.fork_exec``, ``ctypes``, native extensions).

:func:`landlock_abi` says which Landlock version the kernel offers (0: none). Callers decide what to do
without it; running untrusted Python with no filesystem confinement should be an explicit choice.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource
import struct
from collections.abc import Iterable
from pathlib import Path

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446  # the same on x86-64 and arm64
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2

_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_V1 = (1 << 13) - 1  # execute ... make_sym
_FS_REFER, _FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The Landlock ABI version the running kernel offers, or 0."""
    try:
        version = _libc().syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(0, int(version))


def limit_resources(*, memory_bytes: int, cpu_seconds: int, file_bytes: int, processes: int | None = None) -> None:
    """``processes``: RLIMIT_NPROC, counted by the kernel per user id across the machine, so 0 means "no new
    process or thread" for a non-root user. The kernel does not apply it to root (uid 0), whose workers the
    seccomp filter holds instead."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if processes is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000


def isolate_network() -> bool:
    """Move this process into a new, empty network namespace. As root (or with CAP_SYS_ADMIN) directly;
    otherwise inside a new user namespace mapping this user to itself, where the kernel allows
    unprivileged user namespaces. Call it before :func:`confine` (it writes ``/proc/self/uid_map``) and
    while single-threaded. True if the process now has a network of its own."""
    libc = _libc()
    if libc.unshare(_CLONE_NEWNET) == 0:
        return True
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNET) != 0:
        return False
    try:
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError:
        pass  # unmapped ids only make the process weaker (nobody); the namespace is in place either way
    return True


# -- seccomp ----------------------------------------------------------------------------------------------
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# System calls by name -> number, for the two architectures we run on. Names a table lacks (fork and vfork
# on arm64) do not exist there.
_SYSCALLS = {
    "x86_64": {"fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "execve": 59, "execveat": 322, "socket": 41,
               "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
               "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438, "ptrace": 101,
               "process_vm_readv": 310, "process_vm_writev": 311, "io_uring_setup": 425, "io_uring_enter": 426,
               "io_uring_register": 427, "bpf": 321, "userfaultfd": 323, "perf_event_open": 298, "mount": 165,
               "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308, "keyctl": 250,
               "add_key": 248, "request_key": 249, "init_module": 175, "finit_module": 313, "delete_module": 176,
               "kexec_load": 246, "kexec_file_load": 320, "open_by_handle_at": 304, "name_to_handle_at": 303,
               "fsopen": 430, "fsmount": 432, "move_mount": 429, "open_tree": 428, "mount_setattr": 442},
    "aarch64": {"clone": 220, "clone3": 435, "execve": 221, "execveat": 281, "socket": 198, "kill": 129,
                "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240, "pidfd_open": 434,
                "pidfd_send_signal": 424, "pidfd_getfd": 438, "ptrace": 117, "process_vm_readv": 270,
                "process_vm_writev": 271, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
                "bpf": 280, "userfaultfd": 282, "perf_event_open": 241, "mount": 40, "umount2": 39,
                "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268, "keyctl": 219, "add_key": 217,
                "request_key": 218, "init_module": 105, "finit_module": 273, "delete_module": 106,
                "kexec_load": 104, "kexec_file_load": 294, "open_by_handle_at": 265, "name_to_handle_at": 264,
                "fsopen": 430, "fsmount": 432, "move_mount": 429, "open_tree": 428, "mount_setattr": 442},
}
_SECCOMP_SYSCALL = {"x86_64": 317, "aarch64": 277}
_DENIED = ("fork", "vfork", "execve", "execveat", "socket", "tkill", "pidfd_open", "pidfd_send_signal",
           "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev", "io_uring_setup", "io_uring_enter",
           "io_uring_register", "bpf", "userfaultfd", "perf_event_open", "mount", "umount2", "pivot_root",
           "chroot", "unshare", "setns", "keyctl", "add_key", "request_key", "init_module", "finit_module",
           "delete_module", "kexec_load", "kexec_file_load", "open_by_handle_at", "name_to_handle_at",
           "fsopen", "fsmount", "move_mount", "open_tree", "mount_setattr")
_SELF_ONLY = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")  # first argument must be our own pid
_CLONE_THREAD = 0x00010000
_RET_ALLOW, _RET_KILL_PROCESS, _RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
_LD_W_ABS, _JEQ_K, _JSET_K, _JGE_K, _RET_K = 0x20, 0x15, 0x45, 0x35, 0x06
_X32_SYSCALL_BIT = 0x40000000


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_program(machine: str, pid: int) -> bytes:
    """The classic-BPF program :func:`deny_syscalls` installs, as bytes of ``struct sock_filter``."""
    if machine not in _SYSCALLS:
        raise OSError(errno.ENOSYS, f"no seccomp table for {machine}")
    table = _SYSCALLS[machine]
    prog: list[tuple[int, int, int, int]] = []

    def ins(code: int, k: int, jt: int = 0, jf: int = 0) -> None:
        prog.append((code, jt, jf, k))

    def arg_low(i: int) -> int:  # offset of the low 32 bits of args[i] in struct seccomp_data (little-endian)
        return 16 + 8 * i

    ins(_LD_W_ABS, 4)  # arch
    ins(_JEQ_K, _AUDIT_ARCH[machine], 1, 0)
    ins(_RET_K, _RET_KILL_PROCESS)  # a foreign ABI (i386 via int 0x80) would read the numbers differently
    ins(_LD_W_ABS, 0)  # syscall number
    if machine == "x86_64":
        ins(_JGE_K, _X32_SYSCALL_BIT, 0, 1)
        ins(_RET_K, _RET_ERRNO | errno.EPERM)
    for name in _DENIED:
        if name in table:
            ins(_JEQ_K, table[name], 0, 1)
            ins(_RET_K, _RET_ERRNO | (errno.EACCES if name == "socket" else errno.EPERM))
    # clone3 passes its flags in memory a filter cannot read: answer "not implemented", which makes the C
    # library fall back to clone, whose flags the next rule can check.
    ins(_JEQ_K, table["clone3"], 0, 1)
    ins(_RET_K, _RET_ERRNO | errno.ENOSYS)
    ins(_JEQ_K, table["clone"], 0, 4)
    ins(_LD_W_ABS, arg_low(0))
    ins(_JSET_K, _CLONE_THREAD, 0, 1)
    ins(_RET_K, _RET_ALLOW)  # a thread of this process (it dies with it)
    ins(_RET_K, _RET_ERRNO | errno.EPERM)  # a new process
    for name in _SELF_ONLY:
        ins(_JEQ_K, table[name], 0, 4)
        ins(_LD_W_ABS, arg_low(0))
        ins(_JEQ_K, pid & 0xFFFFFFFF, 0, 1)
        ins(_RET_K, _RET_ALLOW)
        ins(_RET_K, _RET_ERRNO | errno.EPERM)
    ins(_RET_K, _RET_ALLOW)
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in prog)


def deny_syscalls() -> None:
    """Install the seccomp filter described above on every thread of this process (irreversibly)."""
    machine = platform.machine()
    program = seccomp_program(machine, os.getpid())
    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len=len(program) // 8, filter=ctypes.cast(buf, ctypes.c_void_p).value)
    seccomp_set_mode_filter, filter_flag_tsync = 1, 1
    if libc.syscall(_SECCOMP_SYSCALL[machine], seccomp_set_mode_filter, filter_flag_tsync, ctypes.byref(fprog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER) failed")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_root() -> bool:
    """When running as root, give up every capability (root without capabilities cannot mount, trace,
    load modules or override file permissions). The user id stays 0, so the Python installation stays
    readable wherever it lives (for example under /root); Landlock decides what may be read. True if
    capabilities were dropped."""
    if os.getuid() != 0 and os.geteuid() != 0:
        return False
    header = _CapHeader(version=0x20080522, pid=0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    if _libc().capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    return True


def confine(*, read_only: Iterable[str | os.PathLike[str]], writable: Iterable[str | os.PathLike[str]] = (),
            network: bool = False) -> int:
    """Restrict this process with Landlock as described above. Returns the ABI used (0: not confined).
    Directories that do not exist are skipped."""
    abi = landlock_abi()
    if abi <= 0:
        return 0
    libc = _libc()
    fs = _FS_V1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0) | \
        (_FS_IOCTL_DEV if abi >= 5 else 0)
    attr = _RulesetAttr(handled_access_fs=fs,
                        handled_access_net=(_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 and not network else 0,
                        scoped=(_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16  # older kernels refuse the larger struct
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        read = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
        for paths, access in ((read_only, read), (writable, fs)):
            for path in paths:
                try:
                    fd = os.open(str(path), os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    is_dir = os.path.isdir(str(path))
                    rule = _PathBeneath(allowed_access=access if is_dir else access & (
                        _FS_EXECUTE | _FS_READ_FILE | _FS_WRITE_FILE | _FS_TRUNCATE), parent_fd=fd)
                    if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) < 0:
                        raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
                finally:
                    os.close(fd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def python_dirs() -> list[Path]:
    """What a confined Python needs to read: its installation, its environment's packages, and the
    system libraries extension modules load."""
    import site
    import sys
    import sysconfig

    found = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix)}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        found.add(Path(sysconfig.get_paths()[key]))
    for p in site.getsitepackages():
        found.add(Path(p))
    found |= {Path(p) for p in ("/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/etc/ld.so.cache",
                                "/usr/share/zoneinfo", "/dev/urandom", "/dev/null")}
    return sorted(p for p in found if p.exists())
