"""Apps: a web app or MCP server deployed from a workspace folder, run as a supervised process on a private
loopback port and reached through the workspace at ``/apps/<name>/`` (the proxy is in ``brickyard.api``).

State lives in the metastore (``apps``, ``app_deployments``, ``app_acl``): the API calls record what is
wanted (a deployment, a start, a stop) and the supervisor of the process that holds the workspace home makes
it so, so any server process may take the calls. A deployment is a snapshot of the source folder in
``<home>/apps/<name>/deployments/<id>/``; it starts beside the running one and replaces it only once it
listens (a failed deployment leaves the app as it was). A process that dies is CRASHED with its last log
lines and restarted with back-off; after a server restart the active deployments start again, deployments
that were in progress are FAILED, and processes a killed server left behind are killed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..catalog import Principal
from ..catalog._acl import access_entries, acl_level, require_level
from ..core import processes
from ..core.errors import (
    AlreadyExists,
    BrickyardError,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    TemporarilyUnavailable,
)
from ..core.ids import new_id, now_ms
from ..core.requirements import unmet
from . import _resources
from ._spec import DEFAULT_SCOPES, AppConfig, check_name, check_resources, check_scopes, parse_app_yaml

log = logging.getLogger("brickyard.apps")

LEVELS = {"CAN_USE": 1, "CAN_MANAGE": 2}
MARKER = "BRICKYARD_APP_DEPLOYMENT"  # in each app process's environment: how a restarted server knows its orphans
TAIL_LINES = 20
MAX_SOURCE_BYTES = 50 << 20
TICK = 0.25
RESTART_LIMIT = 5  # consecutive crashes within STABLE_SECONDS of starting before the supervisor gives up
STABLE_SECONDS = 30.0


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class _Running:
    def __init__(self, proc: subprocess.Popen[bytes], deployment: str, port: int, log_path: Path) -> None:
        self.proc = proc
        self.deployment = deployment
        self.port = port
        self.log_path = log_path
        self.started = time.monotonic()


class Apps:
    def __init__(self, *, db: Any, home: Path, workspace: Any, server_url: Callable[[], str],
                 environ: Callable[..., dict[str, str]], start_timeout: float = 60.0,
                 clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.dir = home / "apps"
        self.ws = workspace  # the resources' services (catalog, serving, secrets, jobs, tracking) and files
        self.identity = workspace.identity
        self.files = workspace.workspace_files
        self.server_url = server_url
        self.environ = environ
        self.start_timeout = start_timeout
        self.clock = clock
        self._running: dict[str, _Running] = {}
        self._busy: set[str] = set()
        self._crashes: dict[str, tuple[int, float]] = {}  # app -> (consecutive quick crashes, next start at)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="app-deploy")
        self._user_tokens: dict[tuple[str, str], tuple[str, float]] = {}

    # -- the supervisor ---------------------------------------------------------------------------------------
    def start(self) -> None:
        """The server's own start: what a stopped server left behind is cleaned up, then the supervisor runs."""
        with self.db.tx() as tx:
            for row in tx.all("SELECT deployment_id, pid FROM app_deployments WHERE pid IS NOT NULL"):
                _kill_orphan(int(row["pid"]), row["deployment_id"])
            tx.execute("UPDATE app_deployments SET pid = NULL")
            tx.execute("UPDATE app_deployments SET state = 'FAILED', message = ?, updated_at = ? "
                       "WHERE state = 'IN_PROGRESS'",
                       ("the server stopped during this deployment; deploy again", self.clock()))
            tx.execute("UPDATE apps SET pending_deployment = NULL, port = NULL, pid = NULL")
            tx.execute("UPDATE apps SET app_state = 'DEPLOYING', app_message = ? WHERE compute_state = 'ACTIVE' "
                       "AND active_deployment IS NOT NULL", ("starting again after a server restart",))
            tx.execute("UPDATE apps SET app_state = 'UNAVAILABLE', app_message = ? WHERE compute_state = 'ACTIVE' "
                       "AND active_deployment IS NULL", ("App has not been deployed yet.",))
        self._thread = threading.Thread(target=self._loop, name="app-supervisor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            running = list(self._running.items())
            self._running.clear()
        for _name, r in running:
            _kill(r.proc)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reconcile()
            except Exception:  # noqa: BLE001 - the supervisor must outlive one bad tick
                log.exception("app supervisor tick failed")
            self._wake.wait(TICK)
            self._wake.clear()

    def _reconcile(self) -> None:
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT * FROM apps")
        names = {r["name"] for r in rows}
        with self._lock:
            gone = [n for n in self._running if n not in names]
        for name in gone:  # deleted by another process
            self._halt(name)
        for row in rows:
            name = row["name"]
            with self._lock:
                if name in self._busy:
                    continue
                running = self._running.get(name)
            if row["compute_state"] != "ACTIVE":
                if running is not None:
                    self._halt(name)
                if row["compute_state"] == "STOPPING":
                    self._set(name, compute_state="STOPPED", compute_message="App compute is stopped.")
                continue
            if row["pending_deployment"]:
                self._submit(name, self._deploy, name, row["pending_deployment"])
            elif running is not None and running.proc.poll() is not None:
                self._crashed(name, running)
            elif running is None and row["active_deployment"] and row["app_state"] != "CRASHED" or \
                    running is None and row["app_state"] == "CRASHED" and self._may_restart(name):
                self._submit(name, self._restart, name, row["active_deployment"])

    def _submit(self, name: str, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._busy.add(name)

        def run() -> None:
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - recorded on the app, never lost in a thread
                log.exception("app %s: supervisor step failed", name)
                self._set(name, app_state="CRASHED", app_message="internal error; see the server log")
            finally:
                with self._lock:
                    self._busy.discard(name)
                self._wake.set()

        self._pool.submit(run)

    def _may_restart(self, name: str) -> bool:
        count, at = self._crashes.get(name, (0, 0.0))
        return 0 < count < RESTART_LIMIT and time.monotonic() >= at

    def _crashed(self, name: str, running: _Running) -> None:
        with self._lock:
            self._running.pop(name, None)
        code = running.proc.returncode
        quick = time.monotonic() - running.started < STABLE_SECONDS
        count = (self._crashes.get(name, (0, 0.0))[0] + 1) if quick else 1
        self._crashes[name] = (count, time.monotonic() + min(30.0, 2.0 ** count))
        again = "; restarting" if count < RESTART_LIMIT else f"; it crashed {count} times in a row, so it stays down " \
            "until the next deploy or start"
        self._set(name, app_state="CRASHED", port=None, pid=None,
                  app_message=f"the app exited with code {code}{again}. Last log lines:\n{tail(running.log_path)}")
        with self.db.tx() as tx:
            tx.execute("UPDATE app_deployments SET pid = NULL WHERE deployment_id = ?", (running.deployment,))

    def _halt(self, name: str) -> None:
        with self._lock:
            running = self._running.pop(name, None)
        if running is not None:
            _kill(running.proc)
            with self.db.tx() as tx:
                tx.execute("UPDATE app_deployments SET pid = NULL WHERE deployment_id = ?", (running.deployment,))
                tx.execute("UPDATE apps SET port = NULL, pid = NULL, app_state = 'UNAVAILABLE', app_message = ? "
                           "WHERE name = ? AND compute_state <> 'ACTIVE'", ("App is stopped.", name))

    def _restart(self, name: str, deployment_id: str) -> None:
        with self.db.tx(write=False) as tx:
            dep = tx.one("SELECT * FROM app_deployments WHERE deployment_id = ?", (deployment_id,))
        if dep is None:
            return
        self._set(name, app_state="DEPLOYING", app_message="starting the active deployment")
        try:
            self._launch(name, dep)
        except _StartFailed as exc:
            count, _ = self._crashes.get(name, (0, 0.0))
            self._crashes[name] = (count + 1, time.monotonic() + min(30.0, 2.0 ** (count + 1)))
            self._set(name, app_state="CRASHED", app_message=str(exc))
            return
        self._set(name, app_state="RUNNING", app_message="App has status: App is running")

    def _deploy(self, name: str, deployment_id: str) -> None:
        with self.db.tx(write=False) as tx:
            dep = tx.one("SELECT * FROM app_deployments WHERE deployment_id = ?", (deployment_id,))
            app = tx.one("SELECT * FROM apps WHERE name = ?", (name,))
        if dep is None or app is None or dep["state"] != "IN_PROGRESS":
            self._set(name, pending_deployment=None)
            return
        try:
            self._launch(name, dep)
        except _StartFailed as exc:
            with self.db.tx() as tx:
                tx.execute("UPDATE app_deployments SET state = 'FAILED', message = ?, updated_at = ? "
                           "WHERE deployment_id = ?", (str(exc), self.clock(), deployment_id))
            with self._lock:
                still = name in self._running
            if still:  # the deployment before keeps serving
                self._set(name, pending_deployment=None, app_state="RUNNING",
                          app_message=f"App is running the previous deployment; deployment {deployment_id} failed")
            else:
                self._crashes[name] = (RESTART_LIMIT, 0.0)  # a deployment that never came up is not restarted
                self._set(name, pending_deployment=None, app_state="CRASHED", app_message=str(exc))
            return
        self._crashes.pop(name, None)
        with self.db.tx() as tx:
            tx.execute("UPDATE app_deployments SET state = 'SUCCEEDED', message = ?, updated_at = ? "
                       "WHERE deployment_id = ?", ("App started successfully", self.clock(), deployment_id))
        self._set(name, pending_deployment=None, active_deployment=deployment_id, app_state="RUNNING",
                  app_message="App has status: App is running")

    def _launch(self, name: str, dep: Any) -> None:
        """Start ``dep`` on a new port; once it listens, it replaces the app's running process."""
        with self.db.tx(write=False) as tx:
            app = tx.one("SELECT * FROM apps WHERE name = ?", (name,))
        if app is None:
            raise _StartFailed("the app was deleted")
        folder = self.dir / name / "deployments" / dep["deployment_id"]
        if not folder.is_dir():
            raise _StartFailed(f"the files of deployment {dep['deployment_id']} are missing; deploy again")
        command = json.loads(dep["command"])
        bindir = str(Path(sys.executable).parent)
        port = _free_port()
        sp = self.identity.get(app["sp_id"])
        secret, _ = self.identity.create_secret(sp.id, lifetime_seconds=None, actor=app["creator"])
        resources = {r["name"]: r for r in json.loads(app["resources"])}
        env_vars: dict[str, str] = {}
        for item in json.loads(dep["env"]):
            if "value_from" in item:
                resource = resources.get(item["value_from"])
                if resource is None:
                    raise _StartFailed(f"env {item['name']} takes valueFrom {item['value_from']!r}, which the app no "
                                       "longer declares")
                try:
                    env_vars[item["name"]] = _resources.value(self.ws, sp, resource)
                except BrickyardError as exc:
                    raise _StartFailed(f"env {item['name']}: resource {item['value_from']!r}: {exc.message}") from None
            else:
                env_vars[item["name"]] = item["value"]
        base = self.environ()
        url = self.server_url()
        env = {**base, "PATH": bindir + os.pathsep + base.get("PATH", os.defpath), **env_vars,
               "DATABRICKS_HOST": url, "DATABRICKS_CLIENT_ID": sp.application_id or sp.name,
               "DATABRICKS_CLIENT_SECRET": secret, "DATABRICKS_APP_NAME": name, "DATABRICKS_APP_PORT": str(port),
               "DATABRICKS_APP_URL": f"{url}/apps/{name}/", "DATABRICKS_WORKSPACE_ID": str(self.ws.workspace_id),
               "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ROOT_PATH": f"/apps/{name}",
               "GRADIO_ANALYTICS_ENABLED": "False", "STREAMLIT_SERVER_PORT": str(port),
               "STREAMLIT_SERVER_ADDRESS": "127.0.0.1", "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
               "UVICORN_HOST": "127.0.0.1", "UVICORN_PORT": str(port), "PYTHONUNBUFFERED": "1",
               MARKER: dep["deployment_id"]}
        program = shutil.which(command[0], path=env["PATH"])
        if program is None:
            raise _StartFailed(f"the command {command[0]!r} was not found (app.yaml command: {command})")
        log_path = self.dir / name / "logs" / f"{dep['deployment_id']}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as out:
            out.write(f"== {_iso(self.clock())} starting {command} on port {port}\n".encode())
            out.flush()
            proc = subprocess.Popen([program, *command[1:]], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        with self.db.tx() as tx:
            tx.execute("UPDATE app_deployments SET pid = ? WHERE deployment_id = ?", (proc.pid, dep["deployment_id"]))
        deadline = time.monotonic() + self.start_timeout
        try:
            while True:
                code = proc.poll()
                if code is not None:
                    raise _StartFailed(f"the app exited with code {code} before it listened on its port. Last log "
                                       f"lines:\n{tail(log_path)}")
                if _listening(port):
                    break
                if time.monotonic() > deadline or self._stop.is_set():
                    raise _StartFailed(f"the app did not listen on 127.0.0.1:{port} (DATABRICKS_APP_PORT) within "
                                       f"{self.start_timeout:g} s; it was stopped. Last log lines:\n{tail(log_path)}")
                time.sleep(0.05)
        except _StartFailed:
            _kill(proc)
            with self.db.tx() as tx:
                tx.execute("UPDATE app_deployments SET pid = NULL WHERE deployment_id = ?", (dep["deployment_id"],))
            raise
        with self._lock:
            old = self._running.get(name)
            self._running[name] = _Running(proc, dep["deployment_id"], port, log_path)
        self._set(name, port=port, pid=proc.pid)
        if old is not None and old.proc is not proc:
            _kill(old.proc)
            with self.db.tx() as tx:
                tx.execute("UPDATE app_deployments SET pid = NULL WHERE deployment_id = ?", (old.deployment,))

    def _set(self, name: str, **values: Any) -> None:
        with self.db.tx() as tx:
            for column, value in values.items():
                tx.execute(_SET[column], (value, name))

    # -- reading ---------------------------------------------------------------------------------------------
    def _row(self, tx: Any, p: Principal, name: Any, need: str = "CAN_USE") -> Any:
        row = tx.one("SELECT * FROM apps WHERE name = ?", (name,)) if isinstance(name, str) else None
        require_level(self._level(tx, p, row) if row else 0, need, LEVELS, f"app {str(name)[:80]!r}", p.name)
        return row

    @staticmethod
    def _level(tx: Any, p: Principal, row: Any) -> int:
        return acl_level(p, row["creator"], tx.all("SELECT principal, level FROM app_acl WHERE app_name = ?",
                                                   (row["name"],)), LEVELS)

    def can_manage(self, p: Principal, name: Any) -> bool:
        with self.db.tx(write=False) as tx:
            return self._level(tx, p, self._row(tx, p, name)) >= LEVELS["CAN_MANAGE"]

    def _deployment_shape(self, dep: Any) -> dict[str, Any]:
        return {"deployment_id": dep["deployment_id"], "source_code_path": dep["source_code_path"],
                "mode": dep["mode"], "command": json.loads(dep["command"]),
                "env_vars": [{"name": e["name"], **({"value": e["value"]} if "value" in e else
                                                   {"value_from": e["value_from"]})} for e in json.loads(dep["env"])],
                "status": {"state": dep["state"], "message": dep["message"]}, "creator": dep["creator"],
                "create_time": _iso(dep["created_at"]), "update_time": _iso(dep["updated_at"]),
                "deployment_artifacts": {"source_code_path": dep["source_code_path"]}}

    def _shape(self, tx: Any, row: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": row["name"], "id": row["id"], "url": f"{self.server_url()}/apps/{row['name']}/",
            "compute_status": {"state": row["compute_state"], "message": row["compute_message"],
                               "active_instances": 1 if row["port"] else 0},
            "app_status": {"state": row["app_state"], "message": row["app_message"],
                           "running_instances": 1 if row["port"] else 0},
            "creator": row["creator"], "updater": row["updater"], "create_time": _iso(row["created_at"]),
            "update_time": _iso(row["updated_at"]), "resources": json.loads(row["resources"]),
            "service_principal_name": f"app-{row['name']}", "service_principal_client_id": row["sp_name"],
            "compute_size": "MEDIUM",
        }
        if row["description"]:
            out["description"] = row["description"]
        scopes = json.loads(row["user_api_scopes"])
        if scopes:
            out["user_api_scopes"] = scopes
            out["effective_user_api_scopes"] = sorted({*scopes, *DEFAULT_SCOPES})
        for field in ("active_deployment", "pending_deployment"):
            if row[field]:
                dep = tx.one("SELECT * FROM app_deployments WHERE deployment_id = ?", (row[field],))
                if dep is not None:
                    out[field] = self._deployment_shape(dep)
                    if field == "active_deployment":
                        out["default_source_code_path"] = dep["source_code_path"]
        return out

    def get(self, p: Principal, name: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            return self._shape(tx, self._row(tx, p, name))

    def list(self, p: Principal, *, page_token: str | None = None, page_size: int = 50) -> dict[str, Any]:
        page_size = max(1, min(int(page_size or 50), 1000))
        after = page_token or ""
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT * FROM apps WHERE name > ? ORDER BY name", (after,))
            visible = [r for r in rows if self._level(tx, p, r) > 0]
            page = visible[:page_size]
            out: dict[str, Any] = {"apps": [self._shape(tx, r) for r in page]}
        if len(visible) > page_size:
            out["next_page_token"] = page[-1]["name"]
        return out

    # -- writing ---------------------------------------------------------------------------------------------
    def create(self, p: Principal, body: Any, *, no_compute: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidParameterValue("the request body must be an app: {name, description?, resources?, "
                                        "user_api_scopes?}")
        name = check_name(body.get("name"))
        resources = check_resources(body.get("resources"))
        scopes = check_scopes(body.get("user_api_scopes"))
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 1000):
            raise InvalidParameterValue("description must be text of at most 1000 characters")
        with self.db.tx(write=False) as tx:
            if tx.one("SELECT name FROM apps WHERE name = ?", (name,)):
                raise AlreadyExists(f"an app called {name!r} already exists", error_code="RESOURCE_ALREADY_EXISTS")
        sp = self.identity.create("service_principal", "", display_name=f"app-{name}", actor=p.name)
        try:
            for resource in resources:
                _resources.grant(self.ws, p, sp.name, resource)
            now = self.clock()
            state = ("STOPPED", "App compute is stopped.") if no_compute else ("ACTIVE", "App compute is running.")
            with self.db.tx() as tx:
                if tx.one("SELECT name FROM apps WHERE name = ?", (name,)):
                    raise AlreadyExists(f"an app called {name!r} already exists", error_code="RESOURCE_ALREADY_EXISTS")
                tx.execute(
                    "INSERT INTO apps (name, id, description, creator, updater, sp_id, sp_name, resources, "
                    "user_api_scopes, granted, compute_state, compute_message, app_state, app_message, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, new_id(), description, p.name, p.name, sp.id, sp.name, json.dumps(resources),
                     json.dumps(scopes), "[]", state[0], state[1], "UNAVAILABLE",
                     "App has not been deployed yet. Deploy it with the source code path of its files.", now, now))
                tx.execute("INSERT INTO app_acl (app_name, principal, level) VALUES (?, ?, ?)",
                           (name, sp.name, "CAN_USE"))
        except BaseException:
            with self.db.tx() as tx:
                _resources.purge(tx, sp.name)
            self.identity.delete(sp.id, actor=p.name)
            raise
        return self.get(p, name)

    def update(self, p: Principal, name: Any, body: Any) -> dict[str, Any]:
        """PATCH: description, resources (the service principal's grants are replaced) and user_api_scopes."""
        if not isinstance(body, dict):
            raise InvalidParameterValue("the request body must be an app")
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
        changes: dict[str, Any] = {}
        if "description" in body:
            changes["description"] = body["description"]
        if "user_api_scopes" in body:
            changes["user_api_scopes"] = json.dumps(check_scopes(body["user_api_scopes"]))
        if "resources" in body:
            resources = check_resources(body["resources"])
            with self.db.tx() as tx:
                _resources.purge(tx, row["sp_name"])
                tx.execute("INSERT INTO app_acl (app_name, principal, level) VALUES (?, ?, ?)",
                           (row["name"], row["sp_name"], "CAN_USE"))
            self.identity.forget()
            for resource in resources:
                _resources.grant(self.ws, p, row["sp_name"], resource)
            changes["resources"] = json.dumps(resources)
        with self.db.tx() as tx:
            for column, value in changes.items():
                tx.execute({"description": "UPDATE apps SET description = ? WHERE name = ?",
                            "user_api_scopes": "UPDATE apps SET user_api_scopes = ? WHERE name = ?",
                            "resources": "UPDATE apps SET resources = ? WHERE name = ?"}[column], (value, row["name"]))
            tx.execute("UPDATE apps SET updater = ?, updated_at = ? WHERE name = ?", (p.name, self.clock(), row["name"]))
        with self._lock:
            for key in [k for k in self._user_tokens if k[0] == row["name"]]:
                self._user_tokens.pop(key, None)
        return self.get(p, name)

    def delete(self, p: Principal, name: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
            shape = self._shape(tx, row)
        with self.db.tx() as tx:
            tx.execute("DELETE FROM app_deployments WHERE app_name = ?", (row["name"],))
            tx.execute("DELETE FROM app_acl WHERE app_name = ?", (row["name"],))
            tx.execute("DELETE FROM apps WHERE name = ?", (row["name"],))
            _resources.purge(tx, row["sp_name"])
        self._halt(row["name"])
        try:
            self.identity.delete(row["sp_id"], actor=p.name)
        except NotFound:
            pass
        shutil.rmtree(self.dir / row["name"], ignore_errors=True)
        self._wake.set()
        shape["compute_status"] = {"state": "DELETING", "message": "App is being deleted."}
        return shape

    def start_app(self, p: Principal, name: Any) -> dict[str, Any]:
        with self.db.tx() as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
            tx.execute("UPDATE apps SET compute_state = 'ACTIVE', compute_message = ?, app_state = ?, app_message = ?, "
                       "updated_at = ? WHERE name = ?",
                       ("App compute is running.", "DEPLOYING" if row["active_deployment"] else "UNAVAILABLE",
                        "starting the active deployment" if row["active_deployment"] else
                        "App has not been deployed yet.", self.clock(), row["name"]))
        self._crashes.pop(row["name"], None)
        self._wake.set()
        return self.get(p, name)

    def stop_app(self, p: Principal, name: Any) -> dict[str, Any]:
        with self.db.tx() as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
            tx.execute("UPDATE apps SET compute_state = 'STOPPING', compute_message = ?, pending_deployment = NULL, "
                       "updated_at = ? WHERE name = ?", ("App compute is stopping.", self.clock(), row["name"]))
            tx.execute("UPDATE app_deployments SET state = 'CANCELLED', message = ?, updated_at = ? "
                       "WHERE app_name = ? AND state = 'IN_PROGRESS'", ("the app was stopped", self.clock(),
                                                                         row["name"]))
        self._wake.set()
        return self.get(p, name)

    def deploy(self, p: Principal, name: Any, body: Any) -> dict[str, Any]:
        """Snapshot the source folder and start it; returns the deployment (IN_PROGRESS, or FAILED at once
        when its app.yaml or requirements are wrong)."""
        body = body if isinstance(body, dict) else {}
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
            if row["compute_state"] != "ACTIVE":
                raise InvalidState(f"app {row['name']!r} is {row['compute_state'].lower()}; start it before deploying",
                                   error_code="INVALID_STATE")
            if row["pending_deployment"]:
                raise InvalidState(f"app {row['name']!r} has a deployment in progress "
                                   f"({row['pending_deployment']}); wait for it", error_code="INVALID_STATE")
            last = tx.one("SELECT source_code_path FROM app_deployments WHERE deployment_id = ?",
                          (row["active_deployment"] or "",))
        source = body.get("source_code_path") or (last["source_code_path"] if last else None)
        if not isinstance(source, str) or not source:
            raise InvalidParameterValue("source_code_path is required: the workspace folder of the app's files")
        mode = body.get("mode") or "SNAPSHOT"
        if mode not in ("SNAPSHOT", "AUTO_SYNC"):
            raise InvalidParameterValue("mode must be SNAPSHOT or AUTO_SYNC")
        if mode == "AUTO_SYNC":
            raise InvalidParameterValue("AUTO_SYNC deployments are not supported by Brickyard; deploy a SNAPSHOT "
                                        "again after changing the files")
        folder_path = source.removeprefix("/Workspace") if source.startswith("/Workspace/") else source
        deployment_id = new_id()
        target = self.dir / row["name"] / "deployments" / deployment_id
        config, failure = self._snapshot(p, folder_path, target, json.loads(row["resources"]))
        now = self.clock()
        with self.db.tx() as tx:
            again = tx.one("SELECT pending_deployment FROM apps WHERE name = ?", (row["name"],))
            if again is None:
                raise NotFound(f"app {row['name']!r} does not exist", error_code="RESOURCE_DOES_NOT_EXIST")
            if again["pending_deployment"]:
                shutil.rmtree(target, ignore_errors=True)
                raise InvalidState(f"app {row['name']!r} has a deployment in progress; wait for it",
                                   error_code="INVALID_STATE")
            tx.execute(
                "INSERT INTO app_deployments (deployment_id, app_name, source_code_path, mode, command, env, state, "
                "message, creator, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (deployment_id, row["name"], source, mode, json.dumps(config.command if config else []),
                 json.dumps(config.env if config else []), "FAILED" if failure else "IN_PROGRESS",
                 failure or "Preparing source code for the app.", p.name, now, now))
            if failure is None:
                tx.execute("UPDATE apps SET pending_deployment = ?, updater = ?, updated_at = ?, "
                           "app_state = CASE WHEN app_state = 'RUNNING' THEN 'RUNNING' ELSE 'DEPLOYING' END, "
                           "app_message = CASE WHEN app_state = 'RUNNING' THEN app_message ELSE ? END WHERE name = ?",
                           (deployment_id, p.name, now, "deploying", row["name"]))
            dep = tx.one("SELECT * FROM app_deployments WHERE deployment_id = ?", (deployment_id,))
        self._wake.set()
        return self._deployment_shape(dep)

    def _snapshot(self, p: Principal, folder: str, target: Path, resources: list[dict[str, Any]]
                  ) -> tuple[AppConfig | None, str | None]:
        """Copy the readable files under ``folder`` into ``target``: (the app.yaml config, None) or (None, why
        the deployment fails). A missing or unreadable folder is an error of the call itself."""
        info = self.files.get_status(p, folder)
        if info["object_type"] != "DIRECTORY":
            raise InvalidParameterValue(f"source_code_path {folder} is a {info['object_type'].lower()}, not a folder")
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        total = 0
        for item in self.files.walk(p, folder):
            rel = item["path"][len(folder.rstrip("/")) + 1:]
            if not rel:
                continue
            dest = partial / rel
            if item["object_type"] == "DIRECTORY":
                dest.mkdir(parents=True, exist_ok=True)
                continue
            data, ext = self.files.export(p, item["path"], "SOURCE")
            total += len(data)
            if total > MAX_SOURCE_BYTES:
                shutil.rmtree(partial, ignore_errors=True)
                raise InvalidParameterValue(f"the app's files are larger than {MAX_SOURCE_BYTES >> 20} MB")
            if item["object_type"] == "NOTEBOOK" and ext and not dest.name.endswith("." + ext):
                dest = dest.with_name(f"{dest.name}.{ext}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        partial.rename(target)
        yaml_file = next((target / n for n in ("app.yaml", "app.yml") if (target / n).is_file()), None)
        try:
            config = parse_app_yaml(yaml_file.read_text("utf-8") if yaml_file else None, resources)
        except (InvalidParameterValue, UnicodeDecodeError) as exc:
            return None, getattr(exc, "message", str(exc))
        if not (target / config.command[-1]).exists() and config.command[:1] == ["python"] and \
                config.command[-1].endswith(".py"):
            return None, f"{config.command[-1]} is not among the app's files ({folder})"
        missing = _missing_requirements(target / "requirements.txt")
        if missing:
            return None, ("requirements.txt asks for packages this server's Python environment does not have, and "
                          f"Brickyard installs nothing at deploy time (it runs offline): {', '.join(missing)}")
        return config, None

    def deployment(self, p: Principal, name: Any, deployment_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, name)
            dep = tx.one("SELECT * FROM app_deployments WHERE deployment_id = ? AND app_name = ?",
                         (str(deployment_id), row["name"]))
        if dep is None:
            raise NotFound(f"deployment {str(deployment_id)[:60]!r} of app {row['name']!r} does not exist",
                           error_code="RESOURCE_DOES_NOT_EXIST")
        return self._deployment_shape(dep)

    def deployments(self, p: Principal, name: Any, *, page_token: str | None = None, page_size: int = 50
                    ) -> dict[str, Any]:
        page_size = max(1, min(int(page_size or 50), 1000))
        offset = int(page_token) if page_token and page_token.isdigit() else 0
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, name)
            deps = tx.all("SELECT * FROM app_deployments WHERE app_name = ? ORDER BY created_at DESC, deployment_id DESC",
                          (row["name"],))
        out: dict[str, Any] = {"app_deployments": [self._deployment_shape(d) for d in deps[offset:offset + page_size]]}
        if len(deps) > offset + page_size:
            out["next_page_token"] = str(offset + page_size)
        return out

    def logs(self, p: Principal, name: Any, *, lines: int = 200) -> str:
        """The last ``lines`` lines the app's current (or last) deployment printed; managers only."""
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
            dep = tx.one("SELECT deployment_id FROM app_deployments WHERE app_name = ? ORDER BY created_at DESC "
                         "LIMIT 1", (row["name"],))
        if dep is None:
            return ""
        return tail(self.dir / row["name"] / "logs" / f"{dep['deployment_id']}.log", max(1, min(lines, 5000)))

    # -- permissions ------------------------------------------------------------------------------------------
    def permissions(self, p: Principal, name: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, name)
            acl = tx.all("SELECT principal, level FROM app_acl WHERE app_name = ? ORDER BY principal", (row["name"],))
        entries = [{"user_name": row["creator"], "all_permissions": [{"permission_level": "CAN_MANAGE",
                                                                       "inherited": False}]}]
        for a in acl:
            key = "service_principal_name" if a["principal"] == row["sp_name"] else \
                "group_name" if a["principal"] in ("admins", "users", "account users") else "user_name"
            entries.append({key: a["principal"], "all_permissions": [{"permission_level": a["level"],
                                                                       "inherited": False}]})
        return {"object_id": f"/apps/{row['id']}", "object_type": "apps", "access_control_list": entries}

    def set_permissions(self, p: Principal, name: Any, acl: Any, *, replace: bool) -> dict[str, Any]:
        entries = access_entries(acl, LEVELS)
        with self.db.tx() as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
            for who, _level in entries:
                if who not in ("users", "account users") and not self.identity.exists(who, tx):
                    raise InvalidParameterValue(f"principal {who[:80]!r} does not exist")
            if replace:
                tx.execute("DELETE FROM app_acl WHERE app_name = ? AND principal <> ?", (row["name"], row["sp_name"]))
            for who, level in entries:
                tx.execute("DELETE FROM app_acl WHERE app_name = ? AND principal = ?", (row["name"], who))
                tx.execute("INSERT INTO app_acl (app_name, principal, level) VALUES (?, ?, ?)", (row["name"], who, level))
        return self.permissions(p, name)

    # -- the proxy's questions --------------------------------------------------------------------------------
    def route(self, p: Principal, name: str) -> tuple[int, str | None]:
        """Where a request of ``p`` to app ``name`` goes: (the app's port, the token to forward as
        ``X-Forwarded-Access-Token`` when the app has user authorization, else None). CAN_USE is required."""
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, name)
        if not row["port"] or row["app_state"] != "RUNNING":
            raise TemporarilyUnavailable(f"app {row['name']!r} is not running ({row['app_state']}: "
                                         f"{row['app_message'].splitlines()[0] if row['app_message'] else ''})")
        scopes = json.loads(row["user_api_scopes"])
        if not scopes:
            return int(row["port"]), None
        key = (row["name"], p.id)
        with self._lock:
            held = self._user_tokens.get(key)
        if held is not None and held[1] > time.monotonic():
            return int(row["port"]), held[0]
        lifetime = 3600
        token, _ = self.identity.create_token(p.id, lifetime_seconds=lifetime, kind="app",
                                              comment=f"app {row['name']} acting for {p.name}",
                                              api_scopes=[*scopes, *DEFAULT_SCOPES])
        with self._lock:
            self._user_tokens[key] = (token, time.monotonic() + lifetime - 600)
        return int(row["port"]), token


#: one literal statement per column the supervisor sets (no SQL is built from strings)
_SET = {
    "compute_state": "UPDATE apps SET compute_state = ? WHERE name = ?",
    "compute_message": "UPDATE apps SET compute_message = ? WHERE name = ?",
    "app_state": "UPDATE apps SET app_state = ? WHERE name = ?",
    "app_message": "UPDATE apps SET app_message = ? WHERE name = ?",
    "active_deployment": "UPDATE apps SET active_deployment = ? WHERE name = ?",
    "pending_deployment": "UPDATE apps SET pending_deployment = ? WHERE name = ?",
    "port": "UPDATE apps SET port = ? WHERE name = ?",
    "pid": "UPDATE apps SET pid = ? WHERE name = ?",
}


class _StartFailed(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _missing_requirements(path: Path) -> list[str]:
    """The lines of an app's requirements.txt this Python environment does not satisfy."""
    if not path.is_file():
        return []
    return unmet(path.read_text("utf-8", "replace").splitlines())


def _kill_orphan(pid: int, deployment_id: str) -> None:
    """Kill the process group of an app process a killed server left running, if it is still that process."""
    processes.kill_orphan(pid, environ=f"{MARKER}={deployment_id}".encode())


def _kill(proc: subprocess.Popen[bytes]) -> None:
    processes.kill_group(proc, grace=3.0)
