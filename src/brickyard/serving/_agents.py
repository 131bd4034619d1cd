"""Serving registered model versions (agents and other pyfunc models) in worker processes.

A served entity ``{"entity_name": "catalog.schema.model", "entity_version": "3"}`` runs in a pool of worker
processes (:mod:`brickyard.serving._workers`, each running :mod:`brickyard.serving._agent_worker`), started
when the config is deployed and kept while the endpoint's config stays the same. Each worker gets a minimal
environment (no server secrets) plus ``DATABRICKS_HOST`` pointing at this server and ``DATABRICKS_TOKEN`` set to a *delegated* token: it authenticates only while the worker
is answering a request, and then as the user who sent that request. So the agent's model calls, tools
and retrievals run with that user's grants (on-behalf-of-user), whichever client library it uses.

Only READY Unity Catalog model versions are served, from the registry's own copy of their files:
nothing is loaded from paths a request or a config names, and nothing is ever unpickled in the server
process. A version is served only if the endpoint's creator may EXECUTE it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..catalog import Principal
from ..core.errors import InvalidParameterValue, InvalidState
from ..tracking._resources import Declared, declared
from ._workers import ModelWorker, WorkerPool, pool_shape

AGENT_RESPONSES = "agent/v1/responses"
AGENT_CHAT = "agent/v2/chat"


@dataclass
class Described:
    model_dir: Path
    task: str
    experiment_id: str | None
    declared: Declared = field(default_factory=lambda: Declared("caller"))
    gguf: Path | None = None  # logged with brickyard.models.gguf_model: served on llama.cpp in the server


#: a served model's system credential is replaced this often; a replaced one stays valid as long again (the
#: Databricks SDK re-reads the credential file every 5 minutes), so none lives longer than twice this
CREDENTIAL_SECONDS = 900.0
CREDENTIAL_FILE = "model-dependencies-oauth-token"  # where the SDK's model-serving authentication reads it


@dataclass
class _Credential:
    """The system credential of one pool: a directory holding the current token, and the tokens issued."""

    directory: Path
    acts_for: Principal
    tokens: list[tuple[str, float]] = field(default_factory=list)  # (token, issued at), newest last


class AgentHost:
    """What serving needs to run registered model versions: the registry, delegated identities, a place
    for traces, and this server's address."""

    def __init__(self, *, registry: Any, identity: Any,
                 record_trace: Callable[[str | None, dict[str, Any], str, str], str | None],
                 server_url: Callable[[], str | None], environ: Callable[..., dict[str, str]],
                 run_experiment: Callable[[str], str | None] = lambda run_id: None, timeout: float = 297.0,
                 queue_limit: int = 16, idle_seconds: float = 1800.0, credentials_dir: Path | None = None) -> None:
        self.registry = registry
        self.run_experiment = run_experiment
        self.identity = identity
        self.record_trace = record_trace
        self.server_url = server_url
        self.environ = environ
        self.timeout = timeout
        self.queue_limit = queue_limit
        self.idle_seconds = idle_seconds
        self._pools: dict[tuple[Any, ...], WorkerPool] = {}
        self._tokens: dict[tuple[Any, ...], list[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self.credentials_dir = credentials_dir
        self._credentials: dict[tuple[Any, ...], _Credential] = {}

    def describe(self, p: Principal, entity_name: str, version: Any) -> Described:
        """Check that ``p`` may serve ``entity_name`` version ``version`` and say what it is."""
        row = self.registry.catalog.model_version(p, entity_name, version)
        self.registry.catalog.require(p, "EXECUTE", "registered_model", entity_name, action="serveModelVersion")
        if row["status"] != "READY":
            raise InvalidParameterValue(f"model version {entity_name}/{row['version']} is {row['status']}, not READY")
        model_dir = self.registry.version_dir(row["model"], int(row["version"]))
        try:
            meta = yaml.safe_load((model_dir / "MLmodel").read_text()) or {}
        except (OSError, yaml.YAMLError):
            raise InvalidParameterValue(f"model version {entity_name}/{row['version']} has no readable MLmodel") from None
        if "python_function" not in (meta.get("flavors") or {}):
            raise InvalidParameterValue(f"model version {entity_name}/{row['version']} is not a pyfunc model")
        task = (meta.get("metadata") or {}).get("task") or "llm/v1/chat"
        experiment = row["spec"].get("run_experiment_id") or (self.run_experiment(row["run_id"]) if row["run_id"]
                                                              else None)
        from ..models.gguf_model import gguf_of

        gguf = gguf_of(model_dir, meta["flavors"]["python_function"])
        return Described(model_dir, "llm/v1/chat" if gguf else str(task), experiment, declared(meta), gguf)

    def pool(self, key: tuple[Any, ...], label: str, model_dir: Path, entity: dict[str, Any],
             env: dict[str, str] | None = None, *, policy: str = "caller", system: Principal | None = None
             ) -> WorkerPool:
        """The worker pool of one served entity (``key`` names the endpoint, config version and entity), made
        on first use with the entity's scale settings. ``policy`` (see :mod:`brickyard.tracking._resources`)
        decides the workers' credentials: ``caller`` -- a delegated token acting as each request's caller; ``system`` --
        the short-lived credential of ``system`` (a scoped principal) in the file the SDK reads; ``user`` --
        that, plus the caller's identity as the invoker token."""
        with self._lock:
            found = self._pools.get(key)
            if found is not None:
                return found
            url = self.server_url()
            if not url:
                raise InvalidState("this workspace is not being served over HTTP, so a deployed model has no "
                                   "server to call back; start it with `brickyard serve`")
            size, warm, scale_to_zero = pool_shape(entity)
            base = dict(env or {}, DATABRICKS_HOST=url, IS_IN_DB_MODEL_SERVING_ENV="true",
                        ENABLE_MLFLOW_TRACING="true", DATABRICKS_MODEL_SERVING_HOST_URL=url,
                        MLFLOW_TRACKING_URI="databricks", MLFLOW_REGISTRY_URI="databricks-uc", PYTHONUNBUFFERED="1")
            if policy != "caller":
                assert system is not None and system.scope is not None
                base["SERVING_CREDENTIALS_DIR"] = str(self._issue(key, system).directory)

            def make() -> ModelWorker:
                worker = ModelWorker(model_dir, {}, label, self.timeout)
                token = self.identity.delegate(lambda: worker.current)  # acts as the caller while answering
                self._tokens.setdefault(key, []).append(token)
                if policy == "user":
                    worker.invoker = token
                mine = {"DATABRICKS_TOKEN": token} if policy == "caller" else {}
                worker.env = self.environ(**base, **mine)  # environ() forces the usage reports off
                return worker

            pool = self._pools[key] = WorkerPool(make, size=size, warm=warm, scale_to_zero=scale_to_zero,
                                                 queue_limit=self.queue_limit, idle_seconds=self.idle_seconds,
                                                 label=label)
            if self._reaper is None and (scale_to_zero or policy != "caller"):
                self._reaper = threading.Thread(target=self._tend, daemon=True, name="model-reaper")
                self._reaper.start()
            return pool

    def _issue(self, key: tuple[Any, ...], acts_for: Principal) -> _Credential:
        """A private directory for a pool's system credential, with a first token in it."""
        if self.credentials_dir is None:
            raise InvalidState("this workspace has no place for served models' credentials")
        self.credentials_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory = self.credentials_dir / secrets.token_hex(8)
        directory.mkdir(mode=0o700)
        credential = self._credentials[key] = _Credential(directory, acts_for)
        self._rotate(credential)
        return credential

    def _rotate(self, credential: _Credential, now: float | None = None) -> None:
        """Write a new token to the credential file (atomically) and revoke the ones replaced long enough ago."""
        now = time.monotonic() if now is None else now
        principal = credential.acts_for
        token = self.identity.delegate(lambda: principal)
        tmp = credential.directory / f".{CREDENTIAL_FILE}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"OAUTH_TOKEN": [{"oauthTokenValue": token}]}, f)
        os.replace(tmp, credential.directory / CREDENTIAL_FILE)
        credential.tokens.append((token, now))
        keep = []
        for i, (old, _issued) in enumerate(credential.tokens):
            replaced_at = credential.tokens[i + 1][1] if i + 1 < len(credential.tokens) else None
            if replaced_at is not None and now - replaced_at >= CREDENTIAL_SECONDS:
                self.identity.undelegate(old)
            else:
                keep.append((old, _issued))
        credential.tokens = keep

    def _revoke(self, key: tuple[Any, ...]) -> None:
        credential = self._credentials.pop(key, None)
        if credential is not None:
            for token, _ in credential.tokens:
                self.identity.undelegate(token)
            shutil.rmtree(credential.directory, ignore_errors=True)

    def pool_if_any(self, key: tuple[Any, ...]) -> WorkerPool | None:
        return self._pools.get(key)

    def pools_of(self, endpoint_id: str) -> list[WorkerPool]:
        """The live pools of an endpoint (its current config's, and a pending one's while it deploys)."""
        return [pool for key, pool in list(self._pools.items()) if key[0] == endpoint_id]

    def retire(self, endpoint_id: str, keep: int | None = None) -> None:
        """Stop the pools of an endpoint's configs other than version ``keep`` (all of them when None)."""
        with self._lock:
            old = [k for k in self._pools if k[0] == endpoint_id and k[1] != keep]
            pools = [(k, self._pools.pop(k), self._tokens.pop(k, [])) for k in old]
        for k, pool, tokens in pools:
            pool.close()
            for token in tokens:
                self.identity.undelegate(token)
            self._revoke(k)

    def _tend(self) -> None:
        """Stop idle workers of pools that scale to zero; replace system credentials as they age."""
        while not self._stop.wait(max(0.05, min(5.0, self.idle_seconds / 4))):
            for pool in list(self._pools.values()):
                if pool.scale_to_zero:
                    pool.reap()
            now = time.monotonic()
            for credential in list(self._credentials.values()):
                if credential.tokens and now - credential.tokens[-1][1] >= CREDENTIAL_SECONDS:
                    self._rotate(credential, now)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            pools = list(self._pools.values())
            tokens = [t for ts in self._tokens.values() for t in ts]
            self._pools.clear()
            self._tokens.clear()
        for pool in pools:
            pool.close()
        for token in tokens:
            self.identity.undelegate(token)
        for key in list(self._credentials):
            self._revoke(key)
