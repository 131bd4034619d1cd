"""The access log and request ids.

Every HTTP request gets a request id (``x-request-id`` in the response, and in every error body as
Databricks' ``google.rpc.RequestInfo`` detail, which the SDK parses) and, when it ends, one JSON line:

    {"time": "2026-12-04T20:47:16.123Z", "request_id": "...", "principal": "bob@example.com",
     "method": "POST", "route": "/api/2.0/vector-search/indexes/{index}/query", "status": 200,
     "bytes": 1834, "latency_ms": 1.9}

The line names the route template, not the path, and holds no header, query string or body, so no token,
secret or payload reaches it. Lines are written by a background thread (the request only queues a
tuple) to stderr, to a file (``BRICKYARD_ACCESS_LOG=PATH``, appended, reopened if rotated away) or
nowhere (``off``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

__all__ = ["AccessLog", "request_id"]

SCOPE_KEY = "brickyard"  # scope[SCOPE_KEY]: {"request_id", "principal", "route"} filled in as the request goes


def request_id(scope: Any) -> str | None:
    state = scope.get(SCOPE_KEY) if isinstance(scope, dict) else None
    return state["request_id"] if state else None


class AccessLog:
    """ASGI middleware that assigns request ids and logs each request once it has been answered."""

    def __init__(self, app: Any, target: str) -> None:
        self.app = app
        self.target = target
        self.enabled = target != "off"
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if self.enabled:
            self._thread = threading.Thread(target=self._write_loop, name="brickyard-access-log", daemon=True)
            self._thread.start()

    def __getattr__(self, name: str) -> Any:  # state, routes, ... of the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = os.urandom(12).hex()
        state = {"request_id": rid, "principal": None, "route": None}
        scope[SCOPE_KEY] = state
        start = time.perf_counter()
        status = [0]
        sent = [0]
        header = (b"x-request-id", rid.encode())

        async def tracked(message: Any) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            elif kind == "http.response.body":
                sent[0] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            if self.enabled:
                self._queue.put((time.time(), rid, state["principal"], scope["method"],
                                 state["route"] or "(no route)", status[0] or 500, sent[0],
                                 round((time.perf_counter() - start) * 1000, 2)))

    # -- the writer thread ---------------------------------------------------------------------------
    def _write_loop(self) -> None:
        out: Any = None
        try:
            while True:
                item = self._queue.get()
                batch = [item]
                with contextlib.suppress(queue.Empty):
                    while len(batch) < 1000:
                        batch.append(self._queue.get_nowait())
                lines = b"".join(_line(i) for i in batch if i is not None)
                if lines:
                    out = self._write(out, lines)
                if None in batch:
                    return
        finally:
            if out is not None and out is not sys.stderr:
                out.close()

    def _write(self, out: Any, lines: bytes) -> Any:
        try:
            if self.target == "stderr":
                sys.stderr.write(lines.decode())
                sys.stderr.flush()
                return out
            path = Path(self.target)
            if out is not None:  # rotated away (logrotate's move-and-create): open the new file
                with contextlib.suppress(OSError):
                    if os.stat(path).st_ino != os.fstat(out.fileno()).st_ino:
                        out.close()
                        out = None
            if out is None:
                out = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open across batches
            out.write(lines)
        except (OSError, ValueError):  # a full disk or a closed stream must never fail a request
            pass
        return out

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None


def _line(item: tuple[Any, ...]) -> bytes:
    when, rid, principal, method, route, status, size, latency = item
    stamp = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return orjson.dumps({"time": stamp, "request_id": rid, "principal": principal, "method": method,
                         "route": route, "status": status, "bytes": size, "latency_ms": latency}) + b"\n"
