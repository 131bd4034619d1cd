"""Batch work on a Ray cluster (``BRICKYARD_RAY_ADDRESS``): local models run in the cluster's workers.

Batch callers -- ``ai_query`` and the AI functions over a table, the full build of a managed-embedding Delta Sync
index -- mark their work with :func:`batch_work`. While it is marked, a local model (the bundled embedding and chat
models, the test stand-ins) is answered by actors on the cluster, one per CPU, each loading the model once; the
request still passes the AI Gateway in this process first (CAN_QUERY, rate limits, guardrails, usage rows,
inference tables), so a batch on Ray is governed and accounted exactly as one in process. External models are
called from here as always, with the caller's bounded concurrency. Other work -- a chat in the playground, a
query of an index -- stays in process.

An actor whose process dies is restarted and its call retried (``max_restarts``, ``max_task_retries``): the
caller sees the answer once, and what it commits (a table, an index) is committed once, by the caller, after
every answer is in. :meth:`RayModels.map` runs plain functions (document parsing) as retried tasks.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..core.errors import BrickyardError, InvalidState
from ..core.settings import Settings

_BATCH: contextvars.ContextVar[bool] = contextvars.ContextVar("brickyard_batch_work", default=False)
RAY_KINDS = ("minilm", "llamacpp", "fake-chat", "fake-obedient", "fake-embedding")


@contextlib.contextmanager
def batch_work() -> Iterator[None]:
    """Mark the model calls made inside as batch work (which runs on Ray when a cluster is configured)."""
    token = _BATCH.set(True)
    try:
        yield
    finally:
        _BATCH.reset(token)


def in_batch() -> bool:
    return _BATCH.get()


def _load(kind: str, precision: str) -> Any:
    """A local model of ``kind``, as the serving data plane loads it (here inside a Ray worker)."""
    if kind == "minilm":
        from ..models._minilm import MiniLMEmbedder

        return MiniLMEmbedder(precision=precision, threads=1)  # one actor per CPU: one thread each
    if kind == "llamacpp":
        from ..models._llamacpp import LlamaCppChat

        return LlamaCppChat()
    from ..models._fakes import HashEmbedder, ObedientChat, QueueChat

    if kind == "fake-obedient":
        return ObedientChat()
    return QueueChat(model_id="fake-chat") if kind == "fake-chat" else HashEmbedder(384)


def _loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "::1", "[::1]")


class RayModels:
    """The cluster, joined on first use: a pool of actors per local model, and retried tasks."""

    def __init__(self, address: str, *, precision: str = "auto") -> None:
        self.address = address
        self.precision = precision
        self._lock = threading.Lock()
        self._pools: dict[str, list[Any]] = {}
        self._turn = itertools.count()
        self._ray: Any = None

    def _connect(self) -> Any:
        with self._lock:
            if self._ray is None:
                if _loopback(self.address):  # a driver of a loopback-only cluster stays on loopback
                    Settings.join_ray_on_loopback()
                try:
                    import ray
                except ImportError as exc:
                    raise InvalidState("BRICKYARD_RAY_ADDRESS is set but Ray is not installed: "
                                       "pip install 'brickyard[ray]'") from exc
                try:
                    ray.init(address=self.address, namespace="brickyard", log_to_driver=False,
                             ignore_reinit_error=True, include_dashboard=False)
                except Exception as exc:
                    raise InvalidState(f"cannot join the Ray cluster at {self.address}: {exc}") from exc
                self._ray = ray
            return self._ray

    def workers(self) -> int:
        """How many actors a model gets: one per CPU of the cluster."""
        ray = self._connect()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def _pool(self, kind: str) -> list[Any]:
        ray = self._connect()
        with self._lock:
            pool = self._pools.get(kind)
            if pool is None:
                # no CPU reserved for an actor's life (that would starve the parsing tasks of the same batch);
                # spread, one per CPU of the cluster
                actor = ray.remote(num_cpus=0, max_restarts=3, max_task_retries=3,
                                   scheduling_strategy="SPREAD")(_ModelActor)
                count = max(1, int(ray.cluster_resources().get("CPU", 1)))
                pool = self._pools[kind] = [actor.remote(kind, self.precision) for _ in range(count)]
            return pool

    def model(self, kind: str) -> RayModel:
        return RayModel(self, kind)

    def call(self, kind: str, method: str, *args: Any) -> Any:
        pool = self._pool(kind)
        actor = pool[next(self._turn) % len(pool)]
        try:
            return self._ray.get(getattr(actor, method).remote(*args))
        except BrickyardError:
            raise
        except Exception as exc:
            raise InvalidState(f"the Ray worker running {kind} failed: {str(exc).splitlines()[0][:300]}") from exc

    def map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``fn`` over ``items`` as Ray tasks (retried if a worker dies), results in order."""
        ray = self._connect()
        task = ray.remote(num_cpus=1, max_retries=3)(fn)
        try:
            return list(ray.get([task.remote(item) for item in items]))
        except Exception as exc:
            raise InvalidState(f"a Ray task failed: {str(exc).splitlines()[0][:300]}") from exc

    def pids(self, kind: str) -> list[int]:
        """The worker processes of ``kind``'s actors (for tests and diagnostics)."""
        return [int(self._ray.get(a.pid.remote())) for a in self._pool(kind)]

    def close(self) -> None:
        with self._lock:
            ray, self._ray = self._ray, None
            pools, self._pools = self._pools, {}
        if ray is not None:
            for pool in pools.values():
                for actor in pool:
                    with contextlib.suppress(Exception):
                        ray.kill(actor)
            with contextlib.suppress(Exception):
                ray.shutdown()


class _ModelActor:
    """One local model in one Ray worker process, loaded once."""

    def __init__(self, kind: str, precision: str) -> None:
        self.model = _load(kind, precision)

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        return np.asarray(self.model.embed(texts), dtype=np.float32)

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict(self.model.chat(request))

    def pid(self) -> int:
        return os.getpid()


class RayModel:
    """A local model whose calls go to its actors on the cluster (the interface the data plane uses)."""

    def __init__(self, models: RayModels, kind: str) -> None:
        self.models = models
        self.kind = kind

    def embed(self, texts: list[str]) -> Any:
        return self.models.call(self.kind, "embed", list(texts))

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict(self.models.call(self.kind, "chat", request))
