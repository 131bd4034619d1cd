"""Vector Search: endpoints, indexes (Delta Sync with managed or self-managed vectors, Direct Access),
syncing from the Delta change data feed, and ANN / FULL_TEXT / HYBRID queries.

Indexes are Unity Catalog securables (tables with ``data_source_format: VECTOR_INDEX_FORMAT``):
creating one needs ``CREATE_TABLE`` on the schema (and ``SELECT`` on a Delta Sync source); querying
needs ``USE_CATALOG``, ``USE_SCHEMA`` and ``SELECT`` on the index; writing (upsert, delete, sync)
needs ``MODIFY``. Managed embeddings go through the AI Gateway as the index owner, with the embedding
endpoint declared once at creation.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..catalog import Catalog, Principal
from ..catalog._db import Database, Row
from ..core.errors import (
    AlreadyExists,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from ..core.ids import new_id, now_ms
from ..core.names import parse_name
from ..tables import Tables
from ._engine import Engine
from ._live import SCHEMA_TYPES, Embed, Live
from ._query import Query
from ._store import RowStore
from ._sync import Sync
from ._writes import Writes, catch_up

log = logging.getLogger("brickyard.vectorsearch")
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def _endpoint_name(value: Any) -> str:
    if not isinstance(value, str) or not _ENDPOINT_NAME.match(value):
        raise InvalidParameterValue("endpoint name must be 1-63 letters, digits, '-' or '_'")
    return value


def _progress(live: Live) -> str:
    if live.rows_total is None:
        return "reading the source table"
    return f"{live.rows_done:,} of {live.rows_total:,} rows embedded and indexed"


class VectorSearch(Writes, Sync, Query):
    def __init__(self, db: Database, catalog: Catalog, tables: Tables, home: Path, *, embed: Embed,
                 system_principal: Callable[[], Principal], poll_seconds: float = 0.5,
                 reranker_path: str | None = None, reranker_precision: str = "auto",
                 rerank: Callable[[Principal, str, str, list[str]], list[tuple[int, float]]] | None = None,
                 resume_syncs: bool = True, release_memory: Callable[[], None] | None = None,
                 replica: int = 0) -> None:
        self.db = db
        #: this server process's slot among those sharing the home: each keeps its own search structures
        #: (slot 0 where a single server always kept them), all built from and caught up with the shared row store
        self.replica = replica
        self.catalog = catalog
        self.tables = tables
        self.root = home / "indexes"
        self.embed = embed
        self.system_principal = system_principal
        self.poll_seconds = poll_seconds
        self.sync_wait_seconds = 10.0
        self.resume_syncs = resume_syncs
        self.release_memory = release_memory  # called after a large sync: models and the C heap give back memory
        self.reranker_path = reranker_path
        self.reranker_precision = reranker_precision
        self.rerank_endpoint = rerank
        self._cross_encoder: Any = None
        self._live: dict[str, Live] = {}
        self._opening: dict[str, threading.Lock] = {}  # index name -> held while that index loads
        self._lock = threading.Lock()
        self._pages: OrderedDict[str, tuple[float, dict[str, Any], list[list[Any]]]] = OrderedDict()
        self._closed = False

    # -- endpoints ---------------------------------------------------------------------------------
    def create_endpoint(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        name = _endpoint_name(body.get("name"))
        kind = str(body.get("endpoint_type") or "STANDARD").upper()
        if kind not in ("STANDARD", "STORAGE_OPTIMIZED"):
            raise InvalidParameterValue("endpoint_type must be STANDARD or STORAGE_OPTIMIZED")
        now = now_ms()
        with self.db.tx() as tx:
            if tx.one("SELECT id FROM vs_endpoints WHERE name = ?", (name,)):
                raise AlreadyExists(f"Vector search endpoint '{name}' already exists")
            tx.execute("INSERT INTO vs_endpoints (id, name, endpoint_type, creator, created_at, updated_at, updated_by,"
                       " tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (new_id(), name, kind, p.name, now, now, p.name, json.dumps(body.get("custom_tags") or [])))
        self.catalog.audit_event(p, "createVectorSearchEndpoint", None, None, params={"name": name})
        return self.get_endpoint(p, name)

    def _endpoint_row(self, name: str) -> Row:
        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT * FROM vs_endpoints WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"Vector search endpoint '{name}' does not exist", error_code="RESOURCE_DOES_NOT_EXIST")
        return row

    def _endpoint_view(self, row: Row) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            count = tx.scalar("SELECT COUNT(*) FROM vs_indexes WHERE endpoint_name = ?", (row["name"],))
        return {"name": row["name"], "id": row["id"], "endpoint_type": row["endpoint_type"],
                "endpoint_status": {"state": "ONLINE", "message": "Endpoint is online"},
                "num_indexes": int(count or 0), "creator": row["creator"],
                "creation_timestamp": row["created_at"], "last_updated_timestamp": row["updated_at"],
                "last_updated_user": row["updated_by"], "custom_tags": json.loads(row["tags"]),
                "scaling_info": {"state": "SCALING_CHANGE_APPLIED"}}

    def get_endpoint(self, p: Principal, name: str) -> dict[str, Any]:
        return self._endpoint_view(self._endpoint_row(_endpoint_name(name)))

    def list_endpoints(self, p: Principal) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT * FROM vs_endpoints ORDER BY name")
        return [self._endpoint_view(r) for r in rows]

    def delete_endpoint(self, p: Principal, name: str) -> None:
        row = self._endpoint_row(_endpoint_name(name))
        if not (p.is_admin or row["creator"] == p.name):
            raise PermissionDenied(f"{p.name} may not delete vector search endpoint '{name}' (only its creator or "
                                   "an admin)")
        with self.db.tx() as tx:
            if tx.scalar("SELECT COUNT(*) FROM vs_indexes WHERE endpoint_name = ?", (row["name"],)):
                raise InvalidState(f"Vector search endpoint '{name}' still has indexes; delete them first")
            tx.execute("DELETE FROM vs_endpoints WHERE name = ?", (row["name"],))
        self.catalog.audit_event(p, "deleteVectorSearchEndpoint", None, None, params={"name": name})

    # -- index creation ----------------------------------------------------------------------------
    def create_index(self, p: Principal, body: dict[str, Any], endpoint: str | None = None) -> dict[str, Any]:
        endpoint = _endpoint_name(endpoint or body.get("endpoint_name"))
        self._endpoint_row(endpoint)
        name = str(parse_name(body.get("name"), 3, what="index name"))
        pk = body.get("primary_key")
        if not isinstance(pk, str) or not pk:
            raise InvalidParameterValue("primary_key is required: the column that identifies a row")
        index_type = str(body.get("index_type") or "").upper()
        spec: dict[str, Any] = {"data_source_format": "VECTOR_INDEX_FORMAT", "table_type": "MANAGED",
                                "endpoint_name": endpoint, "index_type": index_type, "primary_key": pk,
                                "index_subtype": str(body.get("index_subtype") or "VECTOR").upper()}
        source = None
        writeback_schema: Any = None
        if index_type == "DELTA_SYNC":
            ds = body.get("delta_sync_index_spec")
            if not isinstance(ds, dict):
                raise InvalidParameterValue("delta_sync_index_spec is required for a DELTA_SYNC index")
            source = str(parse_name(ds.get("source_table"), 3, what="source_table"))
            src = self.catalog.require(p, "SELECT", "table", source, action="createVectorIndex")
            schema = self.tables.schema(src)
            ds_clean = self._vector_spec(ds, schema.names, pk)
            ds_clean["source_table"] = source
            pipeline = str(ds.get("pipeline_type") or "TRIGGERED").upper()
            if pipeline not in ("TRIGGERED", "CONTINUOUS"):
                raise InvalidParameterValue("pipeline_type must be TRIGGERED or CONTINUOUS")
            ds_clean["pipeline_type"] = pipeline
            cols = ds.get("columns_to_sync")
            if cols is not None:
                if not isinstance(cols, list) or not all(isinstance(c, str) and c in schema.names for c in cols):
                    raise InvalidParameterValue(f"columns_to_sync must name columns of {source}")
                ds_clean["columns_to_sync"] = list(dict.fromkeys([pk, *cols, *self._needed(ds_clean)]))
            if ds.get("embedding_writeback_table"):
                if not ds_clean.get("embedding_source_columns"):
                    raise InvalidParameterValue("embedding_writeback_table needs managed embeddings "
                                                "(embedding_source_columns)")
                ds_clean["embedding_writeback_table"] = str(parse_name(ds["embedding_writeback_table"], 3,
                                                                       what="embedding_writeback_table"))
                writeback_schema = self._writeback_schema(schema, ds_clean, pk)
            ds_clean["pipeline_id"] = new_id()
            spec["delta_sync_index_spec"] = ds_clean
        elif index_type == "DIRECT_ACCESS":
            da = body.get("direct_access_index_spec")
            if not isinstance(da, dict):
                raise InvalidParameterValue("direct_access_index_spec is required for a DIRECT_ACCESS index")
            schema_json = da.get("schema_json")
            try:
                columns = json.loads(schema_json) if isinstance(schema_json, str) else schema_json
            except ValueError:
                raise InvalidParameterValue("schema_json is not valid JSON") from None
            if not isinstance(columns, dict) or pk not in columns:
                raise InvalidParameterValue(f"schema_json must be a JSON object of column -> type that includes "
                                            f"the primary key {pk!r}")
            for col, typ in columns.items():
                if not isinstance(typ, str) or typ.lower().replace(" ", "") not in SCHEMA_TYPES:
                    raise InvalidParameterValue(f"column {col!r}: unsupported type {typ!r}")
            da_clean = self._vector_spec(da, list(columns), pk)
            da_clean["schema_json"] = json.dumps(columns)
            spec["direct_access_index_spec"] = da_clean
        else:
            raise InvalidParameterValue("index_type must be DELTA_SYNC or DIRECT_ACCESS")
        spec["dimension"] = self._dimension(p, spec)
        writeback = (spec.get("delta_sync_index_spec") or {}).get("embedding_writeback_table")
        if writeback:
            if self.catalog.exists("table", writeback):
                raise AlreadyExists(f"the embedding writeback table {writeback} already exists")
            self.tables.create(p, writeback, schema=writeback_schema,
                               comment=f"Embeddings of vector index {name}")
        with self.db.tx() as tx:
            if tx.one("SELECT name FROM vs_indexes WHERE name = ?", (name,)):
                raise AlreadyExists(f"Index '{name}' already exists")
            tx.execute("INSERT INTO vs_indexes (securable_id, name, endpoint_name, created_at) VALUES (?, ?, ?, ?)",
                       ("pending:" + new_id(), name, endpoint, now_ms()))
        try:
            obj = self.catalog.create(p, "table", name, spec=spec,
                                      comment=body.get("comment") if isinstance(body.get("comment"), str) else None)
        except BaseException:
            with self.db.tx() as tx:
                tx.execute("DELETE FROM vs_indexes WHERE name = ?", (name,))
            raise
        with self.db.tx() as tx:
            tx.execute("UPDATE vs_indexes SET securable_id = ? WHERE name = ?", (obj.id, name))
        if source is not None:
            self.catalog.add_lineage(p, ("table", source), ("table", name), kind="VECTOR_INDEX")
        live = self._open(name)
        if source is not None:
            self._start_sync(name, live, background=True)
            if spec["delta_sync_index_spec"]["pipeline_type"] == "CONTINUOUS":
                self._start_continuous(name, live)
        return self._index_view(name, live)

    @staticmethod
    def _writeback_schema(source: Any, spec: dict[str, Any], pk: str) -> Any:
        """The source's synced columns and ``__db_<text column>_vector``, as Databricks names it."""

        wanted = spec.get("columns_to_sync")
        fields = [f for f in source if wanted is None or f.name in wanted or f.name == pk]
        col = spec["embedding_source_columns"][0]["name"]
        return pa.schema([*fields, pa.field(f"__db_{col}_vector", pa.list_(pa.float32()))])

    def _writeback(self, live: Live, rows: list[tuple[str, dict[str, Any], np.ndarray, str | None]],
                   deletes: list[str], *, replace: bool) -> None:
        """Mirror a sync's change into the embedding writeback table (a derived copy: rebuilt on replace)."""
        ds = live.spec["delta_sync_index_spec"]
        name = ds.get("embedding_writeback_table")
        if not name:
            return
        owner = self._owner(live)
        obj = self.catalog.require(owner, "MODIFY", "table", name, action="writeEmbeddings")
        col, pk = ds["embedding_source_columns"][0]["name"], live.spec["primary_key"]
        data = [{**row, f"__db_{col}_vector": vector.tolist()} for _, row, vector, _ in rows]
        if replace:
            self.tables.write_authorized(obj, data, mode="overwrite")
            return
        if deletes:
            keys = ", ".join("'" + k.replace("'", "''") + "'" for k in deletes)
            self.tables.delete_rows(obj, f"CAST({pk} AS STRING) IN ({keys})")
        if data:
            self.tables.write_authorized(obj, data, mode="merge", keys=[pk])

    @staticmethod
    def _needed(spec: dict[str, Any]) -> list[str]:
        return [c["name"] for c in spec.get("embedding_source_columns") or []] + \
            [c["name"] for c in spec.get("embedding_vector_columns") or []]

    @staticmethod
    def _vector_spec(spec: dict[str, Any], names: list[str], pk: str) -> dict[str, Any]:
        if pk not in names:
            raise InvalidParameterValue(f"primary key {pk!r} is not a column")
        source_cols = spec.get("embedding_source_columns") or []
        vector_cols = spec.get("embedding_vector_columns") or []
        if bool(source_cols) == bool(vector_cols):
            raise InvalidParameterValue("give exactly one of embedding_source_columns (managed embeddings) and "
                                        "embedding_vector_columns (your own vectors)")
        if len(source_cols) + len(vector_cols) != 1:
            raise InvalidParameterValue("exactly one embedding column is supported per index")
        out: dict[str, Any] = {}
        if source_cols:
            col = source_cols[0]
            if not isinstance(col, dict) or col.get("name") not in names:
                raise InvalidParameterValue("embedding_source_columns[0].name must be a column")
            endpoint = col.get("embedding_model_endpoint_name")
            if not isinstance(endpoint, str) or not endpoint:
                raise InvalidParameterValue("embedding_source_columns[0].embedding_model_endpoint_name is required")
            clean = {"name": col["name"], "embedding_model_endpoint_name": endpoint}
            if col.get("model_endpoint_name_for_query"):
                clean["model_endpoint_name_for_query"] = str(col["model_endpoint_name_for_query"])
            out["embedding_source_columns"] = [clean]
        else:
            col = vector_cols[0]
            dim = col.get("embedding_dimension") if isinstance(col, dict) else None
            if not isinstance(col, dict) or col.get("name") not in names:
                raise InvalidParameterValue("embedding_vector_columns[0].name must be a column")
            if not isinstance(dim, int) or not 1 <= dim <= 4096:
                raise InvalidParameterValue("embedding_vector_columns[0].embedding_dimension must be 1..4096")
            out["embedding_vector_columns"] = [{"name": col["name"], "embedding_dimension": dim}]
        return out

    def _dimension(self, p: Principal, spec: dict[str, Any]) -> int:
        inner = spec.get("delta_sync_index_spec") or spec.get("direct_access_index_spec") or {}
        if inner.get("embedding_vector_columns"):
            return int(inner["embedding_vector_columns"][0]["embedding_dimension"])
        endpoint = inner["embedding_source_columns"][0]["embedding_model_endpoint_name"]
        probe = self.embed(p, endpoint, ["dimension probe"])  # also proves the creator may query it
        return int(probe.shape[1])

    # -- open indexes ------------------------------------------------------------------------------
    def _obj(self, name: str) -> Any:
        obj = None
        try:
            obj = self.catalog.get(self.system_principal(), "table", name)
        except NotFound:
            pass
        if obj is None or obj.spec.get("data_source_format") != "VECTOR_INDEX_FORMAT":
            raise NotFound(f"Index '{name}' does not exist", error_code="RESOURCE_DOES_NOT_EXIST")
        return obj

    def _open(self, name: str, obj: Any = None) -> Live:
        """The open index ``name``; ``obj`` is its securable when the caller has just resolved it."""
        if obj is None:
            obj = self._obj(name)
        elif obj.spec.get("data_source_format") != "VECTOR_INDEX_FORMAT":
            raise NotFound(f"Index '{name}' does not exist", error_code="RESOURCE_DOES_NOT_EXIST")
        with self._lock:
            live = self._live.get(name)
            if live is not None and live.spec.get("id") == obj.id:
                if live.store.changed_elsewhere():  # another server process wrote: catch up first
                    catch_up(live)
                return live
            opening = self._opening.setdefault(name, threading.Lock())
        # Loading a large index takes seconds: only callers of this index wait for it, not every query.
        with opening:
            live = self._live.get(name)
            if live is not None and live.spec.get("id") == obj.id:
                return live
            spec = {**obj.spec, "id": obj.id, "name": name, "owner": obj.owner, "created_at": obj.created_at}
            inner = spec.get("delta_sync_index_spec") or spec.get("direct_access_index_spec") or {}
            directory = self.root / obj.id
            store = RowStore(directory / "rows.db")
            vector_col = (inner.get("embedding_vector_columns") or [{}])[0].get("name")
            text_col = (inner.get("embedding_source_columns") or [{}])[0].get("name") or self._text_column(spec)
            position = store.position()  # before reading the rows: what commits later is caught up
            engine = Engine(directory if self.replica == 0 else directory / f"replica-{self.replica}", store,
                            dimension=int(spec["dimension"]), vector_column=vector_col, text_column=text_col)
            live = Live(spec, store, engine, applied=position)
            with self._lock:
                self._live[name] = live
        pipeline = (spec.get("delta_sync_index_spec") or {}).get("pipeline_type")
        if pipeline == "CONTINUOUS":
            self._start_continuous(name, live)
        elif pipeline and self.resume_syncs and store.meta("source_version") is None:
            # an initial snapshot that never finished (the process stopped): take it again
            self._start_sync(name, live, background=True, wait=False)
        return live

    @staticmethod
    def _text_column(spec: dict[str, Any]) -> str | None:
        """For self-managed vectors, the full-text column: the first string column other than the key."""
        columns: dict[str, str] = {}
        if spec.get("direct_access_index_spec"):
            columns = json.loads(spec["direct_access_index_spec"]["schema_json"])
        for col, typ in columns.items():
            if col != spec["primary_key"] and str(typ).lower() == "string":
                return col
        return spec.get("text_column")

    def live(self, name: str) -> Live:
        name = str(parse_name(name, 3, what="index name"))
        return self._open(name)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            lives = list(self._live.values())
            self._live.clear()
        for live in lives:
            live.stop.set()
            if live.thread is not None:
                live.thread.join(timeout=10)
            with live.write_lock:
                try:
                    live.engine.save()
                except Exception:  # noqa: BLE001 - a snapshot is only a cache
                    log.exception("could not save the snapshot of an index")
                live.store.close()

    # -- views -------------------------------------------------------------------------------------
    def _index_view(self, name: str, live: Live) -> dict[str, Any]:
        spec = live.spec
        count = live.engine.count
        state = live.state
        if spec.get("direct_access_index_spec"):
            detailed = "ONLINE_DIRECT_ACCESS"
        elif live.syncing:
            detailed = "ONLINE_TRIGGERED_UPDATE" if state == "ONLINE" else "PROVISIONING_INITIAL_SNAPSHOT"
        elif spec.get("delta_sync_index_spec", {}).get("pipeline_type") == "CONTINUOUS":
            detailed = "ONLINE_CONTINUOUS_UPDATE"
        else:
            detailed = "ONLINE_NO_PENDING_UPDATE"
        if state != "ONLINE":
            detailed = state
        message = live.last_error or ("Index is ready" if state == "ONLINE" else live.message)
        if spec.get("delta_sync_index_spec") and (live.initial_sync or live.store.meta("source_version") is None):
            # Until the first snapshot of the source is indexed, the index is provisioning (not ready), as on
            # Databricks; an initial sync that failed leaves it offline.
            state = "PROVISIONING"
            if live.last_error and not live.syncing:
                detailed, message = "OFFLINE_FAILED", live.last_error
            else:
                detailed, message = "PROVISIONING_INITIAL_SNAPSHOT", "Initial snapshot: " + _progress(live)
        elif live.syncing and live.rows_total:
            message = f"{message}; syncing: {_progress(live)}"
        status: dict[str, Any] = {"ready": state == "ONLINE", "detailed_state": detailed, "message": message,
                                  "indexed_row_count": count, "index_url": None}
        if live.syncing:
            status["sync_progress"] = {"rows_indexed": live.rows_done, "rows_to_index": live.rows_total}
        out: dict[str, Any] = {
            "name": name, "endpoint_name": spec["endpoint_name"], "id": spec["id"], "primary_key": spec["primary_key"],
            "index_type": spec["index_type"], "index_subtype": spec.get("index_subtype", "VECTOR"),
            "creator": spec["owner"], "status": status}
        if spec.get("delta_sync_index_spec"):
            ds = dict(spec["delta_sync_index_spec"])
            out["delta_sync_index_spec"] = ds
            version = live.store.meta("source_version")
            if version is not None:
                out["status"]["source_table_version"] = version
        if spec.get("direct_access_index_spec"):
            out["direct_access_index_spec"] = spec["direct_access_index_spec"]
        return out

    def get_index(self, p: Principal, name: str) -> dict[str, Any]:
        name = str(parse_name(name, 3, what="index name"))
        obj = self._obj(name)
        if not self._sees(p, obj):
            self.catalog.require(p, "SELECT", "table", obj.full_name, action="getVectorIndex")
        return self._index_view(name, self._open(name))

    def _sees(self, p: Principal, obj: Any) -> bool:
        return p.is_admin or obj.owner in p.names or self.catalog.check(p, "SELECT", obj).allowed

    def list_indexes(self, p: Principal, endpoint: str) -> list[dict[str, Any]]:
        self._endpoint_row(_endpoint_name(endpoint))
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT name FROM vs_indexes WHERE endpoint_name = ? ORDER BY name", (endpoint,))
        out = []
        for row in rows:
            try:
                obj = self._obj(row["name"])
            except NotFound:
                continue
            if self._sees(p, obj):
                out.append({"name": row["name"], "endpoint_name": endpoint, "index_type": obj.spec["index_type"],
                            "primary_key": obj.spec["primary_key"], "creator": obj.owner})
        return out

    def indexes_in(self, p: Principal, schema: str) -> list[tuple[str, str | None]]:
        """(index name, comment) for the indexes of ``catalog.schema`` the caller may query."""
        schema = str(parse_name(schema, 2, what="schema name"))
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT name FROM vs_indexes WHERE name LIKE ? ORDER BY name",
                          (schema + ".%",))  # '_' matches any character here: the exact check follows
        out = []
        for row in rows:
            if row["name"].rsplit(".", 1)[0] != schema:
                continue
            try:
                obj = self._obj(row["name"])
            except NotFound:
                continue
            if self._sees(p, obj):
                out.append((row["name"], obj.comment))
        return out

    def retrieve(self, p: Principal, name: str, text: str, *, num_results: int = 5, filters: Any = None,
                 columns: list[str] | None = None) -> list[dict[str, Any]]:
        """Documents for a question, as ``p`` (SELECT on the index is checked): HYBRID when the index embeds
        text itself, FULL_TEXT when it holds your own vectors. Rows come back as dicts with a ``score``."""
        if not isinstance(text, str) or not text.strip():
            raise InvalidParameterValue("a non-empty query is required")
        name = str(parse_name(name, 3, what="index name"))
        live = self._open(name, self.catalog.require_cached(p, "SELECT", "table", name, action="queryVectorIndex"))
        inner = live.spec.get("delta_sync_index_spec") or live.spec.get("direct_access_index_spec") or {}
        query_type = "HYBRID" if inner.get("embedding_source_columns") else "FULL_TEXT"
        wanted = columns or sorted(self._known_columns(live))
        body: dict[str, Any] = {"query_text": text, "query_type": query_type, "columns": wanted,
                                "num_results": max(1, min(int(num_results), 50))}
        if filters:
            body["filters_json"] = filters if isinstance(filters, str) else json.dumps(filters)
        result = self.query(p, name, body)
        names = [c["name"] for c in result["manifest"]["columns"]]
        return [dict(zip(names, row, strict=True)) for row in result["result"]["data_array"]]

    def delete_index(self, p: Principal, name: str) -> None:
        name = str(parse_name(name, 3, what="index name"))
        obj = self._obj(name)
        self.catalog.delete(p, "table", name)
        with self._lock:
            live = self._live.pop(name, None)
        if live is not None:
            live.stop.set()
            if live.thread is not None:
                live.thread.join(timeout=10)
            with live.write_lock:
                live.store.close()
        with self.db.tx() as tx:
            tx.execute("DELETE FROM vs_indexes WHERE name = ?", (name,))
        import shutil

        shutil.rmtree(self.root / obj.id, ignore_errors=True)
