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
