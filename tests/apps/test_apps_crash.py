"""kill -9 of the server during an app deployment (issue 23): when it starts again the deployment that was in
progress is FAILED with the reason, the processes the dead server left are stopped, and the app runs its last
good deployment again; nothing is left half-done."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta
from pathlib import Path

import httpx
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import apps as a
from databricks.sdk.service.workspace import ImportFormat

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve_process

ADMIN = "admin@example.com"
FOLDER = f"/Users/{ADMIN}/site"
APP = """import os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
print("version {version}", flush=True)
time.sleep({delay})

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"v{version}")

ThreadingHTTPServer(("127.0.0.1", int(os.environ["DATABRICKS_APP_PORT"])), Handler).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _pid(home: Path, deployment_id: str, deadline: float) -> int:
    with Workspace(Settings(home=home, access_log="off"), background=False) as peek:
        while True:
            with peek.db.tx(write=False) as tx:
                pid = tx.scalar("SELECT pid FROM app_deployments WHERE deployment_id = ?", (deployment_id,))
            if pid is not None:
                return int(pid)
            assert time.monotonic() < deadline, "no process was recorded"
            time.sleep(0.05)


def _home(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "home"
    with Workspace(Settings(home=home, access_log="off")) as ws:
        return home, ws.create_token(ADMIN, admin=True)


def _site(url: str, token: str, version: int) -> tuple[WorkspaceClient, a.AppDeployment]:
    """App "site" made and deployed through ``url``, answering ``v<version>``."""
    w = WorkspaceClient(host=url, token=token)
    w.workspace.mkdirs(FOLDER)
    w.workspace.upload(f"{FOLDER}/app.py", io.BytesIO(APP.format(version=version, delay=0).encode()),
                       format=ImportFormat.AUTO, overwrite=True)
    w.apps.create_and_wait(a.App(name="site"), timeout=timedelta(seconds=60))
    return w, w.apps.deploy_and_wait("site", a.AppDeployment(source_code_path=FOLDER), timeout=timedelta(seconds=60))


def test_a_killed_server_during_a_deployment_leaves_a_consistent_app(tmp_path: Path) -> None:
    home, token = _home(tmp_path)
    folder = FOLDER
    with serve_process(home) as (url, proc):
        w, first = _site(url, token, 1)
        assert httpx.get(f"{url}/apps/site/", headers={"Authorization": f"Bearer {token}"}).text == "v1"
        w.workspace.upload(f"{folder}/app.py", io.BytesIO(APP.format(version=2, delay=60).encode()),
                           format=ImportFormat.AUTO, overwrite=True)
        second = w.apps.deploy("site", a.AppDeployment(source_code_path=folder)).response
        deadline = time.monotonic() + 60
        old = _pid(home, first.deployment_id, deadline)
        new = _pid(home, second.deployment_id, deadline)
        assert _alive(old) and _alive(new)
        os.kill(proc.pid, 9)
        proc.wait(timeout=30)
    assert _alive(old) and _alive(new)  # both outlived their server
    with serve_process(home) as (url, _proc):
        w = WorkspaceClient(host=url, token=token)
        failed = w.apps.get_deployment("site", second.deployment_id)
        assert failed.status.state == a.AppDeploymentState.FAILED and "server stopped" in failed.status.message
        deadline = time.monotonic() + 30
        while _alive(old) or _alive(new):
            assert time.monotonic() < deadline, "a process the killed server left is still running"
            time.sleep(0.1)
        while w.apps.get("site").app_status.state != a.ApplicationState.RUNNING:
            assert time.monotonic() < deadline, w.apps.get("site").app_status
            time.sleep(0.1)
        app = w.apps.get("site")
        assert app.active_deployment.deployment_id == first.deployment_id and app.pending_deployment is None
        assert httpx.get(f"{url}/apps/site/", headers={"Authorization": f"Bearer {token}"}).text == "v1"


def test_a_server_stopped_with_sigterm_stops_its_apps(tmp_path: Path) -> None:
    """uvicorn raises a SIGTERM again after its graceful shutdown; the server must still close its workspace."""
    home, token = _home(tmp_path)
    with serve_process(home) as (url, proc):
        _w, deployed = _site(url, token, 1)
        pid = _pid(home, deployed.deployment_id, time.monotonic() + 30)
        assert _alive(pid)
    assert proc.returncode == 0  # serve_process ended it with SIGTERM
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "the app outlived its server"
        time.sleep(0.1)


def test_an_app_deployed_through_a_joined_server_is_reached_through_both(tmp_path: Path) -> None:
    """Scale-out: only the primary process supervises apps; a joined process takes the API calls and proxies."""
    home, token = _home(tmp_path)
    h = {"Authorization": f"Bearer {token}"}
    with serve_process(home) as (primary, first), serve_process(home, args=("--join",)) as (joined, _second):
        _w, deployed = _site(joined, token, 3)
        assert httpx.get(f"{joined}/apps/site/", headers=h).text == "v3"
        assert httpx.get(f"{primary}/apps/site/", headers=h).text == "v3"
        pid = _pid(home, deployed.deployment_id, time.monotonic() + 30)
        parent = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[1]
        assert parent == str(first.pid)  # the primary supervises it
