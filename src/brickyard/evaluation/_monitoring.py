"""Production monitoring: scorers that judge an experiment's new traces in the background.

``scorer.register(name=...)``, ``.start(sampling_config=ScorerSamplingConfig(sample_rate=...))``, ``.update``,
``.stop``, ``list_scorers``, ``delete_scorer`` (mlflow with tracking URI ``databricks``) keep an experiment's list
of scheduled scorers through ``/api/2.0/managed-evals/scheduled-scorers/{experiment_id}`` (GET the list, POST
it the first time, PATCH it after, DELETE it); ``databricks.agents.scorers.backfill_scorers`` asks for older
traces to be scored (``.../backfill``).

The scheduler (``Monitor.tick``, run by the server every ``BRICKYARD_MONITOR_INTERVAL_SECONDS``) takes each
started built-in scorer, the experiment's traces recorded since it started (or in a backfill's window) that it
has not decided on, samples them by a hash of (trace, scorer) against the sample rate (the same decision after
any restart), keeps those its ``filter_string`` selects, and scores them with bounded concurrency, as the
scorer's owner, through the judges (judge model through the AI Gateway, or the offline proxies). Each verdict
is an assessment on the trace, written in one metastore transaction with the row that says the pair is done,
so a trace is never scored twice, even after ``kill -9``. A judge that is rate-limited leaves the trace for
the next round. Every verdict is also a row of the experiment's monitoring Delta table
(``main.monitoring.<endpoint>_monitoring``, or ``experiment_<id>_monitoring``), appended in numbered batches
that Delta deduplicates, so a crash between the two commits neither loses nor doubles a row.

Custom (code) scorers run too, in the sandbox of UC Python functions (``_custom``), with the trace's inputs,
outputs and expectations; one that reads the trace object itself gets an error verdict saying to run it
client-side.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from ..catalog import Principal
from ..core.errors import AlreadyExists, BrickyardError, InvalidParameterValue, NotFound
from ..core.ids import new_id, now_ms
from ._harness import JUDGES, Harness, Prediction, Row, Services, documents_of, numeric

log = logging.getLogger(__name__)

# mlflow's built-in scorer classes -> Brickyard's judge scorers
BUILTIN = {"Correctness": "correctness", "RelevanceToQuery": "relevance_to_query", "Safety": "safety",
           "RetrievalGroundedness": "retrieval_groundedness", "RetrievalRelevance": "retrieval_relevance",
           "RetrievalSufficiency": "retrieval_sufficiency", "Guidelines": "guidelines"}
MAX_SCORERS = 50
PER_TICK = 200  # traces decided per scorer per round
MONITOR_SCHEMA = pa.schema([
    ("time", pa.timestamp("ms", tz="UTC")), ("trace_id", pa.string()), ("endpoint", pa.string()),
    ("scorer", pa.string()), ("value", pa.float64()), ("verdict", pa.string()), ("error", pa.string()),
    ("latency_ms", pa.int64()), ("input_tokens", pa.int64()), ("output_tokens", pa.int64()),
    ("cost", pa.float64()), ("source", pa.string())])
PAYLOAD_MARK = "brickyard.monitor.payload_watermark"  # an endpoint experiment's last imported inference row (ms)
_NAME = re.compile(r"^[A-Za-z0-9_.\- ]{1,256}$")


def _check_config(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidParameterValue("each scheduled scorer must be an object")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidParameterValue("a scheduled scorer's name is 1 to 256 letters, digits, spaces, '_', '-' or '.'")
    serialized = raw.get("serialized_scorer")
    try:
        parsed = json.loads(serialized) if isinstance(serialized, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidParameterValue(f"scorer {name!r}: serialized_scorer must be the scorer's JSON")
    rate = raw.get("sample_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise InvalidParameterValue(f"scorer {name!r}: sample_rate must be a number from 0 to 1")
    filt = raw.get("filter_string")
    if filt is not None and (not isinstance(filt, str) or len(filt) > 2000):
        raise InvalidParameterValue(f"scorer {name!r}: filter_string must be a trace filter of at most 2000 characters")
    builtin = parsed.get("builtin_scorer_class")
    if builtin is not None and builtin not in BUILTIN and builtin != "ExpectationsGuidelines":
        raise InvalidParameterValue(f"scorer {name!r}: unknown built-in scorer {str(builtin)[:60]!r}")
    return {"name": name, "serialized_scorer": serialized, "builtin_name": builtin, "sample_rate": float(rate),
            "filter_string": filt or None}


def _shape(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": row["name"], "serialized_scorer": row["serialized_scorer"],
                           "sample_rate": float(row["sample_rate"]), "scorer_version": int(row["version"])}
    out["builtin" if row["builtin_name"] else "custom"] = {"name": row["name"]} if row["builtin_name"] else {}
    if row["filter_string"]:
        out["filter_string"] = row["filter_string"]
    return out


def sampled(trace_id: str, scorer: str, rate: float) -> bool:
    """The same yes/no for a (trace, scorer) pair every time it is asked."""
    if rate >= 1:
        return True
    digest = hashlib.sha256(f"{trace_id}\0{scorer}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def table_name(experiment: dict[str, Any]) -> str:
    """The experiment's monitoring table: ``main.monitoring.<endpoint>_monitoring`` for a serving endpoint's
    experiment, else ``main.monitoring.experiment_<id>_monitoring``."""
    name = str(experiment.get("name") or "")
    prefix = "/Shared/serving-endpoints/"
    if name.startswith(prefix):
        base = re.sub(r"[^a-z0-9_]", "_", name[len(prefix):].lower())[:200]
    else:
        base = f"experiment_{experiment['experiment_id']}"
    return f"main.monitoring.{base}_monitoring"


class ScheduledScorers:
    """The scheduled-scorer lists of experiments, and the scheduler that runs them."""

    def __init__(self, *, db: Any, tracking: Any, traces: Any, identity: Any, tables: Any, catalog: Any,
                 assess: Callable[[Principal, Any], dict[str, Any]], judge_source: Callable[[], str],
                 prices: Any, system: Callable[[], Principal], monitor_table: Callable[[str], Any],
                 usage_table: Callable[[], Any], endpoint_check: Callable[[Principal, str], Any],
                 run_code: Callable[[str, str, list[str], dict[str, Any]], Any], concurrency: int = 2) -> None:
        self.db = db
        self.tracking = tracking
        self.traces = traces
        self.identity = identity
        self.tables = tables
        self.catalog = catalog
        self._assess = assess
        self._judge_source = judge_source
        self.prices = prices
        self._system = system
        self._monitor_table = monitor_table  # full name -> the table (created for the system on first use)
        self._usage_table = usage_table  # the AI Gateway's usage table
        self._endpoint_check = endpoint_check  # raises unless the principal may see the endpoint
        self._run_code = run_code  # (label, body, params, args) -> result, in the UC functions' sandbox
        self.concurrency = concurrency
        self._lock = threading.Lock()  # one round at a time in this process
        self._granted: set[tuple[str, str]] = set()  # (monitoring table, owner) given SELECT by this process
        self._prices: dict[str, Any] = {}  # the price table, read once per round

    # -- the list (REST) -----------------------------------------------------------------------------
    def _rows(self, tx: Any, experiment_id: str) -> list[Any]:
        return tx.all("SELECT * FROM eval_scheduled_scorers WHERE experiment_id = ? ORDER BY created_at, name",
                      (experiment_id,))

    def _answer(self, experiment_id: str) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            rows = self._rows(tx, experiment_id)
        return {"experiment_id": experiment_id, "scheduled_scorers": {"scorers": [_shape(r) for r in rows]}}

    def get(self, p: Principal, experiment_id: Any) -> dict[str, Any]:
        self.tracking.require_experiment(p, str(experiment_id), "CAN_READ")
        return self._answer(str(experiment_id))

    def create(self, p: Principal, experiment_id: Any, body: Any) -> dict[str, Any]:
        experiment_id = str(experiment_id)
        self.tracking.require_experiment(p, experiment_id, "CAN_EDIT")
        configs = self._configs(body)
        with self.db.tx() as tx:
            if self._rows(tx, experiment_id):
                raise AlreadyExists(f"experiment {experiment_id} already has scheduled scorers; PATCH them")
            self._write(tx, p, experiment_id, configs, {})
        return self._answer(experiment_id)

    def update(self, p: Principal, experiment_id: Any, body: Any) -> dict[str, Any]:
        experiment_id = str(experiment_id)
        self.tracking.require_experiment(p, experiment_id, "CAN_EDIT")
        mask = body.get("update_mask") if isinstance(body, dict) else None
        if mask not in (None, "scheduled_scorers.scorers", "scheduled_scorers"):
            raise InvalidParameterValue("update_mask must be scheduled_scorers.scorers")
        configs = self._configs(body)
        with self.db.tx() as tx:
            current = {r["name"]: r for r in self._rows(tx, experiment_id)}
            if not current:
                raise NotFound(f"experiment {experiment_id} has no scheduled scorers; POST them first",
                               error_code="NOT_FOUND")
            tx.execute("DELETE FROM eval_scheduled_scorers WHERE experiment_id = ?", (experiment_id,))
            self._write(tx, p, experiment_id, configs, current)
        return self._answer(experiment_id)

    def delete(self, p: Principal, experiment_id: Any) -> None:
        experiment_id = str(experiment_id)
        self.tracking.require_experiment(p, experiment_id, "CAN_EDIT")
        with self.db.tx() as tx:
            tx.execute("DELETE FROM eval_scheduled_scorers WHERE experiment_id = ?", (experiment_id,))

    def _configs(self, body: Any) -> list[dict[str, Any]]:
        scorers = ((body or {}).get("scheduled_scorers") or {}).get("scorers") if isinstance(body, dict) else None
        if not isinstance(scorers, list):
            raise InvalidParameterValue("scheduled_scorers.scorers must be a list")
        if len(scorers) > MAX_SCORERS:
            raise InvalidParameterValue(f"at most {MAX_SCORERS} scheduled scorers per experiment")
        configs = [_check_config(s) for s in scorers]
        names = [c["name"] for c in configs]
        if len(set(names)) != len(names):
            raise InvalidParameterValue("scheduled scorer names must be unique in an experiment")
        for c in configs:
            if c["filter_string"]:
                try:
                    self.traces.check_filter(c["filter_string"])
                except InvalidParameterValue as exc:
                    raise InvalidParameterValue(f"scorer {c['name']!r}: {exc.message}") from None
        return configs

    def _write(self, tx: Any, p: Principal, experiment_id: str, configs: list[dict[str, Any]],
               current: dict[str, Any]) -> None:
        now = now_ms()
        for c in configs:
            old = current.get(c["name"])
            version = 1 if old is None else int(old["version"]) + (old["serialized_scorer"] != c["serialized_scorer"])
            was_running = old is not None and float(old["sample_rate"]) > 0
            started = (old["started_at"] if was_running else now) if c["sample_rate"] > 0 else None
            tx.execute("INSERT INTO eval_scheduled_scorers (experiment_id, name, serialized_scorer, builtin_name, "
                       "sample_rate, filter_string, version, owner, started_at, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (experiment_id, c["name"], c["serialized_scorer"], c["builtin_name"], c["sample_rate"],
                        c["filter_string"], version, p.name, started, old["created_at"] if old else now, now))

    # -- backfill ------------------------------------------------------------------------------------
    def backfill(self, p: Principal, experiment_id: Any, body: Any) -> dict[str, Any]:
        experiment_id = str(experiment_id)
        self.tracking.require_experiment(p, experiment_id, "CAN_EDIT")
        if not isinstance(body, dict):
            raise InvalidParameterValue("the body must be a JSON object")
        rates = body.get("scorer_sample_rates")
        if not isinstance(rates, list) or not rates:
            raise InvalidParameterValue("scorer_sample_rates must list {name, sample_rate}")
        with self.db.tx(write=False) as tx:
            known = {r["name"] for r in self._rows(tx, experiment_id)}
        spec: dict[str, Any] = {"rates": {}}
        for item in rates:
            name = item.get("name") if isinstance(item, dict) else None
            rate = item.get("sample_rate") if isinstance(item, dict) else None
            if name not in known:
                raise InvalidParameterValue(f"scheduled scorer {str(name)[:60]!r} is not registered in experiment "
                                            f"{experiment_id}")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise InvalidParameterValue(f"sample_rate of {name!r} must be from 0 to 1")
            spec["rates"][name] = float(rate)
        for key in ("start_timestamp_ms", "end_timestamp_ms"):
            value = body.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidParameterValue(f"{key} must be milliseconds since the epoch")
            spec[key] = value
        ids = body.get("trace_ids")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(t, str) for t in ids)):
            raise InvalidParameterValue("trace_ids must be a list of trace ids")
        spec["trace_ids"] = ids
        job_id = new_id()
        with self.db.tx() as tx:
            tx.execute("INSERT INTO eval_backfills (job_id, experiment_id, spec, state, created_by, created_at) "
                       "VALUES (?, ?, ?, 'PENDING', ?, ?)", (job_id, experiment_id, json.dumps(spec), p.name, now_ms()))
        return {"job_id": job_id}

    def monitors(self, p: Principal, experiment_id: Any) -> dict[str, Any]:
        """``/managed-evals/monitors`` for an experiment: the serving endpoint whose traces it keeps (the client's
        backfill needs one), with the monitoring table."""
        experiment_id = str(experiment_id)
        exp = self.tracking.get_experiment(p, experiment_id)
        prefix = "/Shared/serving-endpoints/"
        endpoint = exp["name"][len(prefix):] if exp["name"].startswith(prefix) else exp["name"]
        return {"monitor_infos": [{"endpoint_name": endpoint, "monitor": {
            "experiment_id": experiment_id, "monitoring_table": table_name(exp)}}]}

    # -- the scheduler -------------------------------------------------------------------------------
    def tick(self) -> dict[str, int]:
        """One round: decide on (and score) the traces every started scorer has not seen; append the
        monitoring rows. Returns counts."""
        counts = {"scored": 0, "skipped": 0, "failed": 0, "deferred": 0}
        if not self._lock.acquire(blocking=False):
            return counts
        try:
            self._prices = self.prices.load()
            with self.db.tx(write=False) as tx:
                live = tx.all("SELECT * FROM eval_scheduled_scorers WHERE sample_rate > 0")
                jobs = tx.all("SELECT * FROM eval_backfills WHERE state IN ('PENDING', 'RUNNING') ORDER BY created_at")
            for experiment_id in sorted({s["experiment_id"] for s in live}):
                try:
                    counts["imported"] = counts.get("imported", 0) + self.import_payloads(experiment_id)
                except BrickyardError:
                    log.warning("could not read the inference table of experiment %s", experiment_id, exc_info=True)
            for scorer in live:
                self._round(scorer, None, float(scorer["sample_rate"]), counts)
            for job in jobs:
                self._backfill_round(job, counts)
            experiments = {s["experiment_id"] for s in live} | {j["experiment_id"] for j in jobs}
            for experiment_id in experiments:
                self.flush(experiment_id)
        finally:
            self._lock.release()
        return counts

    def import_payloads(self, experiment_id: str) -> int:
        """A serving endpoint's experiment (``/Shared/serving-endpoints/<name>``) also gets a trace for every
        answered row of the endpoint's inference table that has none yet (a chat endpoint records no traces of
        its own), so its scheduled scorers judge those calls too. Each row's trace is keyed by the row's
        request id, so a row is imported once, whatever the restarts."""
        from ..serving._aigateway import payload_table
        from ._harness import Prediction, Row, trace_of
        from ._report import read_window

        system = self._system()
        exp = self.tracking.get_experiment(system, experiment_id)
        prefix = "/Shared/serving-endpoints/"
        if not exp["name"].startswith(prefix):
            return 0
        endpoint = exp["name"][len(prefix):]
        try:
            table = payload_table(self._endpoint_check(system, endpoint).get("ai_gateway") or {})
        except NotFound:
            return 0
        if table is None or not self.catalog.exists("table", table):
            return 0
        mark = int((exp.get("tags") or {}).get(PAYLOAD_MARK) or 0) if isinstance(exp.get("tags"), dict) else \
            int(next((t["value"] for t in exp.get("tags") or [] if t.get("key") == PAYLOAD_MARK), 0))
        rows = read_window(self.tables.dataset(self.catalog.get(system, "table", table)), "request_time", mark,
                           now_ms()).filter(pa.compute.equal(pa.compute.field("status_code"), 200)).to_pylist()
        imported, newest = 0, mark
        for row in sorted(rows, key=lambda r: r["request_time"])[:PER_TICK * 5]:
            when = int(row["request_time"].timestamp() * 1000)
            newest = max(newest, when)
            key = f"payload:{row['databricks_request_id']}"
            with self.db.tx(write=False) as tx:
                if tx.one("SELECT 1 FROM ml_traces WHERE client_request_id = ? AND experiment_id = ?",
                          (key, experiment_id)):
                    continue
            request, response = _loads(row["request"]), _loads(row["response"])
            usage = response.get("usage") if isinstance(response, dict) else None
            pred = Prediction(_answer_text(response), (row["execution_duration_ms"] or 0) / 1000,
                              int((usage or {}).get("prompt_tokens") or 0), int((usage or {}).get("completion_tokens")
                                                                                  or 0), model=endpoint)
            info, spans = trace_of(Row(request if isinstance(request, dict) else {"request": request}), pred,
                                   when * 1_000_000, kind="CHAT_MODEL", name=endpoint,
                                   tags={"brickyard.servingEndpoint": endpoint, "brickyard.source": "inference_table"})
            info["client_request_id"] = key
            self.traces.record(system, experiment_id, info, spans)
            imported += 1
        if newest > mark:
            self.tracking.set_experiment_tag(system, experiment_id, PAYLOAD_MARK, str(newest))
        return imported

    def _backfill_round(self, job: Any, counts: dict[str, int]) -> None:
        spec = json.loads(job["spec"])
        with self.db.tx(write=False) as tx:
            scorers = {r["name"]: r for r in self._rows(tx, job["experiment_id"])}
        left = 0
        for name, rate in spec["rates"].items():
            scorer = scorers.get(name)
            if scorer is None:
                continue
            left += self._round(scorer, spec, rate, counts)
        with self.db.tx() as tx:
            tx.execute("UPDATE eval_backfills SET state = ?, finished_at = ? WHERE job_id = ?",
                       ("RUNNING", None, job["job_id"]) if left else ("SUCCEEDED", now_ms(), job["job_id"]))

    def _candidates(self, scorer: Any, window: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Traces of the experiment the scorer has not decided on, oldest first (at most ``PER_TICK``)."""
        sql = ("SELECT t.trace_id, t.request_time FROM ml_traces t WHERE t.experiment_id = ? AND t.state = 'OK' "
               "AND NOT EXISTS (SELECT 1 FROM eval_scored s WHERE s.trace_id = t.trace_id AND s.scorer = ?) "
               "AND NOT EXISTS (SELECT 1 FROM ml_trace_tags g WHERE g.trace_id = t.trace_id "
               "AND g.key IN ('brickyard.evaluation', 'brickyard.judge'))")
        args: list[Any] = [scorer["experiment_id"], scorer["name"]]
        if window is None:
            sql += " AND t.request_time >= ?"
            args.append(scorer["started_at"] or 0)
        else:
            if window.get("start_timestamp_ms") is not None:
                sql += " AND t.request_time >= ?"
                args.append(window["start_timestamp_ms"])
            if window.get("end_timestamp_ms") is not None:
                sql += " AND t.request_time <= ?"
                args.append(window["end_timestamp_ms"])
        sql += " ORDER BY t.request_time, t.trace_id LIMIT ?"
        args.append(PER_TICK * 5)
        with self.db.tx(write=False) as tx:
            rows = tx.all(sql, tuple(args))
        wanted = set(window.get("trace_ids") or []) if window else set()
        return [dict(r) for r in rows if not wanted or r["trace_id"] in wanted]

    def _round(self, scorer: Any, window: dict[str, Any] | None, rate: float, counts: dict[str, int]) -> int:
        """Decide on up to ``PER_TICK`` traces for one scorer; returns how many are left for later."""
        candidates = self._candidates(scorer, window)
        if not candidates:
            return 0
        owner = self.identity.by_name(scorer["owner"])
        if owner is None:
            log.warning("scheduled scorer %s: its owner %s is gone; it does not run", scorer["name"], scorer["owner"])
            return 0
        principal = owner
        selected: set[str] | None = None
        if scorer["filter_string"]:
            found, _ = self.traces.search(principal, [scorer["experiment_id"]], filter=scorer["filter_string"],
                                          max_results=50_000)
            selected = {t["trace_id"] for t in found}
        todo, skip = [], []
        for c in candidates:
            if len(todo) + len(skip) >= PER_TICK:
                break
            take = sampled(c["trace_id"], scorer["name"], rate) and (selected is None or c["trace_id"] in selected)
            (todo if take else skip).append(c["trace_id"])
        now = now_ms()
        with self.db.tx() as tx:
            for trace_id in skip:
                if tx.one("SELECT 1 FROM eval_scored WHERE trace_id = ? AND scorer = ?", (trace_id, scorer["name"])):
                    continue
                tx.execute("INSERT INTO eval_scored (trace_id, scorer, experiment_id, outcome, scored_at) "
                           "VALUES (?, ?, ?, 'skipped', ?)", (trace_id, scorer["name"], scorer["experiment_id"], now))
        counts["skipped"] += len(skip)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="monitor") as pool:
            for outcome in pool.map(lambda t: self._score(principal, scorer, t), todo):
                counts[outcome] += 1
        return max(0, len(candidates) - len(todo) - len(skip))

    def _score(self, p: Principal, scorer: Any, trace_id: str) -> str:
        """Score one trace with one scorer; "scored", "failed" (an error assessment), or "deferred"."""
        try:
            info = self.traces.get_info(p, trace_id)
            spans = json.loads(self.traces.read_spans(p, trace_id)).get("spans") or []
        except (BrickyardError, ValueError) as exc:
            log.warning("scheduled scorer %s: cannot read trace %s: %s", scorer["name"], trace_id, exc)
            return "deferred"
        row, pred = _from_trace(info, spans)
        serialized = json.loads(scorer["serialized_scorer"])
        if scorer["builtin_name"] is None:
            value, error, bodies, source = self._custom(scorer, serialized, info, row, pred, trace_id)
        else:
            name = BUILTIN.get(scorer["builtin_name"] or "")
            if name is None:
                return "deferred"
            guidelines = (serialized.get("builtin_scorer_pydantic_data") or {}).get("guidelines")
            if isinstance(guidelines, str):
                guidelines = [guidelines]
            harness = Harness(Services(predict=lambda r: pred, assess=lambda body: self._assess(p, body),
                                       record_trace=lambda i, s: "", add_assessments=lambda t, a: None,
                                       judge_source=self._judge_source(), prices=self._prices),
                              [name], workers=1, guidelines=guidelines if isinstance(guidelines, list) else None)
            values, errors, rationales, _ = harness.verdicts(row, pred)
            error = errors.get(name)
            if error and (error.startswith("429") or " 429" in error[:12]):
                return "deferred"  # rate-limited: the trace waits for the next round
            bodies = harness.assessments(trace_id, values, errors, rationales)
            value, source = values.get(name), self._judge_source()
        monitor_row = {"time": now_ms(), "trace_id": trace_id, "endpoint": info.get("tags", {}).get(
            "brickyard.servingEndpoint"), "scorer": scorer["name"], "value": numeric(value),
            "verdict": None if value is None else str(value), "error": error, "latency_ms": int(pred.seconds * 1000),
            "input_tokens": pred.input_tokens, "output_tokens": pred.output_tokens,
            "cost": self._cost(pred), "source": source}

        def done(tx: Any) -> None:
            if tx.one("SELECT 1 FROM eval_scored WHERE trace_id = ? AND scorer = ?", (trace_id, scorer["name"])):
                raise AlreadyExists("already scored")
            tx.execute("INSERT INTO eval_scored (trace_id, scorer, experiment_id, outcome, scored_at, monitor_row) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (trace_id, scorer["name"], scorer["experiment_id"],
                                                     "failed" if error else "scored", now_ms(), json.dumps(monitor_row)))

        body = bodies[0] if bodies else {"assessment_name": scorer["name"], "trace_id": trace_id, "source": {
            "source_type": "LLM_JUDGE", "source_id": self._judge_source()}, "feedback": {
            "error": {"error_code": "SCORER_ERROR", "error_message": "the scorer had nothing to judge"}}}
        body = {**body, "assessment_name": scorer["name"]}
        ident = "a-" + hashlib.sha256(f"{trace_id}\0{scorer['name']}\0scheduled".encode()).hexdigest()[:32]
        try:
            self.traces.create_assessment(self._system(), trace_id, body, assessment_id=ident, with_tx=done)
        except AlreadyExists:
            return "deferred"
        return "failed" if error else "scored"

    def _custom(self, scorer: Any, serialized: dict[str, Any], info: dict[str, Any], row: Row, pred: Prediction,
                trace_id: str) -> tuple[Any, str | None, list[dict[str, Any]], str]:
        """(value, error, assessment bodies, source) of a custom code scorer, run in the functions sandbox."""
        from ._custom import NotRunnable, run

        expectations = {a["assessment_name"]: (a.get("expectation") or {}).get("value")
                        for a in info.get("assessments") or [] if "expectation" in a and a.get("valid") is not False}
        args = {"inputs": row.inputs, "outputs": pred.text, "expectations": expectations}
        value, rationale, error = None, None, None
        try:
            out = run(serialized, args, self._run_code, f"scorer {scorer['name']}")
            value, rationale, error = out.get("value"), out.get("rationale"), out.get("error")
        except NotRunnable as exc:
            error = str(exc)
        except BrickyardError as exc:
            error = exc.message
        if value is not None and not isinstance(value, bool | int | float | str):
            value, error = None, f"the scorer returned a {type(value).__name__}, not a bool, number or string"
        source = {"source_type": "CODE", "source_id": "brickyard-scheduled"}
        feedback: dict[str, Any] = {"error": {"error_code": "SCORER_ERROR", "error_message": str(error)[:4000]}} \
            if error else {"value": value}
        body: dict[str, Any] = {"assessment_name": scorer["name"], "trace_id": trace_id, "source": source,
                                "feedback": feedback}
        if rationale:
            body["rationale"] = str(rationale)[:4000]
        return value, (str(error) if error else None), [body], "code"

    def _cost(self, pred: Prediction) -> float | None:
        price = self._prices.get(pred.model or "") if pred.model else None
        return None if price is None else round(price.cost(pred.input_tokens, pred.output_tokens), 8)

    # -- the report ----------------------------------------------------------------------------------
    def report(self, p: Principal, endpoint: str, *, hours: float = 168.0, end_ms: int | None = None
               ) -> dict[str, Any]:
        """The monitoring summary of ``endpoint`` over the last ``hours`` (the caller must be able to see the
        endpoint; its usage and its scorers' verdicts are read for it)."""
        from ._report import read_window, summarise

        if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 24 * 366:
            raise InvalidParameterValue("hours must be a number from 0 to 8784 (a year)")
        self._endpoint_check(p, endpoint)
        end = end_ms or now_ms()
        start = end - int(hours * 3_600_000)
        system = self._system()
        usage = read_window(self.tables.dataset(self._usage_table()), "request_time", start, end,
                            ("endpoint_name", endpoint))
        quality = []
        if self.catalog.exists("schema", "main.monitoring"):
            token = None
            while True:
                tables, token = self.catalog.list(system, "table", "main.monitoring", page_token=token)
                for table in tables:
                    quality.append(read_window(self.tables.dataset(table), "time", start, end, ("endpoint", endpoint)))
                if not token:
                    break
        quality_rows = pa.concat_tables(quality) if quality else None
        price = self.prices.load().get(endpoint)
        return summarise(endpoint, usage, quality_rows, start_ms=start, end_ms=end,
                         price=None if price is None else price.cost)

    # -- the monitoring table ------------------------------------------------------------------------
    def flush(self, experiment_id: str) -> int:
        """Append the experiment's unwritten monitoring rows to its Delta table; returns rows appended."""
        try:
            exp = self.tracking.get_experiment(self._system(), experiment_id)
        except NotFound:
            return 0
        full_name = table_name(exp)
        obj = self._monitor_table(full_name)
        with self.db.tx(write=False) as tx:
            owners = {r["owner"] for r in self._rows(tx, experiment_id)}
        for owner in owners - {o for t, o in self._granted if t == full_name}:
            try:  # whoever schedules scorers on the experiment may read its monitoring table (granted once)
                self.catalog.update_grants(self._system(), "table", full_name, [{"principal": owner, "add": ["SELECT"]}])
                self._granted.add((full_name, owner))
            except BrickyardError:
                pass
        app = f"brickyard-monitor-{experiment_id}"
        written = 0
        with self.db.tx() as tx:
            top = tx.one("SELECT MAX(batch) AS b FROM eval_scored WHERE experiment_id = ?", (experiment_id,))
            next_batch = int(top["b"] or 0) + 1
            pending = tx.one("SELECT 1 FROM eval_scored WHERE experiment_id = ? AND batch IS NULL AND "
                             "monitor_row IS NOT NULL", (experiment_id,))
            if pending:
                tx.execute("UPDATE eval_scored SET batch = ? WHERE experiment_id = ? AND batch IS NULL AND "
                           "monitor_row IS NOT NULL", (next_batch, experiment_id))
        committed = self.tables.transaction_version(obj, app) or 0
        with self.db.tx(write=False) as tx:  # batches numbered but not yet in Delta (a crash came between)
            batches = tx.all("SELECT DISTINCT batch FROM eval_scored WHERE experiment_id = ? AND batch > ? "
                             "ORDER BY batch", (experiment_id, committed))
        for b in batches:
            batch = int(b["batch"])
            with self.db.tx(write=False) as tx:
                rows = [json.loads(r["monitor_row"]) for r in tx.all(
                    "SELECT monitor_row FROM eval_scored WHERE experiment_id = ? AND batch = ? ORDER BY trace_id",
                    (experiment_id, batch))]
            table = pa.Table.from_pylist(rows, schema=MONITOR_SCHEMA)
            result = self.tables.write_authorized(obj, table, mode="append", txn=(app, batch))
            written += 0 if getattr(result, "skipped", False) else len(rows)
        return written


def _from_trace(info: dict[str, Any], spans: list[dict[str, Any]]) -> tuple[Row, Prediction]:
    """A row and its answer rebuilt from a recorded trace: the root span's inputs and outputs, token usage,
    duration, and what its RETRIEVER spans returned."""
    root = next((s for s in spans if not s.get("parent_span_id")), spans[0] if spans else {})
    attrs = root.get("attributes") or {}

    def load(key: str) -> Any:
        raw = attrs.get(key)
        try:
            return json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            return raw

    inputs = load("mlflow.spanInputs")
    if not isinstance(inputs, dict):
        inputs = {"request": info.get("request_preview") or ""}
    if "input" in inputs and isinstance(inputs["input"], list) and "messages" not in inputs:
        inputs = {"messages": inputs["input"]}
    outputs = load("mlflow.spanOutputs")
    text = _answer_text(outputs) if outputs is not None else str(info.get("response_preview") or "")
    usage = (info.get("trace_metadata") or {}).get("mlflow.trace.tokenUsage")
    try:
        usage = json.loads(usage) if isinstance(usage, str) else (usage or {})
    except ValueError:
        usage = {}
    duration = info.get("execution_duration")
    seconds = 0.0
    if isinstance(duration, int | float):
        seconds = float(duration) / 1000
    elif isinstance(duration, str) and duration.endswith("s"):
        try:
            seconds = float(duration[:-1])
        except ValueError:
            seconds = 0.0
    model = (info.get("tags") or {}).get("brickyard.servingEndpoint")
    pred = Prediction(text, seconds, int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0),
                      model=model, documents=documents_of(spans))
    return Row(inputs), pred


def _loads(raw: Any) -> Any:
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return raw


def _answer_text(outputs: Any) -> str:
    if isinstance(outputs, str):
        return outputs
    if isinstance(outputs, dict):
        choices = outputs.get("choices")
        if isinstance(choices, list) and choices:
            return str((choices[0].get("message") or {}).get("content") or "")
        items = outputs.get("output")
        if isinstance(items, list):
            return "".join(str(c.get("text", "")) for i in items if isinstance(i, dict) and i.get("type") == "message"
                           for c in i.get("content") or [] if isinstance(c, dict))
    return json.dumps(outputs, default=str)


# the judges a scheduled scorer can run (every built-in but ExpectationsGuidelines, which needs expectations)
RUNNABLE = sorted(set(BUILTIN.values()) & set(JUDGES))
