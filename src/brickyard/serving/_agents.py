"""Serving registered model versions (agents and other pyfunc models) in worker processes.

A served entity ``{"entity_name": "catalog.schema.model", "entity_version": "3"}`` runs in its own
process (:mod:`brickyard.serving._agent_worker`), started on first use and kept while the endpoint's config
stays the same. The worker gets a minimal environment (no server secrets) plus ``DATABRICKS_HOST`` pointing
at this server and ``DATABRICKS_TOKEN`` set to a *delegated* token: it authenticates only while the worker
is answering a request, and then as the user who sent that request. So the agent's model calls, tools
and retrievals run with that user's grants (on-behalf-of-user), whichever client library it uses.

Only READY Unity Catalog model versions are served, from the registry's own copy of their files:
nothing is loaded from paths a request or a config names, and nothing is ever unpickled in the server
process. A version is served only if the endpoint's creator may EXECUTE it.
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..catalog import Principal
from ..core.errors import BrickyardError, InvalidParameterValue, InvalidState, TemporarilyUnavailable

log = logging.getLogger(__name__)

AGENT_RESPONSES = "agent/v1/responses"
AGENT_CHAT = "agent/v2/chat"
START_SECONDS = 180.0
REQUEST_SECONDS = 300.0


class AgentFailed(BrickyardError):
    error_code = "BAD_REQUEST"
    http_status = 400


@dataclass
class Described:
    model_dir: Path
    task: str
    experiment_id: str | None


class AgentWorker:
    """One model version in one process, answering one request at a time."""

    def __init__(self, model_dir: Path, env: dict[str, str], label: str) -> None:
        self.model_dir = model_dir
        self.env = env
        self.label = label
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr_tail: list[str] = []
        #: whom the worker's delegated token acts for: set only while a request holds the lock
        self.current: Principal | None = None

    def _start(self) -> None:
        self.lines = queue.Queue()
        self.proc = subprocess.Popen([sys.executable, "-m", "brickyard.serving._agent_worker", str(self.model_dir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, env=self.env, cwd=str(self.model_dir))
        proc = self.proc

        def pump_out() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.lines.put(line)
            self.lines.put(None)

        def pump_err() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                self.stderr_tail = (self.stderr_tail + [line.rstrip()])[-50:]
                log.debug("%s: %s", self.label, line.rstrip())

        threading.Thread(target=pump_out, daemon=True, name=f"agent-out-{self.label}").start()
        threading.Thread(target=pump_err, daemon=True, name=f"agent-err-{self.label}").start()
        first = self._next(START_SECONDS)
        if first.get("error"):
            self.close()
            raise InvalidState(f"{self.label} could not load: {first['error']['type']}: {first['error']['message']}")

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise TemporarilyUnavailable(f"{self.label} did not answer within {timeout:.0f} s; it was restarted",
                                         retry_after=1) from None
        if line is None:
            tail = " | ".join(self.stderr_tail[-3:])
            self.close()
            raise TemporarilyUnavailable(f"{self.label} stopped ({tail[:300]}); it restarts on the next request",
                                         retry_after=1)
        return json.loads(line)  # type: ignore[no-any-return]

    def _ensure(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self._start()

    def predict(self, p: Principal, request: Any) -> tuple[Any, Any]:
        """(output, trace) for one request from ``p``."""
        with self.lock:
            self._ensure()
            ident = uuid.uuid4().hex
            self.current = p
            try:
                self._send({"id": ident, "input": request, "stream": False})
                answer = self._next(REQUEST_SECONDS)
            finally:
                self.current = None
            if "error" in answer:
                error = answer["error"]
                if error.get("status") == 400:  # the request does not fit the model (its signature, its format)
                    raise InvalidParameterValue(f"{self.label}: {error['message']}")
                raise AgentFailed(f"{self.label} failed: {error['type']}: {error['message']}", trace=answer.get("trace"))
            return answer.get("output"), answer.get("trace")

    def stream(self, p: Principal, request: Any, on_trace: Callable[[Any], None]) -> Iterator[Any]:
        """The model's stream events for ``p``; ``on_trace`` gets the trace when the stream ends. The worker
        (and its token's identity) stays taken until the stream is consumed or closed."""
        self.lock.acquire()
        self.current = p

        def release() -> None:
            self.current = None
            self.lock.release()

        try:
            self._ensure()
            ident = uuid.uuid4().hex
            self._send({"id": ident, "input": request, "stream": True})
            first = self._next(REQUEST_SECONDS)
        except BaseException:
            release()
            raise
        if "error" in first:
            release()
            raise AgentFailed(f"{self.label} failed: {first['error']['type']}: {first['error']['message']}")

        def events() -> Iterator[Any]:
            message = first
            try:
                while True:
                    if "event" in message:
                        yield message["event"]
                    elif message.get("done"):
                        on_trace(message.get("trace"))
                        return
                    elif "error" in message:
                        on_trace(message.get("trace"))
                        yield {"type": "error", "error": message["error"]}
                        return
                    message = self._next(REQUEST_SECONDS)
            finally:
                release()

        return events()

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            raise TemporarilyUnavailable(f"{self.label} is restarting", retry_after=1) from None

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


class AgentHost:
    """What serving needs to run registered model versions: the registry, delegated identities, a place
    for traces, and this server's address."""

    def __init__(self, *, registry: Any, identity: Any,
                 record_trace: Callable[[str | None, dict[str, Any], str, str], str | None],
                 server_url: Callable[[], str | None], environ: Callable[..., dict[str, str]],
                 run_experiment: Callable[[str], str | None] = lambda run_id: None) -> None:
        self.registry = registry
        self.run_experiment = run_experiment
        self.identity = identity
        self.record_trace = record_trace
        self.server_url = server_url
        self.environ = environ
        self._workers: dict[tuple[str, str], tuple[AgentWorker, str]] = {}
        self._lock = threading.Lock()

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

    def worker(self, entity_name: str, version: str, model_dir: Path, env: dict[str, str] | None = None) -> AgentWorker:
        key = (entity_name, version)
        with self._lock:
            found = self._workers.get(key)
            if found is not None:
                return found[0]
            url = self.server_url()
            if not url:
                raise InvalidState("this workspace is not being served over HTTP, so a deployed model has no "
                                   "server to call back; start it with `brickyard serve`")
            worker = AgentWorker(model_dir, {}, f"{entity_name} v{version}")
            token = self.identity.delegate(lambda: worker.current)
            worker.env = self.environ(**(env or {}), DATABRICKS_HOST=url, DATABRICKS_TOKEN=token, IS_IN_DB_MODEL_SERVING_ENV="true",
                               ENABLE_MLFLOW_TRACING="true", DATABRICKS_MODEL_SERVING_HOST_URL=url,
                               MLFLOW_TRACKING_URI="databricks", MLFLOW_REGISTRY_URI="databricks-uc",
                               PYTHONUNBUFFERED="1")  # environ() forces the usage reports off
            self._workers[key] = (worker, token)
            return worker

    def close(self) -> None:
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker, token in workers:
            worker.close()
            self.identity.undelegate(token)
