"""What the example scripts share: running the ``brickyard`` command, a free loopback port, waiting for the
server to answer, and step headings."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

BIN = Path(sys.executable).parent / "brickyard"


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def cli(*args: str) -> str:
    return subprocess.run([str(BIN), *args], check=True, capture_output=True, text=True).stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:  # noqa: S310 - loopback only
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not become healthy in time")


@contextlib.contextmanager
def server(home: Path) -> Iterator[str]:
    """``brickyard serve`` on a free port for the block (access log off): yields its URL, stops it after."""
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    step(f"Start the server: brickyard serve --home {home} --port {port}")
    proc = subprocess.Popen([str(BIN), "serve", "--home", str(home), "--port", str(port), "--log-level", "warning"],
                            env={**os.environ, "BRICKYARD_ACCESS_LOG": "off"})
    try:
        wait_healthy(host, proc)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
