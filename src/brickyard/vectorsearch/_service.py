"""Vector Search: endpoints, indexes (Delta Sync with managed or self-managed vectors, Direct Access),
syncing from the Delta change data feed, and ANN / FULL_TEXT / HYBRID queries.

Indexes are Unity Catalog securables (tables with ``data_source_format: VECTOR_INDEX_FORMAT``):
creating one needs ``CREATE_TABLE`` on the schema (and ``SELECT`` on a Delta Sync source); querying
needs ``USE_CATALOG``, ``USE_SCHEMA`` and ``SELECT`` on the index; writing (upsert, delete, sync)
needs ``MODIFY``. Managed embeddings go through the AI Gateway as the index owner, with the embedding
endpoint declared once at creation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..catalog import Catalog, Principal
from ..catalog._db import Database, Row
from ..core.errors import (
    AlreadyExists,
    BrickyardError,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    NotSupported,
    PermissionDenied,
)
from ..core.ids import new_id, now_ms
from ..core.names import parse_name
from ..tables import Tables
from ._engine import Engine
from ._filters import compile_keyed
from ._rows import MAX_REASONS, RowSchema
from ._store import RowStore

log = logging.getLogger("brickyard.vectorsearch")

Embed = Callable[[Principal, str, list[str]], np.ndarray]
_ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
RRF_K = 60  # Reciprocal Rank Fusion constant (Cormack et al. 2009), score = sum 1 / (RRF_K + rank)
MAX_TEXT_RESULTS = 200  # HYBRID and FULL_TEXT return at most 200 rows, as on Databricks
MAX_ANN_RESULTS = 10_000
EMBED_BATCH = 64
SCHEMA_TYPES = {"integer", "long", "int", "bigint", "string", "float", "double", "boolean", "date", "timestamp",
                "array<float>", "array<double>", "array<string>", "short", "smallint", "tinyint", "byte"}


def _endpoint_name(value: Any) -> str:
    if not isinstance(value, str) or not _ENDPOINT_NAME.match(value):
        raise InvalidParameterValue("endpoint name must be 1-63 letters, digits, '-' or '_'")
    return value


@dataclass
class Live:
    """An open index: its row store, engine and pipeline state."""

    spec: dict[str, Any]
    store: RowStore
    engine: Engine
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    state: str = "ONLINE"
    message: str = ""
    syncing: bool = False
    last_error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    changes_since_save: int = 0
    saved_at: float = field(default_factory=time.monotonic)
    known: frozenset[str] | None = None  # the columns queries may name; reset when a sync lands
    schemas: dict[int, dict[str, str]] = field(default_factory=dict)  # source version -> its columns


class VectorSearch:
    def __init__(self, db: Database, catalog: Catalog, tables: Tables, home: Path, *, embed: Embed,
                 system_principal: Callable[[], Principal], poll_seconds: float = 0.5,
                 reranker_path: str | None = None, reranker_precision: str = "auto",
                 rerank: Callable[[Principal, str, str, list[str]], list[tuple[int, float]]] | None = None) -> None:
        self.db = db
        self.catalog = catalog
        self.tables = tables
        self.root = home / "indexes"
        self.embed = embed
        self.system_principal = system_principal
        self.poll_seconds = poll_seconds
        self.sync_wait_seconds = 10.0
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
        import pyarrow as pa

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
            engine = Engine(directory, store, dimension=int(spec["dimension"]), vector_column=vector_col,
                            text_column=text_col)
            live = Live(spec, store, engine)
            with self._lock:
                self._live[name] = live
        if (spec.get("delta_sync_index_spec") or {}).get("pipeline_type") == "CONTINUOUS":
            self._start_continuous(name, live)
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
        out: dict[str, Any] = {
            "name": name, "endpoint_name": spec["endpoint_name"], "id": spec["id"], "primary_key": spec["primary_key"],
            "index_type": spec["index_type"], "index_subtype": spec.get("index_subtype", "VECTOR"),
            "creator": spec["owner"],
            "status": {"ready": state == "ONLINE", "detailed_state": detailed, "message": message,
                       "indexed_row_count": count, "index_url": None}}
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

    def _prepare_rows(self, live: Live, rows: list[dict[str, Any]], failed: list[Any] | None = None,
                      progress: Callable[[int], None] | None = None
                      ) -> list[tuple[str, dict[str, Any], np.ndarray, str | None]]:
        """(pk, row, vector, text hash) for rows: vectors checked, or embedded (unchanged texts reuse
        their stored vector)."""
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
        for start in range(0, len(todo), EMBED_BATCH):
            chunk = todo[start:start + EMBED_BATCH]
            embedded = self.embed(owner, endpoint, [texts[i] for i in chunk])
            for i, vec in zip(chunk, embedded, strict=True):
                vectors[i] = np.asarray(vec, dtype=np.float32)
            if progress is not None:
                progress(len(chunk))
        for i, row in enumerate(rows):
            vec = vectors[i]
            assert vec is not None
            out.append((str(row[pk_col]), dict(row), vec, hashes[i]))
        return out

    def _owner(self, live: Live) -> Principal:
        """The index owner, on whose rights syncs read the source and embeddings are computed."""
        owner = self.catalog.identity.by_name(live.spec["owner"])
        if owner is None:
            raise InvalidState(f"the owner of index {live.spec['name']} ({live.spec['owner']}) no longer exists")
        return owner

    def _commit(self, live: Live, rows: list[tuple[str, dict[str, Any], np.ndarray, str | None]],
                deletes: list[str], *, meta: dict[str, Any] | None = None, replace: bool = False) -> int:
        """Durably store a change, then apply it to the engine. Returns the rows written."""
        before = live.store.seq
        live.store.apply(rows, deletes, meta=meta, replace=replace)
        if meta is not None:
            live.known = None  # a sync: the source's columns may have changed
        if replace:
            live.engine.apply([], [pk for pk in list(live.engine.by_pk)])
        try:
            live.engine.apply(live.store.rows(since_seq=before), deletes)
        except Exception:  # noqa: BLE001 - the store has the change: rebuild what derives from it
            log.exception("index %s: a committed change could not be applied to the engine; rebuilding it from "
                          "the row store", live.spec.get("name"))
            live.engine.rebuild()
        live.changes_since_save += len(rows) + len(deletes)
        if live.changes_since_save and (live.changes_since_save >= 50_000 or time.monotonic() - live.saved_at > 30
                                        or live.engine.count < 20_000):
            live.engine.save()
            live.changes_since_save, live.saved_at = 0, time.monotonic()
        return len(rows)

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

    def _start_sync(self, name: str, live: Live, *, background: bool) -> None:
        if not background:
            self.sync_now(name)
            return
        live.syncing = True

        def run() -> None:
            try:
                self.sync_now(name)
            except Exception:  # noqa: BLE001 - recorded on the index
                log.exception("sync of %s failed", name)

        thread = threading.Thread(target=run, daemon=True, name=f"vs-sync-{name}")
        thread.start()
        # A small sync is done before the answer, so clients see the index ready at once (the official
        # client polls every 30 s otherwise); a long one goes on in the background.
        thread.join(timeout=self.sync_wait_seconds)

    def sync_now(self, name: str, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Bring a Delta Sync index up to its source table's latest version: incrementally from the change
        data feed, or by a full rebuild when the feed has a gap. Returns what it did."""
        live = self._open(name)
        ds = live.spec["delta_sync_index_spec"]
        live.syncing = True
        try:
            with live.write_lock:
                owner = self._owner(live)
                src = self.catalog.require(owner, "SELECT", "table", ds["source_table"], action="syncVectorIndex")
                table = self.tables.open(src)
                version = int(table.version())
                last = live.store.meta("source_version")
                if last is not None and int(last) >= version:
                    live.last_error = None
                    return {"mode": "none", "version": version}
                columns = self._source_columns(live, table, version)
                result = None
                if last is not None:
                    try:
                        if not self._additive(live, src, int(last), columns):
                            raise _Gap("columns of the source were dropped, renamed or changed type")
                        result = self._incremental(live, src, int(last), version, progress)
                    except _Gap as gap:
                        log.info("index %s: %s; rebuilding from version %s", name, gap, version)
                if result is None:
                    result = self._rebuild(live, src, version, progress)
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
            live.syncing = False

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
        prepared = self._prepare_rows(live, upserts, progress=(lambda n: progress(n, total)) if progress else None)
        self._commit(live, prepared, deletes, meta={"source_version": version})
        self._writeback(live, prepared, deletes, replace=False)
        expected = self.tables.open(src, version).to_pyarrow_dataset().count_rows()
        if expected != live.store.count():  # a feed that silently missed a change (e.g. CDF turned off)
            raise _Gap(f"the index holds {live.store.count()} rows after the change feed, the source {expected}")
        return {"mode": "incremental", "version": version, "upserted": len(prepared), "deleted": len(deletes)}

    def _rebuild(self, live: Live, src: Any, version: int, progress: Callable[[int, int], None] | None
                 ) -> dict[str, Any]:
        table = self.tables.open(src, version)
        data = table.to_pyarrow_table()
        cols = self._columns(live, data.column_names)
        rows = data.select(cols).to_pylist()
        prepared = self._prepare_rows(live, rows, progress=(lambda n: progress(n, len(rows))) if progress else None)
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

    # -- queries -------------------------------------------------------------------------------------
    def can_answer_inline(self, p: Principal, name: str, body: dict[str, Any]) -> bool:
        """Whether :meth:`query` would do no I/O and no model call: the index is open, the caller's SELECT was
        decided moments ago, and the query brings its vector (or is FULL_TEXT) with at most the offline
        reranker. Then the server answers on its event loop instead of hopping to a worker thread."""
        if not isinstance(name, str) or name not in self._live:
            return False
        if not self.catalog.is_cached(p, "SELECT", "table", name):
            return False
        query_type = str(body.get("query_type") or "ANN").upper()
        needs_embedding = body.get("query_vector") is None and query_type != "FULL_TEXT"
        reranks = bool(body.get("reranker") or body.get("columns_to_rerank"))
        spec = body.get("reranker")
        model = spec.get("model") if isinstance(spec, dict) else None
        remote = model not in (None, "databricks_reranker", "brickyard_default", "cross_encoder")
        return not needs_embedding and not (reranks and (self.reranker_path or remote
                                                         or body.get("query_vector") is None))

    def query(self, p: Principal, name: str, body: dict[str, Any]) -> dict[str, Any]:
        name = str(parse_name(name, 3, what="index name"))
        live = self._open(name, self.catalog.require_cached(p, "SELECT", "table", name, action="queryVectorIndex"))
        spec = live.spec
        inner = spec.get("delta_sync_index_spec") or spec.get("direct_access_index_spec") or {}
        query_type = str(body.get("query_type") or "ANN").upper()
        if query_type not in ("ANN", "HYBRID", "FULL_TEXT"):
            raise InvalidParameterValue("query_type must be ANN, HYBRID or FULL_TEXT")
        num = body.get("num_results", 10)
        if not isinstance(num, int) or isinstance(num, bool) or num < 1:
            raise InvalidParameterValue("num_results must be a positive integer")
        num = min(num, MAX_TEXT_RESULTS if query_type != "ANN" else MAX_ANN_RESULTS)
        rerank = self._reranker(body, live)
        text = body.get("query_text") if body.get("query_text") is not None else body.get("query")
        if text is not None and not isinstance(text, str):
            raise InvalidParameterValue("query_text must be a string")
        vector = body.get("query_vector")
        known = self._known_columns(live)
        columns = body.get("columns") or [spec["primary_key"]]
        if isinstance(columns, str):
            columns = [columns]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InvalidParameterValue("columns must be a list of column names")
        for c in columns:
            if c not in known:
                raise InvalidParameterValue(f"column {c!r} is not in the index; it has: {', '.join(sorted(known))}")
        threshold = body.get("score_threshold")
        if threshold is not None and not isinstance(threshold, int | float):
            raise InvalidParameterValue("score_threshold must be a number")
        keyed = compile_keyed(body.get("filters_json") or body.get("filters"), body.get("filter_string"),
                              columns=known)
        engine = live.engine
        # Model calls (query embedding, remote rerank) happen outside the index lock.
        if query_type in ("ANN", "HYBRID") and vector is None:
            if not text:
                raise InvalidParameterValue("give query_vector or query_text")
            vector = self._query_vector(live, inner, text)
        elif vector is not None:
            try:
                vector = np.asarray(vector, dtype=np.float32)
            except (TypeError, ValueError):
                raise InvalidParameterValue("query_vector must be a list of numbers") from None
            if vector.ndim != 1 or not np.isfinite(vector).all():
                raise InvalidParameterValue("query_vector must be a flat list of finite numbers")
        if rerank is not None and vector is None and text and inner.get("embedding_source_columns"):
            vector = self._query_vector(live, inner, text)  # the reranker's dense signal
        if query_type in ("FULL_TEXT", "HYBRID") and not text:
            raise InvalidParameterValue(f"{query_type} queries need query_text")
        depth = max(num, self.RERANK_DEPTH) if rerank is not None else num
        with engine.lock:
            selection = None if keyed is None else engine.selection(*keyed)
            mask = None if selection is None else selection.mask
            if query_type == "ANN":
                hits = engine.search_ann(vector, depth, selection, ef=_int(body.get("ef_search")))
            elif query_type == "FULL_TEXT":
                hits = engine.search_text(str(text), depth, mask)
            else:
                pool = max(depth, 50)
                dense = engine.search_ann(vector, pool, selection)
                sparse = engine.search_text(str(text), pool, mask)
                hits = rrf([dense, sparse])[:depth]
            rows = {label: engine.rows[label] for label, _ in hits}  # row dicts are never changed in place
            vectors = [engine.ann.reconstruct(int(label)) for label, _ in hits] \
                if rerank is not None and rerank[0] == "offline" and engine.dimension else None
        debug: dict[str, Any] = {}
        if rerank is not None:
            started = time.perf_counter()
            hits = self._rerank(hits, rows, str(text or ""), vector, vectors, rerank, p)
            debug["reranker_time"] = round((time.perf_counter() - started) * 1000, 3)
        hits = hits[:num]
        if threshold is not None:
            hits = [h for h in hits if h[1] >= threshold]
        data = [[rows[label].get(c) for c in columns] + [score] for label, score in hits]  # type: ignore[union-attr]
        manifest = {"column_count": len(columns) + 1,
                    "columns": [{"name": c} for c in columns] + [{"name": "score"}]}
        head: dict[str, Any] = {"manifest": manifest}
        if debug:
            head["debug_info"] = debug
        return self._page(head, data, _int(body.get("page_size")) or len(data) or 1)

    RERANK_DEPTH = 50  # candidates the rerank stage reorders (the result is then cut to num_results)

    def _reranker(self, body: dict[str, Any], live: Live) -> tuple[str, list[str]] | None:
        """(reranker, columns to rerank on) when the query asks for reranking, None when it does not.
        ``databricks_reranker`` is the configured cross-encoder if there is one, else the offline default."""
        spec = body.get("reranker")
        columns = body.get("columns_to_rerank")
        if not spec and not columns:
            return None
        kind = "cross_encoder" if self.reranker_path else "offline"
        if spec is not None:
            if not isinstance(spec, dict):
                raise InvalidParameterValue("reranker must be an object: {model, parameters{columns_to_rerank}}")
            model = spec.get("model") or "databricks_reranker"
            if model == "brickyard_default":
                kind = "offline"
            elif model == "cross_encoder":
                if not self.reranker_path:
                    raise NotSupported("no cross-encoder is configured: an admin sets BRICKYARD_RERANKER_PATH to a "
                                       "local model directory (no package ships cross-encoder weights)")
                kind = "cross_encoder"
            elif model != "databricks_reranker":
                if not isinstance(model, str) or self.rerank_endpoint is None:
                    raise InvalidParameterValue("reranker.model must be databricks_reranker, brickyard_default, "
                                                "cross_encoder or the name of a rerank serving endpoint")
                kind = "endpoint:" + model  # a serving endpoint with task llm/v1/rerank, called as the querier
            columns = (spec.get("parameters") or {}).get("columns_to_rerank") or columns
        if columns is None:
            text = live.engine.text_column
            columns = [text] if text else []
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            raise InvalidParameterValue("columns_to_rerank must name the text columns to rerank on")
        known = self._known_columns(live)
        for c in columns:
            if c not in known:
                raise InvalidParameterValue(f"columns_to_rerank: {c!r} is not a column of the index")
        return kind, columns

    def cross_encoder(self) -> Any:
        """The configured cross-encoder, loaded once (it is only ever read from the admin's directory)."""
        with self._lock:
            if self._cross_encoder is None:
                from ..models._minilm import CrossEncoder

                self._cross_encoder = CrossEncoder(str(self.reranker_path), precision=self.reranker_precision)
            return self._cross_encoder

    def _rerank(self, hits: list[tuple[int, float]], rows: dict[int, Any], text: str, vector: Any,
                vectors: list[np.ndarray] | None, rerank: tuple[str, list[str]], caller: Principal
                ) -> list[tuple[int, float]]:
        """Reorder the candidate pool (best first) with the chosen reranker."""
        from ._rerank import rerank_scores

        kind, columns = rerank
        docs = [" ".join("" if rows[label].get(c) is None else str(rows[label].get(c)) for c in columns)
                for label, _ in hits]
        if kind.startswith("endpoint:"):
            assert self.rerank_endpoint is not None
            order = self.rerank_endpoint(caller, kind.removeprefix("endpoint:"), text, docs)
        elif kind == "cross_encoder":
            scores = self.cross_encoder().scores(text, docs)
            order = [(int(i), round(float(scores[i]), 6)) for i in np.argsort(-scores, kind="stable")]
        else:
            order = rerank_scores(text, docs, None if vector is None else np.asarray(vector, dtype=np.float32),
                                  vectors)
        return [(hits[i][0], score) for i, score in order]

    def _known_columns(self, live: Live) -> frozenset[str]:
        """The columns a query may select or filter on, remembered until the next sync lands (a Delta Sync
        index without ``columns_to_sync`` has its source's columns, which cost a Delta log read to learn)."""
        known = live.known
        if known is None:
            known = live.known = frozenset(self._columns_now(live))
        return known

    def _columns_now(self, live: Live) -> set[str]:
        spec = live.spec
        if spec.get("direct_access_index_spec"):
            cols = set(json.loads(spec["direct_access_index_spec"]["schema_json"]))
            vcols = {c["name"] for c in spec["direct_access_index_spec"].get("embedding_vector_columns") or []}
            return cols - vcols
        ds = spec["delta_sync_index_spec"]
        wanted = ds.get("columns_to_sync")
        vcols = {c["name"] for c in ds.get("embedding_vector_columns") or []}
        if wanted is not None:
            return set(wanted) - vcols
        try:
            names = self.tables.schema(self._source(live)).names
        except Exception:  # noqa: BLE001 - the source is gone: what the index holds
            names = list(next((r for r in live.engine.rows if r is not None), {}) or {})
        return set(names) - vcols

    def _source(self, live: Live) -> Any:
        return self.catalog.get(self.system_principal(), "table", live.spec["delta_sync_index_spec"]["source_table"])

    def _query_vector(self, live: Live, inner: dict[str, Any], text: str) -> np.ndarray:
        sources = inner.get("embedding_source_columns")
        if not sources:
            raise InvalidParameterValue("this index holds your own vectors: send query_vector (query_text alone "
                                        "works with query_type FULL_TEXT)")
        endpoint = sources[0].get("model_endpoint_name_for_query") or sources[0]["embedding_model_endpoint_name"]
        return np.asarray(self.embed(self._owner(live), endpoint, [text])[0], dtype=np.float32)

    def _page(self, head: dict[str, Any], data: list[list[Any]], size: int) -> dict[str, Any]:
        first, rest = data[:size], data[size:]
        token = None
        if rest:
            token = secrets.token_urlsafe(16)
            with self._lock:
                self._pages[token] = (time.monotonic(), {**head, "page_size": size}, rest)
                while len(self._pages) > 1000:
                    self._pages.popitem(last=False)
        return {**head, "result": {"row_count": len(first), "data_array": first}, "next_page_token": token}

    def next_page(self, p: Principal, name: str, token: Any) -> dict[str, Any]:
        name = str(parse_name(name, 3, what="index name"))
        self.catalog.require(p, "SELECT", "table", name, action="queryVectorIndex")
        with self._lock:
            entry = self._pages.pop(str(token), None)
        if entry is None or time.monotonic() - entry[0] > 600:
            raise InvalidParameterValue("page_token is unknown or expired; run the query again")
        head = dict(entry[1])
        size = head.pop("page_size")
        return self._page(head, entry[2], size)

    def scan(self, p: Principal, name: str, last_primary_key: Any, num_results: Any) -> dict[str, Any]:
        name = str(parse_name(name, 3, what="index name"))
        live = self._open(name, self.catalog.require(p, "SELECT", "table", name, action="scanVectorIndex"))
        limit = _int(num_results) or 100
        if not 1 <= limit <= 10_000:
            raise InvalidParameterValue("num_results must be 1..10000")
        rows = live.store.scan(None if last_primary_key in (None, "") else str(last_primary_key), limit)
        data = [{"fields": [{"key": k, "value": _value(v)} for k, v in r.data.items()]} for r in rows]
        return {"data": data, "last_primary_key": rows[-1].pk if rows else None}


def _refused(problems: list[dict[str, Any]], total: int) -> dict[str, Any]:
    """The answer to a write that was refused whole: Databricks' shape (status FAILURE, the keys that
    failed), and why each row failed (``failed_rows``, at most the first hundred)."""
    return {"status": "FAILURE", "result": {
        "success_row_count": 0, "failed_primary_keys": [p["primary_key"] for p in problems],
        "failed_rows": problems,
        "message": f"nothing was written: {len(problems)}{'+' if len(problems) >= MAX_REASONS else ''} of {total} "
                   f"rows are invalid; the first: row {problems[0]['row']}: {problems[0]['reason']}"}}


class _Gap(Exception):
    pass


def _int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterValue("expected an integer")
    return value


def rrf(rankings: list[list[tuple[int, float]]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal Rank Fusion: each list adds 1 / (k + rank) for its items (rank from 1)."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (label, _) in enumerate(ranking, start=1):
            scores[label] = scores.get(label, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def _value(v: Any) -> dict[str, Any]:
    if v is None:
        return {"null_value": None}
    if isinstance(v, bool):
        return {"bool_value": v}
    if isinstance(v, int | float):
        return {"number_value": v}
    if isinstance(v, list):
        return {"list_value": {"values": [_value(x) for x in v]}}
    if isinstance(v, dict):
        return {"struct_value": {"fields": [{"key": k, "value": _value(x)} for k, x in v.items()]}}
    return {"string_value": str(v)}


