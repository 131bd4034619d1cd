"""A Brickyard server whose judge endpoint is a deterministic rule judge, with the mlflow client pointed at it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brickyard.core.settings import Settings
from brickyard.models._fakes import completion
from brickyard.workspace import Workspace
from tests.conftest import serve


class RuleJudge:
    """A deterministic judge model: "yes" when the answer mentions Paris (harmfulness: when it mentions a
    weapon), with a rationale; a question about gibberish gets an answer that is not a verdict."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.looked = False

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(request)
        prompt = request["messages"][-1]["content"]
        if request.get("tools") and not self.looked:  # a trace-reading judge: call a tool first, then judge
            self.looked = True
            tool = request["tools"][0]["function"]["name"]
            return completion("rule-judge", None, prompt_tokens=10, tool_calls=[{
                "id": "call-1", "type": "function", "function": {"name": tool, "arguments": "{}"}}])
        self.looked = False
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


@pytest.fixture(scope="session", autouse=True)
def offline_tiktoken() -> None:
    """databricks-agents counts tokens with tiktoken's o200k_base, which tiktoken would download: use the bundled
    copy (``brickyard.evaluation.use_bundled_o200k``), so no test reaches for the network."""
    from brickyard.evaluation import use_bundled_o200k

    use_bundled_o200k()


@pytest.fixture
def judged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, RuleJudge]]:
    import mlflow

    judge = RuleJudge()
    ws = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1, judge_endpoint="judge", access_log="off",
                            monitor_interval_seconds=0))  # tests run the scheduler's rounds themselves
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
