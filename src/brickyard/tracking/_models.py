"""Logged models (MLflow 3): a model logged from a run or on its own, with params, tags, metrics logged
against it, and its files under the experiment's artifacts (``.../LoggedModels/<model_id>/``).

A logged model is created PENDING, its files are uploaded, and the client finalizes it READY (or
FAILED_UPLOAD). It belongs to an experiment, so the experiment's permissions apply to it.
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from ..catalog import Principal
from ..catalog._db import Row, Tx
from ..core.errors import InvalidParameterValue
from ..core.ids import now_ms
from ._search import Entity, compile_filter, sort_entities
from ._store import MAX_PARAM_VALUE, Tracking, _json_number, _key, _paged, _stages, _text

STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
ATTRIBUTES = ("model_id", "name", "model_type", "status", "source_run_id", "creation_timestamp",
              "last_updated_timestamp", "experiment_id")


class LoggedModels:
    def __init__(self, tracking: Tracking) -> None:
        self.tracking = tracking
        self.db = tracking.db

    def _row(self, tx: Tx, p: Principal, model_id: Any, need: str) -> Row:
        return self.tracking.child_row(tx, p, "logged_model", model_id, need,
                                       f"Logged model with ID '{str(model_id)[:60]}' not found.")

    @staticmethod
    def _pairs(items: Any, what: str, limit: int) -> list[tuple[str, str]]:
        if items is None:
            return []
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise InvalidParameterValue(f"{what} must be a list of {{key, value}}")
        return [(_key(i.get("key"), f"{what[:-1]} key"),
                 _text("" if i.get("value") is None else str(i.get("value")), f"{what[:-1]} value", limit, empty=True))
                for i in items]

    def create(self, p: Principal, experiment_id: Any, *, name: Any = None, model_type: Any = None,
               source_run_id: Any = None, params: Any = None, tags: Any = None) -> dict[str, Any]:
        model_id = "m-" + secrets.token_hex(16)
        name = _text(name or f"model-{model_id[2:10]}", "name", 500)
        param_list = self._pairs(params, "params", MAX_PARAM_VALUE)
        tag_list = self._pairs(tags, "tags", 8000)
        now = now_ms()
        with self.db.tx() as tx:
            exp = self.tracking._experiment_row(tx, p, experiment_id, "CAN_EDIT")
            if source_run_id:
                run = tx.one("SELECT experiment_id FROM ml_runs WHERE run_id = ?", (str(source_run_id),))
                if run is None or run["experiment_id"] != exp["experiment_id"]:
                    raise InvalidParameterValue(f"source_run_id {str(source_run_id)[:40]} is not a run of experiment "
                                                f"{exp['experiment_id']}")
            tx.execute("INSERT INTO ml_logged_models (model_id, experiment_id, name, artifact_uri, status, model_type, "
                       "source_run_id, creator, creation_time, last_update_time, lifecycle_stage) "
                       "VALUES (?, ?, ?, ?, 'LOGGED_MODEL_PENDING', ?, ?, ?, ?, ?, 'active')",
                       (model_id, exp["experiment_id"], name,
                        f"{exp['artifact_location']}/logged_models/{model_id}/artifacts",
                        None if model_type is None else str(model_type)[:500],
                        None if not source_run_id else str(source_run_id), p.name, now, now))
            for key, value in dict(param_list).items():
                tx.execute("INSERT INTO ml_logged_model_params (model_id, key, value) VALUES (?, ?, ?)",
                           (model_id, key, value))
            for key, value in dict(tag_list).items():
                tx.execute("INSERT INTO ml_logged_model_tags (model_id, key, value) VALUES (?, ?, ?)",
                           (model_id, key, value))
            return self._json(tx, self._row(tx, p, model_id, "CAN_READ"))

    def _json(self, tx: Tx, row: Row) -> dict[str, Any]:
        mid = row["model_id"]
        tags = [{"key": r["key"], "value": r["value"]}
                for r in tx.all("SELECT key, value FROM ml_logged_model_tags WHERE model_id = ? ORDER BY key", (mid,))]
        params = [{"key": r["key"], "value": r["value"]}
                  for r in tx.all("SELECT key, value FROM ml_logged_model_params WHERE model_id = ? ORDER BY key",
                                  (mid,))]
        metrics = [{"key": m["key"], "value": _json_number(math.nan if m["is_nan"] else float(m["value"])),
                    "timestamp": m["timestamp"], "step": m["step"], "run_id": m["run_id"], "model_id": mid,
                    **({"dataset_name": m["dataset_name"]} if m["dataset_name"] else {}),
                    **({"dataset_digest": m["dataset_digest"]} if m["dataset_digest"] else {})}
                   for m in tx.all("SELECT * FROM ml_metrics WHERE model_id = ? ORDER BY key, step, timestamp", (mid,))]
        info = {"model_id": mid, "experiment_id": row["experiment_id"], "name": row["name"],
                "artifact_uri": row["artifact_uri"], "status": row["status"],
                "creation_timestamp_ms": row["creation_time"], "last_updated_timestamp_ms": row["last_update_time"],
                "tags": tags, "creator_id": 0}
        for field in ("model_type", "source_run_id", "status_message"):
            if row[field]:
                info[field] = row[field]
        return {"info": info, "data": {"params": params, "metrics": metrics}}

    def get(self, p: Principal, model_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            return self._json(tx, self._row(tx, p, model_id, "CAN_READ"))

    def finalize(self, p: Principal, model_id: Any, status: Any) -> dict[str, Any]:
        if status not in STATUSES[1:]:
            raise InvalidParameterValue("status must be LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED")
        with self.db.tx() as tx:
            row = self._row(tx, p, model_id, "CAN_EDIT")
            tx.execute("UPDATE ml_logged_models SET status = ?, last_update_time = ? WHERE model_id = ?",
                       (status, now_ms(), row["model_id"]))
            return self._json(tx, self._row(tx, p, model_id, "CAN_READ"))

    def delete(self, p: Principal, model_id: Any) -> None:
        with self.db.tx() as tx:
            row = self._row(tx, p, model_id, "CAN_EDIT")
            tx.execute("UPDATE ml_logged_models SET lifecycle_stage = 'deleted', last_update_time = ? WHERE model_id = ?",
                       (now_ms(), row["model_id"]))

    def set_tags(self, p: Principal, model_id: Any, tags: Any) -> None:
        pairs = self._pairs(tags, "tags", 8000)
        with self.db.tx() as tx:
            row = self._row(tx, p, model_id, "CAN_EDIT")
            for key, value in pairs:
                tx.execute("DELETE FROM ml_logged_model_tags WHERE model_id = ? AND key = ?", (row["model_id"], key))
                tx.execute("INSERT INTO ml_logged_model_tags (model_id, key, value) VALUES (?, ?, ?)",
                           (row["model_id"], key, value))

    def delete_tag(self, p: Principal, model_id: Any, key: Any) -> None:
        with self.db.tx() as tx:
            row = self._row(tx, p, model_id, "CAN_EDIT")
            tx.execute("DELETE FROM ml_logged_model_tags WHERE model_id = ? AND key = ?", (row["model_id"], str(key)))

    def log_params(self, p: Principal, model_id: Any, params: Any) -> None:
        pairs = self._pairs(params, "params", MAX_PARAM_VALUE)
        with self.db.tx() as tx:
            row = self._row(tx, p, model_id, "CAN_EDIT")
            for key, value in pairs:
                old = tx.one("SELECT value FROM ml_logged_model_params WHERE model_id = ? AND key = ?",
                             (row["model_id"], key))
                if old is not None and old["value"] != value:
                    raise InvalidParameterValue(f"param {key!r} of logged model {row['model_id']} already has a value")
                if old is None:
                    tx.execute("INSERT INTO ml_logged_model_params (model_id, key, value) VALUES (?, ?, ?)",
                               (row["model_id"], key, value))

    def search(self, p: Principal, experiment_ids: Any, *, filter: Any = None, max_results: Any = None,
               order_by: Any = None, page_token: Any = None) -> tuple[list[dict[str, Any]], str | None]:
        if not isinstance(experiment_ids, list) or not experiment_ids:
            raise InvalidParameterValue("experiment_ids must be a non-empty list")
        predicate = compile_filter(filter, ATTRIBUTES)
        found = []
        with self.db.tx(write=False) as tx:
            for eid in experiment_ids:
                self.tracking._experiment_row(tx, p, eid, "CAN_READ")
                for row in tx.all("SELECT * FROM ml_logged_models WHERE experiment_id = ?", (str(eid),)):
                    if row["lifecycle_stage"] not in _stages(None):
                        continue
                    model = self._json(tx, row)
                    info = model["info"]
                    entity = Entity({"creation_timestamp": info["creation_timestamp_ms"],
                                     "last_updated_timestamp": info["last_updated_timestamp_ms"],
                                     **{k: info.get(k) for k in ATTRIBUTES if k in info}},
                                    metrics={m["key"]: m["value"] for m in model["data"]["metrics"]
                                             if not isinstance(m["value"], str)},
                                    params={x["key"]: x["value"] for x in model["data"]["params"]},
                                    tags={x["key"]: x["value"] for x in info["tags"]})
                    if predicate(entity):
                        found.append((model, entity))
        orders = [o.get("field_name", "") + ("" if o.get("ascending", True) else " DESC") if isinstance(o, dict) else o
                  for o in order_by or []]
        ordered = sort_entities(found, lambda x: x[1], orders, ATTRIBUTES,
                                [("attributes", "creation_timestamp", True), ("attributes", "model_id", False)])
        return _paged([x[0] for x in ordered], page_token, max_results, 100, 50_000)
