"""Deploying a bundle through the workspace's REST API, with the same routes the Databricks CLI calls: the files
are synced to ``workspace.file_path``, each resource is created, updated or deleted to match the
configuration, and what the bundle owns is recorded in the target's state (``<state_path>/deployment.json``,
rewritten after every change, so an interrupted deploy knows on the next run what it made). A lock in the same
folder keeps two deploys of one target apart. ``destroy`` deletes exactly what the state names."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ._config import ORDER, REF, Bundle
from ._yaml import BundleError

STATE_FILE = "deployment.json"
LOCK_FILE = "deploy.lock"
SKIP_DIRS = {".git", ".databricks", "__pycache__", ".venv", "node_modules", ".pytest_cache", ".mypy_cache"}
TERMINAL = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}


class ApiError(BundleError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code


class Client:
    """The workspace's REST API with a bearer token (what the Databricks CLI sends)."""

    def __init__(self, host: str, token: str) -> None:
        if not host:
            raise BundleError("no workspace: set DATABRICKS_HOST (or pass --host) and DATABRICKS_TOKEN")
        if not token:
            raise BundleError("no token: set DATABRICKS_TOKEN (create one with 'brickyard token create')")
        self.host = host.rstrip("/")
        self.http = httpx.Client(base_url=self.host, headers={"Authorization": f"Bearer {token}"}, timeout=120.0,
                                 trust_env=False)

    def close(self) -> None:
        self.http.close()

    def do(self, method: str, path: str, body: Any = None, *, query: dict[str, Any] | None = None,
           content: bytes | None = None) -> Any:
        try:
            r = self.http.request(method, path, json=body if content is None else None, params=query,
                                  content=content)
        except httpx.HTTPError as exc:
            raise BundleError(f"cannot reach the workspace at {self.host}: {exc}") from None
        if r.status_code >= 400:
            try:
                payload = r.json()
            except ValueError:
                payload = {"message": r.text[:300]}
            raise ApiError(r.status_code, str(payload.get("error_code") or r.status_code),
                           str(payload.get("message") or r.reason_phrase))
        if not r.content:
            return {}
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return r.content

    def me(self) -> str:
        return str(self.do("GET", "/api/2.0/preview/scim/v2/Me")["userName"])

    def lookup(self, kind: str, name: str) -> str:
        """A variable lookup: the id Databricks would give for ``kind`` called ``name``."""
        if kind == "service_principal":
            found = self.do("GET", "/api/2.0/preview/scim/v2/ServicePrincipals",
                            query={"filter": f'displayName eq "{name}"'}).get("Resources") or []
            if found:
                return str(found[0]["applicationId"])
        elif kind == "job":
            for job in self.do("GET", "/api/2.2/jobs/list", query={"name": name, "limit": 100}).get("jobs") or []:
                if job.get("settings", {}).get("name") == name:
                    return str(job["job_id"])
        elif kind == "experiment":
            try:
                return str(self.do("GET", "/api/2.0/mlflow/experiments/get-by-name",
                                   query={"experiment_name": name})["experiment"]["experiment_id"])
            except ApiError:
                pass
        elif kind == "warehouse":
            return "brickyard"  # the one SQL engine answers any warehouse id
        raise BundleError(f"lookup: no {kind.replace('_', ' ')} called {name!r} in the workspace")

    # -- workspace files -----------------------------------------------------------------------------------
    def upload(self, path: str, data: bytes, *, overwrite: bool = True) -> None:
        self.do("POST", f"/api/2.0/workspace-files/import-file/{quote(path.lstrip('/'))}",
                query={"overwrite": "true" if overwrite else "false"}, content=data)

    def download(self, path: str) -> bytes | None:
        try:
            data = self.do("GET", "/api/2.0/workspace/export", query={"path": path, "direct_download": "true",
                                                                      "format": "SOURCE"})
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return data if isinstance(data, bytes) else json.dumps(data).encode()

    def delete_path(self, path: str, *, recursive: bool = False) -> None:
        try:
            self.do("POST", "/api/2.0/workspace/delete", {"path": path, "recursive": recursive})
        except ApiError as exc:
            if exc.status != 404:
                raise


# -- what each resource type is in the API -----------------------------------------------------------------------
def _uc_full(body: dict[str, Any], parts: tuple[str, ...]) -> str:
    return ".".join(str(body[p]) for p in parts)


def _permissions(body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in body.get("permissions") or []:
        who = {k: entry[k] for k in ("user_name", "group_name", "service_principal_name") if k in entry}
        out.append({**who, "permission_level": entry.get("level")})
    return out


class Resources:
    """Create, update and delete one resource of each type with the REST API; ``id`` is what the state keeps."""

    def __init__(self, client: Client) -> None:
        self.c = client

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        c = self.c
        spec = {k: v for k, v in body.items() if k not in ("permissions", "grants")}
        if kind == "schemas":
            c.do("POST", "/api/2.1/unity-catalog/schemas", spec)
            ref = {"id": _uc_full(body, ("catalog_name", "name"))}
        elif kind == "volumes":
            c.do("POST", "/api/2.1/unity-catalog/volumes", {"volume_type": "MANAGED", **spec})
            ref = {"id": _uc_full(body, ("catalog_name", "schema_name", "name"))}
        elif kind == "registered_models":
            c.do("POST", "/api/2.1/unity-catalog/models", spec)
            ref = {"id": _uc_full(body, ("catalog_name", "schema_name", "name"))}
        elif kind == "experiments":
            tags = [{"key": k, "value": v} for k, v in (spec.pop("tags", None) or {}).items()] \
                if isinstance(spec.get("tags"), dict) else spec.pop("tags", None) or []
            made = c.do("POST", "/api/2.0/mlflow/experiments/create", {**spec, "tags": tags})
            ref = {"id": str(made["experiment_id"])}
        elif kind == "model_serving_endpoints":
            made = c.do("POST", "/api/2.0/serving-endpoints", spec)
            ref = {"id": str(body["name"]), "endpoint_id": str(made.get("id") or "")}
        elif kind == "jobs":
            made = c.do("POST", "/api/2.2/jobs/create", spec)
            ref = {"id": str(made["job_id"])}
        elif kind == "apps":
            app = {k: v for k, v in spec.items() if k not in ("source_code_path", "config")}
            c.do("POST", "/api/2.0/apps", app)
            ref = {"id": str(body["name"])}
        else:
            raise BundleError(f"cannot create {kind}")
        self.grant(kind, ref, body)
        return ref

    def update(self, kind: str, ref: dict[str, Any], body: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
        c = self.c
        spec = {k: v for k, v in body.items() if k not in ("permissions", "grants")}
        if kind in ("schemas", "volumes", "registered_models"):
            path = {"schemas": "schemas", "volumes": "volumes", "registered_models": "models"}[kind]
            change: dict[str, Any] = {"comment": spec.get("comment", "")}
            if kind == "schemas" and "properties" in spec:
                change["properties"] = spec["properties"]
            if str(before.get("name")) != str(body["name"]):
                change["new_name"] = body["name"]
            c.do("PATCH", f"/api/2.1/unity-catalog/{path}/{ref['id']}", change)
            parts = ("catalog_name", "name") if kind == "schemas" else ("catalog_name", "schema_name", "name")
            ref = {**ref, "id": _uc_full(body, parts)}
        elif kind == "experiments":
            if before.get("name") != body["name"]:
                c.do("POST", "/api/2.0/mlflow/experiments/update", {"experiment_id": ref["id"],
                                                                   "new_name": body["name"]})
        elif kind == "model_serving_endpoints":
            if str(before.get("name")) != str(body["name"]):
                self.delete(kind, ref)
                return self.create(kind, body)
            if "config" in spec:
                c.do("PUT", f"/api/2.0/serving-endpoints/{ref['id']}/config", spec["config"])
            if "ai_gateway" in spec:
                c.do("PUT", f"/api/2.0/serving-endpoints/{ref['id']}/ai-gateway", spec["ai_gateway"])
        elif kind == "jobs":
            c.do("POST", "/api/2.2/jobs/reset", {"job_id": int(ref["id"]), "new_settings": spec})
        elif kind == "apps":
            if str(before.get("name")) != str(body["name"]):
                self.delete(kind, ref)
                return self.create(kind, body)
            c.do("PATCH", f"/api/2.0/apps/{ref['id']}", {k: v for k, v in spec.items()
                                                          if k in ("description", "resources", "user_api_scopes")})
        self.grant(kind, ref, body)
        return ref

    def grant(self, kind: str, ref: dict[str, Any], body: dict[str, Any]) -> None:
        c = self.c
        if body.get("grants") and kind in ("schemas", "volumes", "registered_models"):
            securable = {"schemas": "schema", "volumes": "volume", "registered_models": "registered-model"}[kind]
            c.do("PATCH", f"/api/2.1/unity-catalog/permissions/{securable}/{ref['id']}",
                 {"changes": [{"principal": g["principal"], "add": g.get("privileges") or []} for g in body["grants"]]})
        acl = _permissions(body)
        if not acl:
            return
        target = {"jobs": f"/api/2.0/permissions/jobs/{ref['id']}", "apps": f"/api/2.0/permissions/apps/{ref['id']}",
                  "experiments": f"/api/2.0/permissions/experiments/{ref['id']}",
                  "model_serving_endpoints": f"/api/2.0/permissions/serving-endpoints/{ref.get('endpoint_id')}"}.get(kind)
        if target is None:
            raise BundleError(f"{kind} take grants, not permissions")
        c.do("PATCH", target, {"access_control_list": acl})

    def delete(self, kind: str, ref: dict[str, Any]) -> None:
        c = self.c
        rid = ref["id"]
        calls: dict[str, Callable[[], tuple[str, str, Any, Any]]] = {
            "schemas": lambda: ("DELETE", f"/api/2.1/unity-catalog/schemas/{rid}", None, {"force": "true"}),
            "volumes": lambda: ("DELETE", f"/api/2.1/unity-catalog/volumes/{rid}", None, None),
            "registered_models": lambda: ("DELETE", f"/api/2.1/unity-catalog/models/{rid}", None, None),
            "experiments": lambda: ("POST", "/api/2.0/mlflow/experiments/delete", {"experiment_id": rid}, None),
            "model_serving_endpoints": lambda: ("DELETE", f"/api/2.0/serving-endpoints/{rid}", None, None),
            "jobs": lambda: ("POST", "/api/2.2/jobs/delete", {"job_id": int(rid)}, None),
            "apps": lambda: ("DELETE", f"/api/2.0/apps/{rid}", None, None),
        }
        method, path, body, query = calls[kind]()
        try:
            c.do(method, path, body, query=query)
        except ApiError as exc:
            if exc.status != 404:
                raise


class Deployer:
    def __init__(self, bundle: Bundle, client: Client, *, out: Callable[[str], None] = print) -> None:
        self.b = bundle
        self.c = client
        self.out = out
        self.api = Resources(client)
        self.local_state = bundle.root / ".databricks" / "bundle" / bundle.target / STATE_FILE

    # -- state -----------------------------------------------------------------------------------------------
    def read_state(self) -> dict[str, Any]:
        data = self.c.download(f"{self.b.state_path}/{STATE_FILE}")
        if data is None:
            return {"version": 1, "bundle": self.b.name, "target": self.b.target, "seq": 0, "resources": {},
                    "files": {}}
        try:
            state = json.loads(data)
        except ValueError:
            raise BundleError(f"the deployment state {self.b.state_path}/{STATE_FILE} is not JSON") from None
        if state.get("bundle") != self.b.name:
            raise BundleError(f"{self.b.state_path} holds the state of bundle {state.get('bundle')!r}, not "
                              f"{self.b.name!r}; give this bundle another workspace.root_path")
        return state  # type: ignore[no-any-return]

    def write_state(self, state: dict[str, Any]) -> None:
        data = json.dumps(state, indent=1, sort_keys=True).encode()
        self.c.upload(f"{self.b.state_path}/{STATE_FILE}", data)
        self.local_state.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.local_state.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.local_state)

    def lock(self, force: bool) -> None:
        note = json.dumps({"user": self.b.user, "time": time.time()}).encode()
        try:
            self.c.upload(f"{self.b.state_path}/{LOCK_FILE}", note, overwrite=force)
        except ApiError as exc:
            if exc.status != 409 and "exist" not in exc.message.lower():
                raise
            held = self.c.download(f"{self.b.state_path}/{LOCK_FILE}") or b"{}"
            try:
                who = json.loads(held)
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(who.get("time", 0))))
            except ValueError:
                who, since = {}, "?"
            raise BundleError(f"target {self.b.target!r} is locked by a deploy of {who.get('user', '?')} since "
                              f"{since} UTC; if no deploy is running, pass --force-lock") from None

    def unlock(self) -> None:
        self.c.delete_path(f"{self.b.state_path}/{LOCK_FILE}")

    # -- deploy ----------------------------------------------------------------------------------------------
    def deploy(self, *, force_lock: bool = False) -> dict[str, Any]:
        self.c.do("POST", "/api/2.0/workspace/mkdirs", {"path": self.b.state_path})
        self.lock(force_lock)
        try:
            state = self.read_state()
            self.sync(state)
            self.resources(state)
            state["seq"] = int(state.get("seq", 0)) + 1
            self.write_state(state)
        finally:
            self.unlock()
        waiting = state.get("waiting") or []
        self.out(f"Deployment complete: bundle {self.b.name}, target {self.b.target}, {self.b.root_path}"
                 + (f" ({len(waiting)} waiting: {', '.join(waiting)})" if waiting else ""))
        return state

    def local_files(self) -> dict[str, Path]:
        """remote path -> local file, for everything sync uploads."""
        from ._config import _excluded

        found: dict[str, Path] = {}
        for base in self.b.sync_paths:
            walk = [base] if base.is_file() else sorted(base.rglob("*"))
            for path in walk:
                if not path.is_file() or any(part in SKIP_DIRS for part in path.relative_to(self.b.sync_root).parts):
                    continue
                if path.suffix == ".pyc" or _excluded(self.b, path):
                    continue
                found[self.b.remote(path)] = path
        return found

    def sync(self, state: dict[str, Any]) -> None:
        files = self.local_files()
        before: dict[str, str] = state.get("files") or {}
        uploaded = 0
        for remote, local in files.items():
            data = local.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if before.get(remote) == digest:
                continue
            self.c.upload(remote, data)
            before[remote] = digest
            uploaded += 1
        removed = 0
        for remote in sorted(set(before) - set(files)):
            self.c.delete_path(remote)
            before.pop(remote, None)
            removed += 1
        state["files"] = before
        self.out(f"Uploaded {uploaded} file(s) to {self.b.file_path} ({len(files) - uploaded} unchanged, "
                 f"{removed} removed)")

    def _resolve(self, value: Any, state: dict[str, Any], at: str) -> Any:
        if isinstance(value, dict):
            return {k: self._resolve(v, state, at) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v, state, at) for v in value]
        if not isinstance(value, str) or "${" not in value:
            return value

        def one(m: Any) -> str:
            _, kind, key, field = m.group(1).split(".")
            entry = state["resources"].get(f"{kind}.{key}")
            if entry is None:
                raise BundleError(f"${{{m.group(1)}}}: {kind}.{key} is not deployed before {at} (resources deploy in "
                                  f"the order {', '.join(ORDER)})", key=at)
            if field in ("id", "name") or field in entry.get("config", {}):
                return str(entry["id"] if field == "id" else entry["config"].get(field, entry.get("name")))
            raise BundleError(f"${{{m.group(1)}}}: {kind} have id, name and their configured fields", key=at)

        return REF.sub(one, value)

    def resources(self, state: dict[str, Any]) -> None:
        known = state.setdefault("resources", {})
        waiting: list[str] = []
        state["waiting"] = waiting
        wanted = {f"{kind}.{key}" for kind, items in self.b.resources.items() for key in items}
        for kind in reversed(ORDER):  # what the configuration no longer has goes first, dependents before
            for name in sorted(k for k in known if k.startswith(kind + ".") and k not in wanted):
                self.api.delete(kind, known[name])
                del known[name]
                self.write_state(state)
                self.out(f"Deleted {name}")
        for kind in ORDER:
            for key, raw in sorted(self.b.resources.get(kind, {}).items()):
                name = f"{kind}.{key}"
                body = self._resolve(json.loads(json.dumps(raw)), state, f"resources.{name}")
                if kind == "apps":
                    self._app_config(body)
                digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
                entry = known.get(name)
                missing = self._missing_endpoints(body) if kind == "apps" and entry is None else []
                if missing:
                    waiting.append(name)
                    self.out(f"Waiting: {name} declares the serving endpoint {', '.join(missing)}, which does not "
                             "exist yet (a job of this bundle may create it); deploy again once it does")
                    continue
                try:
                    if entry is None:
                        ref = self.api.create(kind, body)
                        verb = "Created"
                    elif entry.get("digest") == digest:
                        continue
                    else:
                        ref = self.api.update(kind, {k: v for k, v in entry.items()
                                                     if k not in ("config", "digest", "name")}, body,
                                              entry.get("config", {}))
                        verb = "Updated"
                except ApiError as exc:
                    loc = self.b.declared.get((kind, key))
                    raise BundleError(f"deploying {name} failed: {exc.message}", where=loc,
                                      key=f"resources.{name}") from None
                known[name] = {**ref, "name": body.get("name"), "config": body, "digest": digest}
                self.write_state(state)  # what exists is recorded at once: an interrupted deploy leaks nothing
                self.out(f"{verb} {name} ({ref['id']})")

    def _missing_endpoints(self, body: dict[str, Any]) -> list[str]:
        missing = []
        for resource in body.get("resources") or []:
            endpoint = (resource.get("serving_endpoint") or {}).get("name") if isinstance(resource, dict) else None
            if endpoint:
                try:
                    self.c.do("GET", f"/api/2.0/serving-endpoints/{endpoint}")
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                    missing.append(str(endpoint))
        return missing

    def _app_config(self, body: dict[str, Any]) -> None:
        """An app's ``config`` (command and env) becomes the app.yaml of its deployed source, as on Databricks."""
        config = body.get("config")
        if not config or not body.get("source_code_path"):
            return
        import yaml

        self.c.upload(f"{body['source_code_path']}/app.yaml", yaml.safe_dump(config, sort_keys=False).encode())

    # -- run, destroy, summary ---------------------------------------------------------------------------------
    def run(self, key: str, *, params: dict[str, str], wait: bool = True, timeout: float = 3600) -> int:
        state = self.read_state()
        matches = [(kind, k) for kind in ("jobs", "apps") for k in self.b.resources.get(kind, {}) if k == key]
        if not matches:
            runnable = [k for kind in ("jobs", "apps") for k in self.b.resources.get(kind, {})]
            raise BundleError(f"no job or app {key!r} in this bundle" + (f"; it has {', '.join(runnable)}"
                                                                          if runnable else ""))
        kind, _ = matches[0]
        entry = state["resources"].get(f"{kind}.{key}")
        if entry is None:
            raise BundleError(f"{kind}.{key} is not deployed to target {self.b.target!r}; run 'brickyard bundle "
                              "deploy' first")
        if kind == "apps":
            return self._run_app(entry, wait=wait, timeout=timeout)
        run = self.c.do("POST", "/api/2.2/jobs/run-now", {"job_id": int(entry["id"]), "job_parameters": params})
        run_id = run["run_id"]
        self.out(f"Run URL: {self.c.host}/jobs/{entry['id']}/runs/{run_id}")
        if not wait:
            return 0
        seen: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while True:
            got = self.c.do("GET", "/api/2.2/jobs/runs/get", query={"run_id": run_id})
            for task in got.get("tasks") or []:
                life = task.get("state", {})
                shown = life.get("result_state") or life.get("life_cycle_state", "")
                if seen.get(task["task_key"]) != shown:
                    seen[task["task_key"]] = shown
                    self.out(f"  {task['task_key']}: {shown}" + (f" - {life['state_message']}"
                                                                  if life.get("state_message") else ""))
            life = got.get("state", {})
            if life.get("life_cycle_state") in TERMINAL:
                result = life.get("result_state") or life.get("life_cycle_state")
                self.out(f"Run {run_id}: {result}" + (f" - {life['state_message']}" if life.get("state_message")
                                                       else ""))
                return 0 if result == "SUCCESS" else 1
            if time.monotonic() > deadline:
                self.out(f"Run {run_id} is still running after {timeout:g} s")
                return 1
            time.sleep(0.5)

    def _run_app(self, entry: dict[str, Any], *, wait: bool, timeout: float) -> int:
        name = entry["id"]
        app = self.c.do("GET", f"/api/2.0/apps/{name}")
        if app.get("compute_status", {}).get("state") != "ACTIVE":
            self.c.do("POST", f"/api/2.0/apps/{name}/start")
        source = entry.get("config", {}).get("source_code_path")
        if not source:
            raise BundleError(f"app {name} has no source_code_path in the bundle")
        dep = self.c.do("POST", f"/api/2.0/apps/{name}/deployments", {"source_code_path": source, "mode": "SNAPSHOT"})
        deadline = time.monotonic() + timeout
        while wait and dep.get("status", {}).get("state") == "IN_PROGRESS":
            if time.monotonic() > deadline:
                self.out(f"deployment {dep['deployment_id']} is still in progress after {timeout:g} s")
                return 1
            time.sleep(0.5)
            dep = self.c.do("GET", f"/api/2.0/apps/{name}/deployments/{dep['deployment_id']}")
        status = dep.get("status", {})
        self.out(f"App {name}: deployment {dep['deployment_id']} {status.get('state')} - {status.get('message', '')}")
        self.out(f"App URL: {self.c.host}/apps/{name}/")
        return 0 if status.get("state") in ("SUCCEEDED", "IN_PROGRESS") else 1

    def destroy(self) -> list[str]:
        self.c.do("POST", "/api/2.0/workspace/mkdirs", {"path": self.b.state_path})
        self.lock(False)
        removed = []
        try:
            state = self.read_state()
            known = state.get("resources", {})
            for kind in reversed(ORDER):
                for name in sorted(k for k in list(known) if k.startswith(kind + ".")):
                    self.api.delete(kind, known[name])
                    del known[name]
                    self.write_state(state)
                    removed.append(name)
                    self.out(f"Deleted {name}")
        finally:
            self.unlock()
        self.c.delete_path(self.b.root_path, recursive=True)
        self.out(f"Deleted {self.b.root_path}")
        if self.local_state.exists():
            self.local_state.unlink()
        return removed

    def summary(self) -> dict[str, Any]:
        try:
            state = self.read_state()
        except ApiError:
            state = {"resources": {}}
        out: dict[str, Any] = {"name": self.b.name, "target": self.b.target, "mode": self.b.mode,
                               "host": self.c.host, "root_path": self.b.root_path, "file_path": self.b.file_path,
                               "resources": {}}
        for kind in ORDER:
            for key, body in sorted(self.b.resources.get(kind, {}).items()):
                entry = state["resources"].get(f"{kind}.{key}")
                item: dict[str, Any] = {"name": (entry or {}).get("name") or body.get("name")}
                if entry is None:
                    item["deployed"] = False
                else:
                    item["id"] = entry["id"]
                    item["url"] = self._url(kind, entry)
                out["resources"].setdefault(kind, {})[key] = item
        return out

    def _url(self, kind: str, entry: dict[str, Any]) -> str:
        h, i = self.c.host, entry["id"]
        return {"jobs": f"{h}/jobs/{i}", "apps": f"{h}/apps/{i}/", "experiments": f"{h}/ml/experiments/{i}",
                "model_serving_endpoints": f"{h}/ml/endpoints/{i}",
                "schemas": f"{h}/explore/data/{str(i).replace('.', '/')}",
                "volumes": f"{h}/explore/data/volumes/{str(i).replace('.', '/')}",
                "registered_models": f"{h}/explore/data/models/{str(i).replace('.', '/')}"}[kind]
