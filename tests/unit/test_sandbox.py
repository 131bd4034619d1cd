"""The kernel layer of the sandbox on its own (no Python audit hook): after ``confine`` a process cannot read
outside the allowed directories, connect over TCP, or signal its parent."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from brickyard.core.sandbox import landlock_abi

CHILD = r"""
import json, os, signal, socket, sys
from brickyard.core.sandbox import confine, python_dirs
secret, scratch, port, parent = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
abi = confine(read_only=python_dirs(), writable=[scratch])
out = {"abi": abi}
def attempt(name, fn):
    try:
        fn()
        out[name] = "allowed"
    except OSError as exc:
        out[name] = "denied" if exc.errno in (1, 13) else f"error {exc.errno}"
attempt("read_secret", lambda: open(secret).read())
attempt("write_scratch", lambda: open(os.path.join(scratch, "ok.txt"), "w").write("x"))
attempt("connect", lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
if abi >= 6:
    attempt("signal_parent", lambda: os.kill(parent, 0))
print(json.dumps(out))
"""


@pytest.mark.skipif(landlock_abi() == 0, reason="the kernel offers no Landlock")
def test_landlock_confines_reads_connections_and_signals(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("canary")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(secret), str(scratch),
                               str(listener.getsockname()[1]), str(os.getpid())],
                              capture_output=True, text=True, timeout=30, check=True)
    finally:
        listener.close()
    out = json.loads(done.stdout)
    assert out["read_secret"] == "denied" and out["write_scratch"] == "allowed"
    if out["abi"] >= 4:
        assert out["connect"] == "denied"
    if out["abi"] >= 6:
        assert out["signal_parent"] == "denied"


KERNEL_CHILD = r"""
import ctypes, json, os, platform, socket, subprocess, sys, threading
from brickyard.core.sandbox import confine, deny_syscalls, drop_root, isolate_network, limit_resources, python_dirs
scratch, udp_port, tcp_port, parent = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
limit_resources(memory_bytes=1 << 30, cpu_seconds=20, file_bytes=1 << 20, processes=0)
own_net = isolate_network()
interfaces = sorted(line.split(":")[0].strip() for line in open("/proc/self/net/dev").read().splitlines()[2:])
readable = python_dirs()
drop_root()
confine(read_only=readable, writable=[scratch])
deny_syscalls()
out = {"own_net": own_net, "interfaces": interfaces}
libc = ctypes.CDLL(None, use_errno=True)
nr = {"x86_64": {"fork": 57, "clone": 56, "execve": 59, "socket": 41}, "aarch64": {"clone": 220, "execve": 221,
      "socket": 198}}[platform.machine()]
beacon = ("import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\nfor i in range(20):\n"
          f" s.sendto(b'beacon',('127.0.0.1',{udp_port}))\n time.sleep(0.05)")
def attempt(name, fn):
    try:
        result = fn()
        out[name] = "allowed" if result is None or result is True or (isinstance(result, int) and result >= 0) \
            else f"denied {ctypes.get_errno()}"
    except OSError as exc:
        out[name] = f"denied {exc.errno}"
def raw(name, *args):
    return libc.syscall(nr[name], *args)
attempt("popen_fork_exec", lambda: subprocess.Popen([sys.executable, "-I", "-c", beacon]) and True)
attempt("lingering_child", lambda: subprocess.Popen([sys.executable, "-I", "-c", beacon],
                                                    start_new_session=True) and True)
attempt("posix_spawn", lambda: os.posix_spawn(sys.executable, [sys.executable, "-c", beacon], {}))
attempt("os_fork", lambda: os._exit(0) if os.fork() == 0 else True)
if "fork" in nr:
    attempt("ctypes_fork", lambda: (lambda pid: os._exit(0) if pid == 0 else pid)(raw("fork")))
attempt("ctypes_clone", lambda: (lambda pid: os._exit(0) if pid == 0 else pid)(raw("clone", 17, 0, 0, 0, 0)))
attempt("ctypes_execve", lambda: raw("execve", b"/bin/true", None, None))
attempt("ctypes_socket_inet", lambda: raw("socket", 2, 2, 0))
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", udp_port)))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", tcp_port), timeout=2) and True)
attempt("tcp6", lambda: socket.socket(socket.AF_INET6) and True)
attempt("unix", lambda: socket.socket(socket.AF_UNIX) and True)
attempt("raw_packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW) and True)
attempt("dns", lambda: socket.getaddrinfo("example.com", 80) and True)
attempt("kill_all", lambda: os.kill(-1, 0))
attempt("kill_parent", lambda: os.kill(parent, 0))
attempt("kill_self", lambda: os.kill(os.getpid(), 0))
t = threading.Thread(target=lambda: None)
attempt("thread", lambda: (t.start(), t.join()) and True)
print(json.dumps(out))
"""


@pytest.mark.skipif(landlock_abi() == 0, reason="the kernel offers no Landlock")
def test_the_kernel_stops_processes_sockets_and_signals_without_the_audit_hook(tmp_path: Path) -> None:
    """Issue 17 point 3: the escapes that went around the Python audit hook (``_posixsubprocess.fork_exec``,
    a child Python without the hook, raw system calls through ctypes, UDP, a child that outlives the call)
    are refused by the kernel itself, and no packet reaches a listener on the host."""
    from tests.conftest import drain_udp

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.2)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    try:
        done = subprocess.run([sys.executable, "-c", KERNEL_CHILD, str(scratch), str(udp.getsockname()[1]),
                               str(tcp.getsockname()[1]), str(os.getpid())],
                              capture_output=True, text=True, timeout=60, check=True)
        out = json.loads(done.stdout)
        received = drain_udp(udp, 1.5)
    finally:
        udp.close()
        tcp.close()
    assert received == [], "a datagram left the sandbox"
    for name in ("popen_fork_exec", "lingering_child", "posix_spawn", "os_fork", "ctypes_fork", "ctypes_clone",
                 "ctypes_execve", "kill_all", "kill_parent"):
        assert out.get(name, "denied 1") == "denied 1", (name, out)
    for name in ("ctypes_socket_inet", "udp", "tcp", "tcp6", "unix", "raw_packet"):
        assert out[name] == "denied 13", (name, out)
    assert out["dns"] != "allowed", out
    assert out["kill_self"] == "allowed"
    if out["own_net"]:
        assert out["interfaces"] == ["lo"]
    if os.geteuid() == 0:
        assert out["thread"] == "allowed"  # RLIMIT_NPROC does not apply to root; threads stay possible


def test_the_seccomp_program_is_well_formed() -> None:
    """Every jump lands inside the program and the program ends in a return (the kernel would refuse it
    otherwise, but only on the machine that runs it)."""
    import struct

    from brickyard.core.sandbox import seccomp_program

    for machine in ("x86_64", "aarch64"):
        prog = seccomp_program(machine, 4242)
        ins = [struct.unpack("=HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]
        assert len(ins) < 4096 and ins[-1][0] == 0x06
        for pc, (code, jt, jf, _k) in enumerate(ins):
            if code & 0x07 == 0x05:  # a jump
                assert pc + 1 + max(jt, jf) < len(ins)
