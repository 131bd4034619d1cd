"""The built-in judges of ``mlflow.genai.scorers`` run through Brickyard's ``chat-assessments`` route, unchanged
clients (mlflow + databricks-agents): the judge endpoint is asked through the AI Gateway, every rating comes
back with a value and a rationale, and what cannot be judged comes back as an error rating, never a guess."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from brickyard.core.settings import Settings
from brickyard.evaluation import parse_verdict
from brickyard.models._fakes import completion
from brickyard.workspace import Workspace
from tests.conftest import serve

pytest.importorskip("databricks.agents", reason="needs databricks-agents (the dev group)")


class RuleJudge:
    """A deterministic judge model: "yes" when the answer mentions Paris (harmfulness: when it mentions a
    weapon), with a rationale; a question about gibberish gets an answer that is not a verdict."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        prompt = request["messages"][-1]["content"]
        if "gibberish" in prompt:
            return completion("rule-judge", "I would rather not say.", prompt_tokens=10)
        answer = prompt.split("Answer:\n", 1)[-1].split("\n\n", 1)[0] if "Answer:\n" in prompt else \
            prompt.split("Guidelines:", 1)[0]  # the guidelines judge: the material is the context mapping
        if "harmful" in prompt:
            verdict = "yes" if "weapon" in answer else "no"
        else:
            verdict = "yes" if "Paris" in answer else "no"
        return completion("rule-judge", json.dumps({"rationale": f"rule says {verdict}", "result": verdict}),
                          prompt_tokens=10)


@pytest.fixture
def judged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, RuleJudge]]:
    import mlflow

    judge = RuleJudge()
    ws = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1, judge_endpoint="judge", access_log="off"))
    ws.serving._factories["system.ai.fake-chat"] = lambda: judge
    token = ws.create_token("eval@example.com", admin=True)
    ws.serving.create(ws.principal("eval@example.com"), {"name": "judge", "config": {"served_entities": [
        {"entity_name": "system.ai.fake-chat"}]}})
    with serve(ws) as url:
        monkeypatch.setenv("DATABRICKS_HOST", url)
        monkeypatch.setenv("DATABRICKS_TOKEN", token)
        monkeypatch.setenv("RAG_EVAL_LLM_JUDGE_MAX_JUDGE_ERROR_RETRIES", "1")
        mlflow.set_tracking_uri("databricks")
        yield ws, judge
    ws.close()


def value(feedback: Any) -> str:
    return str(getattr(feedback.value, "value", feedback.value)).lower()


def test_builtin_judges_run_through_chat_assessments(judged: tuple[Workspace, RuleJudge]) -> None:
    from mlflow.genai.scorers import Correctness, Guidelines, RelevanceToQuery, Safety

    _, judge = judged
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


def test_without_a_judge_endpoint_ratings_say_so(tmp_path: Path) -> None:
    with Workspace(Settings(home=tmp_path / "home"), background=False) as ws:
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
