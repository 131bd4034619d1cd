"""Stopping the process groups Brickyard starts (job tasks, apps), and finding the ones a killed server left."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def kill_group(proc: subprocess.Popen[bytes], *, grace: float = 0.0) -> None:
    """Stop ``proc``'s process group (it was started with ``start_new_session``): SIGTERM and up to ``grace``
    seconds to finish first when ``grace`` is given, then SIGKILL; waits for ``proc`` to be reaped."""
    if grace > 0:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def kill_orphan(pid: int, *, cmdline: bytes | None = None, environ: bytes | None = None) -> bool:
    """Kill the process group led by ``pid`` if that process is still the one we started: its command line
    contains ``cmdline``, or its environment holds the entry ``environ`` (a pid may have been reused by then).
    Whether it was killed."""
    try:
        if cmdline is not None and cmdline not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return False
        if environ is not None and environ not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            return False
    except OSError:
        return False
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
