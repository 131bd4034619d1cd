"""Direct Access writes: rows checked against the index schema (all or nothing), upserted or deleted, stored
in the row store and applied to the engine."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..catalog import Principal
from ..core.errors import (
    InvalidParameterValue,
    InvalidState,
)
from ..core.names import parse_name
from ..serving import batch_work
from ._live import EMBED_BATCH, Live
from ._rows import MAX_REASONS, RowSchema

log = logging.getLogger("brickyard.vectorsearch")


class Writes:
    """Methods of :class:`VectorSearch` (mixed in there; they use its catalog, tables and open indexes)."""

    # -- writes: Direct Access ---------------------------------------------------------------------
    def _writable(self, p: Principal, name: str, action: str) -> Live:
        name = str(parse_name(name, 3, what="index name"))
        return self._open(name, self.catalog.require(p, "MODIFY", "table", name, action=action))

    def upsert(self, p: Principal, name: str, inputs: Any) -> dict[str, Any]:
        live = self._writable(p, name, "upsertVectorIndexData")
        spec = live.spec
        da = spec.get("direct_access_index_spec")
        if da is None:
            raise InvalidParameterValue("upsert-data works on DIRECT_ACCESS indexes; a DELTA_SYNC index follows "
                                        "its source table")
        if isinstance(inputs, str):
            try:
                inputs = json.loads(inputs)
            except ValueError:
                raise InvalidParameterValue("inputs_json is not valid JSON") from None
        if not isinstance(inputs, list) or not all(isinstance(r, dict) for r in inputs):
            raise InvalidParameterValue("inputs_json must be a JSON array of row objects")
        if len(inputs) > 100_000:
            raise InvalidParameterValue("at most 100000 rows per upsert")
        schema = self._row_schema(live)
        problems = schema.problems(inputs, schema.row_problem)
        if problems:  # all or nothing: one bad row and nothing of the request is written
            return _refused(problems, len(inputs))
        with live.write_lock:
            rows = self._prepare_rows(live, inputs)
            written = self._commit(live, rows, [])
        return {"status": "SUCCESS", "result": {"success_row_count": written, "failed_primary_keys": []}}

    @staticmethod
    def _row_schema(live: Live) -> RowSchema:
        spec = live.spec
        da = spec["direct_access_index_spec"]
        vector = (da.get("embedding_vector_columns") or [{}])[0].get("name")
        return RowSchema(json.loads(da["schema_json"]), spec["primary_key"], vector_column=vector,
                         dimension=int(spec["dimension"]))

    def delete_rows(self, p: Principal, name: str, keys: Any) -> dict[str, Any]:
        live = self._writable(p, name, "deleteVectorIndexData")
        if live.spec.get("direct_access_index_spec") is None:
            raise InvalidParameterValue("delete-data works on DIRECT_ACCESS indexes")
        if not isinstance(keys, list) or not keys:
            raise InvalidParameterValue("primary_keys must be a non-empty list")
        if len(keys) > 100_000:
            raise InvalidParameterValue("at most 100000 keys per delete")
        schema = self._row_schema(live)
        problems = schema.problems(keys, schema.deleted_key_problem)
        if problems:
            return _refused(problems, len(keys))
        pks = list(dict.fromkeys(str(k) for k in keys))
        with live.write_lock:
            self._commit(live, [], pks)
        return {"status": "SUCCESS", "result": {"success_row_count": len(pks), "failed_primary_keys": []}}

    #: how many embedding requests a full build keeps in flight: 1, or the Ray cluster's workers (the workspace
    #: sets it when BRICKYARD_RAY_ADDRESS is given)
    batch_lanes: Callable[[], int] = staticmethod(lambda: 1)  # type: ignore[assignment]

    def _prepare_rows(self, live: Live, rows: list[dict[str, Any]], failed: list[Any] | None = None,
                      progress: Callable[[int], None] | None = None, *, batch: bool = False
                      ) -> list[tuple[str, dict[str, Any], np.ndarray, str | None]]:
        """(pk, row, vector, text hash) for rows: vectors checked, or embedded (unchanged texts reuse
        their stored vector). ``batch`` (a full build): the embedding calls are batch work, several in flight
        on the Ray cluster's workers when there is one; each still passes the AI Gateway as the owner."""
        spec = live.spec
        inner = spec.get("delta_sync_index_spec") or spec.get("direct_access_index_spec") or {}
        pk_col, dim = spec["primary_key"], int(spec["dimension"])
        out: list[tuple[str, dict[str, Any], np.ndarray, str | None]] = []
        if inner.get("embedding_vector_columns"):
            vcol = inner["embedding_vector_columns"][0]["name"]
            for row in rows:
                vector = row.get(vcol)
                try:
                    arr = np.asarray(vector, dtype=np.float32)
                except (TypeError, ValueError):
                    arr = np.zeros(0, dtype=np.float32)
                if arr.shape != (dim,) or not np.isfinite(arr).all():
                    if failed is None:
                        raise InvalidParameterValue(f"row {row.get(pk_col)!r}: {vcol} must be {dim} finite numbers")
                    failed.append(row.get(pk_col))
                    continue
                data = {k: v for k, v in row.items() if k != vcol}
                out.append((str(row[pk_col]), data, arr, None))
            return out
        source = inner["embedding_source_columns"][0]
        tcol, endpoint = source["name"], source["embedding_model_endpoint_name"]
        texts = ["" if row.get(tcol) is None else str(row.get(tcol)) for row in rows]
        hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        known = live.store.hashes([str(row[pk_col]) for row in rows])
        vectors: list[np.ndarray | None] = []
        todo: list[int] = []
        for i, row in enumerate(rows):
            old = known.get(str(row[pk_col]))
            if old is not None and old[0] == hashes[i] and old[1] is not None:
                vectors.append(np.frombuffer(old[1], dtype="<f4"))
            else:
                vectors.append(None)
                todo.append(i)
        owner = self._owner(live)
        chunks = [todo[start:start + EMBED_BATCH] for start in range(0, len(todo), EMBED_BATCH)]

        def one(chunk: list[int]) -> tuple[list[int], Any]:
            if not batch:
                return chunk, self.embed(owner, endpoint, [texts[i] for i in chunk])
            with batch_work():
                return chunk, self.embed(owner, endpoint, [texts[i] for i in chunk])

        lanes = self.batch_lanes() if batch else 1
        with ThreadPoolExecutor(max_workers=lanes) if lanes > 1 else contextlib.nullcontext() as pool:
            answers = pool.map(one, chunks) if pool is not None else map(one, chunks)
            for chunk, embedded in answers:
                self._place(chunk, embedded, vectors, progress)
        for i, row in enumerate(rows):
            vec = vectors[i]
            assert vec is not None
            out.append((str(row[pk_col]), dict(row), vec, hashes[i]))
        return out

    @staticmethod
    def _place(chunk: list[int], embedded: Any, vectors: list[np.ndarray | None],
               progress: Callable[[int], None] | None) -> None:
        for i, vec in zip(chunk, embedded, strict=True):
            vectors[i] = np.asarray(vec, dtype=np.float32)
        if progress is not None:
            progress(len(chunk))

    def _owner(self, live: Live) -> Principal:
        """The index owner, on whose rights syncs read the source and embeddings are computed."""
        owner = self.catalog.identity.by_name(live.spec["owner"])
        if owner is None:
            raise InvalidState(f"the owner of index {live.spec['name']} ({live.spec['owner']}) no longer exists")
        return owner

    def _commit(self, live: Live, rows: list[tuple[str, dict[str, Any], np.ndarray, str | None]],
                deletes: list[str], *, meta: dict[str, Any] | None = None, replace: bool = False) -> int:
        """Durably store a change, then apply it to the engine. Returns the rows written."""
        live.store.apply(rows, deletes, meta=meta, replace=replace)
        if meta is not None:
            live.known = None  # a sync: the source's columns may have changed
        catch_up(live)  # this change, and any another server process committed meanwhile
        live.changes_since_save += len(rows) + len(deletes)
        if live.changes_since_save and (live.changes_since_save >= 50_000 or time.monotonic() - live.saved_at > 30
                                        or live.engine.count < 20_000):
            live.engine.save()
            live.changes_since_save, live.saved_at = 0, time.monotonic()
        return len(rows)


def catch_up(live: Live) -> None:
    """Bring the engine to the row store's position: the rows changed and keys deleted since the position it
    reflects, or everything after a full rebuild (a new generation). One step for readers: a rebuild never
    shows them an empty or half index."""
    with live.engine.lock:
        generation, seq = live.store.position()  # read before the rows: a later commit is applied again, harmlessly
        applied_generation, applied_seq = live.applied
        try:
            if generation != applied_generation:
                live.engine.apply([], [pk for pk in list(live.engine.by_pk)])
                live.engine.apply(live.store.rows(), [])
            elif seq > applied_seq:
                live.engine.apply(live.store.rows(since_seq=applied_seq), live.store.deleted_since(applied_seq))
        except Exception:  # noqa: BLE001 - the store has the change: rebuild what derives from it
            log.exception("index %s: a committed change could not be applied to the engine; rebuilding it "
                          "from the row store", live.spec.get("name"))
            live.engine.rebuild()
        live.applied = (generation, seq)


def _refused(problems: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """The answer to a write that was refused whole: Databricks' shape (status FAILURE, the keys that
    failed), and why each row failed (``failed_rows``, at most the first hundred)."""
    return {"status": "FAILURE", "result": {
        "success_row_count": 0, "failed_primary_keys": [p["primary_key"] for p in problems],
        "failed_rows": problems,
        "message": f"nothing was written: {len(problems)}{'+' if len(problems) >= MAX_REASONS else ''} of {total} "
                   f"rows are invalid; the first: row {problems[0]['row']}: {problems[0]['reason']}"}}

