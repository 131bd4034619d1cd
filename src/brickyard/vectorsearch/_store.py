"""An index's row store: the durable truth behind one vector index.

One SQLite file per index (WAL, ``synchronous=FULL``): every row the index holds, with its vector, a
hash of the text it was embedded from, and a sequence number that grows with every change. An upsert
is acknowledged only after its transaction committed here; a Delta Sync batch commits its rows and the
source version it reflects in the same transaction. The search structures (HNSW graph, full-text
index) are derived from this store and are rebuilt or caught up from it after a crash.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson

_BEYOND_64_BITS = float(2**63)


def _maybe_rounded(value: dict[str, Any] | list[Any]) -> bool:
    """True if ``value`` holds a float that orjson may have made of an integer beyond 64 bits. One loop per
    container, the common flat row costing a single call (opening a large index checks every row)."""
    for v in value.values() if type(value) is dict else value:
        kind = type(v)
        if kind is float:
            if abs(v) >= _BEYOND_64_BITS and v.is_integer():
                return True
        elif (kind is dict or kind is list) and _maybe_rounded(v):
            return True
    return False


def decode_row(data: str) -> Any:
    """A row's stored JSON. orjson reads it three times faster than the standard library (opening a large
    index decodes every row), but it turns integers beyond 64 bits into floats and refuses the NaN that
    ``json.dumps`` writes: such rows are read again by the standard library."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
    return json.loads(data) if _maybe_rounded(value if type(value) in (dict, list) else [value]) else value


SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    pk TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    vector BLOB,
    text_hash TEXT
);
-- reads go by sequence: every sync and upsert reads the rows changed after a sequence number, and a
-- build reads all rows in sequence order. Without this index each was a scan and sort of the whole
-- table (100 ms per upsert at 100k rows).
CREATE INDEX IF NOT EXISTS rows_seq ON rows (seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- deleted keys and the sequence number of their deletion: another server process sharing this store
-- catches its search structures up from (rows changed, keys deleted) after the sequence it last saw
CREATE TABLE IF NOT EXISTS tombstones (pk TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_seq ON tombstones (seq);
"""


class StoredRow(NamedTuple):  # a tuple: opening a large index makes one per row
    pk: str
    seq: int
    data: dict[str, Any]
    vector: np.ndarray | None
    text_hash: str | None


class RowStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.executescript(SCHEMA)
        self._data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- meta --------------------------------------------------------------------------------------
    def meta(self, key: str, default: Any = None) -> Any:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    @property
    def seq(self) -> int:
        return int(self.meta("seq", 0))

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM rows").fetchone()[0])

    # -- writes ------------------------------------------------------------------------------------
    def apply(self, upserts: Iterable[tuple[str, dict[str, Any], np.ndarray | None, str | None]],
              deletes: Iterable[str] = (), *, meta: dict[str, Any] | None = None, replace: bool = False) -> int:
        """Upsert ``(pk, row, vector, text_hash)`` rows and delete ``pks`` in one committed transaction,
        together with ``meta`` (e.g. the source Delta version). ``replace`` empties the store first (a
        full rebuild). Returns the new sequence number."""
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                seq = int(json.loads((conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone() or ["0"])[0]))
                extra = dict(meta or {})
                if replace:
                    conn.execute("DELETE FROM rows")
                    conn.execute("DELETE FROM tombstones")
                    generation = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
                    extra["generation"] = int(json.loads(generation[0]) if generation else 0) + 1
                for pk in deletes:
                    seq += 1
                    conn.execute("DELETE FROM rows WHERE pk = ?", (pk,))
                    conn.execute("INSERT INTO tombstones (pk, seq) VALUES (?, ?) ON CONFLICT (pk) DO UPDATE SET"
                                 " seq = excluded.seq", (pk, seq))
                batch = []
                for pk, row, vector, text_hash in upserts:
                    seq += 1
                    blob = None if vector is None else np.asarray(vector, dtype="<f4").tobytes()
                    batch.append((pk, seq, json.dumps(row, default=str), blob, text_hash))
                conn.executemany("INSERT INTO rows (pk, seq, data, vector, text_hash) VALUES (?, ?, ?, ?, ?)"
                                 " ON CONFLICT (pk) DO UPDATE SET seq = excluded.seq, data = excluded.data,"
                                 " vector = excluded.vector, text_hash = excluded.text_hash", batch)
                for key, value in {**extra, "seq": seq}.items():
                    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET"
                                 " value = excluded.value", (key, json.dumps(value)))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return seq

    # -- reads -------------------------------------------------------------------------------------
    def position(self) -> tuple[int, int]:
        """(generation, sequence number): what a search structure built from this store reflects."""
        with self._lock:
            found = dict(self._conn.execute("SELECT key, value FROM meta WHERE key IN ('seq', 'generation')"))
        return int(json.loads(found.get("generation", "0"))), int(json.loads(found.get("seq", "0")))

    def changed_elsewhere(self) -> bool:
        """Whether another connection (another server process) committed since the last call: SQLite's
        ``data_version``, read from shared memory, so a query can afford to ask every time."""
        with self._lock:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        seen, self._data_version = self._data_version, version
        return seen != version

    def deleted_since(self, seq: int) -> list[str]:
        with self._lock:
            return [pk for (pk,) in self._conn.execute("SELECT pk FROM tombstones WHERE seq > ? ORDER BY seq", (seq,))]

    def hashes(self, pks: list[str]) -> dict[str, tuple[str | None, bytes | None]]:
        """pk -> (text hash, vector bytes) for the given keys that exist (to skip re-embedding)."""
        out: dict[str, tuple[str | None, bytes | None]] = {}
        with self._lock:
            for start in range(0, len(pks), 500):
                chunk = pks[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for pk, text_hash, blob in self._conn.execute(
                        f"SELECT pk, text_hash, vector FROM rows WHERE pk IN ({marks})", chunk):  # noqa: S608
                    out[pk] = (text_hash, blob)
        return out

    def seqs(self) -> dict[str, int]:
        with self._lock:
            return dict(self._conn.execute("SELECT pk, seq FROM rows"))

    def rows(self, pks: Iterable[str] | None = None, *, since_seq: int = 0) -> Iterator[StoredRow]:
        """Rows (all, or the given keys, or those changed after ``since_seq``), in sequence order."""
        with self._lock:
            if pks is None:
                fetched = self._conn.execute("SELECT pk, seq, data, vector, text_hash FROM rows WHERE seq > ?"
                                             " ORDER BY seq", (since_seq,)).fetchall()
            else:
                keys = list(pks)
                fetched = []
                for start in range(0, len(keys), 500):
                    chunk = keys[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    fetched += self._conn.execute(f"SELECT pk, seq, data, vector, text_hash FROM rows"  # noqa: S608
                                                  f" WHERE pk IN ({marks})", chunk).fetchall()
                fetched.sort(key=lambda r: r[1])
        for pk, seq, data, blob, text_hash in fetched:
            vector = None if blob is None else np.frombuffer(blob, dtype="<f4")
            yield StoredRow(pk, seq, decode_row(data), vector, text_hash)

    def scan(self, after: str | None, limit: int) -> list[StoredRow]:
        with self._lock:
            fetched = self._conn.execute("SELECT pk, seq, data, vector, text_hash FROM rows WHERE pk > ? ORDER BY pk"
                                         " LIMIT ?", (after or "", limit)).fetchall()
        return [StoredRow(pk, seq, decode_row(data), None if blob is None else np.frombuffer(blob, dtype="<f4"), h)
                for pk, seq, data, blob, h in fetched]
