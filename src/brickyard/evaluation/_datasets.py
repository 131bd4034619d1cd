"""Evaluation datasets (``mlflow.genai.datasets``, the managed-evals ``datasets`` routes): each dataset is a Unity
Catalog Delta table, so grants govern it like any table (SELECT to read it, MODIFY to change it), every
change is a table version, and ``to_df`` of an older version is time travel.

A record is a row: its id, and its inputs, expectations, tags and source as JSON text, so any JSON value
round-trips exactly; who made and last changed it, and when. The dataset's id is the table's id (the
client looks it up with ``tables.get``), and the table is the dataset's storage (``is_uc_native``), so the
client never copies it anywhere.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from ..catalog import Catalog, Principal
from ..core.errors import InvalidParameterValue, NotFound
from ..core.ids import new_id
from ..tables import Tables

SCHEMA = pa.schema([("dataset_record_id", pa.string()), ("inputs", pa.string()), ("expectations", pa.string()),
                    ("tags", pa.string()), ("source", pa.string()), ("create_time", pa.string()),
                    ("created_by", pa.string()), ("last_update_time", pa.string()),
                    ("last_updated_by", pa.string())])
KIND = "brickyard.evaluation_dataset"  # table property marking a table as a dataset
EXPERIMENTS = "brickyard.experiment_ids"
PROFILE = "brickyard.dataset_profile"
PAGE = 1000
MAX_BATCH = 1000


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"{what} must be JSON") from None


class Datasets:
    def __init__(self, catalog: Catalog, tables: Tables) -> None:
        self.catalog = catalog
        self.tables = tables

    # -- datasets ------------------------------------------------------------------------------------
    def create(self, p: Principal, body: Any, experiment_ids: str | None = None) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise InvalidParameterValue("name (the dataset's UC table, catalog.schema.table) is required")
        source_type = body.get("source_type") or "databricks-uc-table"
        if source_type != "databricks-uc-table":
            raise InvalidParameterValue("source_type must be databricks-uc-table")
        experiments = [e for e in (experiment_ids or "").split(",") if e]
        if len(body["name"].split(".")) != 3:
            raise InvalidParameterValue(f"invalid table name {body['name'][:200]!r}: use catalog.schema.table")
        obj = self.tables.create(p, body["name"], schema=SCHEMA, comment="Evaluation dataset",
                                 properties={KIND: "true", EXPERIMENTS: ",".join(experiments)})
        return self._view(p, obj.full_name)

    def _name(self, dataset_id: Any) -> str:
        name = self.catalog.name_of("table", str(dataset_id)) if isinstance(dataset_id, str) else None
        if name is None:
            raise NotFound(f"Dataset {str(dataset_id)[:60]} does not exist", error_code="RESOURCE_DOES_NOT_EXIST")
        return name

    def _dataset(self, p: Principal, dataset_id: Any, privilege: str) -> Any:
        obj = self.catalog.require(p, privilege, "table", self._name(dataset_id), action="getEvaluationDataset")
        if obj.properties.get(KIND) != "true":
            raise NotFound(f"Table {obj.full_name} is not an evaluation dataset", error_code="RESOURCE_DOES_NOT_EXIST")
        return obj

    def _view(self, p: Principal, full_name: str, version: int | None = None) -> dict[str, Any]:
        obj = self.catalog.require(p, "SELECT", "table", full_name, action="getEvaluationDataset")
        history = self.tables.history(p, full_name)
        latest = max(int(h["version"]) for h in history)
        at = latest if version is None else version
        if not 0 <= at <= latest:
            raise InvalidParameterValue(f"dataset {full_name} has versions 0 to {latest}")
        out = {"dataset_id": obj.id, "name": obj.full_name, "source": json.dumps({"table_name": obj.full_name}),
                "source_type": "databricks-uc-table", "is_uc_native": True,
                "digest": hashlib.sha256(f"{obj.id}@{at}".encode()).hexdigest()[:16],
                "create_time": datetime.fromtimestamp(obj.created_at / 1000, UTC).isoformat(),
                "created_by": obj.created_by, "last_updated_by": obj.updated_by,
                "experiment_ids": [e for e in str(obj.properties.get(EXPERIMENTS) or "").split(",") if e]}
        if obj.properties.get(PROFILE):
            out["profile"] = obj.properties[PROFILE]
        if version is not None:  # a handle to an older version (the client then refuses to merge into it)
            out["version"] = {"dataset_id": obj.id, "version": at}
        return out

    def get(self, p: Principal, dataset_id: Any, version: Any = None) -> dict[str, Any]:
        obj = self._dataset(p, dataset_id, "SELECT")
        return self._view(p, obj.full_name, None if version in (None, "") else _int(version, "version"))

    def update(self, p: Principal, dataset_id: Any, body: Any, update_mask: Any) -> dict[str, Any]:
        """``PATCH``: the fields ``update_mask`` names; ``profile`` (the Databricks profile the client works in)
        is the one a dataset keeps; changing it needs MANAGE on the table, like its other properties."""
        obj = self._dataset(p, dataset_id, "SELECT")
        fields = [f.strip() for f in str(update_mask or "").split(",") if f.strip()]
        if not fields or any(f != "profile" for f in fields):
            raise InvalidParameterValue("update_mask must name profile, the only field of a dataset that changes")
        profile = (body or {}).get("profile") if isinstance(body, dict) else None
        if profile is not None and (not isinstance(profile, str) or len(profile) > 200):
            raise InvalidParameterValue("profile must be a string of at most 200 characters")
        self.catalog.update(p, "table", obj.full_name, properties={PROFILE: profile or ""})
        return self._view(p, obj.full_name)

    def upsert_expectations(self, p: Principal, dataset_id: Any, record_id: Any, body: Any) -> dict[str, Any]:
        """Set expectations of one record (others it has are kept), in one commit."""
        obj = self._dataset(p, dataset_id, "MODIFY")
        given = (body or {}).get("expectations") if isinstance(body, dict) else None
        if not isinstance(given, dict) or not given or not all(isinstance(v, dict) and "value" in v
                                                               for v in given.values()):
            raise InvalidParameterValue("expectations must map names to {value}")
        rows = [r for r in self.tables.read(p, obj.full_name).to_pylist() if r["dataset_record_id"] == record_id]
        if not rows:
            raise NotFound(f"record {str(record_id)[:60]} is not in the dataset", error_code="RESOURCE_DOES_NOT_EXIST")
        row = rows[0]
        merged = {**json.loads(row["expectations"] or "{}"), **{k: v["value"] for k, v in given.items()}}
        row.update(expectations=_json(merged, "expectations"), last_update_time=_now(), last_updated_by=p.name)
        self.tables.write(p, obj.full_name, pa.Table.from_pylist([row], schema=SCHEMA), mode="merge",
                          keys=["dataset_record_id"])
        return {}

    def delete(self, p: Principal, dataset_id: Any) -> None:
        obj = self._dataset(p, dataset_id, "SELECT")
        self.tables.drop(p, obj.full_name)

    def versions(self, p: Principal, dataset_id: Any) -> dict[str, Any]:
        obj = self._dataset(p, dataset_id, "SELECT")
        rows = sorted(self.tables.history(p, obj.full_name), key=lambda h: int(h["version"]), reverse=True)
        return {"dataset_versions": [
            {"dataset_id": obj.id, "dataset": obj.full_name, "version": int(h["version"]),
             "create_time": datetime.fromtimestamp(int(h["timestamp"]) / 1000, UTC).isoformat(),
             "operation": h.get("operation")} for h in rows]}

    # -- records -------------------------------------------------------------------------------------
    def records(self, p: Principal, dataset_id: Any, *, version: Any = None, page_token: Any = None,
                page_size: Any = None) -> dict[str, Any]:
        obj = self._dataset(p, dataset_id, "SELECT")
        at = None if version in (None, "") else _int(version, "version")
        rows = self.tables.read(p, obj.full_name, version=at).sort_by("dataset_record_id").to_pylist()
        start = _int(page_token, "page_token") if page_token else 0
        size = min(_int(page_size, "page_size") if page_size else PAGE, PAGE)
        page = rows[start:start + size]
        out: dict[str, Any] = {"dataset_records": [_record(r) for r in page]}
        if start + size < len(rows):
            out["next_page_token"] = str(start + size)
        return out

    def id_of(self, p: Principal, full_name: str) -> str:
        """The dataset id (the table's id) of the dataset table ``full_name``; needs SELECT."""
        obj = self.catalog.require(p, "SELECT", "table", full_name, action="getEvaluationDataset")
        if obj.properties.get(KIND) != "true":
            raise InvalidParameterValue(f"table {obj.full_name} is not an evaluation dataset")
        return str(obj.id)

    def rows(self, p: Principal, full_name: str) -> list[dict[str, Any]]:
        """Every record of the dataset table ``full_name`` as ``{dataset_record_id, inputs, expectations}``
        (plain JSON values), in record id order; reading needs SELECT on the table."""
        obj = self.catalog.require(p, "SELECT", "table", full_name, action="getEvaluationDataset")
        if obj.properties.get(KIND) != "true":
            raise InvalidParameterValue(f"table {obj.full_name} is not an evaluation dataset (create one with "
                                        "mlflow.genai.datasets.create_dataset)")
        rows = self.tables.read(p, obj.full_name).sort_by("dataset_record_id").to_pylist()
        return [{"dataset_record_id": r["dataset_record_id"], "inputs": json.loads(r["inputs"] or "{}"),
                 "expectations": json.loads(r["expectations"] or "{}")} for r in rows]

    def create_records(self, p: Principal, dataset_id: Any, body: Any) -> dict[str, Any]:
        obj = self._dataset(p, dataset_id, "MODIFY")
        now = _now()
        rows = []
        for item in _requests(body):
            rec = item.get("dataset_record") if isinstance(item, dict) else None
            rows.append(_row(rec, p.name, now, record_id=new_id()))
        if rows:
            self.tables.write(p, obj.full_name, pa.Table.from_pylist(rows, schema=SCHEMA), mode="append")
        return {}

    def update_records(self, p: Principal, dataset_id: Any, body: Any) -> dict[str, Any]:
        """``records:batchUpdate``: replaces the fields its ``update_mask`` names (expectations, tags, inputs,
        source) of existing records, in one commit."""
        obj = self._dataset(p, dataset_id, "MODIFY")
        existing = {r["dataset_record_id"]: r for r in self.tables.read(p, obj.full_name).to_pylist()}
        now = _now()
        changed = []
        for item in _requests(body):
            rec = item.get("dataset_record") if isinstance(item, dict) else None
            rid = rec.get("dataset_record_id") if isinstance(rec, dict) else None
            if rid not in existing:
                raise NotFound(f"record {str(rid)[:60]} is not in the dataset", error_code="RESOURCE_DOES_NOT_EXIST")
            mask = str(item.get("update_mask") or "expectations,tags").split(",")
            new = _row(rec, p.name, now, record_id=rid)
            old = dict(existing[rid])
            for field in mask:
                field = field.strip()
                if field not in ("inputs", "expectations", "tags", "source"):
                    raise InvalidParameterValue(f"update_mask may name inputs, expectations, tags, source; not {field!r}")
                old[field] = new[field]
            old["last_update_time"], old["last_updated_by"] = now, p.name
            changed.append(old)
        if changed:
            self.tables.write(p, obj.full_name, pa.Table.from_pylist(changed, schema=SCHEMA), mode="merge",
                              keys=["dataset_record_id"])
        return {}

    def delete_records(self, p: Principal, dataset_id: Any, body: Any) -> dict[str, Any]:
        obj = self._dataset(p, dataset_id, "MODIFY")
        ids = (body or {}).get("dataset_record_ids") if isinstance(body, dict) else None
        if ids is None and isinstance(body, dict):
            ids = [r.get("dataset_record_id") for r in body.get("requests") or [] if isinstance(r, dict)]
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InvalidParameterValue("dataset_record_ids must be a list of record ids")
        if ids:
            quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
            self.tables.delete_rows(obj, f"dataset_record_id IN ({quoted})")
        return {}


def _int(value: Any, what: str) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"{what} must be a whole number") from None
    if out < 0:
        raise InvalidParameterValue(f"{what} must not be negative")
    return out


def _requests(body: Any) -> list[Any]:
    items = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise InvalidParameterValue("requests must be a list of {dataset_record}")
    if len(items) > MAX_BATCH:
        raise InvalidParameterValue(f"at most {MAX_BATCH} records per call")
    return items


def _row(rec: Any, who: str, now: str, *, record_id: str) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise InvalidParameterValue("each request needs a dataset_record object")
    inputs = rec.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) and isinstance(i.get("key"), str) for i in inputs):
        raise InvalidParameterValue("dataset_record.inputs must be a list of {key, value}")
    expectations = rec.get("expectations") or {}
    tags = rec.get("tags") or {}
    if not isinstance(expectations, dict) or not all(isinstance(v, dict) and "value" in v
                                                     for v in expectations.values()):
        raise InvalidParameterValue("dataset_record.expectations must map names to {value}")
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise InvalidParameterValue("dataset_record.tags must map names to strings")
    return {"dataset_record_id": record_id,
            "inputs": _json({i["key"]: i.get("value") for i in inputs}, "inputs"),
            "expectations": _json({k: v["value"] for k, v in expectations.items()}, "expectations"),
            "tags": _json(tags, "tags"), "source": _json(rec.get("source"), "source"),
            "create_time": now, "created_by": who, "last_update_time": now, "last_updated_by": who}


def _record(row: dict[str, Any]) -> dict[str, Any]:
    inputs = json.loads(row["inputs"] or "{}")
    out: dict[str, Any] = {
        "dataset_record_id": row["dataset_record_id"], "inputs": [{"key": k, "value": v} for k, v in inputs.items()],
        "expectations": {k: {"value": v} for k, v in json.loads(row["expectations"] or "{}").items()},
        "tags": json.loads(row["tags"] or "{}"), "create_time": row["create_time"], "created_by": row["created_by"],
        "last_update_time": row["last_update_time"], "last_updated_by": row["last_updated_by"]}
    source = json.loads(row["source"] or "null")
    if source is not None:
        out["source"] = source
    return out
