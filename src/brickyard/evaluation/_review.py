"""Human review: review apps, label schemas, labeling sessions and the items reviewers label.

``databricks.agents.review_app`` (and ``mlflow.genai.labeling`` / ``label_schemas`` over it) keep one review app
per experiment through ``/api/2.0/managed-evals/review-apps``: its label schemas (what reviewers are asked:
feedback such as "is this answer correct", or expectations such as the expected facts), and labeling sessions,
each with assigned reviewers (users or groups), its own MLflow run, and items (traces, or records of an
evaluation dataset). A reviewer opens the session's URL (``/ml/review-v2/{app}/tasks/labeling/{session}``, served
by ``brickyard serve``), sees each item and submits labels; each label becomes an assessment on the item's trace
(source HUMAN, the reviewer's name). Only the assigned reviewers, the session's and app's creators, the
experiment's managers and admins may read or label a session.
"""

from __future__ import annotations

import json
from typing import Any

from ..catalog import Principal
from ..core.errors import AlreadyExists, InvalidParameterValue, NotFound, PermissionDenied
from ..core.ids import new_id, now_ms

INPUTS = ("categorical", "categorical_list", "text", "text_list", "numeric")
MAX_SCHEMAS = 50
MAX_ITEMS = 10_000
PAGE = 500


def _check_schema(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not 0 < len(raw["name"]) <= 200:
        raise InvalidParameterValue("each label schema needs a name of 1 to 200 characters")
    name = raw["name"]
    kind = raw.get("type")
    if kind not in ("FEEDBACK", "EXPECTATION"):
        raise InvalidParameterValue(f"label schema {name!r}: type must be FEEDBACK or EXPECTATION")
    given = [k for k in INPUTS if raw.get(k) is not None]
    if len(given) != 1:
        raise InvalidParameterValue(f"label schema {name!r} needs exactly one input: {', '.join(INPUTS)}")
    spec = raw[given[0]]
    if not isinstance(spec, dict):
        raise InvalidParameterValue(f"label schema {name!r}: {given[0]} must be an object")
    if given[0] in ("categorical", "categorical_list"):
        options = spec.get("options")
        if not isinstance(options, list) or not options or not all(isinstance(o, str) and o for o in options) \
                or len(options) > 100:
            raise InvalidParameterValue(f"label schema {name!r}: options must be 1 to 100 strings")
    if given[0] == "numeric":
        for bound in ("min_value", "max_value"):
            value = spec.get(bound)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidParameterValue(f"label schema {name!r}: {bound} must be a number")
    out = {"name": name, "type": kind, "title": str(raw.get("title") or name)[:500],
           "instruction": str(raw.get("instruction") or "")[:4000], "enable_comment": bool(raw.get("enable_comment")),
           given[0]: spec}
    return out


def _schemas(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_SCHEMAS:
        raise InvalidParameterValue(f"labeling_schemas must be a list of at most {MAX_SCHEMAS}")
    out = [_check_schema(s) for s in raw]
    names = [s["name"] for s in out]
    if len(set(names)) != len(names):
        raise InvalidParameterValue("label schema names must be unique in a review app")
    return out


def _agents(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(a, dict) and isinstance(a.get("agent_name"), str) for a in raw):
        raise InvalidParameterValue("agents must be a list of {agent_name, model_serving_endpoint}")
    return [{"agent_name": a["agent_name"][:200],
             "model_serving_endpoint": {"endpoint_name": str((a.get("model_serving_endpoint") or {}).get(
                 "endpoint_name") or "")[:200]}} for a in raw]


class ReviewApps:
    def __init__(self, *, db: Any, tracking: Any, traces: Any, identity: Any, datasets: Any,
                 system: Any) -> None:
        self.db = db
        self.tracking = tracking
        self.traces = traces
        self.identity = identity
        self.datasets = datasets
        self._system = system

    # -- review apps ---------------------------------------------------------------------------------
    def _app_row(self, tx: Any, app_id: Any) -> Any:
        row = tx.one("SELECT * FROM review_apps WHERE review_app_id = ?", (str(app_id),))
        if row is None:
            raise NotFound(f"review app {str(app_id)[:60]} does not exist", error_code="RESOURCE_DOES_NOT_EXIST")
        return row

    def _app_shape(self, row: Any) -> dict[str, Any]:
        body = json.loads(row["body"])
        return {"review_app_id": row["review_app_id"], "experiment_id": row["experiment_id"],
                "agents": body.get("agents") or [], "labeling_schemas": body.get("labeling_schemas") or []}

    def create(self, p: Principal, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("experiment_id"), str):
            raise InvalidParameterValue("experiment_id is required")
        experiment = body["experiment_id"]
        self.tracking.require_experiment(p, experiment, "CAN_EDIT")
        content = {"agents": _agents(body.get("agents")), "labeling_schemas": _schemas(body.get("labeling_schemas"))}
        app_id = new_id()
        now = now_ms()
        with self.db.tx() as tx:
            if tx.one("SELECT 1 FROM review_apps WHERE experiment_id = ?", (experiment,)):
                raise AlreadyExists(f"experiment {experiment} already has a review app")
            tx.execute("INSERT INTO review_apps (review_app_id, experiment_id, body, created_by, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (app_id, experiment, json.dumps(content), p.name, now, now))
            return self._app_shape(self._app_row(tx, app_id))

    def list(self, p: Principal, filter: Any, page_token: Any = None) -> dict[str, Any]:
        text = str(filter or "").strip()
        key, _, value = text.partition("=")
        if key.strip() != "experiment_id" or not value.strip():
            raise InvalidParameterValue("filter must be experiment_id=<id>")
        experiment = value.strip().strip("'\"")
        self.tracking.require_experiment(p, experiment, "CAN_READ")
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT * FROM review_apps WHERE experiment_id = ?", (experiment,))
        return {"review_apps": [self._app_shape(r) for r in rows]}

    def get(self, p: Principal, app_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._app_row(tx, app_id)
        self.tracking.require_experiment(p, row["experiment_id"], "CAN_READ")
        return self._app_shape(row)

    def agents_of(self, app_id: Any) -> list[dict[str, str]]:
        """The agents a review app lets reviewers chat with, as {agent_name, endpoint} (each call to one is
        checked by the gateway)."""
        with self.db.tx(write=False) as tx:
            row = self._app_row(tx, app_id)
        return [{"agent_name": a["agent_name"], "endpoint": (a.get("model_serving_endpoint") or {})["endpoint_name"]}
                for a in json.loads(row["body"]).get("agents") or []
                if (a.get("model_serving_endpoint") or {}).get("endpoint_name")]

    def update(self, p: Principal, app_id: Any, body: Any, update_mask: Any) -> dict[str, Any]:
        fields = [f.strip() for f in str(update_mask or "").split(",") if f.strip()]
        if not fields or any(f not in ("labeling_schemas", "agents") for f in fields):
            raise InvalidParameterValue("update_mask must name labeling_schemas and/or agents")
        with self.db.tx(write=False) as tx:
            row = self._app_row(tx, app_id)
        self.tracking.require_experiment(p, row["experiment_id"], "CAN_EDIT")
        content = json.loads(row["body"])
        body = body if isinstance(body, dict) else {}
        if "labeling_schemas" in fields:
            content["labeling_schemas"] = _schemas(body.get("labeling_schemas"))
        if "agents" in fields:
            content["agents"] = _agents(body.get("agents"))
        with self.db.tx() as tx:
            tx.execute("UPDATE review_apps SET body = ?, updated_at = ? WHERE review_app_id = ?",
                       (json.dumps(content), now_ms(), row["review_app_id"]))
            return self._app_shape(self._app_row(tx, app_id))

    # -- labeling sessions ---------------------------------------------------------------------------
    def _session_row(self, tx: Any, app_id: Any, session_id: Any) -> Any:
        row = tx.one("SELECT * FROM labeling_sessions WHERE labeling_session_id = ? AND review_app_id = ?",
                     (str(session_id), str(app_id)))
        if row is None:
            raise NotFound(f"labeling session {str(session_id)[:60]} does not exist",
                           error_code="RESOURCE_DOES_NOT_EXIST")
        return row

    def _session_shape(self, row: Any) -> dict[str, Any]:
        body = json.loads(row["body"])
        return {"labeling_session_id": row["labeling_session_id"], "mlflow_run_id": row["mlflow_run_id"],
                "name": row["name"], "assigned_users": json.loads(row["assigned_users"]),
                "agent": body.get("agent"), "labeling_schemas": body.get("labeling_schemas") or [],
                "additional_configs": body.get("additional_configs") or {}}

    def _users(self, raw: Any) -> list[str]:
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(u, str) and u for u in raw) or len(raw) > 1000:
            raise InvalidParameterValue("assigned_users must be a list of user or group names")
        for name in raw:
            if self.identity.by_name(name) is None:
                raise InvalidParameterValue(f"no user or group is called {name[:100]!r}")
        return list(dict.fromkeys(raw))

    def _session_body(self, body: dict[str, Any], app: Any) -> dict[str, Any]:
        known = {s["name"] for s in json.loads(app["body"]).get("labeling_schemas") or []}
        refs = body.get("labeling_schemas") or []
        if not isinstance(refs, list) or not all(isinstance(r, dict) and isinstance(r.get("name"), str) for r in refs):
            raise InvalidParameterValue("labeling_schemas must be a list of {name}")
        for ref in refs:
            if ref["name"] not in known:
                raise InvalidParameterValue(f"label schema {ref['name'][:100]!r} is not in the review app; create it "
                                            "there first")
        configs = body.get("additional_configs") or {}
        agent = body.get("agent")
        return {"agent": agent if isinstance(agent, dict) else None,
                "labeling_schemas": [{"name": r["name"]} for r in refs],
                "additional_configs": configs if isinstance(configs, dict) else {}}

    def create_session(self, p: Principal, app_id: Any, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
            raise InvalidParameterValue("a labeling session needs a name")
        with self.db.tx(write=False) as tx:
            app = self._app_row(tx, app_id)
        self.tracking.require_experiment(p, app["experiment_id"], "CAN_EDIT")
        users = self._users(body.get("assigned_users"))
        content = self._session_body(body, app)
        run = self.tracking.create_run(p, app["experiment_id"], run_name=f"labeling: {body['name'][:200]}",
                                       start_time=now_ms(), tags=[{"key": "brickyard.labeling_session",
                                                                   "value": "true"}])
        session_id = new_id()
        now = now_ms()
        with self.db.tx() as tx:
            tx.execute("INSERT INTO labeling_sessions (labeling_session_id, review_app_id, name, assigned_users, body, "
                       "mlflow_run_id, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (session_id, app["review_app_id"], body["name"][:500], json.dumps(users), json.dumps(content),
                        run["info"]["run_id"], p.name, now, now))
            return self._session_shape(self._session_row(tx, app_id, session_id))

    def list_sessions(self, p: Principal, app_id: Any, page_token: Any = None, page_size: Any = None
                      ) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            app = self._app_row(tx, app_id)
            rows = tx.all("SELECT * FROM labeling_sessions WHERE review_app_id = ? ORDER BY created_at, "
                          "labeling_session_id", (app["review_app_id"],))
        self.tracking.require_experiment(p, app["experiment_id"], "CAN_READ")
        start, size = _page(page_token, page_size)
        out: dict[str, Any] = {"labeling_sessions": [self._session_shape(r) for r in rows[start:start + size]]}
        if start + size < len(rows):
            out["next_page_token"] = str(start + size)
        return out

    def update_session(self, p: Principal, app_id: Any, session_id: Any, body: Any, update_mask: Any
                       ) -> dict[str, Any]:
        fields = [f.strip() for f in str(update_mask or "").split(",") if f.strip()]
        allowed = ("name", "assigned_users", "labeling_schemas", "agent", "additional_configs")
        if not fields or any(f not in allowed for f in fields):
            raise InvalidParameterValue(f"update_mask must name some of {', '.join(allowed)}")
        body = body if isinstance(body, dict) else {}
        with self.db.tx(write=False) as tx:
            app = self._app_row(tx, app_id)
            row = self._session_row(tx, app_id, session_id)
        self.tracking.require_experiment(p, app["experiment_id"], "CAN_EDIT")
        content = json.loads(row["body"])
        name, users = row["name"], json.loads(row["assigned_users"])
        if "name" in fields:
            if not isinstance(body.get("name"), str) or not body["name"].strip():
                raise InvalidParameterValue("name must be a non-empty string")
            name = body["name"][:500]
        if "assigned_users" in fields:
            users = self._users(body.get("assigned_users"))
        checked = self._session_body({**content, **{k: body.get(k) for k in fields if k in body}}, app)
        for key in ("labeling_schemas", "agent", "additional_configs"):
            if key in fields:
                content[key] = checked[key]
        with self.db.tx() as tx:
            tx.execute("UPDATE labeling_sessions SET name = ?, assigned_users = ?, body = ?, updated_at = ? "
                       "WHERE labeling_session_id = ?", (name, json.dumps(users), json.dumps(content), now_ms(),
                                                         row["labeling_session_id"]))
            return self._session_shape(self._session_row(tx, app_id, session_id))

    def delete_session(self, p: Principal, app_id: Any, session_id: Any) -> None:
        with self.db.tx(write=False) as tx:
            app = self._app_row(tx, app_id)
            self._session_row(tx, app_id, session_id)
        self.tracking.require_experiment(p, app["experiment_id"], "CAN_EDIT")
        with self.db.tx() as tx:
            tx.execute("DELETE FROM labeling_sessions WHERE labeling_session_id = ?", (str(session_id),))

    # -- items ---------------------------------------------------------------------------------------
    def create_items(self, p: Principal, app_id: Any, session_id: Any, body: Any) -> dict[str, Any]:
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items or len(items) > MAX_ITEMS:
            raise InvalidParameterValue(f"items must be a list of 1 to {MAX_ITEMS} {{source}} objects")
        with self.db.tx(write=False) as tx:
            app = self._app_row(tx, app_id)
            session = self._session_row(tx, app_id, session_id)
        self.tracking.require_experiment(p, app["experiment_id"], "CAN_EDIT")
        sources = []
        for item in items:
            source = item.get("source") if isinstance(item, dict) else None
            if not isinstance(source, dict):
                raise InvalidParameterValue("each item needs a source: {trace_id} or {dataset_record}")
            if isinstance(source.get("trace_id"), str):
                info = self.traces.get_info(p, source["trace_id"])  # the caller must be able to read it
                if str(info.get("trace_location", {}).get("mlflow_experiment", {}).get("experiment_id")
                       or app["experiment_id"]) != app["experiment_id"]:
                    raise InvalidParameterValue(f"trace {source['trace_id'][:60]} is not in the review app's experiment")
                sources.append(({"trace_id": source["trace_id"]}, source["trace_id"]))
            elif isinstance(source.get("dataset_record"), dict):
                ref = source["dataset_record"]
                if not isinstance(ref.get("dataset_id"), str) or not isinstance(ref.get("dataset_record_id"), str):
                    raise InvalidParameterValue("dataset_record needs dataset_id and dataset_record_id")
                self.datasets.get(p, ref["dataset_id"])  # the caller must be able to read the dataset
                sources.append(({"dataset_record": {"dataset_id": ref["dataset_id"],
                                                    "dataset_record_id": ref["dataset_record_id"]}}, None))
            else:
                raise InvalidParameterValue("each item needs a source: {trace_id} or {dataset_record}")
        now = now_ms()
        with self.db.tx() as tx:
            top = tx.one("SELECT MAX(position) AS m FROM labeling_items WHERE labeling_session_id = ?",
                         (session["labeling_session_id"],))
            position = int(top["m"] if top["m"] is not None else -1)
            for source, trace_id in sources:
                position += 1
                tx.execute("INSERT INTO labeling_items (item_id, labeling_session_id, position, source, trace_id, "
                           "state, created_by, created_at, last_updated_by, last_update_time) "
                           "VALUES (?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?)",
                           (new_id(), session["labeling_session_id"], position, json.dumps(source), trace_id, p.name,
                            now, p.name, now))
        return {}

    def _item_shape(self, row: Any) -> dict[str, Any]:
        source = json.loads(row["source"])
        out = {"item_id": row["item_id"], "source": source, "state": row["state"],
               "create_time": _rfc(row["created_at"]), "created_by": row["created_by"],
               "last_update_time": _rfc(row["last_update_time"]), "last_updated_by": row["last_updated_by"],
               "chat_rounds": [{"trace_id": row["trace_id"]}] if row["trace_id"] else
               [{"dataset_record": source.get("dataset_record")}]}
        return out

    def list_items(self, p: Principal, app_id: Any, session_id: Any, page_token: Any = None, page_size: Any = None
                   ) -> dict[str, Any]:
        session, _ = self.reviewable(p, app_id, session_id)
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT * FROM labeling_items WHERE labeling_session_id = ? ORDER BY position",
                          (session["labeling_session_id"],))
        start, size = _page(page_token, page_size)
        out: dict[str, Any] = {"items": [self._item_shape(r) for r in rows[start:start + size]]}
        if start + size < len(rows):
            out["next_page_token"] = str(start + size)
        return out

    # -- reviewing (the pages) -----------------------------------------------------------------------
    def reviewable(self, p: Principal, app_id: Any, session_id: Any) -> tuple[Any, Any]:
        """(session row, app row) when ``p`` may read and label the session: an assigned reviewer (by name or
        group), its or the app's creator, a manager of the experiment, or an admin."""
        with self.db.tx(write=False) as tx:
            app = self._app_row(tx, app_id)
            session = self._session_row(tx, app_id, session_id)
        assigned = set(json.loads(session["assigned_users"]))
        if p.is_admin or p.name in assigned or assigned & set(p.groups) or \
                p.name in (session["created_by"], app["created_by"]):
            return session, app
        if self.tracking.experiment_level(p, app["experiment_id"]) == "CAN_MANAGE":
            return session, app
        raise PermissionDenied(f"{p.name} is not a reviewer of labeling session {session['name']!r}")

    def page(self, p: Principal, app_id: Any, session_id: Any) -> dict[str, Any]:
        """What the session page shows: the session, its label schemas and its items with their state."""
        session, app = self.reviewable(p, app_id, session_id)
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT * FROM labeling_items WHERE labeling_session_id = ? ORDER BY position",
                          (session["labeling_session_id"],))
        system = self._system()
        items = []
        for row in rows:
            question = ""
            if row["trace_id"]:
                try:
                    question = str(self.traces.get_info(system, row["trace_id"]).get("request_preview") or "")
                except NotFound:
                    question = "(the trace was deleted)"
            else:
                question = json.dumps(json.loads(row["source"]).get("dataset_record"))
            items.append({"item_id": row["item_id"], "state": row["state"], "question": question[:300]})
        return {"session": self._session_shape(session), "app": self._app_shape(app), "items": items}

    def schemas_of(self, session: Any, app: Any) -> list[dict[str, Any]]:
        wanted = [r["name"] for r in json.loads(session["body"]).get("labeling_schemas") or []]
        every = {s["name"]: s for s in json.loads(app["body"]).get("labeling_schemas") or []}
        return [every[n] for n in wanted if n in every] or list(every.values())

    def item(self, p: Principal, app_id: Any, session_id: Any, item_id: Any) -> dict[str, Any]:
        """What an item page shows: the question, retrieved chunks, answer, tool calls, the schemas to label
        and what this reviewer labelled before."""
        session, app = self.reviewable(p, app_id, session_id)
        row = self._item_row(session, item_id)
        view: dict[str, Any] = {"item_id": row["item_id"], "state": row["state"], "question": "", "answer": "",
                                "chunks": [], "tool_calls": [], "expectations": {}, "mine": {},
                                "schemas": self.schemas_of(session, app)}
        system = self._system()
        if row["trace_id"]:
            from ._harness import documents_of
            from ._monitoring import _answer_text

            info = self.traces.get_info(system, row["trace_id"])
            spans = json.loads(self.traces.read_spans(system, row["trace_id"])).get("spans") or []
            root = next((s for s in spans if not s.get("parent_span_id")), {})
            attrs = root.get("attributes") or {}
            view["question"] = _loads(attrs.get("mlflow.spanInputs")) or info.get("request_preview") or ""
            outputs = _loads(attrs.get("mlflow.spanOutputs"))
            view["answer"] = _answer_text(outputs) if outputs is not None else str(info.get("response_preview") or "")
            view["chunks"] = documents_of(spans)
            view["tool_calls"] = [{"name": s.get("name"), "inputs": _loads((s.get("attributes") or {}).get(
                "mlflow.spanInputs")), "outputs": _loads((s.get("attributes") or {}).get("mlflow.spanOutputs"))}
                for s in spans if (s.get("attributes") or {}).get("mlflow.spanType") in ('"TOOL"', "TOOL")]
            for a in info.get("assessments") or []:
                if (a.get("source") or {}).get("source_id") == p.name and a.get("valid") is not False:
                    kind = "feedback" if "feedback" in a else "expectation"
                    view["mine"][a["assessment_name"]] = (a.get(kind) or {}).get("value")
        else:
            ref = json.loads(row["source"]).get("dataset_record") or {}
            records = self.datasets.records(system, ref.get("dataset_id"))["dataset_records"]
            record = next((r for r in records if r["dataset_record_id"] == ref.get("dataset_record_id")), None)
            if record is not None:
                view["question"] = {i["key"]: i["value"] for i in record["inputs"]}
                view["expectations"] = {k: v.get("value") for k, v in (record.get("expectations") or {}).items()}
        return view

    def _item_row(self, session: Any, item_id: Any) -> Any:
        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT * FROM labeling_items WHERE item_id = ? AND labeling_session_id = ?",
                         (str(item_id), session["labeling_session_id"]))
        if row is None:
            raise NotFound(f"item {str(item_id)[:60]} is not in this labeling session",
                           error_code="RESOURCE_DOES_NOT_EXIST")
        return row

    def submit(self, p: Principal, app_id: Any, session_id: Any, item_id: Any, labels: dict[str, Any],
               comments: dict[str, str]) -> str | None:
        """Record a reviewer's labels on an item: an assessment per label on its trace (or expectations on its
        dataset record), source HUMAN with the reviewer's name; the item is COMPLETED. Returns the next
        pending item's id, if any."""
        session, app = self.reviewable(p, app_id, session_id)
        row = self._item_row(session, item_id)
        schemas = {s["name"]: s for s in self.schemas_of(session, app)}
        clean: dict[str, Any] = {}
        for name, raw in labels.items():
            schema = schemas.get(name)
            if schema is None:
                raise InvalidParameterValue(f"{name[:100]!r} is not a label schema of this session")
            value = _value(schema, raw)
            if value is not None:
                clean[name] = value
        system = self._system()
        if row["trace_id"]:
            for name, value in clean.items():
                kind = "feedback" if schemas[name]["type"] == "FEEDBACK" else "expectation"
                body: dict[str, Any] = {"assessment_name": name, kind: {"value": value},
                                        "source": {"source_type": "HUMAN", "source_id": p.name}}
                comment = (comments.get(name) or "").strip()
                if comment:
                    body["rationale"] = comment[:4000]
                self.traces.create_assessment(system, row["trace_id"], body)
        elif clean:
            ref = json.loads(row["source"]).get("dataset_record") or {}
            self.datasets.upsert_expectations(p, ref.get("dataset_id"), ref.get("dataset_record_id"),
                                              {"expectations": {k: {"value": v} for k, v in clean.items()}})
        with self.db.tx() as tx:
            tx.execute("UPDATE labeling_items SET state = 'COMPLETED', last_updated_by = ?, last_update_time = ? "
                       "WHERE item_id = ?", (p.name, now_ms(), row["item_id"]))
            nxt = tx.one("SELECT item_id FROM labeling_items WHERE labeling_session_id = ? AND state = 'PENDING' "
                         "ORDER BY position LIMIT 1", (session["labeling_session_id"],))
        return None if nxt is None else str(nxt["item_id"])


def _value(schema: dict[str, Any], raw: Any) -> Any:
    """A submitted form value as the schema's type; None when left empty."""
    values = raw if isinstance(raw, list) else [raw]
    values = [str(v) for v in values if v is not None and str(v).strip() != ""]
    name = schema["name"]
    if not values:
        return None
    if "categorical" in schema:
        if values[0] not in schema["categorical"]["options"]:
            raise InvalidParameterValue(f"{values[0][:100]!r} is not an option of {name!r}")
        return values[0]
    if "categorical_list" in schema:
        bad = [v for v in values if v not in schema["categorical_list"]["options"]]
        if bad:
            raise InvalidParameterValue(f"{bad[0][:100]!r} is not an option of {name!r}")
        return values
    if "numeric" in schema:
        try:
            number = float(values[0])
        except ValueError:
            raise InvalidParameterValue(f"{name!r} takes a number") from None
        lo, hi = schema["numeric"].get("min_value"), schema["numeric"].get("max_value")
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise InvalidParameterValue(f"{name!r} takes a number from {lo} to {hi}")
        return number
    limit = int((schema.get("text") or {}).get("max_length") or 20_000)
    if "text_list" in schema:
        each = int(schema["text_list"].get("max_length_each") or 20_000)
        lines = [line.strip() for v in values for line in v.splitlines() if line.strip()]
        count = schema["text_list"].get("max_count")
        if count and len(lines) > int(count):
            raise InvalidParameterValue(f"{name!r} takes at most {count} entries")
        if any(len(line) > each for line in lines):
            raise InvalidParameterValue(f"each entry of {name!r} is at most {each} characters")
        return lines
    if len(values[0]) > limit:
        raise InvalidParameterValue(f"{name!r} is at most {limit} characters")
    return values[0]


def _loads(raw: Any) -> Any:
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return raw


def _page(token: Any, size: Any) -> tuple[int, int]:
    try:
        start = int(token) if token else 0
        count = min(int(size), PAGE) if size else PAGE
    except ValueError:
        raise InvalidParameterValue("page_token and page_size must be whole numbers") from None
    if start < 0 or count < 1:
        raise InvalidParameterValue("page_token and page_size must be positive")
    return start, count


def _rfc(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
