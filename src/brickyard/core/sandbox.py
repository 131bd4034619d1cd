"""Confinement for a worker process that runs untrusted code or parses untrusted bytes.

A worker calls :func:`confine` on itself after it has started Python and imported what it needs, and
before it touches the untrusted input. The layers, each applied when the machine offers it:

* **resource limits** (``setrlimit``): address space, CPU seconds, size of written files, no core dumps;
* **Landlock** (Linux 5.13+, unprivileged): from then on the process may only read beneath the given
  read-only directories (the Python installation) and write beneath the given scratch directory; with
  Landlock ABI 4+ it may not open or accept TCP connections; with ABI 6+ it may not signal processes
  outside its sandbox (the server) or reach abstract UNIX sockets;
* **no capabilities** when the worker starts as root (CI, containers): it cannot mount, trace other
  processes, load kernel modules or bypass file permissions.

:func:`landlock_abi` says which Landlock version the kernel offers (0: none). Callers decide what to do
without it; running untrusted Python with no filesystem confinement should be an explicit choice.
"""

from __future__ import annotations

import ctypes
import os
import resource
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


def limit_resources(*, memory_bytes: int, cpu_seconds: int, file_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


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
