"""The Statement Execution API's lifecycle: submit, wait or poll, result chunks, cancel.

Statements run on a small thread pool. A caller waits up to ``wait_timeout`` for the answer; after
that it gets ``PENDING``/``RUNNING`` and polls ``GET /api/2.0/sql/statements/{id}``. Results are kept
in memory for an hour and split into chunks of ``chunk_rows`` rows, formatted as ``JSON_ARRAY``
(every value a string or null, as Databricks does). Only the principal that submitted a statement
(or an admin) can read or cancel it.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..catalog import Principal
from ..core.errors import BrickyardError, InvalidParameterValue, NotFound
from ..core.ids import new_id, now_ms
from ..tables import type_text
from ..tables._types import type_name
from ._engine import Result, SqlEngine

_WAIT = re.compile(r"^(\d+)s$")


@dataclass
class _Record:
    id: str
    principal_id: str
    created: int
    state: str = "PENDING"
    future: Future[Result] | None = None
    table: pa.Table | None = None
    truncated: bool = False
    error: dict[str, str] | None = None
    connection: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    rows_done: int = 0  # rows the statement's AI functions have answered so far
    statement: str = ""  # the text, for its submitter's history

    def answered(self, n: int) -> None:
        with self.lock:
            self.rows_done += n


def parse_wait_timeout(value: str | None) -> float:
    if value is None:
        return 10.0
    m = _WAIT.match(str(value))
    if not m or not (int(m.group(1)) == 0 or 5 <= int(m.group(1)) <= 50):
        raise InvalidParameterValue("wait_timeout must be '0s' or between '5s' and '50s'")
    return float(m.group(1))


class StatementStore:
    def __init__(self, engine: SqlEngine, *, row_limit: int = 1_000_000, chunk_rows: int = 10_000,
                 workers: int = 2, ttl_ms: int = 3_600_000, per_user_bytes: int = 256 << 20) -> None:
        self.per_user_bytes = per_user_bytes
        self.engine = engine
        self.row_limit = row_limit
        self.chunk_rows = chunk_rows
        self.ttl_ms = ttl_ms
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sql")
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- lifecycle --------------------------------------------------------------------------------
    def submit(self, p: Principal, statement: str, *, parameters: list[dict[str, Any]] | None = None,
               catalog: str | None = None, schema: str | None = None, wait_timeout: str | None = None,
               on_wait_timeout: str | None = None, row_limit: int | None = None,
               disposition: str | None = None, format: str | None = None) -> dict[str, Any]:
        for name, value in (("on_wait_timeout", on_wait_timeout), ("disposition", disposition), ("format", format),
                            ("catalog", catalog), ("schema", schema)):
            if value is not None and not isinstance(value, str):
                raise InvalidParameterValue(f"{name} must be a string")
        if parameters is not None and (not isinstance(parameters, list)
                                       or not all(isinstance(x, dict) for x in parameters)):
            raise InvalidParameterValue("parameters must be a list of {name, value, type} objects")
        wait = parse_wait_timeout(wait_timeout)
        on_timeout = (on_wait_timeout or "CONTINUE").upper()
        if on_timeout not in ("CONTINUE", "CANCEL"):
            raise InvalidParameterValue("on_wait_timeout must be CONTINUE or CANCEL")
        if (disposition or "INLINE").upper() != "INLINE":
            raise InvalidParameterValue("only disposition INLINE is supported (results come back in the response)")
        if (format or "JSON_ARRAY").upper() != "JSON_ARRAY":
            raise InvalidParameterValue("only format JSON_ARRAY is supported with INLINE results")
        if isinstance(row_limit, bool):
            raise InvalidParameterValue("row_limit must be a non-negative integer")
        limit = self.row_limit
        if row_limit is not None:
            if not isinstance(row_limit, int) or row_limit < 0:
                raise InvalidParameterValue("row_limit must be a non-negative integer")
            limit = min(limit, row_limit) if row_limit else limit
        if not isinstance(statement, str) or not statement.strip():
            raise InvalidParameterValue("statement is required")
        self._expire()
        rec = _Record(id=new_id(), principal_id=p.id, created=now_ms(), statement=statement[:20_000])
        with self._lock:
            self._records[rec.id] = rec

        def attach(con: Any) -> None:
            rec.connection = con

        def run() -> Result:
            with rec.lock:
                if rec.state == "CANCELED":
                    raise BrickyardError("the statement was cancelled", error_code="CANCELLED")
                rec.state = "RUNNING"
            return self.engine.execute(p, statement, parameters=parameters, catalog=catalog, schema=schema,
                                       on_connection=attach, statement_id=rec.id,
                                       cancelled=lambda: rec.state == "CANCELED", progress=rec.answered)

        rec.future = self._pool.submit(run)
        rec.future.add_done_callback(lambda f: self._finish(rec, f, limit))
        if wait > 0:
            try:
                rec.future.result(timeout=wait)
            except FutureTimeout:
                if on_timeout == "CANCEL":
                    self._cancel(rec)
            except Exception:  # noqa: BLE001 - recorded by _finish as FAILED
                pass
        self._settle(rec)
        return self._response(rec)

    def _settle(self, rec: _Record) -> None:
        """Wait a moment for the done-callback to publish a finished future's outcome."""
        if rec.future is not None and rec.future.done():
            for _ in range(100):
                if rec.state in ("SUCCEEDED", "FAILED", "CANCELED", "CLOSED"):
                    return
                threading.Event().wait(0.001)

    def _finish(self, rec: _Record, fut: Future[Result], limit: int) -> None:
        with rec.lock:
            rec.connection = None
            if rec.state == "CANCELED":
                return
            exc = fut.exception()
            if exc is None:
                table = fut.result().table
                if table.num_rows > limit:
                    table, rec.truncated = table.slice(0, limit), True
                rec.table = table
                rec.state = "SUCCEEDED"
            elif isinstance(exc, BrickyardError):
                rec.error = {"error_code": exc.error_code, "message": exc.message}
                rec.state = "CANCELED" if exc.error_code == "CANCELLED" else "FAILED"
            else:
                rec.error = {"error_code": "INTERNAL_ERROR", "message": f"{type(exc).__name__}: {exc}"}
                rec.state = "FAILED"
        if rec.table is not None:
            self._make_room(rec)

    def _make_room(self, newest: _Record) -> None:
        """Keep a user's stored results within ``per_user_bytes``: drop their oldest results first (fetching one
        then says it expired), never the one just made."""
        with self._lock:
            mine = sorted((r for r in self._records.values() if r.principal_id == newest.principal_id
                           and r.table is not None), key=lambda r: r.created)
            total = sum(r.table.nbytes for r in mine)  # type: ignore[union-attr]
            for old in mine:
                if total <= self.per_user_bytes or old is newest:
                    break
                total -= old.table.nbytes  # type: ignore[union-attr]
                del self._records[old.id]

    def _own(self, p: Principal, statement_id: str) -> _Record:
        with self._lock:
            rec = self._records.get(statement_id)
        if rec is None or (rec.principal_id != p.id and not p.is_admin):
            raise NotFound(f"statement {statement_id[:64]!r} does not exist or has expired")
        return rec

    def get(self, p: Principal, statement_id: str) -> dict[str, Any]:
        rec = self._own(p, statement_id)
        self._settle(rec)
        return self._response(rec)

    def cancel(self, p: Principal, statement_id: str) -> None:
        self._cancel(self._own(p, statement_id))

    def _cancel(self, rec: _Record) -> None:
        with rec.lock:
            if rec.state in ("SUCCEEDED", "FAILED", "CANCELED", "CLOSED"):
                return
            rec.state = "CANCELED"
            con = rec.connection
        if con is not None:
            try:
                con.interrupt()
            except Exception:  # noqa: BLE001 - the connection may have just closed
                pass

    def chunk(self, p: Principal, statement_id: str, index: int) -> dict[str, Any]:
        rec = self._own(p, statement_id)
        if rec.state != "SUCCEEDED" or rec.table is None:
            raise InvalidParameterValue(f"statement {statement_id} has no result (state {rec.state})")
        count = self._chunk_count(rec.table)
        if not isinstance(index, int) or not (0 <= index < count):
            raise InvalidParameterValue(f"chunk_index must be between 0 and {count - 1}")
        return self._chunk(rec, index)

    # -- shapes -----------------------------------------------------------------------------------
    def _chunk_count(self, table: pa.Table) -> int:
        return max(1, -(-table.num_rows // self.chunk_rows))

    def _chunk(self, rec: _Record, index: int) -> dict[str, Any]:
        assert rec.table is not None
        offset = index * self.chunk_rows
        part = rec.table.slice(offset, self.chunk_rows)
        out: dict[str, Any] = {"chunk_index": index, "row_offset": offset, "row_count": part.num_rows}
        if part.num_columns:
            out["data_array"] = cells(part)
        if index + 1 < self._chunk_count(rec.table):
            out["next_chunk_index"] = index + 1
            out["next_chunk_internal_link"] = f"/api/2.0/sql/statements/{rec.id}/result/chunks/{index + 1}"
        return out

    def history(self, p: Principal, limit: int = 50) -> list[dict[str, Any]]:
        """The caller's statements still kept, newest first: id, text, state and when."""
        with self._lock:
            mine = [r for r in self._records.values() if r.principal_id == p.id]
        mine.sort(key=lambda r: r.created, reverse=True)
        return [{"statement_id": r.id, "statement": r.statement, "state": r.state, "created": r.created,
                 "rows": r.table.num_rows if r.table is not None else None} for r in mine[:limit]]

    def rows(self, p: Principal, statement_id: str, offset: int, limit: int) -> pa.Table:
        """``limit`` rows of a finished statement's result from ``offset`` (Arrow, for pages and charts)."""
        rec = self._own(p, statement_id)
        if rec.state != "SUCCEEDED" or rec.table is None:
            raise InvalidParameterValue(f"statement {statement_id} has no result (state {rec.state})")
        return rec.table.slice(max(0, offset), max(0, limit))

    def _response(self, rec: _Record) -> dict[str, Any]:
        status: dict[str, Any] = {"state": rec.state}
        if rec.rows_done:  # Brickyard's: how far the AI functions of a long statement have got
            status["progress"] = {"ai_rows_done": rec.rows_done}
        if rec.error is not None:
            status["error"] = dict(rec.error)
        out: dict[str, Any] = {"statement_id": rec.id, "status": status}
        if rec.state == "SUCCEEDED" and rec.table is not None:
            table = rec.table
            count = self._chunk_count(table)
            out["manifest"] = {
                "format": "JSON_ARRAY",
                "schema": {
                    "column_count": table.num_columns,
                    "columns": [{"name": f.name, "type_text": type_text(f.type).upper(),
                                 "type_name": type_name(type_text(f.type)), "position": i}
                                for i, f in enumerate(table.schema)],
                },
                "total_chunk_count": count,
                "chunks": [{"chunk_index": i, "row_offset": i * self.chunk_rows,
                            "row_count": min(self.chunk_rows, table.num_rows - i * self.chunk_rows)}
                           for i in range(count)],
                "total_row_count": table.num_rows,
                "truncated": rec.truncated,
            }
            out["result"] = self._chunk(rec, 0)
        return out

    def _expire(self) -> None:
        cutoff = now_ms() - self.ttl_ms
        with self._lock:
            for sid in [k for k, r in self._records.items() if r.created < cutoff]:
                del self._records[sid]


def _cell(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | str):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else str(v).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            return v.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return v.isoformat(timespec="milliseconds")
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    return json.dumps(v, default=lambda o: _cell(o) if not isinstance(o, dict | list) else o)


def cells(table: pa.Table) -> list[list[str | None]]:
    columns = [[_cell(v) for v in col.to_pylist()] for col in table.columns]
    return [list(row) for row in zip(*columns, strict=True)] if columns else []
