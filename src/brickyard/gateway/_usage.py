"""Usage rows for ``system.serving.endpoint_usage``, written off the request path.

Requests append a row to an in-memory buffer and to a journal file (one write call; never failing the
request); a background thread commits the buffer to the Delta table every second. A killed server
loses no row: the next workspace to open replays its journal exactly once. A failing sink drops rows
from the live buffer (counted in ``dropped``) instead of failing requests; they stay in the journal for
the next start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
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


Write = Callable[[list[dict[str, Any]], "tuple[str, int] | None"], "int | None"]


class BufferedSink:
    """Buffer rows and hand them to ``write(rows, txn)`` in batches from a background thread.

    With a ``journal`` directory, every row is also appended to a journal segment file as it is recorded
    (one ``write`` system call; the kernel keeps it when the process is killed). Once a second the
    segment is closed and its rows are committed with ``txn = (journal id, segment number)``; Delta skips
    a transaction it has already committed, so a segment replayed after a crash lands exactly once. A
    killed server therefore loses no acknowledged row (only a power cut can lose the page cache), and
    the next server to open the workspace replays what a dead one left. Each process journals into its
    own directory, held with an exclusive lock while it lives.
    """

    def __init__(self, write: Write, *, interval: float = 1.0, max_buffer: int = 100_000,
                 journal: Path | None = None, name: str = "sink") -> None:
        self._write = write
        self.interval = interval
        self.max_buffer = max_buffer
        self._rows: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self.dropped = 0
        self.written = 0
        self.replayed = 0
        self._journal: _Journal | None = None
        if journal is not None:
            self._journal = _Journal(journal, name)
            self.replayed = self._journal.recover(self._commit)
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"{name}-sink")
        self._thread.start()

    def record(self, row: dict[str, Any]) -> None:
        with self._lock:
            if len(self._rows) >= self.max_buffer:
                self.dropped += 1
                return
            if self._journal is not None:
                try:
                    self._journal.append(row)
                except OSError:  # a full disk must not fail requests; the row still goes to Delta
                    log.warning("usage journal write failed; the row is only in memory")
            self._rows.append(row)

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        with self._flush_lock:
            with self._lock:
                batch, self._rows = list(self._rows), deque()
                segment = self._journal.rotate() if self._journal is not None and batch else None
            if not batch:
                return
            lost = self._commit(batch, segment)
            if segment is not None and lost == 0:
                segment.path.unlink(missing_ok=True)

    def _commit(self, batch: list[dict[str, Any]], segment: _Segment | None) -> int:
        txn = (segment.app_id, segment.number) if segment is not None else None
        try:
            lost = int(self._write([dict(r) for r in batch], txn) or 0)  # a writer may report rows it could not place
        except Exception:  # noqa: BLE001 - a sink failure must never reach a request
            lost = len(batch)
            log.exception("could not write %d rows; they stay in the journal for the next start", len(batch))
        self.written += len(batch) - lost
        self.dropped += lost
        return lost

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()
        if self._journal is not None:
            self._journal.close()


@dataclass(frozen=True)
class _Segment:
    app_id: str
    number: int
    path: Path


class _Journal:
    """Append-only segment files in ``<root>/<name>-<uuid>/``, locked by the process that writes them."""

    def __init__(self, root: Path, name: str) -> None:
        import fcntl
        import uuid

        self.root = root
        self.name = name
        root.mkdir(parents=True, exist_ok=True)
        self.app_id = f"{name}-{uuid.uuid4().hex[:12]}"
        self.dir = root / self.app_id
        # Made under a name recover() does not look at, locked, then renamed into place: another process
        # must never see this directory before its lock is held, or it takes it for a dead one and removes it.
        staging = root / f".new-{self.app_id}"
        staging.mkdir()
        self._lock_fd = os.open(staging / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(staging, self.dir)
        self.number = 0
        self._fd = self._open(1)

    def _open(self, number: int) -> int:
        self.number = number
        return os.open(self.dir / f"{number:012d}.jsonl", os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)

    def append(self, row: dict[str, Any]) -> None:
        os.write(self._fd, (json.dumps(row, default=str, separators=(",", ":")) + "\n").encode())

    def rotate(self) -> _Segment:
        """Close the current segment (its rows are being committed) and start the next."""
        done = _Segment(self.app_id, self.number, self.dir / f"{self.number:012d}.jsonl")
        os.close(self._fd)
        self._fd = self._open(self.number + 1)
        return done

    def recover(self, commit: Callable[[list[dict[str, Any]], _Segment], int]) -> int:
        """Commit what dead processes left in their journals (exactly once), then remove their directories."""
        import fcntl

        replayed = 0
        for staged in self.root.glob(f".new-{self.name}-*"):
            # A process killed while making its journal leaves this; one alive is done within microseconds,
            # so only what is a minute old and unlocked is removed.
            with contextlib.suppress(OSError):
                if time.time() - staged.stat().st_mtime > 60:
                    fd = os.open(staged / "lock", os.O_CREAT | os.O_RDWR, 0o600)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        shutil.rmtree(staged, ignore_errors=True)
                    finally:
                        os.close(fd)
        for other in sorted(p for p in self.root.glob(f"{self.name}-*") if p.is_dir() and p != self.dir):
            try:
                fd = os.open(other / "lock", os.O_CREAT | os.O_RDWR, 0o600)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue  # its process is alive
            try:
                clean = True
                for segment in sorted(other.glob("*.jsonl")):
                    rows = _read_rows(segment)
                    if rows and commit(rows, _Segment(other.name, int(segment.stem), segment)) != 0:
                        clean = False
                        continue
                    replayed += len(rows)
                    segment.unlink()
                if clean:
                    shutil.rmtree(other, ignore_errors=True)
            finally:
                os.close(fd)
        return replayed

    def close(self) -> None:
        os.close(self._fd)
        if not any(p.stat().st_size for p in self.dir.glob("*.jsonl")):
            shutil.rmtree(self.dir, ignore_errors=True)
        os.close(self._lock_fd)


def _read_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:  # the torn last line of a killed write: never acknowledged
            continue
    return rows


def usage_row(*, request_id: str, client_request_id: str | None, requester: str, endpoint: str, endpoint_id: str,
              entity: str, status: int, tokens_in: int, tokens_out: int, started: float,
              streaming: bool, context: Any, blocked_by: str = "") -> dict[str, Any]:
    """One usage row; ``usage_context`` keeps the caller's context, plus ``brickyard.blocked_by`` ("guardrail")
    when a guardrail refused the call (so monitoring can count guardrail hits)."""
    ctx = {str(k): str(v) for k, v in context.items()} if isinstance(context, dict) else {}
    if blocked_by:
        ctx["brickyard.blocked_by"] = blocked_by
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
            "request_date": (dt.datetime.fromtimestamp(started, dt.UTC).date() - dt.date(1970, 1, 1)).days,
            "request_time": int(started * 1000), "status_code": status, "sampling_fraction": 1.0,
            "execution_duration_ms": int((time.time() - started) * 1000), "request": req_text,
            "response": resp_text, "served_entity_id": entity, "logging_error_codes": errors, "requester": requester}
