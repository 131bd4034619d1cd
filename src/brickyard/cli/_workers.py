"""``brickyard serve --workers N``: a small supervisor that binds the port once and runs N server processes on it.

The listening socket is inherited by every process (the kernel hands each connection to one of them). Each is a
plain ``brickyard serve`` holding a slot of the home (see :mod:`brickyard.core.homelock`): the first is the
primary and does the background work; the others join it. Each keeps its own in-memory search structures and
listens on a private loopback port too, where the models it serves call back (their credentials live in its
memory). A process that dies is started again; SIGTERM or SIGINT stops them all.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import typer

from ..core.errors import InvalidState
from ..core.homelock import holder

START_SECONDS = 120.0


def serve_workers(settings: Any, workers: int, *, join: bool, metastore_url: str | None) -> int:
    home = settings.home.resolve()
    if not join and holder(home) is not None:
        from ..core.homelock import HomeInUse, _describe

        raise HomeInUse(_describe(holder(home) or {}, home))
    try:
        listener = socket.create_server((settings.host, settings.port), backlog=2048,
                                        family=socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    except OSError as exc:
        raise InvalidState(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
    listener.set_inheritable(True)
    fd = listener.fileno()
    base = [sys.executable, "-m", "brickyard.cli", "serve", "--home", str(home), "--host", settings.host, "--port",
            str(settings.port), "--log-level", settings.log_level, "--socket-fd", str(fd)]
    if metastore_url:
        base += ["--metastore-url", metastore_url]

    def spawn(first: bool) -> subprocess.Popen[bytes]:
        return subprocess.Popen(base + ([] if first and not join else ["--join"]), pass_fds=[fd])

    stopping = False

    def stop(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    procs: list[subprocess.Popen[bytes]] = [spawn(True)]
    deadline = time.monotonic() + START_SECONDS
    while not join and holder(home) is None:  # the primary holds its slot before the others join it
        if procs[0].poll() is not None or time.monotonic() > deadline:
            listener.close()
            raise InvalidState("the first server process did not start; see its messages above")
        time.sleep(0.05)
    procs += [spawn(False) for _ in range(workers - 1)]
    typer.echo(f"Brickyard: {workers} server processes on http://{settings.host}:{settings.port}", err=True)
    restarts: dict[int, list[float]] = {}
    try:
        while not stopping:
            time.sleep(0.2)
            for i, proc in enumerate(procs):
                if proc.poll() is None or stopping:
                    continue
                recent = [t for t in restarts.get(i, []) if time.monotonic() - t < 60] + [time.monotonic()]
                restarts[i] = recent
                if len(recent) > 5:  # crashing in a loop: give up rather than spin
                    typer.echo(f"Brickyard: server process {i} keeps exiting (code {proc.returncode}); stopping",
                               err=True)
                    stopping = True
                    break
                typer.echo(f"Brickyard: server process {i} exited (code {proc.returncode}); starting it again",
                           err=True)
                procs[i] = spawn(False)  # joining: it takes the first free slot, the primary's if that one died
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        listener.close()
    return 0
