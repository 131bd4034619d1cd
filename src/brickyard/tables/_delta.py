"""Managed Delta tables: create, write (append / overwrite / merge by key), read, time travel, change feed.

Each write may carry an idempotency key ``(app_id, version)``, recorded in the Delta log as a
transaction identifier. A retried write whose key is already committed is skipped, so a client that
lost the answer to a write can simply send it again. Writers to one table serialize on an OS lock
held from the idempotency check to the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..catalog import Catalog, Principal, Securable
from ..core.errors import InvalidParameterValue, InvalidState, NotFound
from ..core.names import parse_name
from ._storage import locked, managed_path, retire
from ._types import columns_to_schema, schema_to_columns

CDF = {"delta.enableChangeDataFeed": "true"}
MODES = ("append", "overwrite", "merge")


@dataclass(frozen=True)
class WriteResult:
    version: int
    rows: int
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "num_rows": self.rows, "skipped": self.skipped}


def _delta() -> Any:
    import deltalake

    return deltalake


class Tables:
    def __init__(self, catalog: Catalog, home: Path) -> None:
        self.catalog = catalog
        self.home = home
        self.root = home / "warehouse"

    # -- DDL ------------------------------------------------------------------------------------
    def create(self, p: Principal, full_name: str, *, columns: Any = None, schema: pa.Schema | None = None,
               comment: str | None = None, properties: dict[str, Any] | None = None,
               partition_by: Sequence[str] | None = None, table_type: str = "MANAGED") -> Securable:
        fn = parse_name(full_name, 3, what="table name")
        if str(table_type).upper() not in ("MANAGED", ""):
            raise InvalidParameterValue(
                f"table_type {table_type!r} is not supported: Brickyard stores every table itself; use MANAGED"
            )
        arrow = schema if schema is not None else columns_to_schema(columns)
        parts = [f for f in partition_by or []]
        for col in parts:
            if col not in arrow.names:
                raise InvalidParameterValue(f"partition column {col!r} is not a column of the table")
        props = {k: str(v) for k, v in (properties or {}).items()}
        config = dict(CDF)
        for k, v in props.items():
            if k.startswith("delta."):
                config[k] = v

        def prepare(_parent: Securable | None, sid: str) -> dict[str, Any]:
            path = managed_path(self.root, list(fn.parts), sid, self.catalog.storage_in_use)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                _delta().DeltaTable.create(str(path), schema=arrow, partition_by=parts or None,
                                           configuration=config, name=fn.name, description=comment)
            except Exception as exc:
                retire(self.home, path)
                raise InvalidParameterValue(f"cannot create Delta table {fn}: {exc}") from exc
            return {"storage_location": str(path), "table_type": "MANAGED", "data_source_format": "DELTA",
                    "partition_by": parts}

        return self.catalog.create(p, "table", str(fn), comment=comment, properties=props, prepare=prepare)

    def drop(self, p: Principal, full_name: str) -> None:
        self.catalog.delete(p, "table", full_name, on_deleted=self.retire_storage)

    #: applies views, row filters and column masks for a reader (given by the workspace: the SQL engine's govern)
    governor: Callable[[Principal, Securable, pa.Table | None], pa.Table] | None = None

    def retire_storage(self, dropped: list[Securable]) -> None:
        for obj in dropped:
            location = obj.spec.get("storage_location")
            if location and obj.kind in ("table", "volume"):
                retire(self.home, Path(location))

    # -- access -----------------------------------------------------------------------------------
    def _table(self, obj: Securable, version: int | None = None) -> Any:
        location = obj.spec.get("storage_location")
        if not location or obj.spec.get("data_source_format", "DELTA") != "DELTA":
            raise InvalidState(f"{obj.full_name} is not a managed Delta table")
        try:
            return _delta().DeltaTable(location, version=version)
        except Exception as exc:
            if version is not None:
                raise InvalidParameterValue(f"{obj.full_name} has no version {version}: {exc}") from exc
            raise InvalidState(f"cannot open Delta table {obj.full_name}: {exc}") from exc

    def open(self, obj: Securable, version: int | None = None) -> Any:
        """The ``DeltaTable`` behind an already-authorized securable."""
        return self._table(obj, version)

    def dataset(self, obj: Securable, version: int | None = None) -> Any:
        """The table's files at ``version`` as a ``pyarrow.dataset``, read through Arrow's own local file
        system. deltalake's default file system is a Python handler; Arrow's I/O threads read ahead through
        it, and when a reader stops early (a ``LIMIT``) those threads can still be calling into Python while
        the interpreter exits, which aborts, segfaults or hangs the process."""
        import pyarrow.fs as pafs

        root = _local_path(obj.spec["storage_location"]) if obj.spec.get("storage_location") else None
        table = self._table(obj, version)
        if root is None:
            return table.to_pyarrow_dataset()
        return table.to_pyarrow_dataset(filesystem=pafs.SubTreeFileSystem(root, pafs.LocalFileSystem()))

    def schema(self, obj: Securable) -> pa.Schema:
        return pa.schema(self._table(obj).schema().to_arrow())

    def governed(self, p: Principal, obj: Securable, rows: pa.Table | None) -> pa.Table:
        """What ``p`` may see of ``obj``'s ``rows``: a view's rows, or the rows under the table's row filter and
        column masks (applied by the SQL engine, which the workspace sets as ``governor``)."""
        if not governs(obj):
            assert rows is not None
            return rows
        if self.governor is None:
            raise InvalidState(f"{obj.full_name} has a row filter, column masks or is a view; reading it needs the "
                               "SQL engine")
        return self.governor(p, obj, rows)

    def read(self, p: Principal, full_name: str, *, version: int | None = None, columns: Sequence[str] | None = None,
             limit: int | None = None) -> pa.Table:
        obj = self.catalog.require(p, "SELECT", "table", full_name, action="readTable")
        if governs(obj):  # every reader sees the table through its policies (views through their query)
            if version is not None and str(obj.spec.get("table_type")).upper() == "VIEW":
                raise InvalidParameterValue(f"{obj.full_name} is a view; it has no versions")
            rows = self.governed(p, obj, None if obj.spec.get("table_type") == "VIEW" else
                                 self.dataset(obj, version).to_table())
            missing = [c for c in columns or [] if c not in rows.column_names]
            if missing:
                raise InvalidParameterValue(f"unknown columns {missing}; the table has {rows.column_names}")
            rows = rows.select(list(columns)) if columns else rows
            return rows.slice(0, int(limit)) if limit is not None else rows
        dataset = self.dataset(obj, version)
        if columns:
            missing = [c for c in columns if c not in dataset.schema.names]
            if missing:
                raise InvalidParameterValue(f"unknown columns {missing}; the table has {dataset.schema.names}")
        if limit is not None:
            return dataset.head(int(limit), columns=list(columns) if columns else None)
        return dataset.to_table(columns=list(columns) if columns else None)

    def describe(self, obj: Securable) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """A table's columns (with the masks set on them) and its Delta properties, for the catalog's views of it:
        a Delta table's from its log, any other's (a view) as declared. A damaged log gives no columns, not an
        error, so the table's metadata stays readable."""
        properties: dict[str, str] = dict(obj.properties)
        if obj.spec.get("data_source_format", "DELTA") == "DELTA" and obj.spec.get("storage_location"):
            try:
                dt = self.open(obj)
                columns = schema_to_columns(pa.schema(dt.schema().to_arrow()))
                properties = {**dt.metadata().configuration, **obj.properties}
            except Exception:  # noqa: BLE001 - metadata must still be readable if the data is damaged
                columns = []
        else:
            columns = list(obj.spec.get("columns", []))
        masks = obj.spec.get("column_masks") or {}
        for column in columns:
            if masks.get(column.get("name")):
                column["mask"] = masks[column.get("name")]
        return columns, properties

    def history(self, p: Principal, full_name: str, limit: int | None = None) -> list[dict[str, Any]]:
        obj = self.catalog.require(p, "SELECT", "table", full_name, action="describeHistory")
        return list(self._table(obj).history(limit))

    def changes(self, p: Principal, full_name: str, *, start: int = 0, end: int | None = None) -> pa.Table:
        """Rows of the change data feed between two versions (inclusive), with ``_change_type``."""
        obj = self.catalog.require(p, "SELECT", "table", full_name, action="readChangeFeed")
        if str(obj.spec.get("table_type")).upper() == "VIEW":
            raise InvalidParameterValue(f"{obj.full_name} is a view; it has no change feed")
        dt = self._table(obj)
        try:
            reader = dt.load_cdf(starting_version=start, ending_version=end)
        except Exception as exc:
            raise InvalidParameterValue(f"cannot read the change feed of {obj.full_name}: {exc}") from exc
        rows = pa.RecordBatchReader.from_stream(reader).read_all()
        return self.governed(p, obj, rows)  # the feed shows only what the reader may see of each row

    # -- writes ---------------------------------------------------------------------------------
    def write(self, p: Principal, full_name: str, data: pa.Table | list[dict[str, Any]], *, mode: str = "append",
              keys: Sequence[str] | None = None, txn: tuple[str, int] | None = None) -> WriteResult:
        obj = self.catalog.require(p, "MODIFY", "table", full_name, action="writeTable")
        return self.write_authorized(obj, data, mode=mode, keys=keys, txn=txn)

    def transaction_version(self, obj: Securable, app_id: str) -> int | None:
        """The last idempotent-write version committed to a table for ``app_id`` (None: none yet)."""
        with locked(Path(obj.spec["storage_location"])):
            done = self._table(obj).transaction_version(app_id)
        return None if done is None else int(done)

    def write_authorized(self, obj: Securable, data: pa.Table | list[dict[str, Any]], *, mode: str = "append",
                         keys: Sequence[str] | None = None, txn: tuple[str, int] | None = None,
                         predicate: str | None = None) -> WriteResult:
        if mode not in MODES:
            raise InvalidParameterValue(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if txn is not None:
            app_id, tv = txn
            if not isinstance(app_id, str) or not app_id or len(app_id) > 255:
                raise InvalidParameterValue("the idempotency app id must be a non-empty string")
            if not isinstance(tv, int) or tv < 0:
                raise InvalidParameterValue("the idempotency version must be a non-negative integer")
        dl = _delta()
        location = Path(obj.spec["storage_location"])
        with locked(location):
            dt = self._table(obj)
            if txn is not None:
                done = dt.transaction_version(txn[0])
                if done is not None and done >= txn[1]:
                    return WriteResult(dt.version(), 0, skipped=True)
            schema = pa.schema(dt.schema().to_arrow())
            table = conform(data, schema)
            props = None
            if txn is not None:
                props = dl.CommitProperties(app_transactions=[dl.Transaction(app_id=txn[0], version=txn[1])])
            try:
                if mode == "merge":
                    keys = list(keys or [])
                    if not keys:
                        raise InvalidParameterValue("merge needs the key columns: keys=['id']")
                    for k in keys:
                        if k not in schema.names:
                            raise InvalidParameterValue(f"merge key {k!r} is not a column of {obj.full_name}")
                    if table.num_rows:
                        dup = table.group_by(keys).aggregate([([], "count_all")]).filter(
                            pa.compute.greater(pa.compute.field("count_all"), 1))
                        if dup.num_rows:
                            raise InvalidParameterValue(
                                f"the rows to merge repeat a key ({dup.num_rows} keys appear more than once)")
                    cond = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in keys)
                    (dt.merge(table, predicate=cond, source_alias="s", target_alias="t", commit_properties=props)
                       .when_matched_update_all().when_not_matched_insert_all().execute())
                else:
                    dl.write_deltalake(dt, table, mode=mode, commit_properties=props, predicate=predicate)
            except InvalidParameterValue:
                raise
            except Exception as exc:
                raise InvalidParameterValue(f"write to {obj.full_name} failed: {exc}") from exc
            dt.update_incremental()
            return WriteResult(dt.version(), table.num_rows)

    def delete_rows(self, obj: Securable, predicate: str | None) -> dict[str, Any]:
        with locked(Path(obj.spec["storage_location"])):
            dt = self._table(obj)
            try:
                metrics = dt.delete(predicate)
            except Exception as exc:
                raise InvalidParameterValue(f"DELETE on {obj.full_name} failed: {exc}") from exc
            return dict(metrics)

    def update_rows(self, obj: Securable, updates: dict[str, str], predicate: str | None) -> dict[str, Any]:
        with locked(Path(obj.spec["storage_location"])):
            dt = self._table(obj)
            try:
                metrics = dt.update(updates=updates, predicate=predicate)
            except Exception as exc:
                raise InvalidParameterValue(f"UPDATE on {obj.full_name} failed: {exc}") from exc
            return dict(metrics)

    # -- schema evolution ---------------------------------------------------------------------------
    def add_columns(self, obj: Securable, columns: list[dict[str, Any]]) -> int:
        """ALTER TABLE ADD COLUMNS: nullable columns appended to the schema, the data untouched (old rows read
        NULL). The new version."""
        dl = _delta()
        schema = self.schema(obj)
        for c in columns:
            if c["name"] in schema.names:
                raise InvalidParameterValue(f"[FIELDS_ALREADY_EXISTS] {obj.full_name} already has a column {c['name']!r}")
        added = columns_to_schema([{**c, "nullable": True} for c in columns])
        with locked(Path(obj.spec["storage_location"])):
            dt = self._table(obj)
            try:
                dt.alter.add_columns(list(dl.Schema.from_arrow(added).fields))
            except Exception as exc:
                raise InvalidParameterValue(f"cannot add columns to {obj.full_name}: {exc}") from exc
            return int(self._table(obj).version())

    def rewrite_columns(self, obj: Securable, *, drop: str | None = None, rename: tuple[str, str] | None = None) -> int:
        """ALTER TABLE DROP / RENAME COLUMN: the table rewritten in one commit with its new schema (Brickyard's
        tables have no column mapping), so readers see the old or the new version, never a mix. The new
        version."""
        dl = _delta()
        with locked(Path(obj.spec["storage_location"])):
            dt = self._table(obj)
            data = self.dataset(obj).to_table()
            names = data.column_names
            partitions = list(obj.spec.get("partition_by") or [])
            if drop is not None:
                if drop not in names:
                    raise InvalidParameterValue(f"[UNRESOLVED_COLUMN] {obj.full_name} has no column {drop!r}")
                if len(names) == 1 or drop in partitions:
                    raise InvalidParameterValue(f"{drop!r} is the only or a partition column of {obj.full_name}")
                data = data.drop_columns([drop])
            if rename is not None:
                old, new = rename
                if old not in names:
                    raise InvalidParameterValue(f"[UNRESOLVED_COLUMN] {obj.full_name} has no column {old!r}")
                if new in names:
                    raise InvalidParameterValue(f"[FIELDS_ALREADY_EXISTS] {obj.full_name} already has a column {new!r}")
                if old in partitions:
                    raise InvalidParameterValue(f"{old!r} is a partition column of {obj.full_name}")
                data = data.rename_columns([new if n == old else n for n in names])
            try:
                dl.write_deltalake(dt, data, mode="overwrite", schema_mode="overwrite",
                                   partition_by=partitions or None)
            except Exception as exc:
                raise InvalidParameterValue(f"cannot change the columns of {obj.full_name}: {exc}") from exc
            return int(self._table(obj).version())

    def merge_rows(self, obj: Securable, source: pa.Table, *, predicate: str, clauses: list[dict[str, Any]]
                   ) -> dict[str, Any]:
        """MERGE with explicit clauses: ``{"when": "matched"|"not_matched"|"not_matched_by_source",
        "action": "update"|"update_all"|"delete"|"insert"|"insert_all", "condition": sql|None, "set": {...}}``."""
        with locked(Path(obj.spec["storage_location"])):
            dt = self._table(obj)
            try:
                merger = dt.merge(source, predicate=predicate, source_alias="s", target_alias="t")
                for c in clauses:
                    merger = _add_clause(merger, c)
                return dict(merger.execute())
            except (InvalidParameterValue, NotFound):
                raise
            except Exception as exc:
                raise InvalidParameterValue(f"MERGE into {obj.full_name} failed: {exc}") from exc


def _local_path(location: str) -> str | None:
    """The local directory of a storage location (a path or a ``file://`` URL); None for anything else."""
    if location.startswith("file://"):
        location = location[len("file://"):]
    return location if location.startswith("/") else None


def _add_clause(merger: Any, clause: dict[str, Any]) -> Any:
    when, action = clause["when"], clause["action"]
    cond, sets = clause.get("condition"), clause.get("set") or {}
    if when == "matched" and action == "update":
        return merger.when_matched_update(sets, cond)
    if when == "matched" and action == "update_all":
        return merger.when_matched_update_all(cond)
    if when == "matched" and action == "delete":
        return merger.when_matched_delete(cond)
    if when == "not_matched" and action == "insert":
        return merger.when_not_matched_insert(sets, cond)
    if when == "not_matched" and action == "insert_all":
        return merger.when_not_matched_insert_all(cond)
    if when == "not_matched_by_source" and action == "update":
        return merger.when_not_matched_by_source_update(sets, cond)
    if when == "not_matched_by_source" and action == "delete":
        return merger.when_not_matched_by_source_delete(cond)
    raise InvalidParameterValue(f"WHEN {when.replace('_', ' ').upper()} THEN {action.upper()} is not supported")


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def conform(data: pa.Table | list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Shape incoming rows like the table: columns by name, missing nullable columns as nulls, safe casts."""
    if isinstance(data, list):
        if not all(isinstance(r, dict) for r in data):
            raise InvalidParameterValue("rows must be JSON objects of column -> value")
        extra = sorted({k for r in data for k in r} - set(schema.names))
        if extra:
            raise InvalidParameterValue(f"unknown columns {extra}; the table has {schema.names}")
        try:
            return pa.Table.from_pylist(data, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
            raise InvalidParameterValue(f"rows do not match the table schema: {exc}") from exc
    if not isinstance(data, pa.Table):
        raise InvalidParameterValue("data must be a pyarrow Table or a list of row objects")
    extra = [n for n in data.column_names if n not in schema.names]
    if extra:
        raise InvalidParameterValue(f"unknown columns {extra}; the table has {schema.names}")
    arrays = []
    for f in schema:
        if f.name in data.column_names:
            col = data.column(f.name)
            try:
                arrays.append(col.cast(f.type, safe=True) if col.type != f.type else col)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InvalidParameterValue(f"column {f.name!r} cannot become {f.type}: {exc}") from exc
        else:
            if not f.nullable:
                raise InvalidParameterValue(f"column {f.name!r} is NOT NULL and missing from the data")
            arrays.append(pa.nulls(data.num_rows, f.type))
    try:
        return pa.Table.from_arrays(arrays, schema=schema)
    except (pa.ArrowInvalid, ValueError) as exc:
        raise InvalidParameterValue(f"rows do not match the table schema: {exc}") from exc


def governs(obj: Securable) -> bool:
    """Whether reading ``obj`` takes more than its files: it is a view, or has a row filter or column masks."""
    return str(obj.spec.get("table_type") or "").upper() == "VIEW" or bool(obj.spec.get("row_filter")) or bool(
        obj.spec.get("column_masks"))

