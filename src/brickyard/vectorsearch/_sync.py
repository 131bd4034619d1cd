"""Delta Sync: following the source table's change data feed (incremental when it can, a full rebuild
when the feed has a gap or the columns changed), in the background or continuously. Server processes sharing
a home take turns (a file lock per index), so an index is never synced twice at once."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..catalog import Principal
from ..core.errors import (
    BrickyardError,
    InvalidParameterValue,
    InvalidState,
    PermissionDenied,
)
from ..core.names import parse_name
from ..tables import governs
from ._live import Live

log = logging.getLogger("brickyard.vectorsearch")
RELEASE_AFTER_ROWS = 1000  # a sync of this many rows gives its working memory back when it ends


class Sync:
    """Methods of :class:`VectorSearch` (mixed in there; they use its catalog, tables and open indexes)."""

    # -- Delta Sync ----------------------------------------------------------------------------------
    def sync(self, p: Principal, name: str) -> None:
        live = self._writable(p, name, "syncVectorIndex")
        ds = live.spec.get("delta_sync_index_spec")
        if ds is None:
            raise InvalidParameterValue("sync() works on DELTA_SYNC indexes")
        if ds.get("pipeline_type") == "CONTINUOUS":
            raise InvalidParameterValue("this index syncs continuously; sync() is for TRIGGERED pipelines")
        if live.syncing:
            raise InvalidState("Pipeline is in state RUNNING; wait for the current sync to finish")
        self._start_sync(str(parse_name(name, 3)), live, background=True)

    def _start_sync(self, name: str, live: Live, *, background: bool, wait: bool = True) -> None:
        """Sync ``name``; in the background, on a thread of its own (joined when one is already running)."""
        if not background:
            self.sync_now(name)
            return
        with self._lock:
            thread = live.sync_thread if live.syncing and live.sync_thread is not None else None
            if thread is None:
                live.syncing = True

                def run() -> None:
                    try:
                        self.sync_now(name)
                    except Exception:  # noqa: BLE001 - recorded on the index
                        log.exception("sync of %s failed", name)

                thread = threading.Thread(target=run, daemon=True, name=f"vs-sync-{name}")
                live.sync_thread = thread
                thread.start()
        # A small sync is done before the answer, so clients see the index ready at once (the official
        # client polls every 30 s otherwise); a long one goes on in the background.
        if wait:
            thread.join(timeout=self.sync_wait_seconds)

    def sync_now(self, name: str, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Bring a Delta Sync index up to its source table's latest version: incrementally from the change
        data feed, or by a full rebuild when the feed has a gap. Returns what it did."""
        live = self._open(name)
        ds = live.spec["delta_sync_index_spec"]
        live.syncing = True

        def track(done: int, total: int) -> None:
            live.rows_done, live.rows_total = done, total
            if progress is not None:
                progress(done, total)

        try:
            with live.write_lock, _across_processes(live.store.path.parent / "sync.lock"):
                owner = self._owner(live)
                src = self.catalog.require(owner, "SELECT", "table", ds["source_table"], action="syncVectorIndex")
                table = self.tables.open(src)
                version = int(table.version())
                last = live.store.meta("source_version")
                live.initial_sync = last is None
                if last is not None and int(last) >= version:
                    live.last_error = None
                    return {"mode": "none", "version": version}
                columns = self._source_columns(live, table, version)
                result = None
                if last is not None and not governs(src):  # a filtered or masked source is read whole, as
                    try:                                    # its owner may see it now (see _rebuild)
                        if not self._additive(live, src, int(last), columns):
                            raise _Gap("columns of the source were dropped, renamed or changed type")
                        result = self._incremental(live, src, int(last), version, track)
                    except _Gap as gap:
                        log.info("index %s: %s; rebuilding from version %s", name, gap, version)
                if result is None:
                    result = self._rebuild(live, src, version, track)
                live.last_error = None
                live.state = "ONLINE"
                return result
        except BrickyardError as exc:
            live.last_error = f"sync failed: {exc.message}"
            raise
        except Exception as exc:
            live.last_error = f"sync failed: {type(exc).__name__}: {exc}"
            raise
        finally:
            large = (live.rows_total or 0) >= RELEASE_AFTER_ROWS
            live.syncing = live.initial_sync = False
            live.rows_done, live.rows_total = 0, None
            if large and self.release_memory is not None:
                self.release_memory()

    def _source_columns(self, live: Live, table: Any, version: int) -> dict[str, str]:
        """The source's columns at ``version`` (name -> type), checked against what the index needs: a sync
        fails, and the index keeps serving what it has, when the primary key or a column in
        ``columns_to_sync`` is gone."""
        columns = {f.name: str(f.type) for f in pa.schema(table.schema().to_arrow())}
        live.schemas[version] = columns
        ds = live.spec["delta_sync_index_spec"]
        needed = [live.spec["primary_key"], *(ds.get("columns_to_sync") or []),
                  *(c["name"] for c in ds.get("embedding_source_columns") or []),
                  *(c["name"] for c in ds.get("embedding_vector_columns") or [])]
        missing = sorted({c for c in needed if c not in columns})
        if missing:
            raise InvalidState(f"the source table {ds['source_table']} no longer has column(s) {', '.join(missing)} "
                               "that this index needs; restore them, or recreate the index")
        return columns

    def _additive(self, live: Live, src: Any, last: int, columns: dict[str, str]) -> bool:
        """Whether the source's schema only gained columns since version ``last``, so the change feed
        describes every row the index must change. Dropping or renaming a column rewrites what unchanged
        rows hold too, which only a rebuild sees."""
        before = live.schemas.get(last)
        if before is None:
            before = {f.name: str(f.type) for f in pa.schema(self.tables.open(src, last).schema().to_arrow())}
        for version in [v for v in live.schemas if v < last]:
            del live.schemas[version]
        return all(columns.get(name) == kind for name, kind in before.items())

    def _columns(self, live: Live, names: list[str]) -> list[str]:
        wanted = live.spec["delta_sync_index_spec"].get("columns_to_sync")
        return [c for c in names if wanted is None or c in wanted]

    def _incremental(self, live: Live, src: Any, last: int, version: int,
                     progress: Callable[[int, int], None] | None) -> dict[str, Any] | None:
        owner = self._owner(live)
        try:
            changes = self.tables.changes(owner, src.full_name, start=last + 1, end=version)
        except PermissionDenied:
            raise
        except Exception as exc:  # noqa: BLE001 - vacuumed, retention, CDF off: any missing piece is a gap
            raise _Gap(f"the change feed from version {last + 1} is not readable ({str(exc)[:120]})") from None
        pk = live.spec["primary_key"]
        final: dict[str, dict[str, Any] | None] = {}
        cols = self._columns(live, [c for c in changes.column_names if not c.startswith("_")])
        if pk not in cols:
            raise _Gap(f"the primary key {pk!r} is no longer a column of the source")
        ordered = sorted(changes.to_pylist(), key=lambda r: (r["_commit_version"], r["_change_type"] != "delete"))
        for row in ordered:
            kind = row["_change_type"]
            key = str(row[pk])
            if kind == "delete":
                final[key] = None
            elif kind in ("insert", "update_postimage"):
                final[key] = {c: row.get(c) for c in cols}
        upserts = [r for r in final.values() if r is not None]
        deletes = [k for k, r in final.items() if r is None]
        total = len(upserts)
        if progress:
            progress(0, total)
        prepared = self._prepare_rows(live, upserts, progress=(lambda n: progress(n, total)) if progress else None)
        self._commit(live, prepared, deletes, meta={"source_version": version})
        self._writeback(live, prepared, deletes, replace=False)
        expected = self.tables.dataset(src, version).count_rows()
        if expected != live.store.count():  # a feed that silently missed a change (e.g. CDF turned off)
            raise _Gap(f"the index holds {live.store.count()} rows after the change feed, the source {expected}")
        return {"mode": "incremental", "version": version, "upserted": len(prepared), "deleted": len(deletes)}

    def _rebuild(self, live: Live, src: Any, version: int, progress: Callable[[int, int], None] | None
                 ) -> dict[str, Any]:
        # as the index's owner may see it: a row filter or a mask applies to the index too, so an index never
        # serves what its owner could not read (a filtered source is rebuilt on every sync: membership changes
        # and the filter's own logic are not in the change feed)
        data = self.tables.governed(self._owner(live), src, self.tables.dataset(src, version).to_table())
        cols = self._columns(live, data.column_names)
        rows = data.select(cols).to_pylist()
        if progress:
            progress(0, len(rows))
        prepared = self._prepare_rows(live, rows, progress=(lambda n: progress(n, len(rows))) if progress else None,
                                      batch=True)  # a full build is batch work (on Ray when there is a cluster)
        self._commit(live, prepared, [], meta={"source_version": version}, replace=True)
        self._writeback(live, prepared, [], replace=True)
        return {"mode": "full", "version": version, "upserted": len(prepared), "deleted": 0}

    def _start_continuous(self, name: str, live: Live) -> None:
        if live.thread is not None or self._closed:
            return

        def loop() -> None:
            while not live.stop.wait(self.poll_seconds):
                try:
                    self.sync_now(name)
                except Exception:  # noqa: BLE001 - retried on the next tick; the error shows in status
                    log.debug("continuous sync of %s failed", name, exc_info=True)

        live.thread = threading.Thread(target=loop, daemon=True, name=f"vs-continuous-{name}")
        live.thread.start()



class _Gap(Exception):
    pass


@contextlib.contextmanager
def _across_processes(path: Path) -> Iterator[None]:
    """One sync of an index at a time among the server processes sharing a home (an OS file lock, dropped by
    the kernel if the holder dies): the second finds the index already at the source's version."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock

