"""Serving endpoints: configuration (versions, traffic split, tags, permissions) and invocation.

Deployment is asynchronous, as on Databricks: a create or config update leaves the endpoint in
``config_update: IN_PROGRESS`` while the new served entities are checked (model files present,
external URLs allowed, secrets readable); then the config goes live (``NOT_UPDATING``) or the
update fails (``UPDATE_FAILED``) and the previous config keeps serving. An update interrupted by a
restart is taken up again when the workspace opens.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..catalog import ADMINS, Principal
from ..catalog._db import Database, Row, Tx
from ..catalog._secrets import SYSTEM_SCOPE, Secrets, is_reference
from ..core.errors import (
    AlreadyExists,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from ..core.ids import new_id, now_ms
from ..tracking._resources import KINDS as RESOURCE_KINDS
from ..tracking._resources import Declared
from ._agents import AgentHost
from ._aigateway import validate_config
from ._catalog import CHAT, FOUNDATION_STANDINS, LOCAL_MODELS, TASKS
from ._common import _ENV_NAME, LEVELS, PROVIDERS, SECRET_FIELDS, Slot, _name
from ._dataplane import DataPlane
from ._gguf import check_config as check_gguf_config
from ._gguf import check_entity as check_gguf_entity
from ._gguf import is_gguf, is_gguf_entity
from ._ray import RayModels
from ._workers import check_scale

log = logging.getLogger(__name__)


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


class Serving(DataPlane):
    def __init__(self, db: Database, secrets: Secrets, *, allowed_hosts: frozenset[str] = frozenset(),
                 queue_size: int = 16, enable_fakes: bool = False,
                 model_factories: dict[str, Callable[[], Any]] | None = None, agents: AgentHost | None = None,
                 model_precision: str = "auto", volumes: Any = None) -> None:
        self.db = db
        self.volumes = volumes
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
        #: a Ray cluster batch work runs local models on (BRICKYARD_RAY_ADDRESS), set by the workspace
        self.ray: RayModels | None = None

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
        if self.ray is not None:
            self.ray.close()
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
        if p.scope is not None:  # a served model's scoped credential: its declared endpoints, to query only
            if f"serving_endpoint:{row['name']}" not in p.scope:
                return 0
            return min(LEVELS["CAN_QUERY"], self._level(tx, replace(p, scope=None), row))
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
        if is_gguf_entity(entity_name):  # your own weights from a volume, on llama.cpp
            clean = check_gguf_entity(self.volumes, p, {**ent, "entity_name": entity_name}, f"served_entities[{i}]")
            clean["name"] = _name(clean["name"], "served entity name")
            return clean, CHAT
        model = LOCAL_MODELS.get(entity_name)
        if model is None and self.agents is not None and entity_name.count(".") == 2 \
                and not entity_name.startswith("system."):  # system.ai.* names only the local models
            if ent.get("entity_version") in (None, ""):
                raise InvalidParameterValue(f"served_entities[{i}]: a registered model needs entity_version")
            described = self.agents.describe(p, entity_name, ent["entity_version"])
            self._check_resources(p, entity_name, described.declared)
            name = ent.get("name") or f"{entity_name.split('.')[-1]}-{ent['entity_version']}"
            clean = {"name": _name(re.sub(r"[^A-Za-z0-9_-]", "-", name)[:63], "served entity name"),
                     "entity_name": entity_name, "entity_version": str(ent["entity_version"])}
            if described.gguf is not None:  # a GGUF logged as a model: llama.cpp in the server, like a volume's
                clean["gguf_config"] = check_gguf_config(self.volumes, p, ent.get("gguf_config"),
                                                         f"served_entities[{i}]")
                return clean, CHAT
            clean.update(check_scale(ent, f"served_entities[{i}]"))
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
        clean.update(check_scale(ent, f"served_entities[{i}]"))
        if "environment_vars" in ent:
            clean["environment_vars"] = ent["environment_vars"]
        return clean, model.task

    def _check_resources(self, p: Principal, model: str, declared: Declared) -> None:
        """Whoever deploys a model must hold access to every resource it declares (403 naming the first one
        missing): its system credential acts within the deployer's rights, never beyond them."""
        assert self.agents is not None
        catalog = self.agents.registry.catalog
        for kind, name in declared.resources:
            target, privilege = RESOURCE_KINDS[kind]
            try:
                if target == "serving_endpoint":
                    with self.db.tx(write=False) as tx:
                        row = tx.one("SELECT * FROM serving_endpoints WHERE name = ?", (name,))
                        if row is None or self._level(tx, p, row) < LEVELS["CAN_QUERY"]:
                            raise PermissionDenied(f"{p.name} lacks CAN_QUERY on serving endpoint '{name}'")
                elif target != "sql_warehouse":
                    catalog.require(p, privilege, target, name, action="deployModelResource")
            except (PermissionDenied, NotFound) as exc:
                raise PermissionDenied(f"{model} declares the {kind.replace('_', ' ')} '{name}', which the deployer "
                                       f"cannot use: {exc.message}") from None

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
            self._warm(row, config)
        except Exception as exc:  # noqa: BLE001 - any failure fails the update, with its message
            if self.agents is not None:
                self.agents.retire(row["id"], keep=row["config_version"])
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
        self._free_unused()
        if self.agents is not None:  # traffic has moved: the previous config's workers stop
            self.agents.retire(row["id"], keep=row["config_version"] + 1)
            self._link_versions(row, config)

    def _link_versions(self, row: Row, config: dict[str, Any]) -> None:
        """Lineage: each registered model version a live config serves -> this endpoint."""
        assert self.agents is not None
        creator = Principal(id="", kind="user", name=row["creator"])
        for ent in config["served_entities"]:
            if "entity_version" in ent and "external_model" not in ent and ent["entity_name"] not in LOCAL_MODELS:
                self.agents.registry.catalog.add_endpoint_lineage(
                    creator, ("registered_model", ent["entity_name"]), row["name"], direction="down",
                    edge="SERVED_BY", detail=f"version {ent['entity_version']}")

    def can_view(self, p: Principal, name: str) -> bool:
        """Whether ``p`` may see endpoint ``name`` (for lineage and listings outside serving)."""
        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT * FROM serving_endpoints WHERE name = ?", (name,))
            return row is not None and self._level(tx, p, row) >= LEVELS["CAN_VIEW"]

    def warm_all(self) -> None:
        """Start the workers (and load the GGUF models) of every live endpoint in this process, so that a server
        that restarted, or another process joining the home, answers its first requests warm. Failures are
        logged: the endpoint's requests then say why."""
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT * FROM serving_endpoints WHERE config_version > 0")
        for row in rows:
            config = self.config_of(row)
            taking = {r["served_entity_name"] for r in config["traffic_config"]["routes"]
                      if r["traffic_percentage"] > 0}
            for ent in config["served_entities"]:
                if ent["name"] not in taking or "external_model" in ent or ent.get("scale_to_zero_enabled"):
                    continue
                try:
                    if is_gguf(ent):
                        self._local_model(ent)
                    elif ent.get("entity_version") is not None and ent["entity_name"] not in LOCAL_MODELS \
                            and self.agents is not None and self.agents.server_url():
                        self._pool_for(row, ent).start()
                except Exception:  # noqa: BLE001 - reported on the endpoint's requests
                    log.warning("endpoint %s: %s did not start", row["name"], ent["name"], exc_info=True)

    def _warm(self, row: Row, config: dict[str, Any]) -> None:
        """Start the worker processes of the registered model versions a new config serves, so a model that
        cannot load (a missing dependency, an error in its code) fails the update, not the first request. Only
        when the workspace is served over HTTP (the workers call back to it); otherwise they start on first use."""
        if self.agents is None or not self.agents.server_url():
            return
        taking = {r["served_entity_name"] for r in config["traffic_config"]["routes"] if r["traffic_percentage"] > 0}
        for ent in config["served_entities"]:  # versions kept at 0% traffic (agents.deploy) start on first use
            if "entity_version" in ent and "external_model" not in ent and ent["entity_name"] not in LOCAL_MODELS \
                    and ent["name"] in taking and not is_gguf(ent):
                self._pool_for(row, ent, row["config_version"] + 1).start()

    def _check_deployable(self, ent: dict[str, Any]) -> None:
        if "external_model" in ent:
            base, key = self._external_target(Principal(id="", kind="user", name="system", groups=frozenset({ADMINS})),
                                              ent["external_model"], trusted=True)
            if key is not None and is_reference(key):
                self.secrets.resolve(key)
            return
        if is_gguf(ent):  # loaded now: a file llama.cpp refuses fails the update
            self._local_model(ent)
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
        self._free_unused()
        if self.agents is not None:
            self.agents.retire(row["id"])
            self.agents.registry.catalog.forget_endpoint_lineage(row["name"])

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
        starting = False
        for ent in config.get("served_entities", []):
            e = dict(ent)
            if "external_model" in e:
                e["external_model"] = _redact(e["external_model"])
            e["state"] = {"deployment": "DEPLOYMENT_READY", "deployment_state_message": ""}
            pool = self.agents.pool_if_any((row["id"], row["config_version"], ent["name"])) if self.agents else None
            if pool is not None and pool.state() == "SCALED_TO_ZERO":
                e["state"]["deployment_state_message"] = "Scaled to zero"
            elif pool is not None and pool.state() == "STARTING":
                e["state"] = {"deployment": "DEPLOYMENT_CREATING", "deployment_state_message": "Scaling from zero"}
                starting = True
            e.setdefault("creator", row["creator"])
            e.setdefault("creation_timestamp", row["created_at"])
            entities.append(e)
        out: dict[str, Any] = {
            "name": row["name"], "id": row["id"], "creator": row["creator"],
            "creation_timestamp": row["created_at"], "last_updated_timestamp": row["updated_at"],
            "task": row["task"], "description": row["description"],
            "state": {"ready": "NOT_READY" if starting else row["state_ready"], "config_update": row["state_update"]},
            "tags": json.loads(row["tags"]), "ai_gateway": json.loads(row["ai_gateway"] or "{}"),
            "permission_level": {v: k for k, v in LEVELS.items()}[level], "route_optimized": False,
        }
        if deployed:
            out["config"] = {"config_version": row["config_version"], "served_entities": entities, "served_models": [],
                             "traffic_config": _routes(config.get("traffic_config", {}))}
        if row["pending_config"]:
            pending = json.loads(row["pending_config"])
            out["pending_config"] = {"config_version": row["config_version"] + 1,
                                     "served_entities": [dict(e, external_model=_redact(e["external_model"]))
                                                         if "external_model" in e else e
                                                         for e in pending["served_entities"]],
                                     "traffic_config": _routes(pending["traffic_config"])}
        if row["state_message"]:
            out["state"]["message"] = row["state_message"]
        return out


def _routes(traffic: dict[str, Any]) -> dict[str, Any]:
    """A traffic config as shown: each route names its entity under both keys Databricks answers with
    (``served_entity_name`` and the older ``served_model_name``, which databricks-agents reads)."""
    return {"routes": [dict(r, served_model_name=r["served_entity_name"]) for r in traffic.get("routes") or []]}


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
