"""MLflow traces (V3, stored in an experiment): trace info in the metastore, spans as a JSON file beside the
experiment's artifacts, assessments (feedback and expectations) attached to a trace.

The ``mlflow`` client exports a finished trace in two steps: ``POST /api/3.0/mlflow/traces`` with the trace
info, then asks for credentials to upload the spans and PUTs ``{"spans": [...]}`` to the signed URL it gets
back. Brickyard's signed URLs point back at its own server and carry a sealed, expiring token naming the
trace, the direction and the user; the user's permission is checked again when the URL is used. Reading
works the same way in reverse. Brickyard's own runtime writes its traces here directly (:meth:`record`).

Trace info is kept as the client sent it (MLflow's proto JSON), with tags and assessments kept apart so
they can change. Reading a trace needs CAN_READ on its experiment, writing CAN_EDIT.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..catalog import Principal
from ..catalog._crypto import SecretBox
from ..catalog._db import Row, Tx
from ..core.errors import AlreadyExists, InvalidParameterValue, NotFound
from ..core.ids import now_ms
from ._search import Entity, compile_filter, sort_entities
from ._store import Tracking, _key, _paged, _text

TRACE_ID = re.compile(r"^tr-[0-9a-f]{32}$")
ATTRIBUTES = ("trace_id", "status", "state", "timestamp_ms", "timestamp", "execution_time_ms", "execution_time",
              "name", "run_id", "client_request_id", "experiment_id")
STATES = ("STATE_UNSPECIFIED", "OK", "ERROR", "IN_PROGRESS")
MAX_SPANS_BYTES = 64 * 1024 * 1024
MAX_LINKED = 100  # traces per LinkTracesToRun call, as MLflow allows
SIGNED_PATH = "/api/2.0/brickyard/signed/"
SIGNED_SECONDS = 900  # how long a signed URL stays usable


def _rfc3339(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _ms(value: Any) -> int:
    """Milliseconds from a proto JSON Timestamp (RFC 3339 text) or a number."""
    if value is None or value == "":
        return 0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    try:
        text = str(value).replace("Z", "+00:00")
        return int(dt.datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        raise InvalidParameterValue(f"{str(value)[:40]!r} is not an RFC 3339 time") from None


def _duration_ms(value: Any) -> int:
    """Milliseconds from a proto JSON Duration ("1.250s") or a number."""
    if value is None or value == "":
        return 0
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    m = re.fullmatch(r"(-?\d+(?:\.\d+)?)s", str(value))
    if m is None:
        raise InvalidParameterValue(f"{str(value)[:40]!r} is not a duration such as '1.5s'")
    return int(float(m.group(1)) * 1000)


class Traces:
    def __init__(self, tracking: Tracking, root: Path, box: SecretBox, principal: Callable[[str], Principal]) -> None:
        self.tracking = tracking
        self.db = tracking.db
        self.root = root  # <home>/tracking/artifacts
        self.box = box
        self.principal = principal

    # -- signed URLs for span data ---------------------------------------------------------------------
    def credentials(self, p: Principal, trace_id: Any, *, write: bool, base_url: str) -> dict[str, Any]:
        """``credential_info`` for uploading (``write``) or downloading a trace's spans: a URL on this server
        whose token names the trace, the direction and ``p``. Permission is checked now and again on use."""
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, trace_id, "CAN_EDIT" if write else "CAN_READ")
        token = self.box.sign({"k": "trace", "id": row["trace_id"], "w": write, "u": p.name})
        return {"credential_info": {"type": "AWS_PRESIGNED_URL", "signed_uri": base_url.rstrip("/") + SIGNED_PATH + token,
                                    "headers": []}}

    def use_signed(self, token: str, *, write: bool, data: bytes | None = None) -> bytes | None:
        """Carry out what a signed URL allows: store ``data`` as the spans, or return them."""
        from ..core.errors import PermissionDenied

        grant = self.box.unsign(token, max_age_seconds=SIGNED_SECONDS)
        if grant is None or grant.get("k") != "trace" or bool(grant.get("w")) != write:
            raise PermissionDenied("the signed URL is invalid, expired, or not for this method")
        p = self.principal(str(grant["u"]))
        if write:
            self.write_spans(p, str(grant["id"]), data or b"")
            return None
        return self.read_spans(p, str(grant["id"]))

    # -- storage -------------------------------------------------------------------------------------
    def _spans_path(self, experiment_id: str, trace_id: str) -> Path:
        return self.root / experiment_id / "Traces" / trace_id / "traces.json"

    def _row(self, tx: Tx, p: Principal, trace_id: Any, need: str) -> Row:
        return self.tracking.child_row(tx, p, "trace", trace_id, need,
                                       f"Trace with ID {str(trace_id)[:60]} is not found.")

    # -- writing -------------------------------------------------------------------------------------
    def start(self, p: Principal, trace: Any) -> dict[str, Any]:
        """Record a trace's info (``StartTraceV3``); returns it with the server's tags added."""
        info = (trace or {}).get("trace_info") if isinstance(trace, dict) else None
        if not isinstance(info, dict):
            raise InvalidParameterValue("trace.trace_info is required")
        trace_id = info.get("trace_id")
        if not isinstance(trace_id, str) or not TRACE_ID.match(trace_id):
            raise InvalidParameterValue("trace_id must be 'tr-' and 32 hexadecimal digits")
        location = info.get("trace_location") or {}
        experiment_id = str((location.get("mlflow_experiment") or {}).get("experiment_id") or "")
        if location.get("type") not in (None, "MLFLOW_EXPERIMENT") or not experiment_id:
            raise InvalidParameterValue("this server keeps traces in experiments: trace_location.type must be "
                                        "MLFLOW_EXPERIMENT with mlflow_experiment.experiment_id")
        state = info.get("state") or "STATE_UNSPECIFIED"
        if state not in STATES:
            raise InvalidParameterValue(f"state must be one of {', '.join(STATES)}")
        tags = info.get("tags") or {}
        metadata = info.get("trace_metadata") or {}
        if not isinstance(tags, dict) or not isinstance(metadata, dict):
            raise InvalidParameterValue("tags and trace_metadata must be objects of strings")
        tags = {_key(k, "tag key"): _text(str(v), "tag value", 8000, empty=True) for k, v in tags.items()}
        body = {k: v for k, v in info.items() if k not in ("tags", "assessments")}
        text = json.dumps(body)
        if len(text) > 4_000_000:
            raise InvalidParameterValue("trace info is larger than 4 MB (previews and metadata must stay small)")
        with self.db.tx() as tx:
            exp = self.tracking._experiment_row(tx, p, experiment_id, "CAN_EDIT")
            if tx.one("SELECT 1 FROM ml_traces WHERE trace_id = ?", (trace_id,)) is not None:
                raise AlreadyExists(f"Trace with ID {trace_id} already exists.")
            tags["mlflow.artifactLocation"] = f"{exp['artifact_location']}/{trace_id}"
            tx.execute("INSERT INTO ml_traces (trace_id, experiment_id, request_time, execution_duration, state, "
                       "client_request_id, info, creator) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (trace_id, experiment_id, _ms(info.get("request_time")),
                        _duration_ms(info.get("execution_duration")), state,
                        None if info.get("client_request_id") is None else str(info["client_request_id"])[:500],
                        text, p.name))
            for key, value in tags.items():
                tx.execute("INSERT INTO ml_trace_tags (trace_id, key, value) VALUES (?, ?, ?)", (trace_id, key, value))
            return self._info(tx, self._row(tx, p, trace_id, "CAN_READ"))

    def record(self, p: Principal, experiment_id: str, info: dict[str, Any], spans: list[dict[str, Any]]) -> str:
        """Store a whole trace in one step (Brickyard's own runtime): its info, then its spans."""
        trace_id = str(info["trace_id"])
        self.start(p, {"trace_info": {**info, "trace_location": {
            "type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}}})
        self.write_spans(p, trace_id, json.dumps({"spans": spans}).encode())
        return trace_id

    def write_spans(self, p: Principal, trace_id: str, data: bytes) -> None:
        if len(data) > MAX_SPANS_BYTES:
            raise InvalidParameterValue(f"trace data is larger than {MAX_SPANS_BYTES} bytes")
        try:
            parsed = json.loads(data)
        except ValueError:
            raise InvalidParameterValue("trace data must be JSON such as {\"spans\": [...]}") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("spans"), list):
            raise InvalidParameterValue("trace data must be an object with a list of spans")
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, trace_id, "CAN_EDIT")
        target = self._spans_path(row["experiment_id"], row["trace_id"])
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read_spans(self, p: Principal, trace_id: str) -> bytes:
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, trace_id, "CAN_READ")
        try:
            return self._spans_path(row["experiment_id"], row["trace_id"]).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"Trace {trace_id} has no span data yet", error_code="NOT_FOUND") from None

    def set_tag(self, p: Principal, trace_id: Any, key: Any, value: Any) -> None:
        key, value = _key(key, "tag key"), _text("" if value is None else str(value), "tag value", 8000, empty=True)
        with self.db.tx() as tx:
            row = self._row(tx, p, trace_id, "CAN_EDIT")
            tx.execute("DELETE FROM ml_trace_tags WHERE trace_id = ? AND key = ?", (row["trace_id"], key))
            tx.execute("INSERT INTO ml_trace_tags (trace_id, key, value) VALUES (?, ?, ?)", (row["trace_id"], key, value))

    def delete_tag(self, p: Principal, trace_id: Any, key: Any) -> None:
        with self.db.tx() as tx:
            row = self._row(tx, p, trace_id, "CAN_EDIT")
            tx.execute("DELETE FROM ml_trace_tags WHERE trace_id = ? AND key = ?", (row["trace_id"], str(key)))

    def delete(self, p: Principal, experiment_id: Any, *, trace_ids: Any = None, max_timestamp_millis: Any = None,
               max_traces: Any = None) -> int:
        with self.db.tx() as tx:
            self.tracking._experiment_row(tx, p, experiment_id, "CAN_EDIT")
            rows = tx.all("SELECT trace_id, request_time FROM ml_traces WHERE experiment_id = ? ORDER BY request_time",
                          (str(experiment_id),))
            if trace_ids is not None:
                wanted = {str(t) for t in trace_ids} if isinstance(trace_ids, list) else set()
                rows = [r for r in rows if r["trace_id"] in wanted]
            elif max_timestamp_millis is not None:
                rows = [r for r in rows if r["request_time"] <= int(max_timestamp_millis)]
            else:
                raise InvalidParameterValue("give trace_ids or max_timestamp_millis")
            if max_traces:
                rows = rows[:int(max_traces)]
            for r in rows:
                tx.execute("DELETE FROM ml_traces WHERE trace_id = ?", (r["trace_id"],))
        for r in rows:
            self._spans_path(str(experiment_id), r["trace_id"]).unlink(missing_ok=True)
        return len(rows)

    # -- reading -------------------------------------------------------------------------------------
    def _info(self, tx: Tx, row: Row) -> dict[str, Any]:
        info = json.loads(row["info"])
        info["tags"] = {r["key"]: r["value"] for r in tx.all("SELECT key, value FROM ml_trace_tags WHERE trace_id = ? "
                                                                "ORDER BY key", (row["trace_id"],))}
        info["assessments"] = [json.loads(r["body"]) for r in tx.all(
            "SELECT body FROM ml_assessments WHERE trace_id = ? ORDER BY create_time, assessment_id", (row["trace_id"],))]
        info["state"] = row["state"]
        return info

    def get_info(self, p: Principal, trace_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            return self._info(tx, self._row(tx, p, trace_id, "CAN_READ"))

    def search(self, p: Principal, locations: Any, *, filter: Any = None, max_results: Any = None,
               order_by: Any = None, page_token: Any = None) -> tuple[list[dict[str, Any]], str | None]:
        experiment_ids = []
        for loc in locations or []:
            if isinstance(loc, dict):
                loc = (loc.get("mlflow_experiment") or {}).get("experiment_id")
            if not loc:
                raise InvalidParameterValue("locations must name experiments (mlflow_experiment.experiment_id)")
            experiment_ids.append(str(loc))
        if not experiment_ids:
            raise InvalidParameterValue("give at least one experiment location")
        predicate = compile_filter(filter, ATTRIBUTES)
        found = []
        with self.db.tx(write=False) as tx:
            for eid in experiment_ids:
                self.tracking._experiment_row(tx, p, eid, "CAN_READ")
                linked: dict[str, list[str]] = {}
                for link in tx.all("SELECT l.trace_id, l.run_id FROM ml_trace_runs l JOIN ml_traces t "
                                   "ON t.trace_id = l.trace_id WHERE t.experiment_id = ?", (eid,)):
                    linked.setdefault(link["trace_id"], []).append(link["run_id"])
                for row in tx.all("SELECT * FROM ml_traces WHERE experiment_id = ?", (eid,)):
                    info = self._info(tx, row)
                    metadata = info.get("trace_metadata") or {}
                    # a trace belongs to the run that recorded it and to every run it was linked to
                    runs = list(dict.fromkeys([metadata.get("mlflow.sourceRun"), *linked.get(row["trace_id"], [])]))
                    for run in runs:
                        entity = Entity({"trace_id": row["trace_id"], "status": row["state"], "state": row["state"],
                                         "timestamp_ms": row["request_time"], "timestamp": row["request_time"],
                                         "execution_time_ms": row["execution_duration"],
                                         "execution_time": row["execution_duration"],
                                         "name": info["tags"].get("mlflow.traceName"), "run_id": run,
                                         "client_request_id": row["client_request_id"], "experiment_id": eid},
                                        tags=info["tags"],
                                        metadata={**metadata, "mlflow.sourceRun": run} if run else metadata)
                        if predicate(entity):
                            found.append((info, entity))
                            break
        ordered = sort_entities(found, lambda x: x[1], order_by, ATTRIBUTES,
                                [("attributes", "timestamp_ms", True), ("attributes", "trace_id", False)])
        return _paged([x[0] for x in ordered], page_token, max_results, 100, 50_000)

    @staticmethod
    def check_filter(filter: str) -> None:
        """Raise InvalidParameterValue when ``filter`` is not a trace search filter."""
        compile_filter(filter, ATTRIBUTES)

    def link_to_run(self, p: Principal, trace_ids: Any, run_id: Any) -> None:
        """Link traces to a run (``LinkTracesToRun``): searches for the run's traces find them. The caller
        edits the run and reads every trace; at most 100 traces per call, as MLflow allows."""
        if not isinstance(trace_ids, list) or not trace_ids or not all(isinstance(t, str) for t in trace_ids):
            raise InvalidParameterValue("trace_ids must be a non-empty list of trace ids")
        if len(trace_ids) > MAX_LINKED:
            raise InvalidParameterValue(f"at most {MAX_LINKED} traces can be linked in one call, got {len(trace_ids)}")
        if not isinstance(run_id, str) or not run_id:
            raise InvalidParameterValue("run_id is required")
        with self.db.tx() as tx:
            run = tx.one("SELECT experiment_id FROM ml_runs WHERE run_id = ?", (run_id,))
            if run is None:
                raise NotFound(f"Run with id={run_id[:60]} not found", error_code="RESOURCE_DOES_NOT_EXIST")
            self.tracking._experiment_row(tx, p, run["experiment_id"], "CAN_EDIT")
            for trace_id in dict.fromkeys(trace_ids):
                self._row(tx, p, trace_id, "CAN_READ")
                if tx.one("SELECT 1 FROM ml_trace_runs WHERE trace_id = ? AND run_id = ?", (trace_id, run_id)) is None:
                    tx.execute("INSERT INTO ml_trace_runs (trace_id, run_id) VALUES (?, ?)", (trace_id, run_id))

    # -- assessments ---------------------------------------------------------------------------------
    def create_assessment(self, p: Principal, trace_id: Any, assessment: Any, *, assessment_id: str | None = None,
                          with_tx: Callable[[Tx], None] | None = None) -> dict[str, Any]:
        """Add an assessment to a trace. Server-side callers may fix its ``assessment_id`` and run ``with_tx``
        first in the same transaction (to record, atomically, that the work behind it is done)."""
        if not isinstance(assessment, dict):
            raise InvalidParameterValue("assessment is required")
        name = _text(assessment.get("assessment_name"), "assessment_name", 500)
        if ("feedback" in assessment) == ("expectation" in assessment):
            raise InvalidParameterValue("an assessment holds exactly one of feedback or expectation")
        now = now_ms()
        body = {**assessment, "assessment_id": assessment_id or "a-" + secrets.token_hex(16), "assessment_name": name,
                "trace_id": str(trace_id), "create_time": _rfc3339(now), "last_update_time": _rfc3339(now)}
        body.setdefault("source", {"source_type": "HUMAN", "source_id": p.name})
        text = json.dumps(body)
        if len(text) > 1_000_000:
            raise InvalidParameterValue("an assessment is larger than 1 MB")
        with self.db.tx() as tx:
            row = self._row(tx, p, trace_id, "CAN_EDIT")
            if with_tx is not None:
                with_tx(tx)
            overrides = assessment.get("overrides")
            if overrides:  # the assessment it replaces stays, marked invalid, as MLflow keeps it
                old = tx.one("SELECT body FROM ml_assessments WHERE assessment_id = ? AND trace_id = ?",
                             (str(overrides), row["trace_id"]))
                if old is None:
                    raise NotFound(f"assessment {str(overrides)[:40]} to override is not on this trace")
                tx.execute("UPDATE ml_assessments SET body = ? WHERE assessment_id = ?",
                           (json.dumps({**json.loads(old["body"]), "valid": False}), str(overrides)))
            tx.execute("INSERT INTO ml_assessments (assessment_id, trace_id, body, create_time, creator) "
                       "VALUES (?, ?, ?, ?, ?)", (body["assessment_id"], row["trace_id"], text, now, p.name))
        return body

    def _assessment(self, tx: Tx, p: Principal, trace_id: Any, assessment_id: Any, need: str) -> Row:
        row = self._row(tx, p, trace_id, need)
        found = tx.one("SELECT * FROM ml_assessments WHERE assessment_id = ? AND trace_id = ?",
                       (str(assessment_id), row["trace_id"]))
        if found is None:
            raise NotFound(f"Assessment with ID {str(assessment_id)[:40]} not found on trace {row['trace_id']}")
        return found

    def get_assessment(self, p: Principal, trace_id: Any, assessment_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            return json.loads(self._assessment(tx, p, trace_id, assessment_id, "CAN_READ")["body"])  # type: ignore[no-any-return]

    def update_assessment(self, p: Principal, trace_id: Any, assessment_id: Any, assessment: Any,
                          mask: Any) -> dict[str, Any]:
        if not isinstance(assessment, dict):
            raise InvalidParameterValue("assessment is required")
        paths = mask.split(",") if isinstance(mask, str) else (mask or {}).get("paths") if isinstance(mask, dict) \
            else mask
        allowed = {"assessment_name", "expectation", "feedback", "rationale", "metadata", "valid"}
        paths = [str(x).strip() for x in paths or allowed & set(assessment)]
        if not set(paths) <= allowed:
            raise InvalidParameterValue(f"update_mask may name {', '.join(sorted(allowed))}")
        with self.db.tx() as tx:
            row = self._assessment(tx, p, trace_id, assessment_id, "CAN_EDIT")
            body = json.loads(row["body"])
            for path in paths:
                if path == "metadata":
                    body["metadata"] = {**(body.get("metadata") or {}), **(assessment.get("metadata") or {})}
                elif path in assessment:
                    body[path] = assessment[path]
                if path in ("feedback", "expectation"):
                    body.pop("expectation" if path == "feedback" else "feedback", None)
            body["last_update_time"] = _rfc3339(now_ms())
            tx.execute("UPDATE ml_assessments SET body = ? WHERE assessment_id = ?", (json.dumps(body), row["assessment_id"]))
        return body

    def delete_assessment(self, p: Principal, trace_id: Any, assessment_id: Any) -> None:
        with self.db.tx() as tx:
            row = self._assessment(tx, p, trace_id, assessment_id, "CAN_EDIT")
            tx.execute("DELETE FROM ml_assessments WHERE assessment_id = ?", (row["assessment_id"],))
