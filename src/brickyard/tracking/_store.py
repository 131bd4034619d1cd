"""The MLflow-compatible tracking store: experiments, runs, params, metrics, tags and run inputs.

Everything lives in the metastore (SQLite or PostgreSQL), in the same transactions as any other change,
so a run's batch of metrics is all there or not at all. Objects come back in the JSON shape of MLflow's
REST API, which is what the ``mlflow`` client parses.

Permissions follow Databricks experiments: the creator and admins have CAN_MANAGE; others get CAN_READ,
CAN_EDIT or CAN_MANAGE through ``/api/2.0/permissions/experiments/{id}``. Reading a run needs CAN_READ
on its experiment and writing it CAN_EDIT. An experiment the caller cannot read does not exist for
them (no existence oracle).
"""

from __future__ import annotations

import base64
import json
import math
import random
import secrets
from typing import Any

from ..catalog import Principal
from ..catalog._db import Database, Row, Tx
from ..core.errors import AlreadyExists, InvalidParameterValue, InvalidState, NotFound, PermissionDenied
from ..core.ids import now_ms
from ._search import Entity, compile_filter, sort_entities

LEVELS = {"CAN_READ": 1, "CAN_EDIT": 2, "CAN_MANAGE": 3}
ARTIFACT_ROOT = "dbfs:/databricks/mlflow-tracking"
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_BATCH = {"metrics": 1000, "params": 100, "tags": 100}
EXPERIMENT_ATTRIBUTES = ("name", "experiment_id", "creation_time", "last_update_time", "lifecycle_stage")
RUN_ATTRIBUTES = ("run_id", "run_name", "status", "start_time", "end_time", "user_id", "artifact_uri",
                  "lifecycle_stage", "experiment_id")
_ADJECTIVES = ("amber", "brisk", "calm", "dapper", "eager", "fleet", "gentle", "hardy", "ivory", "jolly",
               "keen", "lucid", "mellow", "nimble", "orderly", "placid", "quiet", "rapid", "sturdy", "tidy")
_NOUNS = ("anchor", "badger", "cedar", "delta", "ember", "falcon", "grove", "harbor", "island", "juniper",
          "kestrel", "lantern", "meadow", "nebula", "otter", "pebble", "quarry", "river", "summit", "tern")


def _text(value: Any, what: str, limit: int, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise InvalidParameterValue(f"{what} must be a{'' if empty else ' non-empty'} string")
    if len(value) > limit:
        raise InvalidParameterValue(f"{what} is longer than {limit} characters")
    return value


def _key(value: Any, what: str) -> str:
    key = _text(value, what, MAX_KEY)
    if any(ord(c) < 32 for c in key) or key.startswith("/") or ".." in key.split("/"):
        raise InvalidParameterValue(f"{what} {key[:60]!r} holds control characters, starts with '/' or has '..'")
    return key


def _int(value: Any, what: str, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise InvalidParameterValue(f"{what} is required")
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"{what} must be an integer") from None


def _metric_value(value: Any) -> float:
    if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
        return float(value.replace("Infinity", "inf"))
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidParameterValue("a metric value must be a number")
    try:
        return float(value)
    except ValueError:
        raise InvalidParameterValue(f"metric value {str(value)[:40]!r} is not a number") from None


def _json_number(value: float) -> float | str:
    """Proto JSON spells the special doubles as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _page(token: Any) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(str(token).encode()))["offset"])
    except (ValueError, KeyError, TypeError):
        raise InvalidParameterValue("page_token is not one this server issued") from None


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _paged(items: list[Any], page_token: Any, max_results: Any, default: int, limit: int) -> tuple[list[Any], str | None]:
    size = _int(max_results, "max_results", default)
    if size < 1 or size > limit:
        raise InvalidParameterValue(f"max_results must be between 1 and {limit}")
    start = _page(page_token)
    page = items[start:start + size]
    return page, (_token(start + size) if start + size < len(items) else None)


class Tracking:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- permissions --------------------------------------------------------------------------------
    def _level(self, tx: Tx, p: Principal, row: Row) -> int:
        if p.is_admin or row["creator"] == p.name:
            return LEVELS["CAN_MANAGE"]
        best = 0
        for r in tx.all("SELECT principal, level FROM ml_experiment_acl WHERE experiment_id = ?",
                        (row["experiment_id"],)):
            if r["principal"] in p.names:
                best = max(best, LEVELS[r["level"]])
        return best

    def _experiment_row(self, tx: Tx, p: Principal, experiment_id: Any, need: str) -> Row:
        eid = str(experiment_id or "")
        row = tx.one("SELECT * FROM ml_experiments WHERE experiment_id = ?", (eid,))
        level = 0 if row is None else self._level(tx, p, row)
        if row is None or level == 0:
            raise NotFound(f"No Experiment with id={eid[:40]} exists")
        if level < LEVELS[need]:
            raise PermissionDenied(f"{p.name} lacks {need} on experiment {eid}")
        return row

    _CHILDREN = {"run": "SELECT * FROM ml_runs WHERE run_id = ?",
                 "logged_model": "SELECT * FROM ml_logged_models WHERE model_id = ?",
                 "trace": "SELECT * FROM ml_traces WHERE trace_id = ?"}

    def child_row(self, tx: Tx, p: Principal, kind: str, ident: Any, need: str, missing: str) -> Row:
        """A run, logged model or trace, if ``p`` holds ``need`` on its experiment; else ``missing`` as a 404
        (whether it exists or not: no existence oracle)."""
        row = tx.one(self._CHILDREN[kind], (str(ident or ""),))
        if row is None:
            raise NotFound(missing)
        try:
            self._experiment_row(tx, p, row["experiment_id"], need)
        except NotFound:
            raise NotFound(missing) from None
        return row

    def _run_row(self, tx: Tx, p: Principal, run_id: Any, need: str) -> Row:
        return self.child_row(tx, p, "run", run_id, need, f"Run with id={str(run_id)[:40]} not found")

    def experiment_level(self, p: Principal, experiment_id: str) -> str | None:
        """The caller's permission on an experiment (None when it has none or the experiment is gone)."""
        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT * FROM ml_experiments WHERE experiment_id = ?", (str(experiment_id),))
            level = 0 if row is None else self._level(tx, p, row)
        return next((name for name, v in LEVELS.items() if v == level), None)

    def require_experiment(self, p: Principal, experiment_id: str, need: str) -> None:
        with self.db.tx(write=False) as tx:
            self._experiment_row(tx, p, experiment_id, need)

    def get_permissions(self, p: Principal, experiment_id: str) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._experiment_row(tx, p, experiment_id, "CAN_MANAGE")
            acl = [{"user_name" if "@" in r["principal"] else "group_name": r["principal"],
                    "all_permissions": [{"permission_level": r["level"], "inherited": False}]}
                   for r in tx.all("SELECT * FROM ml_experiment_acl WHERE experiment_id = ? ORDER BY principal",
                                   (row["experiment_id"],))]
        acl.insert(0, {"user_name": row["creator"], "all_permissions": [{"permission_level": "CAN_MANAGE",
                                                                          "inherited": False}]})
        return {"object_id": f"/experiments/{row['experiment_id']}", "object_type": "mlflowExperiment",
                "access_control_list": acl}

    def set_permissions(self, p: Principal, experiment_id: str, acl: Any, *, replace: bool) -> dict[str, Any]:
        if not isinstance(acl, list):
            raise InvalidParameterValue("access_control_list must be a list")
        entries = []
        for item in acl:
            if not isinstance(item, dict):
                raise InvalidParameterValue("each access control entry must be an object")
            who = item.get("user_name") or item.get("group_name") or item.get("service_principal_name")
            level = item.get("permission_level")
            if not isinstance(who, str) or not who or level not in LEVELS:
                raise InvalidParameterValue("each entry needs user_name, group_name or service_principal_name, and "
                                            "permission_level CAN_READ, CAN_EDIT or CAN_MANAGE")
            entries.append((who, level))
        with self.db.tx() as tx:
            row = self._experiment_row(tx, p, experiment_id, "CAN_MANAGE")
            if replace:
                tx.execute("DELETE FROM ml_experiment_acl WHERE experiment_id = ?", (row["experiment_id"],))
            for who, level in entries:
                tx.execute("DELETE FROM ml_experiment_acl WHERE experiment_id = ? AND principal = ?",
                           (row["experiment_id"], who))
                tx.execute("INSERT INTO ml_experiment_acl (experiment_id, principal, level) VALUES (?, ?, ?)",
                           (row["experiment_id"], who, level))
        return self.get_permissions(p, experiment_id)

    # -- experiments --------------------------------------------------------------------------------
    @staticmethod
    def _check_name(name: Any) -> str:
        name = _text(name, "experiment name", 1000)
        if not name.startswith("/") or any(ord(c) < 32 for c in name) or "//" in name or name.endswith("/"):
            raise InvalidParameterValue(f"experiment name {name[:100]!r} must be an absolute workspace path such as "
                                        "/Users/you@example.com/my-experiment")
        return name

    def create_experiment(self, p: Principal, name: Any, *, artifact_location: Any = None,
                          tags: Any = None) -> str:
        name = self._check_name(name)
        if artifact_location:
            raise InvalidParameterValue("artifact_location is chosen by the workspace; leave it empty")
        tag_list = self._tags(tags)
        now = now_ms()
        with self.db.tx() as tx:
            if tx.one("SELECT 1 FROM ml_experiments WHERE name = ?", (name,)) is not None:
                raise AlreadyExists(f"Experiment with name '{name}' already exists.")
            while True:
                eid = str(random.SystemRandom().randrange(10**14, 10**15))
                if tx.one("SELECT 1 FROM ml_experiments WHERE experiment_id = ?", (eid,)) is None:
                    break
            tx.execute("INSERT INTO ml_experiments (experiment_id, name, artifact_location, lifecycle_stage, creator, "
                       "creation_time, last_update_time) VALUES (?, ?, ?, 'active', ?, ?, ?)",
                       (eid, name, f"{ARTIFACT_ROOT}/{eid}", p.name, now, now))
            for key, value in tag_list:
                tx.execute("INSERT INTO ml_experiment_tags (experiment_id, key, value) VALUES (?, ?, ?)",
                           (eid, key, value))
        return eid

    def _experiment_json(self, tx: Tx, row: Row) -> dict[str, Any]:
        tags = tx.all("SELECT key, value FROM ml_experiment_tags WHERE experiment_id = ? ORDER BY key",
                      (row["experiment_id"],))
        return {"experiment_id": row["experiment_id"], "name": row["name"],
                "artifact_location": row["artifact_location"], "lifecycle_stage": row["lifecycle_stage"],
                "creation_time": row["creation_time"], "last_update_time": row["last_update_time"],
                "tags": [{"key": t["key"], "value": t["value"]} for t in tags]}

    def get_experiment(self, p: Principal, experiment_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            return self._experiment_json(tx, self._experiment_row(tx, p, experiment_id, "CAN_READ"))

    def get_experiment_by_name(self, p: Principal, name: Any) -> dict[str, Any]:
        name = _text(name, "experiment_name", 1000)
        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT * FROM ml_experiments WHERE name = ?", (name,))
            if row is None or self._level(tx, p, row) == 0:
                raise NotFound(f"Could not find experiment with name '{name[:200]}'")
            return self._experiment_json(tx, row)

    def search_experiments(self, p: Principal, *, filter: Any = None, max_results: Any = None,
                           order_by: Any = None, page_token: Any = None, view_type: Any = None
                           ) -> tuple[list[dict[str, Any]], str | None]:
        stages = _stages(view_type)
        predicate = compile_filter(filter, EXPERIMENT_ATTRIBUTES)
        with self.db.tx(write=False) as tx:
            found = []
            for row in tx.all("SELECT * FROM ml_experiments"):
                if row["lifecycle_stage"] not in stages or self._level(tx, p, row) == 0:
                    continue
                exp = self._experiment_json(tx, row)
                entity = Entity({k: exp[k] for k in EXPERIMENT_ATTRIBUTES},
                                tags={t["key"]: t["value"] for t in exp["tags"]})
                if predicate(entity):
                    found.append((exp, entity))
        ordered = sort_entities(found, lambda x: x[1], order_by, EXPERIMENT_ATTRIBUTES,
                                [("attributes", "last_update_time", True), ("attributes", "experiment_id", False)])
        page, token = _paged([x[0] for x in ordered], page_token, max_results, 1000, 50_000)
        return page, token

    def update_experiment(self, p: Principal, experiment_id: Any, new_name: Any) -> None:
        name = self._check_name(new_name)
        with self.db.tx() as tx:
            row = self._experiment_row(tx, p, experiment_id, "CAN_MANAGE")
            clash = tx.one("SELECT experiment_id FROM ml_experiments WHERE name = ?", (name,))
            if clash is not None and clash["experiment_id"] != row["experiment_id"]:
                raise AlreadyExists(f"Experiment with name '{name}' already exists.")
            tx.execute("UPDATE ml_experiments SET name = ?, last_update_time = ? WHERE experiment_id = ?",
                       (name, now_ms(), row["experiment_id"]))

    def set_experiment_stage(self, p: Principal, experiment_id: Any, stage: str) -> None:
        with self.db.tx() as tx:
            row = self._experiment_row(tx, p, experiment_id, "CAN_MANAGE")
            tx.execute("UPDATE ml_experiments SET lifecycle_stage = ?, last_update_time = ? WHERE experiment_id = ?",
                       (stage, now_ms(), row["experiment_id"]))
            tx.execute("UPDATE ml_runs SET lifecycle_stage = ? WHERE experiment_id = ?", (stage, row["experiment_id"]))

    def set_experiment_tag(self, p: Principal, experiment_id: Any, key: Any, value: Any) -> None:
        key, value = _key(key, "tag key"), _text(value, "tag value", MAX_TAG_VALUE, empty=True)
        with self.db.tx() as tx:
            row = self._experiment_row(tx, p, experiment_id, "CAN_EDIT")
            tx.execute("DELETE FROM ml_experiment_tags WHERE experiment_id = ? AND key = ?", (row["experiment_id"], key))
            tx.execute("INSERT INTO ml_experiment_tags (experiment_id, key, value) VALUES (?, ?, ?)",
                       (row["experiment_id"], key, value))

    def delete_experiment_tag(self, p: Principal, experiment_id: Any, key: Any) -> None:
        with self.db.tx() as tx:
            row = self._experiment_row(tx, p, experiment_id, "CAN_EDIT")
            tx.execute("DELETE FROM ml_experiment_tags WHERE experiment_id = ? AND key = ?",
                       (row["experiment_id"], str(key)))

    # -- runs -----------------------------------------------------------------------------------------
    @staticmethod
    def _tags(tags: Any) -> list[tuple[str, str]]:
        if tags is None:
            return []
        if not isinstance(tags, list):
            raise InvalidParameterValue("tags must be a list of {key, value}")
        out = []
        for t in tags:
            if not isinstance(t, dict):
                raise InvalidParameterValue("tags must be a list of {key, value}")
            out.append((_key(t.get("key"), "tag key"), _text(t.get("value", ""), "tag value", MAX_TAG_VALUE,
                                                             empty=True)))
        return out

    def create_run(self, p: Principal, experiment_id: Any, *, start_time: Any = None, tags: Any = None,
                   run_name: Any = None) -> dict[str, Any]:
        tag_list = self._tags(tags)
        name = run_name or dict(tag_list).get("mlflow.runName") or (
            f"{random.choice(_ADJECTIVES)}-{random.choice(_NOUNS)}-{random.randrange(1000)}")
        name = _text(name, "run_name", 250)
        run_id = secrets.token_hex(16)
        with self.db.tx() as tx:
            exp = self._experiment_row(tx, p, experiment_id, "CAN_EDIT")
            if exp["lifecycle_stage"] != "active":
                raise InvalidState(f"experiment {exp['experiment_id']} is deleted; restore it to add runs")
            tx.execute("INSERT INTO ml_runs (run_id, experiment_id, run_name, user_id, status, start_time, end_time, "
                       "lifecycle_stage, artifact_uri) VALUES (?, ?, ?, ?, 'RUNNING', ?, NULL, 'active', ?)",
                       (run_id, exp["experiment_id"], name, p.name, _int(start_time, "start_time", now_ms()),
                        f"{exp['artifact_location']}/{run_id}/artifacts"))
            tags_now = dict(tag_list)
            tags_now["mlflow.runName"] = name
            tags_now["mlflow.user"] = p.name  # who is authenticated, not who the client says it is
            for key, value in tags_now.items():
                tx.execute("INSERT INTO ml_run_tags (run_id, key, value) VALUES (?, ?, ?)", (run_id, key, value))
            return self._run_json(tx, tx.one("SELECT * FROM ml_runs WHERE run_id = ?", (run_id,)))  # type: ignore[arg-type]

    def _run_json(self, tx: Tx, row: Row) -> dict[str, Any]:
        rid = row["run_id"]
        latest: dict[str, Row] = {}
        for m in tx.all("SELECT key, value, is_nan, timestamp, step FROM ml_metrics WHERE run_id = ?", (rid,)):
            best = latest.get(m["key"])
            if best is None or (m["step"], m["timestamp"]) >= (best["step"], best["timestamp"]):
                latest[m["key"]] = m
        metrics = [{"key": k, "value": _json_number(math.nan if m["is_nan"] else float(m["value"])),
                    "timestamp": m["timestamp"], "step": m["step"]} for k, m in sorted(latest.items())]
        params = [{"key": r["key"], "value": r["value"]}
                  for r in tx.all("SELECT key, value FROM ml_params WHERE run_id = ? ORDER BY key", (rid,))]
        tags = [{"key": r["key"], "value": r["value"]}
                for r in tx.all("SELECT key, value FROM ml_run_tags WHERE run_id = ? ORDER BY key", (rid,))]
        inputs: dict[str, list[Any]] = {"dataset_inputs": [], "model_inputs": []}
        outputs: dict[str, list[Any]] = {"model_outputs": []}
        for r in tx.all("SELECT kind, body FROM ml_run_inputs WHERE run_id = ?", (rid,)):
            (outputs if r["kind"] == "model_outputs" else inputs).setdefault(r["kind"], []).append(json.loads(r["body"]))
        info = {"run_id": rid, "run_uuid": rid, "run_name": row["run_name"], "experiment_id": row["experiment_id"],
                "user_id": row["user_id"], "status": row["status"], "start_time": row["start_time"],
                "artifact_uri": row["artifact_uri"], "lifecycle_stage": row["lifecycle_stage"]}
        if row["end_time"] is not None:
            info["end_time"] = row["end_time"]
        return {"info": info, "data": {"metrics": metrics, "params": params, "tags": tags}, "inputs": inputs,
                "outputs": outputs}

    def get_run(self, p: Principal, run_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            return self._run_json(tx, self._run_row(tx, p, run_id, "CAN_READ"))

    def update_run(self, p: Principal, run_id: Any, *, status: Any = None, end_time: Any = None,
                   run_name: Any = None) -> dict[str, Any]:
        if status is not None and status not in RUN_STATUSES:
            raise InvalidParameterValue(f"status must be one of {', '.join(RUN_STATUSES)}")
        with self.db.tx() as tx:
            row = self._run_row(tx, p, run_id, "CAN_EDIT")
            if status is not None:
                tx.execute("UPDATE ml_runs SET status = ? WHERE run_id = ?", (status, row["run_id"]))
            if end_time is not None:
                tx.execute("UPDATE ml_runs SET end_time = ? WHERE run_id = ?", (_int(end_time, "end_time"), row["run_id"]))
            if run_name:
                name = _text(run_name, "run_name", 250)
                tx.execute("UPDATE ml_runs SET run_name = ? WHERE run_id = ?", (name, row["run_id"]))
                tx.execute("DELETE FROM ml_run_tags WHERE run_id = ? AND key = 'mlflow.runName'", (row["run_id"],))
                tx.execute("INSERT INTO ml_run_tags (run_id, key, value) VALUES (?, 'mlflow.runName', ?)",
                           (row["run_id"], name))
            return self._run_json(tx, tx.one("SELECT * FROM ml_runs WHERE run_id = ?", (row["run_id"],)))["info"]  # type: ignore[arg-type]

    def set_run_stage(self, p: Principal, run_id: Any, stage: str) -> None:
        with self.db.tx() as tx:
            row = self._run_row(tx, p, run_id, "CAN_EDIT")
            tx.execute("UPDATE ml_runs SET lifecycle_stage = ? WHERE run_id = ?", (stage, row["run_id"]))

    def log_batch(self, p: Principal, run_id: Any, *, metrics: Any = None, params: Any = None,
                  tags: Any = None) -> None:
        """Log metrics, params and tags in one transaction. A param, once logged, keeps its value."""
        metrics, params = metrics or [], params or []
        for what, items in (("metrics", metrics), ("params", params), ("tags", tags or [])):
            if not isinstance(items, list):
                raise InvalidParameterValue(f"{what} must be a list")
            if len(items) > MAX_BATCH[what]:
                raise InvalidParameterValue(f"a batch holds at most {MAX_BATCH[what]} {what}")
        tag_list = self._tags(tags)
        rows = []
        for m in metrics:
            if not isinstance(m, dict):
                raise InvalidParameterValue("metrics must be a list of {key, value, timestamp, step}")
            value = _metric_value(m.get("value"))
            rows.append((_key(m.get("key"), "metric key"), None if math.isnan(value) else value,
                         1 if math.isnan(value) else 0, _int(m.get("timestamp"), "metric timestamp", now_ms()),
                         _int(m.get("step"), "metric step", 0), m.get("model_id"), m.get("dataset_name"),
                         m.get("dataset_digest")))
        param_list = []
        for prm in params:
            if not isinstance(prm, dict):
                raise InvalidParameterValue("params must be a list of {key, value}")
            value = prm.get("value")
            param_list.append((_key(prm.get("key"), "param key"),
                               _text("" if value is None else str(value), "param value", MAX_PARAM_VALUE, empty=True)))
        with self.db.tx() as tx:
            row = self._run_row(tx, p, run_id, "CAN_EDIT")
            if row["lifecycle_stage"] != "active":
                raise InvalidState(f"run {row['run_id']} is deleted; restore it to log to it")
            rid = row["run_id"]
            for key, value in dict(param_list).items():
                old = tx.one("SELECT value FROM ml_params WHERE run_id = ? AND key = ?", (rid, key))
                if old is not None and old["value"] != value:
                    raise InvalidParameterValue(
                        f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                        f"value='{old['value'][:200]}' for run ID='{rid}'. Attempted logging new value "
                        f"'{value[:200]}'.")
                if old is None:
                    tx.execute("INSERT INTO ml_params (run_id, key, value) VALUES (?, ?, ?)", (rid, key, value))
            for key, value in tag_list:
                tx.execute("DELETE FROM ml_run_tags WHERE run_id = ? AND key = ?", (rid, key))
                tx.execute("INSERT INTO ml_run_tags (run_id, key, value) VALUES (?, ?, ?)", (rid, key, value))
                if key == "mlflow.runName":
                    tx.execute("UPDATE ml_runs SET run_name = ? WHERE run_id = ?", (value, rid))
            for r in rows:
                tx.execute("INSERT INTO ml_metrics (run_id, key, value, is_nan, timestamp, step, model_id, dataset_name, "
                           "dataset_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (rid, *r))

    def delete_tag(self, p: Principal, run_id: Any, key: Any) -> None:
        with self.db.tx() as tx:
            row = self._run_row(tx, p, run_id, "CAN_EDIT")
            if tx.one("SELECT 1 FROM ml_run_tags WHERE run_id = ? AND key = ?", (row["run_id"], str(key))) is None:
                raise NotFound(f"No tag with name: {str(key)[:100]} in run with id {row['run_id']}")
            tx.execute("DELETE FROM ml_run_tags WHERE run_id = ? AND key = ?", (row["run_id"], str(key)))

    def log_inputs(self, p: Principal, run_id: Any, *, datasets: Any = None, models: Any = None) -> None:
        items = [("dataset_inputs", d) for d in datasets or []] + [("model_inputs", m) for m in models or []]
        self._log_io(p, run_id, items)

    def log_outputs(self, p: Principal, run_id: Any, models: Any) -> None:
        self._log_io(p, run_id, [("model_outputs", m) for m in models or []])

    def _log_io(self, p: Principal, run_id: Any, items: list[tuple[str, Any]]) -> None:
        if len(items) > 1000 or not all(isinstance(body, dict) for _, body in items):
            raise InvalidParameterValue("inputs and outputs are lists of at most 1000 objects")
        with self.db.tx() as tx:
            row = self._run_row(tx, p, run_id, "CAN_EDIT")
            for kind, body in items:
                text = json.dumps(body)
                if len(text) > 1_000_000:
                    raise InvalidParameterValue("an input or output is larger than 1 MB")
                tx.execute("INSERT INTO ml_run_inputs (run_id, kind, body) VALUES (?, ?, ?)", (row["run_id"], kind, text))

    def metric_history(self, p: Principal, run_id: Any, key: Any, *, page_token: Any = None,
                       max_results: Any = None) -> tuple[list[dict[str, Any]], str | None]:
        key = _key(key, "metric_key")
        with self.db.tx(write=False) as tx:
            row = self._run_row(tx, p, run_id, "CAN_READ")
            found = tx.all("SELECT key, value, is_nan, timestamp, step FROM ml_metrics WHERE run_id = ? AND key = ? "
                           "ORDER BY step, timestamp", (row["run_id"], key))
        history = [{"key": m["key"], "value": _json_number(math.nan if m["is_nan"] else float(m["value"])),
                    "timestamp": m["timestamp"], "step": m["step"]} for m in found]
        return _paged(history, page_token, max_results, 25_000, 25_000)

    def search_runs(self, p: Principal, experiment_ids: Any, *, filter: Any = None, run_view_type: Any = None,
                    max_results: Any = None, order_by: Any = None, page_token: Any = None
                    ) -> tuple[list[dict[str, Any]], str | None]:
        if not isinstance(experiment_ids, list) or not experiment_ids:
            raise InvalidParameterValue("experiment_ids must be a non-empty list")
        stages = _stages(run_view_type)
        predicate = compile_filter(filter, RUN_ATTRIBUTES)
        found = []
        with self.db.tx(write=False) as tx:
            for eid in experiment_ids:
                self._experiment_row(tx, p, eid, "CAN_READ")
                for row in tx.all("SELECT * FROM ml_runs WHERE experiment_id = ?", (str(eid),)):
                    if row["lifecycle_stage"] not in stages:
                        continue
                    run = self._run_json(tx, row)
                    data = run["data"]
                    entity = Entity({k: run["info"].get(k) for k in RUN_ATTRIBUTES},
                                    metrics={m["key"]: float(m["value"]) if not isinstance(m["value"], str)
                                             else float(m["value"].replace("Infinity", "inf")) for m in data["metrics"]},
                                    params={x["key"]: x["value"] for x in data["params"]},
                                    tags={x["key"]: x["value"] for x in data["tags"]})
                    if predicate(entity):
                        found.append((run, entity))
        ordered = sort_entities(found, lambda x: x[1], order_by, RUN_ATTRIBUTES,
                                [("attributes", "start_time", True), ("attributes", "run_id", False)])
        return _paged([x[0] for x in ordered], page_token, max_results, 1000, 50_000)

    def run_experiment(self, run_id: str) -> str | None:
        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT experiment_id FROM ml_runs WHERE run_id = ?", (str(run_id),))
        return None if row is None else str(row["experiment_id"])


def _stages(view_type: Any) -> set[str]:
    view = str(view_type or "ACTIVE_ONLY").upper()
    stages = {"ACTIVE_ONLY": {"active"}, "DELETED_ONLY": {"deleted"}, "ALL": {"active", "deleted"}}.get(view)
    if stages is None:
        raise InvalidParameterValue("view type must be ACTIVE_ONLY, DELETED_ONLY or ALL")
    return stages
