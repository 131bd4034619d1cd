"""Serving endpoints: configuration (versions, traffic split, tags, permissions) and invocation.

Deployment is asynchronous, as on Databricks: a create or config update leaves the endpoint in
``config_update: IN_PROGRESS`` while the new served entities are checked (model files present,
external URLs allowed, secrets readable); then the config goes live (``NOT_UPDATING``) or the
update fails (``UPDATE_FAILED``) and the previous config keeps serving. An update interrupted by a
restart is taken up again when the workspace opens.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..catalog import ADMINS, Principal
from ..catalog._db import Database, Row, Tx
from ..catalog._secrets import SYSTEM_SCOPE, Secrets, is_reference
from ..core.errors import (
    AlreadyExists,
    BrickyardError,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    PermissionDenied,
    RateLimited,
    TemporarilyUnavailable,
)
from ..core.ids import new_id, now_ms
from ..models._openai import UpstreamError
from ..models._tokens import count_messages, count_tokens
from ._agents import AgentHost
from ._aigateway import validate_config
from ._catalog import CHAT, COMPLETIONS, EMBEDDINGS, FOUNDATION_STANDINS, LOCAL_MODELS, RERANK, TASKS

LEVELS = {"CAN_VIEW": 1, "CAN_QUERY": 2, "CAN_MANAGE": 3}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
PROVIDERS = ("openai", "custom", "databricks-model-serving", "anthropic")
SECRET_FIELDS = ("openai_api_key", "databricks_api_token", "anthropic_api_key")


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _name(value: Any, what: str = "endpoint name") -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidParameterValue(f"{what} must be 1-63 letters, digits, '-' or '_', starting with a letter or digit")
    return value


@dataclass
class Invocation:
    """One model call's outcome, for the gateway: the entity that served it and the usage."""

    endpoint: str
    served_entity: str
    task: str
    result: Any  # dict, or an iterator of chunks when streaming
    stream: bool = False


@dataclass
class Plan:
    """A checked request and the served entities that may take it, first choice first."""

    row: Row
    task: str
    route: str
    request: dict[str, Any]
    stream: bool
    candidates: list[dict[str, Any]]

class Slot:
    """At most ``capacity`` calls in flight or waiting for one local model; more get a 503 with Retry-After."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Slot:
        with self._lock:
            if self._count >= self.capacity:
                raise TemporarilyUnavailable(
                    f"the local model is busy ({self._count} requests queued); retry shortly", retry_after=1)
            self._count += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._count -= 1


def _invalidates(method: Callable[..., Any]) -> Callable[..., Any]:
    """Drop the data plane's cached endpoint view once a change has committed (or failed)."""
    import functools

    @functools.wraps(method)
    def wrapper(self: Serving, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self._changed()

    return wrapper


class Serving:
    def __init__(self, db: Database, secrets: Secrets, *, allowed_hosts: frozenset[str] = frozenset(),
                 queue_size: int = 16, enable_fakes: bool = False,
                 model_factories: dict[str, Callable[[], Any]] | None = None, agents: AgentHost | None = None,
                 model_precision: str = "auto") -> None:
        self.db = db
        self.model_precision = model_precision
        self.agents = agents
        self.secrets = secrets
        self.allowed_hosts = allowed_hosts
        self.queue_size = queue_size
        self.enable_fakes = enable_fakes
        self._factories = model_factories or {}
        self._models: dict[str, Any] = {}
        self._slots: dict[str, Slot] = {}
        self._providers: dict[tuple[str, int, str], Any] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        #: name -> (fetched at, endpoint row, ACL rows): the data plane's view, refreshed every CACHE_SECONDS
        self._hot: dict[str, tuple[float, Row, list[Row]]] = {}
        self._configs: dict[tuple[str, int], dict[str, Any]] = {}
        self._described: dict[tuple[str, str], Any] = {}  # served model version -> its files, task, experiment

    CACHE_SECONDS = 0.5

    def _changed(self) -> None:
        self._hot.clear()

    # -- bootstrap and recovery ---------------------------------------------------------------------
    def bootstrap(self, *, resume: bool = True) -> None:
        """Create the foundation-model stand-in endpoints once, and (``resume``) finish interrupted deployments."""
        with self.db.tx() as tx:
            existing = {r["name"] for r in tx.all("SELECT name FROM serving_endpoints")}
            for name, (entity, display) in FOUNDATION_STANDINS.items():
                if name in existing:
                    continue
                model = LOCAL_MODELS[entity]
                config = {"served_entities": [{"name": name, "entity_name": entity, "entity_version": "1",
                                               "foundation_model": {"name": name, "display_name": display,
                                                                    "stand_in": model.display_name}}],
                          "traffic_config": {"routes": [{"served_entity_name": name, "traffic_percentage": 100}]}}
                eid = new_id()
                now = now_ms()
                tx.execute(
                    "INSERT INTO serving_endpoints (id, name, creator, created_at, updated_at, task, description,"
                    " config_version, config, ai_gateway, tags, state_ready, state_update)"
                    " VALUES (?, ?, 'system', ?, ?, ?, ?, 1, ?, '{}', '[]', 'READY', 'NOT_UPDATING')",
                    (eid, name, now, now, model.task, f"Local stand-in for {display}: {model.display_name}",
                     json.dumps(config)))
                tx.execute("INSERT INTO endpoint_acl (endpoint_id, principal, level) VALUES (?, ?, 'CAN_QUERY')",
                           (eid, "account users"))
                tx.execute("INSERT INTO endpoint_acl (endpoint_id, principal, level) VALUES (?, ?, 'CAN_MANAGE')",
                           (eid, ADMINS))
            pending = [r["name"] for r in tx.all("SELECT name FROM serving_endpoints WHERE state_update = 'IN_PROGRESS'")]
        for name in pending if resume else ():
            self._deploy_later(name)

    def close(self) -> None:
        for t in self._threads:
            t.join(timeout=5)
        if self.agents is not None:
            self.agents.close()
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if close:
                close()

    async def aclose(self) -> None:
        """Close the upstream sessions opened on the running event loop (call at server shutdown)."""
        for provider in list(self._providers.values()):
            aclose = getattr(provider, "aclose", None)
            if aclose:
                await aclose()

    # -- permissions --------------------------------------------------------------------------------
    def _level(self, tx: Tx, p: Principal, row: Row) -> int:
        if p.is_admin:
            return LEVELS["CAN_MANAGE"]
        best = LEVELS["CAN_MANAGE"] if row["creator"] == p.name else 0
        for r in tx.all("SELECT principal, level FROM endpoint_acl WHERE endpoint_id = ?", (row["id"],)):
            if r["principal"] in p.names:
                best = max(best, LEVELS[r["level"]])
        return best

    def _row(self, tx: Tx, p: Principal, name: str, need: str) -> Row:
        row = tx.one("SELECT * FROM serving_endpoints WHERE name = ?", (_name(name),))
        if row is None:
            raise NotFound(f"Endpoint '{name}' does not exist.")
        level = self._level(tx, p, row)
        if level == 0:
            raise NotFound(f"Endpoint '{name}' does not exist.")  # no existence oracle for strangers
        if level < LEVELS[need]:
            raise PermissionDenied(f"{p.name} lacks {need} on serving endpoint '{name}'")
        return row

    # -- config validation --------------------------------------------------------------------------
    def _validate(self, p: Principal, config: Any, inherited: frozenset[str] = frozenset()) -> tuple[dict[str, Any], str]:
        """Check a config from a client. ``inherited`` are the system-secret references of the endpoint's
        current config, which an update may keep (clients send back what GET showed them)."""
        if not isinstance(config, dict):
            raise InvalidParameterValue("config must be an object with served_entities")
        entities = config.get("served_entities") or config.get("served_models")
        if not isinstance(entities, list) or not entities:
            raise InvalidParameterValue("config.served_entities must list at least one entity")
        if len(entities) > 15:
            raise InvalidParameterValue("an endpoint serves at most 15 entities")
        out, names, tasks = [], set(), set()
        for i, ent in enumerate(entities):
            if not isinstance(ent, dict):
                raise InvalidParameterValue(f"served_entities[{i}] must be an object")
            clean, task = self._entity(p, ent, i, inherited)
            if clean["name"] in names:
                raise InvalidParameterValue(f"served entity name {clean['name']!r} appears twice")
            names.add(clean["name"])
            tasks.add(task)
            out.append(clean)
        if len(tasks) > 1:
            raise InvalidParameterValue(f"all served entities of an endpoint must have one task, got {sorted(tasks)}")
        routes = ((config.get("traffic_config") or {}).get("routes")) or []
        if not routes:
            if len(out) > 1:
                raise InvalidParameterValue("with several served entities, traffic_config.routes must split traffic")
            routes = [{"served_entity_name": out[0]["name"], "traffic_percentage": 100}]
        clean_routes = []
        for r in routes:
            target = r.get("served_entity_name") or r.get("served_model_name")
            pct = r.get("traffic_percentage")
            if target not in names:
                raise InvalidParameterValue(f"traffic route names unknown served entity {str(target)[:60]!r}")
            if not isinstance(pct, int) or not 0 <= pct <= 100:
                raise InvalidParameterValue("traffic_percentage must be an integer from 0 to 100")
            clean_routes.append({"served_entity_name": target, "traffic_percentage": pct})
        if sum(r["traffic_percentage"] for r in clean_routes) != 100:
            raise InvalidParameterValue("traffic percentages must add up to 100")
        return {"served_entities": out, "traffic_config": {"routes": clean_routes}}, tasks.pop()

    def _entity(self, p: Principal, ent: dict[str, Any], i: int, inherited: frozenset[str]
                ) -> tuple[dict[str, Any], str]:
        ext = ent.get("external_model")
        entity_name = ent.get("entity_name") or ent.get("model_name")
        if ext is not None:
            if not isinstance(ext, dict):
                raise InvalidParameterValue(f"served_entities[{i}].external_model must be an object")
            provider = ext.get("provider")
            if provider not in PROVIDERS:
                raise InvalidParameterValue(f"external_model.provider must be one of {', '.join(PROVIDERS)}")
            task = ext.get("task")
            if task not in TASKS:
                raise InvalidParameterValue(f"external_model.task must be one of {', '.join(TASKS)}")
            if not isinstance(ext.get("name"), str) or not ext["name"]:
                raise InvalidParameterValue("external_model.name (the provider's model name) is required")
            self._external_target(p, ext, inherited=inherited)
            ext = self._keep_keys_as_secrets(ext)
            name = ent.get("name") or _name(re.sub(r"[^A-Za-z0-9_-]", "-", f"{provider}-{ext['name']}")[:63],
                                            "served entity name")
            clean = {"name": _name(name, "served entity name"), "external_model": ext}
            return clean, task
        if not isinstance(entity_name, str) or not entity_name:
            raise InvalidParameterValue(f"served_entities[{i}] needs external_model or entity_name")
        model = LOCAL_MODELS.get(entity_name)
        if model is None and self.agents is not None and entity_name.count(".") == 2 \
                and not entity_name.startswith("system."):  # system.ai.* names only the local models
            if ent.get("entity_version") in (None, ""):
                raise InvalidParameterValue(f"served_entities[{i}]: a registered model needs entity_version")
            described = self.agents.describe(p, entity_name, ent["entity_version"])
            name = ent.get("name") or f"{entity_name.split('.')[-1]}-{ent['entity_version']}"
            clean = {"name": _name(re.sub(r"[^A-Za-z0-9_-]", "-", name)[:63], "served entity name"),
                     "entity_name": entity_name, "entity_version": str(ent["entity_version"])}
            for key in ("workload_size", "workload_type", "scale_to_zero_enabled"):
                if key in ent:
                    clean[key] = ent[key]
            env = ent.get("environment_vars") or {}
            if not isinstance(env, dict) or not all(isinstance(k, str) and _ENV_NAME.match(k) and isinstance(v, str)
                                                    and len(v) <= 10_000 for k, v in env.items()) or len(env) > 100:
                raise InvalidParameterValue("environment_vars must map names such as MY_VAR to strings (at most 100); "
                                            "a value may be a {{secrets/scope/key}} reference")
            for value in env.values():
                if is_reference(value):
                    if f"secrets/{SYSTEM_SCOPE}/" in value.replace(" ", ""):
                        raise InvalidParameterValue(f"the secret scope {SYSTEM_SCOPE} is reserved")
                    self.secrets.check_reference(p, value)  # the endpoint's creator must be able to read it
            if env:
                clean["environment_vars"] = dict(env)
            return clean, described.task
        if model is None:
            raise InvalidParameterValue(
                f"unknown entity {entity_name[:80]!r}: serve one of {', '.join(sorted(LOCAL_MODELS))}, or an "
                "external_model, or a registered model version (catalog.schema.model with entity_version)")
        if model.kind.startswith("fake") and not self.enable_fakes:
            raise InvalidParameterValue(f"{entity_name} is a test model; set BRICKYARD_ENABLE_FAKE_MODELS=1 to serve it")
        name = ent.get("name") or entity_name.replace(".", "-")[:63]
        clean = {"name": _name(name, "served entity name"), "entity_name": entity_name,
                 "entity_version": str(ent.get("entity_version") or "1")}
        for key in ("workload_size", "workload_type", "scale_to_zero_enabled", "environment_vars"):
            if key in ent:
                clean[key] = ent[key]
        return clean, model.task

    def _keep_keys_as_secrets(self, ext: dict[str, Any]) -> dict[str, Any]:
        """A copy of an external model config in which every plaintext key has become a reference to an
        encrypted system secret: configs (and so the metastore and API answers) never hold keys."""
        out = json.loads(json.dumps(ext))

        def fix(section: dict[str, Any]) -> None:
            for field_name in list(section):
                value = section[field_name]
                if isinstance(value, dict):
                    fix(value)
                    continue
                plain = field_name.endswith("_plaintext")
                if (plain or field_name in SECRET_FIELDS or field_name in ("token", "value")) and \
                        isinstance(value, str) and value and not is_reference(value):
                    section.pop(field_name)
                    section[field_name.removesuffix("_plaintext")] = self.secrets.store_system(value)

        for section in out.values():
            if isinstance(section, dict):
                fix(section)
        return out

    def _external_target(self, p: Principal, ext: dict[str, Any], *, inherited: frozenset[str] = frozenset(),
                         trusted: bool = False) -> tuple[str, str | None]:
        """(base URL, secret value or reference) of an external model; checks URL and secret access."""
        provider = ext["provider"]
        if provider == "openai":
            cfg = ext.get("openai_config") or {}
            base, key = cfg.get("openai_api_base") or "https://api.openai.com/v1", \
                cfg.get("openai_api_key") or cfg.get("openai_api_key_plaintext")
        elif provider == "databricks-model-serving":
            cfg = ext.get("databricks_model_serving_config") or {}
            base = (cfg.get("databricks_workspace_url") or "").rstrip("/") + "/serving-endpoints"
            key = cfg.get("databricks_api_token") or cfg.get("databricks_api_token_plaintext")
        elif provider == "custom":
            cfg = ext.get("custom_provider_config") or {}
            base = cfg.get("custom_provider_url") or ""
            auth = cfg.get("bearer_token_auth") or cfg.get("api_key_auth") or {}
            key = auth.get("token") or auth.get("value") or auth.get("token_plaintext") or auth.get("value_plaintext")
        else:
            raise InvalidParameterValue("anthropic is served through its OpenAI-compatible API: use provider "
                                        "'openai' with openai_api_base https://api.anthropic.com/v1/ (see docs/serving.md)")
        from ..models._openai import check_url

        check_url(base, self.allowed_hosts)
        if key is not None:
            if not isinstance(key, str):
                raise InvalidParameterValue("API keys must be strings or {{secrets/scope/key}} references")
            if is_reference(key) and not trusted:
                if f"secrets/{SYSTEM_SCOPE}/" in key.replace(" ", ""):
                    if key not in inherited:  # someone else's stored key: never usable from a new config
                        raise InvalidParameterValue(f"the secret scope {SYSTEM_SCOPE} is reserved; give the key "
                                                    "itself or a reference to a scope you can read")
                else:
                    self.secrets.check_reference(p, key)
        return base, key

    # -- control plane ------------------------------------------------------------------------------
    @_invalidates
    def create(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        name = _name(body.get("name"))
        config, task = self._validate(p, body.get("config"))
        tags = _tags(body.get("tags"))
        gateway = dict(body.get("ai_gateway") or {})
        if body.get("rate_limits"):  # the legacy top-level form
            gateway.setdefault("rate_limits", body["rate_limits"])
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 4096):
            raise InvalidParameterValue("description must be a string of at most 4096 characters")
        eid = new_id()
        now = now_ms()
        with self.db.tx() as tx:
            if tx.one("SELECT id FROM serving_endpoints WHERE name = ?", (name,)):
                raise AlreadyExists(f"Endpoint with name '{name}' already exists.")
            tx.execute(
                "INSERT INTO serving_endpoints (id, name, creator, created_at, updated_at, task, description,"
                " config_version, config, pending_config, ai_gateway, tags, state_ready, state_update)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 0, '{}', ?, ?, ?, 'NOT_READY', 'IN_PROGRESS')",
                (eid, name, p.name, now, now, task, description, json.dumps(config),
                 json.dumps(validate_config(gateway)), json.dumps(tags)))
            tx.execute("INSERT INTO endpoint_acl (endpoint_id, principal, level) VALUES (?, ?, 'CAN_MANAGE')",
                       (eid, p.name))
        self._deploy_later(name)
        return self.get(p, name)

    @_invalidates
    def update_config(self, p: Principal, name: str, config: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            current = self._row(tx, p, name, "CAN_MANAGE")["config"] or "{}"
        inherited = frozenset(re.findall(r"\{\{secrets/" + re.escape(SYSTEM_SCOPE) + r"/[0-9a-f]+\}\}", current))
        clean, task = self._validate(p, config, inherited)
        with self.db.tx() as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
            if row["state_update"] == "IN_PROGRESS":
                raise InvalidState(f"Endpoint '{name}' is already updating; wait until config_update is NOT_UPDATING")
            if row["task"] and task != row["task"]:
                raise InvalidParameterValue(f"the endpoint serves {row['task']}; the new config serves {task}")
            tx.execute("UPDATE serving_endpoints SET pending_config = ?, state_update = 'IN_PROGRESS', updated_at = ?"
                       " WHERE id = ?", (json.dumps(clean), now_ms(), row["id"]))
        self._deploy_later(name)
        return self.get(p, name)

    def _deploy_later(self, name: str) -> None:
        t = threading.Thread(target=self._deploy, args=(name,), daemon=True, name=f"deploy-{name}")
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()

    def _deploy(self, name: str) -> None:
        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT * FROM serving_endpoints WHERE name = ?", (name,))
        if row is None or not row["pending_config"]:
            return
        config = json.loads(row["pending_config"])
        try:
            for ent in config["served_entities"]:
                self._check_deployable(ent)
        except Exception as exc:  # noqa: BLE001 - any failure fails the update, with its message
            with self.db.tx() as tx:
                tx.execute("UPDATE serving_endpoints SET pending_config = NULL, state_update = 'UPDATE_FAILED',"
                           " state_message = ?, updated_at = ? WHERE id = ?",
                           (str(getattr(exc, "message", exc))[:1000], now_ms(), row["id"]))
            self._changed()
            return
        with self.db.tx() as tx:
            tx.execute("UPDATE serving_endpoints SET config = ?, pending_config = NULL, config_version ="
                       " config_version + 1, state_ready = 'READY', state_update = 'NOT_UPDATING', state_message = NULL,"
                       " updated_at = ? WHERE id = ?", (json.dumps(config), now_ms(), row["id"]))
        self._changed()

    def _check_deployable(self, ent: dict[str, Any]) -> None:
        if "external_model" in ent:
            base, key = self._external_target(Principal(id="", kind="user", name="system", groups=frozenset({ADMINS})),
                                              ent["external_model"], trusted=True)
            if key is not None and is_reference(key):
                self.secrets.resolve(key)
            return
        if ent["entity_name"] not in LOCAL_MODELS:  # a registered model version: checked when the config was given
            return
        kind = LOCAL_MODELS[ent["entity_name"]].kind
        module = {"llamacpp": "xllamacpp", "minilm": "safetensors"}.get(kind)
        if module and importlib.util.find_spec(module) is None:
            raise InvalidParameterValue(f"{ent['entity_name']} needs the 'local' extra: pip install 'brickyard[local]'")

    def get(self, p: Principal, name: str) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, name, "CAN_VIEW")
            return self._shape(row, self._level(tx, p, row))

    def list(self, p: Principal) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as tx:
            out = []
            for row in tx.all("SELECT * FROM serving_endpoints ORDER BY name"):
                level = self._level(tx, p, row)
                if level:
                    out.append(self._shape(row, level))
            return out

    @_invalidates
    def delete(self, p: Principal, name: str) -> None:
        with self.db.tx() as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
            tx.execute("DELETE FROM serving_endpoints WHERE id = ?", (row["id"],))

    @_invalidates
    def patch_tags(self, p: Principal, name: str, add: Any, delete: Any) -> list[dict[str, str]]:
        with self.db.tx() as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
            tags = {t["key"]: t.get("value") for t in json.loads(row["tags"])}
            for key in delete or []:
                tags.pop(str(key), None)
            for t in _tags(add):
                tags[t["key"]] = t.get("value")
            out = [{"key": k, "value": v} if v is not None else {"key": k} for k, v in tags.items()]
            tx.execute("UPDATE serving_endpoints SET tags = ? WHERE id = ?", (json.dumps(out), row["id"]))
            return out

    @_invalidates
    def set_ai_gateway(self, p: Principal, name: str, config: dict[str, Any]) -> dict[str, Any]:
        config = validate_config(config)
        with self.db.tx() as tx:
            row = self._row(tx, p, name, "CAN_MANAGE")
            tx.execute("UPDATE serving_endpoints SET ai_gateway = ?, updated_at = ? WHERE id = ?",
                       (json.dumps(config), now_ms(), row["id"]))
        return config

    # -- endpoint permissions (workspace object ACLs) -----------------------------------------------
    def acl(self, p: Principal, endpoint_id: str) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT * FROM serving_endpoints WHERE id = ?", (endpoint_id,))
            if row is None:
                raise NotFound(f"serving endpoint {endpoint_id!r} does not exist")
            self._row(tx, p, row["name"], "CAN_VIEW")
            return self._acl_shape(tx, row)

    @_invalidates
    def set_acl(self, p: Principal, endpoint_id: str, entries: Any, *, replace: bool) -> dict[str, Any]:
        if not isinstance(entries, list):
            raise InvalidParameterValue("access_control_list must be a list")
        with self.db.tx() as tx:
            row = tx.one("SELECT * FROM serving_endpoints WHERE id = ?", (endpoint_id,))
            if row is None:
                raise NotFound(f"serving endpoint {endpoint_id!r} does not exist")
            self._row(tx, p, row["name"], "CAN_MANAGE")
            parsed = []
            for e in entries:
                who = e.get("user_name") or e.get("group_name") or e.get("service_principal_name") \
                    if isinstance(e, dict) else None
                level = e.get("permission_level") if isinstance(e, dict) else None
                if not isinstance(who, str) or level not in LEVELS:
                    raise InvalidParameterValue("each entry needs user_name, group_name or service_principal_name and "
                                                "permission_level CAN_VIEW, CAN_QUERY or CAN_MANAGE")
                if who != "account users" and not tx.one("SELECT id FROM principals WHERE name = ?", (who,)):
                    raise InvalidParameterValue(f"principal {who[:80]!r} does not exist")
                parsed.append((who, level))
            if replace:
                tx.execute("DELETE FROM endpoint_acl WHERE endpoint_id = ? AND principal <> ?", (row["id"], row["creator"]))
            for who, level in parsed:
                tx.execute("DELETE FROM endpoint_acl WHERE endpoint_id = ? AND principal = ?", (row["id"], who))
                tx.execute("INSERT INTO endpoint_acl (endpoint_id, principal, level) VALUES (?, ?, ?)",
                           (row["id"], who, level))
            return self._acl_shape(tx, row)

    def _acl_shape(self, tx: Tx, row: Row) -> dict[str, Any]:
        entries = []
        for r in tx.all("SELECT a.principal, a.level, p.kind FROM endpoint_acl a LEFT JOIN principals p"
                        " ON p.name = a.principal WHERE a.endpoint_id = ? ORDER BY a.principal", (row["id"],)):
            key = {"group": "group_name", "service_principal": "service_principal_name"}.get(
                r["kind"] or "group", "user_name")
            entries.append({key: r["principal"], "all_permissions": [{"permission_level": r["level"],
                                                                      "inherited": False}]})
        return {"object_id": f"/serving-endpoints/{row['id']}", "object_type": "serving-endpoint",
                "access_control_list": entries}

    # -- shapes -------------------------------------------------------------------------------------
    def _shape(self, row: Row, level: int) -> dict[str, Any]:
        config = json.loads(row["config"] or "{}")
        deployed = row["config_version"] > 0
        entities = []
        for ent in config.get("served_entities", []):
            e = dict(ent)
            if "external_model" in e:
                e["external_model"] = _redact(e["external_model"])
            e["state"] = {"deployment": "DEPLOYMENT_READY", "deployment_state_message": ""}
            e.setdefault("creator", row["creator"])
            e.setdefault("creation_timestamp", row["created_at"])
            entities.append(e)
        out: dict[str, Any] = {
            "name": row["name"], "id": row["id"], "creator": row["creator"],
            "creation_timestamp": row["created_at"], "last_updated_timestamp": row["updated_at"],
            "task": row["task"], "description": row["description"],
            "state": {"ready": row["state_ready"], "config_update": row["state_update"]},
            "tags": json.loads(row["tags"]), "ai_gateway": json.loads(row["ai_gateway"] or "{}"),
            "permission_level": {v: k for k, v in LEVELS.items()}[level], "route_optimized": False,
        }
        if deployed:
            out["config"] = {"config_version": row["config_version"], "served_entities": entities, "served_models": [],
                             "traffic_config": config.get("traffic_config", {})}
        if row["pending_config"]:
            pending = json.loads(row["pending_config"])
            out["pending_config"] = {"config_version": row["config_version"] + 1,
                                     "served_entities": [dict(e, external_model=_redact(e["external_model"]))
                                                         if "external_model" in e else e
                                                         for e in pending["served_entities"]],
                                     "traffic_config": pending["traffic_config"]}
        if row["state_message"]:
            out["state"]["message"] = row["state_message"]
        return out

    # -- data plane ---------------------------------------------------------------------------------
    def task_of(self, p: Principal, name: str) -> str:
        """The task of an endpoint ``p`` may query (``llm/v1/chat``, ``agent/v1/responses``, ...)."""
        return str(self.endpoint_for_query(p, name)["task"])

    def endpoint_for_query(self, p: Principal, name: str) -> Row:
        """The endpoint row for a data-plane call by ``p`` (CAN_QUERY checked). Rows and ACLs are cached for
        CACHE_SECONDS: changes in this process are seen at once, other processes' within that bound."""
        row = self.endpoint_if_cached(p, name)
        if row is not None:
            return row
        now = time.monotonic()
        hot = self._hot.get(name)
        if hot is None or now - hot[0] > self.CACHE_SECONDS:
            with self.db.tx(write=False) as tx:
                found = tx.one("SELECT * FROM serving_endpoints WHERE name = ?", (_name(name),))
                acl = [] if found is None else tx.all(
                    "SELECT principal, level FROM endpoint_acl WHERE endpoint_id = ?", (found["id"],))
            if found is None:
                raise NotFound(f"Endpoint '{name}' does not exist.")
            hot = (now, found, acl)
            if len(self._hot) > 1000:
                self._hot.clear()
            self._hot[name] = hot
        return self._check_query(p, name, hot[1], hot[2])

    def endpoint_if_cached(self, p: Principal, name: str) -> Row | None:
        """:meth:`endpoint_for_query` when the endpoint's view is fresh in the cache (no database, so the
        event loop may call it); None when it has to be read."""
        hot = self._hot.get(name)
        if hot is None or time.monotonic() - hot[0] > self.CACHE_SECONDS:
            return None
        return self._check_query(p, name, hot[1], hot[2])

    @staticmethod
    def _check_query(p: Principal, name: str, row: Row, acl: list[Row]) -> Row:
        level = LEVELS["CAN_MANAGE"] if p.is_admin or row["creator"] == p.name else 0
        names = p.names
        for entry in acl:
            if entry["principal"] in names:
                level = max(level, LEVELS[entry["level"]])
        if level == 0:
            raise NotFound(f"Endpoint '{name}' does not exist.")
        if level < LEVELS["CAN_QUERY"]:
            raise PermissionDenied(f"{p.name} lacks CAN_QUERY on serving endpoint '{name}'")
        if row["config_version"] == 0:
            raise TemporarilyUnavailable(f"Endpoint '{name}' is not ready yet (config_update "
                                         f"{row['state_update']}); retry shortly", retry_after=2)
        return row

    def config_of(self, row: Row) -> dict[str, Any]:
        """The parsed config of an endpoint row, parsed once per config version."""
        key = (row["id"], row["config_version"])
        cached = self._configs.get(key)
        if cached is None:
            if len(self._configs) > 1000:
                self._configs.clear()
            cached = self._configs[key] = json.loads(row["config"])
        return cached

    def pick(self, row: Row, rng: random.Random | None = None) -> dict[str, Any]:
        """The served entity that takes this request, by the traffic split."""
        config = self.config_of(row)
        routes = [r for r in config["traffic_config"]["routes"] if r["traffic_percentage"] > 0]
        chosen = (rng or random).choices(routes, weights=[r["traffic_percentage"] for r in routes])[0]
        return next(e for e in config["served_entities"] if e["name"] == chosen["served_entity_name"])

    def model_for(self, row: Row, entity: dict[str, Any]) -> tuple[Any, Slot | None]:
        """(model object, its queue slot or None) for a served entity; local models load once and are shared."""
        if "external_model" in entity:
            key = (row["id"], row["config_version"], entity["name"])
            with self._lock:
                provider = self._providers.get(key)
                if provider is None:
                    provider = self._providers[key] = self._external(entity["external_model"])
            return provider, None
        entity_name = entity["entity_name"]
        with self._lock:
            model = self._models.get(entity_name)
            if model is None:
                model = self._models[entity_name] = self._load_local(entity_name)
                self._slots[entity_name] = Slot(self.queue_size)
            return model, self._slots[entity_name]

    def _load_local(self, entity_name: str) -> Any:
        if entity_name in self._factories:
            return self._factories[entity_name]()
        kind = LOCAL_MODELS[entity_name].kind
        if kind == "llamacpp":
            from ..models._llamacpp import LlamaCppChat

            return LlamaCppChat()
        if kind == "minilm":
            from ..models._minilm import MiniLMEmbedder

            return MiniLMEmbedder(precision=self.model_precision)
        from ..models._fakes import HashEmbedder, ObedientChat, QueueChat

        if kind == "fake-obedient":
            return ObedientChat()
        return QueueChat(model_id="fake-chat") if kind == "fake-chat" else HashEmbedder(384)

    def _external(self, ext: dict[str, Any]) -> Any:
        from ..models._openai import OpenAICompatible

        system = Principal(id="", kind="user", name="system", groups=frozenset({ADMINS}))
        base, key = self._external_target(system, ext, trusted=True)
        secret = self.secrets.resolve(key) if key is not None else None
        return OpenAICompatible(base, model=ext["name"], api_key=secret, allowed_hosts=self.allowed_hosts)

    def invoke(self, p: Principal, name: str, body: dict[str, Any], *, route: str, row: Row | None = None,
               fallback: bool = False) -> Invocation:
        """Run one request. ``route`` is chat | completions | embeddings | invocations (task decides).
        ``row`` is the endpoint as already loaded (and permission-checked) by the caller. With ``fallback``,
        a served entity that fails with a retriable upstream error hands the request to the next one."""
        plan = self.plan(p, name, body, route=route, row=row, fallback=fallback)
        failure: BrickyardError | None = None
        for entity in plan.candidates:
            try:
                return self._invoke_entity(plan.row, entity, dict(plan.request), plan.route, plan.stream, name,
                                           plan.task, p)
            except (RateLimited, TemporarilyUnavailable, UpstreamError) as exc:
                failure = exc  # retriable upstream trouble: the next entity may answer
        assert failure is not None
        raise failure

    async def ainvoke(self, p: Principal, name: str, body: dict[str, Any], *, route: str, row: Row | None = None,
                      fallback: bool = False) -> Invocation:
        """:meth:`invoke` for the event loop. Non-streaming calls to external models are awaited on the loop
        (pooled aiohttp, no thread); local models and streams run in a worker thread as before."""
        import anyio

        plan = self.plan(p, name, body, route=route, row=row, fallback=fallback)
        failure: BrickyardError | None = None
        for entity in plan.candidates:
            try:
                if plan.stream or "external_model" not in entity:
                    return await anyio.to_thread.run_sync(self._invoke_entity, plan.row, entity, dict(plan.request),
                                                          plan.route, plan.stream, name, plan.task, p)
                return await self._ainvoke_external(plan, entity, dict(plan.request), name)
            except (RateLimited, TemporarilyUnavailable, UpstreamError) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def _ainvoke_external(self, plan: Plan, entity: dict[str, Any], request: dict[str, Any],
                                name: str) -> Invocation:
        import anyio

        key = (plan.row["id"], plan.row["config_version"], entity["name"])
        model = self._providers.get(key)
        if model is None:  # the first call resolves and checks the host: not on the event loop
            model, _ = await anyio.to_thread.run_sync(self.model_for, plan.row, entity)
        if plan.route == "rerank":
            return Invocation(name, entity["name"], plan.task, await model.arerank(request))
        if plan.route == "embeddings":
            texts, fmt = _embed_input(request)
            raw = await model.aembed_raw(texts)
            result = _embed_output(raw, texts, fmt, name)
        elif plan.route == "completions":
            result = await model.acomplete({**request, "prompt": _prompt_of(request)})
        else:
            result = await model.achat(request)
        result["model"] = name
        return Invocation(name, entity["name"], plan.task, result)

    def plan(self, p: Principal, name: str, body: dict[str, Any], *, route: str, row: Row | None = None,
             fallback: bool = False) -> Plan:
        """Check a request against the endpoint's task and decide who may serve it, in which order."""
        row = row or self.endpoint_for_query(p, name)
        task = row["task"]
        if task not in TASKS:  # a registered model version (an agent or another pyfunc model)
            if route not in ("invocations", "responses", "chat"):
                raise InvalidParameterValue(f"Endpoint '{name}' serves a {task} model; query it through "
                                            "/serving-endpoints/{name}/invocations or the responses API")
            request = {k: v for k, v in body.items() if k not in ("model", "client_request_id", "usage_context")}
            stream = bool(request.pop("stream", False))
            return Plan(row, task, "agent", request, stream, [self.pick(row)])
        if route == "invocations":
            route = {CHAT: "chat", COMPLETIONS: "completions", EMBEDDINGS: "embeddings", RERANK: "rerank"}[task]
            if task == CHAT and "messages" not in body and "prompt" in body:
                route = "completions"
        expected = {"chat": CHAT, "completions": CHAT, "embeddings": EMBEDDINGS, "rerank": RERANK}[route]
        if task != expected and not (route == "completions" and task == COMPLETIONS):
            raise InvalidParameterValue(f"Endpoint '{name}' serves {task}; it cannot answer a {route} request")
        request = {k: v for k, v in body.items() if k not in ("model", "client_request_id", "usage_context",
                                                               "extra_params")}
        if isinstance(body.get("extra_params"), dict):
            request.update(body["extra_params"])
        stream = bool(request.pop("stream", False))
        if route == "chat":
            _check_chat(request)
        if route == "rerank":
            _check_rerank(request)
            stream = False
        first = self.pick(row)
        candidates = [first]
        if fallback:  # then every other served entity, in the order of the config
            candidates += [e for e in self.config_of(row)["served_entities"] if e["name"] != first["name"]]
        return Plan(row, task, route, request, stream, candidates)

    def _invoke_entity(self, row: Row, entity: dict[str, Any], request: dict[str, Any], route: str, stream: bool,
                       name: str, task: str, p: Principal | None = None) -> Invocation:
        if route == "agent":
            return self._invoke_agent(row, entity, request, stream, name, task, p)
        model, slot = self.model_for(row, entity)
        if route == "rerank":
            return Invocation(name, entity["name"], task, model.rerank(request))
        if route == "embeddings":
            return Invocation(name, entity["name"], task, self._embed(model, slot, request, name))
        if route == "completions":
            return Invocation(name, entity["name"], task, self._complete(model, slot, request, name))
        if stream:
            return Invocation(name, entity["name"], task, self._stream(model, slot, request, name), stream=True)
        if slot is None:
            result = model.chat(request)
        else:
            with slot:
                result = model.chat(request)
        result["model"] = name
        return Invocation(name, entity["name"], task, result)

    def _invoke_agent(self, row: Row, entity: dict[str, Any], request: dict[str, Any], stream: bool, name: str,
                      task: str, p: Principal | None) -> Invocation:
        """Run a registered model version in its worker, as ``p`` (its token acts as ``p`` meanwhile)."""
        assert self.agents is not None and p is not None
        worker = self._worker_for(row, entity)
        label = f"{entity['entity_name']} v{entity['entity_version']}"
        if stream:
            def record(trace: Any) -> None:
                if trace:
                    self.agents.record_trace(self._experiment_of(entity), trace, name, row["creator"])

            return Invocation(name, entity["name"], task, worker.stream(p, request, record), stream=True)
        output, trace = worker.predict(p, request)
        trace_id = self.agents.record_trace(self._experiment_of(entity), trace, name, row["creator"]) if trace else None
        result = dict(output) if isinstance(output, dict) else {"predictions": output}
        extra: dict[str, Any] = {"served_entity": label}
        if trace_id:
            extra["trace_id"] = trace_id
        if isinstance(request.get("databricks_options"), dict) and request["databricks_options"].get("return_trace"):
            extra["trace"] = trace
        result["databricks_output"] = extra
        return Invocation(name, entity["name"], task, result)

    def _worker_for(self, row: Row, entity: dict[str, Any]) -> Any:
        assert self.agents is not None
        key = (entity["entity_name"], entity["entity_version"])
        described = self._described.get(key)
        if described is None:  # checked for the endpoint's creator when the config was given
            system = Principal(id="", kind="user", name="system", groups=frozenset({ADMINS}))
            described = self._described[key] = self.agents.describe(system, *key)
        env = {k: (self.secrets.resolve(v) if is_reference(v) else v)
               for k, v in (entity.get("environment_vars") or {}).items() if k != "MLFLOW_EXPERIMENT_ID"}
        return self.agents.worker(key[0], key[1], described.model_dir, env)

    def _experiment_of(self, entity: dict[str, Any]) -> str | None:
        """Where a served version's traces go: the endpoint's MLFLOW_EXPERIMENT_ID (as databricks.agents.deploy
        sets it), else the experiment of the run the version was logged from."""
        chosen = (entity.get("environment_vars") or {}).get("MLFLOW_EXPERIMENT_ID")
        if chosen:
            return str(chosen)
        described = self._described.get((entity["entity_name"], entity["entity_version"]))
        return described.experiment_id if described else None

    def _stream(self, model: Any, slot: Slot | None, request: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
        """The chunks, with the model's queue slot taken now and given back when the stream ends or is
        dropped. The first chunk is fetched before returning, so errors still become HTTP errors."""
        if slot is not None:
            slot.__enter__()
        stream = _Guarded(model.stream(request), (lambda: slot.__exit__(None, None, None)) if slot else None, name)
        try:
            first = next(stream)
        except StopIteration:
            return iter(())
        except BaseException:
            stream.close()
            raise
        return _chain(first, stream)

    def _complete(self, model: Any, slot: Slot | None, request: dict[str, Any], name: str) -> dict[str, Any]:
        prompt = _prompt_of(request)
        if hasattr(model, "complete"):
            result = model.complete({**request, "prompt": prompt})
        else:
            chat = {**request, "messages": [{"role": "user", "content": prompt}]}
            with slot if slot is not None else _nullcontext():
                answer = model.chat(chat)
            choice = answer["choices"][0]
            result = {"id": answer["id"].replace("chatcmpl", "cmpl"), "object": "text_completion",
                      "created": answer["created"], "model": name,
                      "choices": [{"index": 0, "text": choice["message"].get("content") or "",
                                   "finish_reason": choice.get("finish_reason"), "logprobs": None}],
                      "usage": answer.get("usage")}
        result["model"] = name
        return result

    def _embed(self, model: Any, slot: Slot | None, request: dict[str, Any], name: str) -> dict[str, Any]:
        texts, fmt = _embed_input(request)
        if hasattr(model, "embed_raw"):
            return _embed_output(model.embed_raw(texts), texts, fmt, name)
        with slot if slot is not None else _nullcontext():
            vectors = np.asarray(model.embed(texts), dtype=np.float32)
        return _embed_result(vectors, sum(count_tokens(t) for t in texts), fmt, name)


def _prompt_of(request: dict[str, Any]) -> str:
    """Take the completion prompt out of ``request`` (one string, or a list of one)."""
    prompt = request.pop("prompt", None)
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidParameterValue("prompt must be a string")
    return prompt


def _embed_input(request: dict[str, Any]) -> tuple[list[str], str]:
    """(texts, encoding format) of an embeddings request, checked."""
    texts = request.get("input")
    if texts is None:
        texts = _dataframe_texts(request)
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidParameterValue("input must be a string or a non-empty list of strings")
    if len(texts) > 2048:
        raise InvalidParameterValue("at most 2048 inputs per request")
    fmt = request.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise InvalidParameterValue("encoding_format must be float or base64")
    return texts, fmt


def _embed_output(raw: dict[str, Any], texts: list[str], fmt: str, name: str) -> dict[str, Any]:
    """An upstream provider's embeddings answer, re-encoded as asked."""
    vectors = np.array([d["embedding"] for d in sorted(raw["data"], key=lambda d: d["index"])], dtype=np.float32)
    tokens = (raw.get("usage") or {}).get("prompt_tokens") or sum(count_tokens(t) for t in texts)
    return _embed_result(vectors, tokens, fmt, name)


def _embed_result(vectors: np.ndarray, tokens: int, fmt: str, name: str) -> dict[str, Any]:
    data = []
    for i, vec in enumerate(vectors):
        emb: Any = base64.b64encode(vec.astype("<f4").tobytes()).decode() if fmt == "base64" else vec.tolist()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


class _Guarded:
    """An iterator that runs ``release`` exactly once: at its end, on close(), or when collected."""

    def __init__(self, inner: Iterator[dict[str, Any]], release: Callable[[], None] | None, name: str) -> None:
        self._inner = inner
        self._release = release
        self._name = name

    def __iter__(self) -> _Guarded:
        return self

    def __next__(self) -> dict[str, Any]:
        try:
            chunk = next(self._inner)
        except BaseException:
            self.close()
            raise
        chunk["model"] = self._name
        return chunk

    def close(self) -> None:
        release, self._release = self._release, None
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
        if release is not None:
            release()

    def __del__(self) -> None:
        self.close()


def _chain(first: dict[str, Any], rest: _Guarded) -> Iterator[dict[str, Any]]:
    try:
        yield first
        yield from rest
    finally:
        rest.close()


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _check_chat(request: dict[str, Any]) -> None:
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidParameterValue("messages must be a non-empty list of {role, content}")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool", "developer"):
            raise InvalidParameterValue("each message needs a role: system, user, assistant, tool or developer")
    if request.get("n") not in (None, 1):
        raise InvalidParameterValue("only n=1 is supported")
    mt = request.get("max_tokens")
    if mt is not None and (not isinstance(mt, int) or mt <= 0):
        raise InvalidParameterValue("max_tokens must be a positive integer")
    request.setdefault("max_tokens", 512)
    if count_messages(messages) > 200_000:
        raise InvalidParameterValue("the conversation is too long")


def _check_rerank(request: dict[str, Any]) -> None:
    query, documents = request.get("query"), request.get("documents")
    if not isinstance(query, str) or not query:
        raise InvalidParameterValue("a rerank request needs query: a non-empty string")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        raise InvalidParameterValue("a rerank request needs documents: a non-empty list of strings")
    if len(documents) > 1000:
        raise InvalidParameterValue("at most 1000 documents per rerank request")


def _dataframe_texts(request: dict[str, Any]) -> Any:
    if "inputs" in request:
        return request["inputs"]
    if "instances" in request:
        return request["instances"]
    split = request.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("data"), list):
        return [row[0] if isinstance(row, list) and row else row for row in split["data"]]
    records = request.get("dataframe_records")
    if isinstance(records, list):
        return [next(iter(r.values())) if isinstance(r, dict) and r else r for r in records]
    return None


def _tags(value: Any) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, dict) and isinstance(t.get("key"), str) for t in value):
        raise InvalidParameterValue("tags must be a list of {key, value}")
    return [{"key": t["key"], **({"value": str(t["value"])} if t.get("value") is not None else {})} for t in value]


def _redact(ext: dict[str, Any]) -> dict[str, Any]:
    """External model config as shown to clients: plaintext keys never leave; references do."""
    out = json.loads(json.dumps(ext))
    for cfg in out.values():
        if isinstance(cfg, dict):
            for key in list(cfg):
                if key.endswith("_plaintext") or (key in SECRET_FIELDS and not is_reference(cfg[key])):
                    cfg.pop(key)
            for sub in cfg.values():
                if isinstance(sub, dict):
                    for key in list(sub):
                        if key.endswith("_plaintext") or (key in ("token", "value") and not is_reference(sub[key])):
                            sub.pop(key)
    return out
