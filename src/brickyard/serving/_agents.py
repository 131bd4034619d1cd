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

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..catalog import Principal
from ..core.errors import InvalidParameterValue, InvalidState
from ._workers import ModelWorker, WorkerPool, pool_shape

AGENT_RESPONSES = "agent/v1/responses"
AGENT_CHAT = "agent/v2/chat"


@dataclass
class Described:
    model_dir: Path
    task: str
    experiment_id: str | None
    resources: dict[str, Any] | None = None
    auth_policy: dict[str, Any] | None = None


class AgentHost:
    """What serving needs to run registered model versions: the registry, delegated identities, a place
    for traces, and this server's address."""

    def __init__(self, *, registry: Any, identity: Any,
                 record_trace: Callable[[str | None, dict[str, Any], str, str], str | None],
                 server_url: Callable[[], str | None], environ: Callable[..., dict[str, str]],
                 run_experiment: Callable[[str], str | None] = lambda run_id: None, timeout: float = 297.0,
                 queue_limit: int = 16, idle_seconds: float = 1800.0) -> None:
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
        return Described(model_dir, str(task), experiment)

    def pool(self, key: tuple[Any, ...], label: str, model_dir: Path, entity: dict[str, Any],
             env: dict[str, str] | None = None) -> WorkerPool:
        """The worker pool of one served entity (``key`` names the endpoint, config version and entity), made
        on first use with the entity's scale settings. Each worker gets its own delegated token."""
        with self._lock:
            found = self._pools.get(key)
            if found is not None:
                return found
            url = self.server_url()
            if not url:
                raise InvalidState("this workspace is not being served over HTTP, so a deployed model has no "
                                   "server to call back; start it with `brickyard serve`")
            size, warm, scale_to_zero = pool_shape(entity)

            def make() -> ModelWorker:
                worker = ModelWorker(model_dir, {}, label, self.timeout)
                token = self.identity.delegate(lambda: worker.current)
                self._tokens.setdefault(key, []).append(token)
                worker.env = self.environ(**(env or {}), DATABRICKS_HOST=url, DATABRICKS_TOKEN=token,
                                          IS_IN_DB_MODEL_SERVING_ENV="true", ENABLE_MLFLOW_TRACING="true",
                                          DATABRICKS_MODEL_SERVING_HOST_URL=url, MLFLOW_TRACKING_URI="databricks",
                                          MLFLOW_REGISTRY_URI="databricks-uc",
                                          PYTHONUNBUFFERED="1")  # environ() forces the usage reports off
                return worker

            pool = self._pools[key] = WorkerPool(make, size=size, warm=warm, scale_to_zero=scale_to_zero,
                                                 queue_limit=self.queue_limit, idle_seconds=self.idle_seconds,
                                                 label=label)
            if scale_to_zero and self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, daemon=True, name="model-reaper")
                self._reaper.start()
            return pool

    def pool_if_any(self, key: tuple[Any, ...]) -> WorkerPool | None:
        return self._pools.get(key)

    def pools_of(self, endpoint_id: str) -> list[WorkerPool]:
        """The live pools of an endpoint (its current config's, and a pending one's while it deploys)."""
        return [pool for key, pool in list(self._pools.items()) if key[0] == endpoint_id]

    def retire(self, endpoint_id: str, keep: int | None = None) -> None:
        """Stop the pools of an endpoint's configs other than version ``keep`` (all of them when None)."""
        with self._lock:
            old = [k for k in self._pools if k[0] == endpoint_id and k[1] != keep]
            pools = [(self._pools.pop(k), self._tokens.pop(k, [])) for k in old]
        for pool, tokens in pools:
            pool.close()
            for token in tokens:
                self.identity.undelegate(token)

    def _reap(self) -> None:
        while not self._stop.wait(max(0.05, min(5.0, self.idle_seconds / 4))):
            for pool in list(self._pools.values()):
                if pool.scale_to_zero:
                    pool.reap()

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
