"""Metastore connections: SQLite (default) or PostgreSQL, through the same SQL.

SQL in this package is written once, with ``?`` placeholders, and runs on both engines (so it never holds
a literal ``%``: pass LIKE patterns as parameters). Identifiers are
never built from user input: every value travels as a bound parameter (a test lints for f-strings
passed to ``execute``).

SQLite: WAL, ``synchronous=FULL``, foreign keys on, ``busy_timeout`` 10 s; writes run in
``BEGIN IMMEDIATE`` so writers queue instead of failing half-way. PostgreSQL: one connection per
thread, each write in one transaction; rows that must not change under us are locked with
``SELECT ... FOR UPDATE`` (``tx.for_update``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.errors import TemporarilyUnavailable

Row = dict[str, Any]


class Tx:
    """One open transaction. ``execute`` returns the driver cursor; ``one``/``all`` return dict rows."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self._conn = conn
        self.dialect = dialect
        self.for_update = " FOR UPDATE" if dialect == "postgres" else ""

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(self._sql(sql), tuple(params))

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cur = self.execute(sql, params)
        row = cur.fetchone()
        return None if row is None else dict(row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [dict(r) for r in self.execute(sql, params).fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        if row is None:
            return None
        return row[0] if self.dialect == "sqlite" else next(iter(dict(row).values()))


class Database:
    """A metastore database. ``target`` is a SQLite file path or a ``postgresql://`` URL."""

    def __init__(self, target: str, *, synchronous: str = "FULL") -> None:
        self.target = target
        self.synchronous = synchronous if synchronous in ("FULL", "NORMAL") else "FULL"
        self.dialect = "postgres" if target.startswith(("postgresql://", "postgres://")) else "sqlite"
        self._idle: list[Any] = []
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self._available = threading.Semaphore(self.POOL_SIZE)
        # SQLite lets one writer in at a time; queueing this process's writers on a lock avoids SQLite's
        # busy handler, which sleeps in steps of up to 100 ms (other processes still meet it).
        self._write_lock = threading.RLock()
        if self.dialect == "sqlite":
            Path(target).parent.mkdir(parents=True, exist_ok=True)

    POOL_SIZE = 24

    # -- connections -------------------------------------------------------------------------
    def _borrow(self) -> Any:
        """A connection from the pool (at most POOL_SIZE open; callers wait for one beyond that)."""
        if not self._available.acquire(timeout=30):
            raise TemporarilyUnavailable("the metastore has no free connection; retry shortly", retry_after=1)
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            return self._connect()
        except BaseException:
            self._available.release()
            raise

    def _give_back(self, conn: Any, *, broken: bool = False) -> None:
        with self._lock:
            if broken:
                if conn in self._all:
                    self._all.remove(conn)
            else:
                self._idle.append(conn)
        if broken:
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
        self._available.release()

    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            conn = sqlite3.connect(self.target, isolation_level=None, check_same_thread=False, timeout=10)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
        else:
            try:
                import psycopg
                from psycopg.rows import dict_row
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ImportError(
                    "a PostgreSQL metastore needs the 'postgres' extra: pip install 'brickyard[postgres]'"
                ) from exc
            conn = psycopg.connect(self.target, autocommit=True, row_factory=dict_row)
        with self._lock:
            self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            conns, self._all, self._idle = self._all, [], []
        for conn in conns:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass

    @contextmanager
    def tx(self, *, write: bool = True) -> Iterator[Tx]:
        """A transaction on a pooled connection: committed when the block ends, rolled back if it raises."""
        serial = self._write_lock if (write and self.dialect == "sqlite") else contextlib.nullcontext()
        with serial:
            yield from self._tx(write)

    @contextlib.contextmanager
    def writer_if_free(self) -> Iterator[bool]:
        """SQLite: take this process's writer lock if no other thread holds it (yields True), without
        waiting (yields False). PostgreSQL has no such lock: always False."""
        if self.dialect != "sqlite" or not self._write_lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            self._write_lock.release()

    def _tx(self, write: bool) -> Iterator[Tx]:
        conn = self._borrow()
        broken = False
        try:
            try:
                if self.dialect == "sqlite":
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                else:
                    conn.execute("BEGIN")
            except sqlite3.OperationalError as exc:
                raise TemporarilyUnavailable(f"the metastore is busy ({exc}); retry shortly", retry_after=1) from exc
            except Exception:
                broken = True
                raise
            try:
                yield Tx(conn, self.dialect)
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the connection may be gone; the DB rolls back on its own
                    broken = True
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    conn.execute("ROLLBACK")
                    raise TemporarilyUnavailable(f"the metastore is busy ({exc}); retry shortly",
                                                 retry_after=1) from exc
                except Exception:
                    broken = True
                    raise
        finally:
            self._give_back(conn, broken=broken)

    def is_unique_violation(self, exc: BaseException) -> bool:
        if isinstance(exc, sqlite3.IntegrityError):
            return "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc)
        return type(exc).__name__ == "UniqueViolation"

    def integrity_errors(self) -> tuple[type[BaseException], ...]:
        if self.dialect == "sqlite":
            return (sqlite3.IntegrityError,)
        import psycopg

        return (psycopg.errors.IntegrityError,)

    # -- schema ------------------------------------------------------------------------------
    def migrate(self) -> None:
        """Apply the migrations that have not run yet, each in its own transaction."""
        from ._schema import MIGRATIONS

        with self.tx() as tx:
            if self.dialect == "postgres":
                tx.execute("SELECT pg_advisory_xact_lock(72707369)")
            tx.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            done = {r["name"] for r in tx.all("SELECT name FROM _migrations")}
            for name, statements in MIGRATIONS:
                if name in done:
                    continue
                for stmt in statements:
                    tx.execute(stmt)
                from ..core.ids import now_ms

                tx.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (name, now_ms()))
