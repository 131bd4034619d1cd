"""The processes a served model version runs in: one :class:`ModelWorker` per process, and a
:class:`WorkerPool` of them per served entity.

A pool has as many workers as the entity's ``workload_size`` (or provisioned throughput) asks for. A
request takes a free worker; if none is free it waits in a bounded queue (``queue_limit`` waiting
requests per worker) and past that bound gets 503 with ``Retry-After``. With ``scale_to_zero_enabled``
the pool stops its processes after ``idle_seconds`` without a request and the next request starts one
(its answer is marked as a cold start); reserved workers (``min_provisioned_throughput``) are never
stopped.

Faults are contained: a model that raises gives 500 with its message and its worker keeps serving (the
exception was caught in the worker); a model that hangs past the request timeout gives 504, a process
that exits (or is killed) mid-request gives 500, and a worker that breaks the line protocol gives 500 --
in those three cases the process is stopped and a fresh one is started in the background.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..catalog import Principal
from ..core.errors import (
    BrickyardError,
    DeadlineExceeded,
    InvalidParameterValue,
    InvalidState,
    TemporarilyUnavailable,
)

log = logging.getLogger(__name__)

START_SECONDS = 180.0

#: workload_size -> worker processes per served entity (Databricks: Small 4, Medium 16, Large 64 concurrent
#: requests; here each worker answers one request at a time, so the sizes keep their ratio at laptop scale)
WORKLOAD_SIZES = {"Small": 1, "Medium": 2, "Large": 4}
#: provisioned throughput (tokens/s) one worker stands for: min/max_provisioned_throughput must be multiples
THROUGHPUT_CHUNK = 100


class ModelFailed(BrickyardError):
    """The model raised, exited, or answered something that is not JSON (500, with the model's message)."""

    error_code = "INTERNAL_ERROR"
    http_status = 500


def pool_shape(entity: dict[str, Any]) -> tuple[int, int, bool]:
    """(workers, workers kept warm, scale to zero) for a served entity's config (already validated)."""
    if entity.get("max_provisioned_throughput"):
        most = max(1, entity["max_provisioned_throughput"] // THROUGHPUT_CHUNK)
        least = min(most, (entity.get("min_provisioned_throughput") or 0) // THROUGHPUT_CHUNK)
    else:
        most = WORKLOAD_SIZES[entity.get("workload_size") or "Small"]
        least = 0
    scale_to_zero = bool(entity.get("scale_to_zero_enabled")) and least == 0
    return most, (least if scale_to_zero or least else most), scale_to_zero


def check_scale(entity: dict[str, Any], where: str) -> dict[str, Any]:
    """The scale fields of a served entity, checked: workload_size, workload_type, scale_to_zero_enabled,
    min/max_provisioned_throughput."""
    out: dict[str, Any] = {}
    size = entity.get("workload_size")
    if size is not None:
        if size not in WORKLOAD_SIZES:
            raise InvalidParameterValue(f"{where}.workload_size must be one of {', '.join(WORKLOAD_SIZES)}")
        out["workload_size"] = size
    kind = entity.get("workload_type")
    if kind is not None:
        if kind != "CPU":
            raise InvalidParameterValue(f"{where}.workload_type {str(kind)[:40]!r} needs a GPU; Brickyard serves on "
                                        "the CPU (workload_type CPU)")
        out["workload_type"] = kind
    if "scale_to_zero_enabled" in entity:
        if not isinstance(entity["scale_to_zero_enabled"], bool):
            raise InvalidParameterValue(f"{where}.scale_to_zero_enabled must be true or false")
        out["scale_to_zero_enabled"] = entity["scale_to_zero_enabled"]
    low, high = entity.get("min_provisioned_throughput"), entity.get("max_provisioned_throughput")
    if low is not None or high is not None:
        for field, value in (("min_provisioned_throughput", low), ("max_provisioned_throughput", high)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0
                                      or value % THROUGHPUT_CHUNK):
                raise InvalidParameterValue(f"{where}.{field} must be a multiple of {THROUGHPUT_CHUNK} tokens/s "
                                            "(the throughput chunk one worker process stands for)")
        if not high or (low or 0) > high:
            raise InvalidParameterValue(f"{where}: max_provisioned_throughput must be set and at least "
                                        "min_provisioned_throughput")
        if size is not None:
            raise InvalidParameterValue(f"{where}: give workload_size or provisioned throughput, not both")
        out["min_provisioned_throughput"] = low or 0
        out["max_provisioned_throughput"] = high
    return out


class ModelWorker:
    """One model version in one process, answering one request at a time (its pool hands it out)."""

    def __init__(self, model_dir: Path, env: dict[str, str], label: str, timeout: float) -> None:
        self.model_dir = model_dir
        self.env = env
        self.label = label
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr_tail: list[str] = []
        #: whom the worker's delegated token acts for: set only while it answers a request
        self.current: Principal | None = None
        #: a token acting as the caller, given with each request (models with a user auth policy read it as
        #: the invoker's token)
        self.invoker: str | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the process and wait until the model has loaded (or say why it could not)."""
        self.lines = queue.Queue()
        self.stderr_tail = []
        self.proc = subprocess.Popen([sys.executable, "-m", "brickyard.serving._agent_worker", str(self.model_dir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, env=self.env, cwd=str(self.model_dir))
        proc, lines = self.proc, self.lines

        def pump_out() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.put(line)
            lines.put(None)

        def pump_err() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                self.stderr_tail = (self.stderr_tail + [line.rstrip()])[-50:]
                log.debug("%s: %s", self.label, line.rstrip())

        threading.Thread(target=pump_out, daemon=True, name=f"model-out-{self.label}").start()
        threading.Thread(target=pump_err, daemon=True, name=f"model-err-{self.label}").start()
        try:
            first = self._next(START_SECONDS, starting=True)
        except BrickyardError as exc:
            raise InvalidState(f"{self.label} could not load: {exc.message}") from None
        if first.get("error"):
            self.close()
            raise InvalidState(f"{self.label} could not load: {first['error']['type']}: {first['error']['message']}")

    def _next(self, timeout: float, *, starting: bool = False) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            what = "did not finish loading" if starting else "did not answer"
            raise DeadlineExceeded(f"{self.label} {what} within {timeout:g} s; its process was stopped and is "
                                   "being replaced") from None
        if line is None:
            code = self.proc.wait() if self.proc is not None else None
            tail = " | ".join(self.stderr_tail[-3:])
            self.close()
            raise ModelFailed(f"{self.label}: the model's process exited (code {code}) while answering"
                              f"{': ' + tail[:500] if tail else ''}; it is being replaced")
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError:
            self.close()
            raise ModelFailed(f"{self.label}: the worker wrote something that is not a JSON answer "
                              f"({line[:80]!r}); it is being replaced") from None
        return message

    def predict(self, p: Principal, request: Any) -> tuple[Any, Any]:
        """(output, trace) for one request from ``p``."""
        self.current = p
        try:
            self._send({"id": uuid.uuid4().hex, "input": request, "stream": False, "invoker": self.invoker})
            answer = self._next(self.timeout)
        finally:
            self.current = None
        if "error" in answer:
            raise _failure(self.label, answer["error"], answer.get("trace"))
        return answer.get("output"), answer.get("trace")

    def stream(self, p: Principal, request: Any, on_trace: Callable[[Any], None],
               release: Callable[[], None]) -> Iterator[Any]:
        """The model's stream events for ``p``; ``on_trace`` gets the trace when the stream ends and ``release``
        runs once the stream is consumed, closed or failed (the worker is taken until then)."""
        self.current = p

        def done() -> None:
            self.current = None
            release()

        try:
            self._send({"id": uuid.uuid4().hex, "input": request, "stream": True, "invoker": self.invoker})
            first = self._next(self.timeout)
        except BaseException:
            done()
            raise
        if "error" in first:
            done()
            raise _failure(self.label, first["error"], first.get("trace"))

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
                    message = self._next(self.timeout)
            finally:
                done()

        return events()

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            raise ModelFailed(f"{self.label}: the model's process had exited; it is being replaced") from None

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _failure(label: str, error: dict[str, Any], trace: Any) -> BrickyardError:
    if error.get("status") == 400:  # the request does not fit the model (its signature, its format)
        return InvalidParameterValue(f"{label}: {error['message']}")
    return ModelFailed(f"{label} failed: {error['type']}: {error['message']}", trace=trace)


class _Waiter:
    """A request waiting in a pool's queue; the worker that frees up first is handed to it (first come, first
    served, so queue waits stay bounded by the queue's length)."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.worker: ModelWorker | None = None


class WorkerPool:
    """The worker processes of one served entity, with a bounded FIFO queue in front and idle scale-down."""

    def __init__(self, make: Callable[[], ModelWorker], *, size: int, warm: int, scale_to_zero: bool,
                 queue_limit: int, idle_seconds: float, label: str) -> None:
        self.label = label
        self.size = size
        self.warm = warm
        self.scale_to_zero = scale_to_zero
        self.queue_limit = queue_limit * size
        self.idle_seconds = idle_seconds
        self.workers = [make() for _ in range(size)]
        self._free = list(self.workers)
        self._lock = threading.Lock()
        self._queue: collections.deque[_Waiter] = collections.deque()
        self._starting = 0
        self.last_used = time.monotonic()
        self.closed = False
        #: queue wait of recent requests (seconds)
        self.waits: list[float] = []

    @property
    def waiting(self) -> int:
        return len(self._queue)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the workers kept warm (at least one, to prove the model loads); raise why one cannot."""
        for worker in self.workers[:max(1, self.warm)]:
            with self._lock:
                if worker.alive or worker not in self._free:
                    continue
                self._free.remove(worker)  # taken while it loads, so neither a request nor the reaper gets it
            try:
                worker.start()
            finally:
                self.release(worker, restart=False)

    def state(self) -> str:
        """READY, or SCALED_TO_ZERO (no process, the next request starts one), or STARTING (a cold start is
        under way and no worker is up yet)."""
        if any(w.alive for w in self.workers):
            return "READY"
        return "STARTING" if self._starting else "SCALED_TO_ZERO"

    def reap(self, now: float | None = None) -> int:
        """Stop idle processes beyond the warm ones once the pool has been idle ``idle_seconds``. Returns how
        many were stopped."""
        now = time.monotonic() if now is None else now
        stopped = 0
        with self._lock:
            if now - self.last_used < self.idle_seconds:
                return 0
            keep = self.warm
            for worker in self.workers:
                if worker.alive:
                    if keep > 0:
                        keep -= 1
                    elif worker in self._free:
                        worker.close()
                        stopped += 1
        return stopped

    def close(self) -> None:
        with self._lock:
            self.closed = True
            waiting, self._queue = list(self._queue), collections.deque()
        for waiter in waiting:
            waiter.ready.set()  # with no worker: they get a 503
        for worker in self.workers:
            worker.close()

    # -- requests -------------------------------------------------------------------------------
    def acquire(self) -> tuple[ModelWorker, bool, float]:
        """(a worker with a live process, whether this request had to start it -- a cold start --, seconds the
        request waited in the queue)."""
        begun = time.monotonic()
        with self._lock:
            if self.closed:
                raise TemporarilyUnavailable(f"{self.label} is being replaced; retry", retry_after=1)
            waiter = None
            if self._free and not self._queue:
                worker = next((w for w in self._free if w.alive), self._free[0])  # a live process first
                self._free.remove(worker)
            else:
                if len(self._queue) >= self.queue_limit:
                    raise TemporarilyUnavailable(
                        f"{self.label} is at capacity ({self.size} worker{'s' * (self.size > 1)} busy, "
                        f"{len(self._queue)} requests queued); retry shortly", retry_after=self._retry_after())
                waiter = _Waiter()
                self._queue.append(waiter)
        if waiter is not None:
            waiter.ready.wait()
            if waiter.worker is None:
                raise TemporarilyUnavailable(f"{self.label} is being replaced; retry", retry_after=1)
            worker = waiter.worker
        with self._lock:
            self.last_used = time.monotonic()
            cold = not worker.alive
            if cold:
                self._starting += 1
        waited = time.monotonic() - begun
        self.waits = (self.waits + [waited])[-1000:]
        if cold:
            try:
                worker.start()
            except BaseException:
                self.release(worker, restart=False)
                raise
            finally:
                with self._lock:
                    self._starting -= 1
        return worker, cold, waited

    def release(self, worker: ModelWorker, *, restart: bool = True) -> None:
        """Give a worker back (to the first request in the queue, if any); one whose process was stopped (hung,
        died) is restarted in the background first, unless the pool may stay cold (or ``restart`` is false: it
        just failed to start)."""
        with self._lock:
            self.last_used = time.monotonic()
            if restart and not worker.alive and not self.closed and not self.scale_to_zero:
                threading.Thread(target=self._restart, args=(worker,), daemon=True,
                                 name=f"restart-{self.label}").start()
                return
            self._hand_over(worker)

    def _hand_over(self, worker: ModelWorker) -> None:
        """(under the lock) the worker to the longest-waiting request, or back to the free list."""
        if self._queue:
            waiter = self._queue.popleft()
            waiter.worker = worker
            waiter.ready.set()
        else:
            self._free.append(worker)

    def _restart(self, worker: ModelWorker) -> None:
        try:
            worker.start()
        except BrickyardError as exc:
            log.warning("%s: a replacement worker did not start: %s", self.label, exc.message)
        finally:
            with self._lock:
                self._hand_over(worker)

    def _retry_after(self) -> float:
        recent = self.waits[-50:]
        return max(1.0, math.ceil(sum(recent) / len(recent))) if recent else 1.0
