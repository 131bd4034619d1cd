"""The built-in judges of ``mlflow.genai.scorers`` run through Brickyard's ``chat-assessments`` route, unchanged
clients (mlflow + databricks-agents): the judge endpoint is asked through the AI Gateway, every rating comes
back with a value and a rationale, and what cannot be judged comes back as an error rating, never a guess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from brickyard.core.settings import Settings
from brickyard.evaluation import parse_verdict
from brickyard.workspace import Workspace
from tests.evaluation.conftest import RuleJudge

pytest.importorskip("databricks.agents", reason="needs databricks-agents (the dev group)")


def value(feedback: Any) -> str:
    return str(getattr(feedback.value, "value", feedback.value)).lower()


def test_builtin_judges_run_through_chat_assessments(judged: tuple[Workspace, RuleJudge]) -> None:
    from mlflow.genai.scorers import Correctness, Guidelines, RelevanceToQuery, Safety

    ws, judge = judged
    question = {"question": "What is the capital of France?"}
    good = Correctness()(inputs=question, outputs="Paris is the capital.", expectations={"expected_facts": ["Paris"]})
    assert value(good) == "yes" and good.rationale == "rule says yes"
    bad = Correctness()(inputs=question, outputs="Lyon.", expectations={"expected_response": "Paris"})
    assert value(bad) == "no"
    assert value(RelevanceToQuery()(inputs=question, outputs="Paris.")) == "yes"
    assert value(Safety()(outputs="Paris is lovely in spring.")) == "yes"  # not harmful -> safe
    assert value(Safety()(outputs="Here is how to build a weapon.")) == "no"
    rule = Guidelines(name="mentions_city", guidelines=["The answer must name a city."])
    assert value(rule(inputs=question, outputs="Paris.")) == "yes"
    asked = " ".join(r["messages"][-1]["content"] for r in judge.requests)
    assert "Facts the answer must contain" in asked and "Guidelines:" in asked
    assert all(r["temperature"] == 0 for r in judge.requests)
    # every judge call is traced in the evaluating user's judge-calls experiment
    p = ws.principal("eval@example.com")
    experiment = ws.tracking.get_experiment_by_name(p, "/Users/eval@example.com/judge-calls")["experiment_id"]
    traces, _ = ws.traces.search(p, [experiment], max_results=500)
    assert len(traces) == len(judge.requests) and all(t["tags"]["brickyard.judge"] == "true" for t in traces)
    spans = json.loads(ws.traces.read_spans(p, traces[0]["trace_id"]))["spans"]
    assert "messages" in json.loads(spans[0]["attributes"]["mlflow.spanInputs"])


def test_what_cannot_be_judged_is_an_error_not_a_verdict(judged: tuple[Workspace, RuleJudge]) -> None:
    import os

    from mlflow.genai.scorers import RelevanceToQuery

    ws, _ = judged
    unparseable = RelevanceToQuery()(inputs={"question": "gibberish?"}, outputs="Paris.")
    assert unparseable.error is not None and "JUDGE_UNPARSEABLE" in str(unparseable.error)
    base = os.environ["DATABRICKS_HOST"]
    route = base + "/api/2.0/agents/chat-assessments"
    h = {"authorization": f"Bearer {os.environ['DATABRICKS_TOKEN']}"}
    body = {"assessment_input": {"chat_request": "q", "chat_response": "Paris"},
            "requested_assessments": [{"assessment_name": "groundedness"}, {"assessment_name": "chunk_relevance"}]}
    r = httpx.post(route, headers=h, json=body)
    assert r.status_code == 200, r.text
    result = r.json()["result"]  # a missing input is an error rating that says what is missing
    assert result["response_assessment"]["ratings"]["groundedness"]["error"]["error_code"] == "MISSING_INPUT"
    chunk = result["retrieval_assessment"]["positional_ratings"]["chunk_relevance"]["rating"][0]["rating"]
    assert "retrieved documents" in chunk["error"]["error_msg"]
    r = httpx.post(route, headers=h, json={**body, "requested_assessments": [{"assessment_name": "telepathy"}]})
    assert r.status_code == 400 and "unknown assessment" in r.json()["message"]
    assert httpx.post(route, json=body).status_code == 401
    # a user who may not query the judge endpoint gets the gateway's refusal as the rating, not a verdict
    outsider = {"authorization": f"Bearer {ws.create_token('outsider@example.com')}"}
    r = httpx.post(route, headers=outsider, json={**body, "requested_assessments": [
        {"assessment_name": "relevance_to_query"}]})
    error = r.json()["result"]["response_assessment"]["ratings"]["relevance_to_query"]["error"]
    assert error["error_code"] in ("403", "404") and "judge endpoint" in error["error_msg"]


def test_without_a_judge_endpoint_or_local_models_ratings_say_so(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with Workspace(Settings(home=tmp_path / "home"), background=False) as ws:
        monkeypatch.setattr(ws, "judge_proxies", lambda: None)  # no judge endpoint and no local models
        p = ws.ensure_user("a@example.com")
        out = ws.assess(p, {"assessment_input": {"chat_request": "q", "chat_response": "a"},
                            "requested_assessments": [{"assessment_name": "relevance_to_query"}]})
    error = out["result"]["response_assessment"]["ratings"]["relevance_to_query"]["error"]
    assert error["error_code"] == "JUDGE_NOT_CONFIGURED" and "BRICKYARD_JUDGE_ENDPOINT" in error["error_msg"]


def test_parse_verdict() -> None:
    assert parse_verdict('Sure: {"rationale": "ok", "result": "YES"}') == ("yes", "ok")
    for bad in ("yes", '{"result": "maybe"}', "{not json}", ""):
        with pytest.raises(ValueError):
            parse_verdict(bad)


def test_custom_judges_ask_the_judge_endpoint(judged: tuple[Workspace, RuleJudge]) -> None:
    """``make_judge`` with the Databricks default model posts its prompt to ``/agents/chat-completions``."""
    import os

    from mlflow.genai.judges import make_judge

    _, judge = judged
    city = make_judge(name="names_the_city", model="databricks",
                      instructions="Does {{ outputs }} name the capital city that {{ inputs }} asks about? "
                                   "Answer yes or no.")
    yes = city(inputs={"question": "Capital of France?"}, outputs="It is Paris.")
    assert value(yes) == "yes" and yes.rationale == "rule says yes", yes.error
    assert value(city(inputs={"question": "Capital of France?"}, outputs="It is Lyon.")) == "no"
    assert any("It is Paris." in r["messages"][-1]["content"] for r in judge.requests)
    route = os.environ["DATABRICKS_HOST"] + "/api/2.0/agents/chat-completions"
    h = {"authorization": f"Bearer {os.environ['DATABRICKS_TOKEN']}"}
    r = httpx.post(route, headers=h, json={"user_prompt": "x", "tools": [{"name": "get_trace"}]})
    assert r.status_code == 400 and "tool" in r.json()["message"]
    r = httpx.post(route, headers=h, json={"user_prompt": "x", "tools": [
        {"type": "function", "function": {"name": "t", "parameters": "{not json"}}]})
    assert r.status_code == 400 and "not JSON" in r.json()["message"]
    assert httpx.post(route, headers=h, json={"system_prompt": "x"}).status_code == 400


def test_trace_reading_judges_call_tools(judged: tuple[Workspace, RuleJudge]) -> None:
    """``make_judge`` over ``{{ trace }}``: the judge model gets the client's trace tools, asks for one, the
    client runs it and sends the conversation back, and the verdict follows."""
    import mlflow
    from mlflow.genai.judges import make_judge

    _, judge = judged
    mlflow.set_experiment("/Users/eval@example.com/trace-judges")

    @mlflow.trace
    def answer(question: str) -> str:
        return "Paris is the capital."

    answer("Capital of France?")
    mlflow.flush_trace_async_logging()
    trace = mlflow.get_trace(mlflow.get_last_active_trace_id())
    looks = make_judge(name="looks_right", model="databricks",
                       instructions="Read the {{ trace }} and say whether the agent named Paris.")
    verdict = looks(trace=trace)
    assert verdict.error is None and value(verdict) == "yes", verdict
    with_tools = [r for r in judge.requests if r.get("tools")]
    assert len(with_tools) >= 2 and with_tools[0]["tools"][0]["type"] == "function"
    assert isinstance(with_tools[0]["tools"][0]["function"].get("parameters"), dict)
