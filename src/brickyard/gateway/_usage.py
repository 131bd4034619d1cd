"""Usage rows for ``system.serving.endpoint_usage``, written off the request path.

Requests append a row to an in-memory buffer (never blocking, never failing the request); a
background thread commits the buffer to the Delta table every second. So a killed server loses at
most the rows of its last second, and a failing sink drops rows (counted in ``dropped``) instead of
failing requests.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import pyarrow as pa

log = logging.getLogger("brickyard.gateway")

USAGE_TABLE = "system.serving.endpoint_usage"
USAGE_SCHEMA = pa.schema([
    ("request_id", pa.string()),
    ("client_request_id", pa.string()),
    ("request_time", pa.timestamp("ms", tz="UTC")),
    ("requester", pa.string()),
    ("endpoint_name", pa.string()),
    ("endpoint_id", pa.string()),
    ("served_entity_name", pa.string()),
    ("status_code", pa.int32()),
    ("input_token_count", pa.int64()),
    ("output_token_count", pa.int64()),
    ("latency_ms", pa.int64()),
    ("request_streaming", pa.bool_()),
    ("usage_context", pa.map_(pa.string(), pa.string())),
])


class BufferedSink:
    """Buffer rows and hand them to ``write`` in batches from a background thread."""

    def __init__(self, write: Callable[[list[dict[str, Any]]], int | None], *, interval: float = 1.0,
                 max_buffer: int = 100_000) -> None:
        self._write = write
        self.interval = interval
        self.max_buffer = max_buffer
        self._rows: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._loop, daemon=True, name="usage-sink")
        self._thread.start()

    def record(self, row: dict[str, Any]) -> None:
        with self._lock:
            if len(self._rows) >= self.max_buffer:
                self.dropped += 1
                return
            self._rows.append(row)

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._rows = list(self._rows), deque()
        if not batch:
            return
        try:
            lost = int(self._write(batch) or 0)  # a writer may report rows it could not place
            self.written += len(batch) - lost
            self.dropped += lost
        except Exception:  # noqa: BLE001 - a sink failure must never reach a request
            self.dropped += len(batch)
            log.exception("dropped %d usage rows: the sink failed", len(batch))

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()


def usage_row(*, request_id: str, client_request_id: str | None, requester: str, endpoint: str, endpoint_id: str,
              entity: str, status: int, tokens_in: int, tokens_out: int, started: float,
              streaming: bool, context: Any) -> dict[str, Any]:
    ctx = {str(k): str(v) for k, v in context.items()} if isinstance(context, dict) else {}
    return {"request_id": request_id, "client_request_id": client_request_id,
            "request_time": int(started * 1000), "requester": requester, "endpoint_name": endpoint,
            "endpoint_id": endpoint_id, "served_entity_name": entity, "status_code": status,
            "input_token_count": tokens_in, "output_token_count": tokens_out,
            "latency_ms": int((time.time() - started) * 1000), "request_streaming": streaming,
            "usage_context": list(ctx.items())}


PAYLOAD_SCHEMA = pa.schema([
    ("databricks_request_id", pa.string()),
    ("client_request_id", pa.string()),
    ("request_date", pa.date32()),
    ("request_time", pa.timestamp("ms", tz="UTC")),
    ("status_code", pa.int32()),
    ("sampling_fraction", pa.float64()),
    ("execution_duration_ms", pa.int64()),
    ("request", pa.string()),
    ("response", pa.string()),
    ("served_entity_id", pa.string()),
    ("logging_error_codes", pa.list_(pa.string())),
    ("requester", pa.string()),
])
MAX_PAYLOAD = 1024 * 1024
#: request fields that may carry credentials and are never logged
SECRET_KEYS = ("api_key", "apikey", "authorization", "token", "access_token", "password", "secret", "client_secret")


def scrub(value: Any, secrets: frozenset[str]) -> Any:
    """A copy of a request/response with credential fields removed and known secret values masked."""
    if isinstance(value, dict):
        return {k: ("[REDACTED]" if k.lower() in SECRET_KEYS else scrub(v, secrets)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, str) and secrets:
        for s in secrets:
            if s and s in value:
                value = value.replace(s, "[REDACTED]")
    return value


def payload_row(*, request_id: str, client_request_id: str | None, requester: str, entity: str, status: int,
                started: float, request: Any, response: Any, secrets: frozenset[str], table: str) -> dict[str, Any]:
    import datetime as dt
    import json

    errors = []
    req_text = json.dumps(scrub(request, secrets), ensure_ascii=False, default=str)
    resp_text = json.dumps(scrub(response, secrets), ensure_ascii=False, default=str) if response is not None else None
    if len(req_text.encode()) > MAX_PAYLOAD:
        req_text, errors = None, [*errors, "MAX_REQUEST_SIZE_EXCEEDED"]
    if resp_text is not None and len(resp_text.encode()) > MAX_PAYLOAD:
        resp_text, errors = None, [*errors, "MAX_RESPONSE_SIZE_EXCEEDED"]
    return {"_table": table, "databricks_request_id": request_id, "client_request_id": client_request_id,
            "request_date": dt.datetime.fromtimestamp(started, dt.UTC).date(),
            "request_time": int(started * 1000), "status_code": status, "sampling_fraction": 1.0,
            "execution_duration_ms": int((time.time() - started) * 1000), "request": req_text,
            "response": resp_text, "served_entity_id": entity, "logging_error_codes": errors, "requester": requester}
