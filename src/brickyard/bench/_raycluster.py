"""A real Ray cluster on this machine's loopback, for the Ray tests and ``brickyard bench sql-ai --ray``: a head
node (``ray start --head``) and worker nodes, every listener on 127.0.0.1.

Ray resolves 127.0.0.1 to the machine's outward address unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its
single-machine mode), and then its CLI refuses to add a worker node; so worker nodes are started with Ray's own
node API (``python -m brickyard.bench._raycluster worker ADDRESS CPUS``), which has no such check. On a real
cluster none of this applies: ``ray start`` on each machine, ``BRICKYARD_RAY_ADDRESS`` pointing at the head.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..core.settings import Settings

OBJECT_STORE_BYTES = 256 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster:
    """``with LocalCluster(workers=1) as address:`` a head with ``cpus`` CPUs and ``workers`` worker nodes."""

    def __init__(self, *, workers: int = 1, cpus: int = 1) -> None:
        self.workers = workers
        self.cpus = cpus
        self.address = ""
        self._nodes: list[subprocess.Popen[bytes]] = []
        self._env = Settings.ray_loopback_environ()

    def _ray(self) -> str:
        found = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
        if found is None:
            raise RuntimeError("Ray is not installed: pip install 'brickyard[ray]'")
        return found

    def __enter__(self) -> str:
        port = _free_port()
        subprocess.run([self._ray(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                        f"--num-cpus={self.cpus}", "--num-gpus=0", "--include-dashboard=false",
                        "--disable-usage-stats", f"--object-store-memory={OBJECT_STORE_BYTES}",
                        f"--ray-client-server-port={_free_port()}", f"--dashboard-agent-listen-port={_free_port()}"],
                       check=True, env=self._env, capture_output=True, timeout=120)
        self.address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while self.total_cpus() < self.cpus:  # the head counts its own CPUs once it is up
            if time.monotonic() > deadline:
                raise RuntimeError("the Ray head node did not come up")
            time.sleep(0.2)
        for _ in range(self.workers):
            self.add_worker()
        return self.address

    def add_worker(self, cpus: int | None = None) -> None:
        """One more worker node; returns once the cluster counts its CPUs."""
        before = self.total_cpus()
        self._nodes.append(subprocess.Popen(
            [sys.executable, "-m", "brickyard.bench._raycluster", "worker", self.address, str(cpus or self.cpus)],
            env=self._env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 60
        while self.total_cpus() < before + (cpus or self.cpus):
            if time.monotonic() > deadline or self._nodes[-1].poll() is not None:
                raise RuntimeError("the Ray worker node did not join")
            time.sleep(0.2)

    def total_cpus(self) -> int:
        done = subprocess.run([self._ray(), "status", f"--address={self.address}"], env=self._env,
                              capture_output=True, text=True, timeout=60, check=False)
        for line in done.stdout.splitlines():
            line = line.strip()
            if line.endswith(" CPU") and "/" in line:
                return int(float(line.split("/")[1].split()[0]))
        return 0

    def __exit__(self, *exc: object) -> None:
        for node in self._nodes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(node.pid, signal.SIGTERM)
        subprocess.run([self._ray(), "stop", "--force"], env=self._env, capture_output=True, timeout=120,
                       check=False)
        for node in self._nodes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.wait(timeout=10)


def _worker(address: str, cpus: int) -> None:
    """A worker node on 127.0.0.1 that joins the head at ``address`` and lives until it is told to stop."""
    from ray._private.node import Node
    from ray._private.parameter import RayParams

    params = RayParams(node_ip_address="127.0.0.1", gcs_address=address, num_cpus=cpus, num_gpus=0,
                       object_store_memory=OBJECT_STORE_BYTES, include_log_monitor=False)
    node = Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    stop = False

    def done(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, done)
    while not stop:
        time.sleep(0.5)
    node.kill_all_processes(check_alive=False, allow_graceful=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "worker":
        _worker(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: python -m brickyard.bench._raycluster worker ADDRESS CPUS")
