"""Shared fixtures: a loopback-only network guard, workspaces on SQLite and PostgreSQL, a live server."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace

SCALE = os.environ.get("BRICKYARD_TEST_SCALE", "pr")
settings.register_profile("pr", derandomize=True, deadline=None, max_examples=100,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("nightly", deadline=None, max_examples=2000,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("nightly" if SCALE == "nightly" else "pr")

_LOOPBACK = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]


def scaled(pr: int, nightly: int) -> int:
    """A loop size: small by default, big with BRICKYARD_TEST_SCALE=nightly."""
    return nightly if SCALE == "nightly" else pr


@pytest.fixture(autouse=True, scope="session")
def net_guard() -> Iterator[None]:
    """No test may connect anywhere but loopback (or a Unix socket)."""
    real = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                ip = ipaddress.ip_address(socket.gethostbyname(host))
            if not any(ip in net for net in _LOOPBACK):
                raise AssertionError(f"test tried to connect to a non-loopback address: {address}")
        return real(self, address)

    socket.socket.connect = guarded  # type: ignore[method-assign]
    yield
    socket.socket.connect = real  # type: ignore[method-assign]


# -- PostgreSQL ---------------------------------------------------------------------------------------
def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True):
        return candidate.parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    port: int
    admin_url: str
    counter: int = 0

    def new_database(self) -> str:
        import psycopg

        self.counter += 1
        name = f"t{os.getpid()}_{self.counter}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.admin_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer | None]:
    bindir = _pg_bin()
    if bindir is None:
        yield None
        return
    import tempfile

    root = os.geteuid() == 0
    # Outside pytest's private (0700) temp tree: the server runs as the 'postgres' user when we are root.
    base = Path(tempfile.mkdtemp(prefix="brickyard-pg-"))
    base.chmod(0o777)
    data = base / "data"
    prefix: list[str] = []
    if root:
        if shutil.which("runuser") is None:
            yield None
            return
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "brickyard",
                    "--no-sync", "-E", "UTF8"], check=True, capture_output=True, env=env, timeout=120)
    sock_dir = data.parent
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {sock_dir} -c fsync=off -c max_connections=200"
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-t", "60",
                    "-l", str(data.parent / "pg.log"), "start"], check=True, capture_output=True, env=env, timeout=90)
    try:
        yield PgServer(port=port, admin_url=f"postgresql://brickyard@127.0.0.1:{port}/postgres")
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, env=env, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def metastore_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "sqlite":
        return None
    pg: PgServer | None = request.getfixturevalue("pg_server")
    if pg is None:
        pytest.skip("PostgreSQL is not installed (make test installs it with apt-get when run as root)")
    return pg.new_database()


@pytest.fixture
def ws(tmp_path: Path, metastore_url: str | None) -> Iterator[Workspace]:
    """A workspace on SQLite and, in a second run of the test, on PostgreSQL."""
    w = Workspace(Settings(home=tmp_path / "home", metastore_url=metastore_url))
    yield w
    w.close()


@pytest.fixture
def ws_sqlite(tmp_path: Path) -> Iterator[Workspace]:
    w = Workspace(Settings(home=tmp_path / "home"))
    yield w
    w.close()


# -- a live server ------------------------------------------------------------------------------------
@dataclass
class Live:
    url: str
    ws: Workspace

    def token(self, user: str, *, admin: bool = False, **kw: Any) -> str:
        return self.ws.create_token(user, admin=admin, **kw)

    def client(self, token: str) -> Any:
        from databricks.sdk import WorkspaceClient

        return WorkspaceClient(host=self.url, token=token)


@contextlib.contextmanager
def serve(ws: Workspace) -> Iterator[str]:
    import uvicorn

    from brickyard.api import create_app

    app = create_app(ws)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    ws.server_url = f"http://127.0.0.1:{port}"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.close()  # the access log's last lines are written while the test still captures them


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    w = Workspace(Settings(home=tmp_path_factory.mktemp("live") / "home"))
    with serve(w) as url:
        yield Live(url=url, ws=w)
    w.close()


@contextlib.contextmanager
def serve_process(home: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                  stderr: Any = subprocess.DEVNULL) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``brickyard serve`` in a process of its own (so a test's client threads do not share its GIL) on a
    free loopback port: yields (URL, process); the process is stopped when the block ends."""
    port = _free_port()
    child_env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "brickyard.cli", "serve", "--home", str(home), "--port", str(port),
                             *args], env=child_env, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"brickyard serve exited with {proc.returncode}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("brickyard serve did not start within 60 s")
            time.sleep(0.05)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def drain_udp(sock: socket.socket, seconds: float) -> list[bytes]:
    """Every datagram that reaches ``sock`` (which has a short timeout set) within ``seconds``."""
    received = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            received.append(sock.recv(100))
        except TimeoutError:
            pass
    return received


@contextlib.contextmanager
def run_asgi(app: Any) -> Iterator[str]:
    """Any ASGI app (a fake upstream, a fake MCP server) on a free loopback port: yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid``, in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@contextlib.contextmanager
def mlflow_against(url: str, token: str, experiment: str) -> Iterator[None]:
    """mlflow (tracking and the Unity Catalog registry) and the SDK's default credentials pointed at a test server
    the way a user points them (``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN``), restored when the block ends."""
    import mlflow

    saved = {k: os.environ.get(k) for k in ("DATABRICKS_HOST", "DATABRICKS_TOKEN")}
    os.environ.update(DATABRICKS_HOST=url, DATABRICKS_TOKEN=token)
    try:
        mlflow.set_tracking_uri("databricks")
        mlflow.set_registry_uri("databricks-uc")
        mlflow.set_experiment(experiment)
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def wait_deployed(ws: Workspace, p: Any, name: str, seconds: float = 120) -> dict[str, Any]:
    """The endpoint once its config update has finished (NOT_UPDATING or UPDATE_FAILED)."""
    deadline = time.monotonic() + seconds
    while (shown := ws.serving.get(p, name))["state"]["config_update"] == "IN_PROGRESS":
        assert time.monotonic() < deadline, f"{name} is still deploying: {shown['state']}"
        time.sleep(0.02)
    return shown
