"""The agent runtime in-process against a server: the tool loop, failing tools, budgets, streaming."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("rt") / "home", enable_fake_models=1))
    root = ws.ensure_user("root@example.com", admin=True)
    token = ws.create_token("root@example.com")
    ws.serving.create(root, {"name": "obedient", "config": {"served_entities": [
        {"entity_name": "system.ai.fake-obedient"}]}})
    import os

    with serve(ws) as url:
        saved = {k: os.environ.get(k) for k in ("DATABRICKS_HOST", "DATABRICKS_TOKEN")}
        os.environ.update(DATABRICKS_HOST=url, DATABRICKS_TOKEN=token)  # where the agent's traces are exported
        try:
            yield WorkspaceClient(host=url, token=token)
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    ws.close()


def _agent(client: Any, tools: list[Any], **kw: Any) -> Any:
    from brickyard.agents import ToolCallingAgent

    return ToolCallingAgent(llm_endpoint="obedient", tools=tools, workspace_client=client, **kw)


def _request(text: str) -> Any:
    from mlflow.types.responses import ResponsesAgentRequest

    return ResponsesAgentRequest(input=[{"role": "user", "content": text}])


def test_tool_loop_failures_and_budgets(client: Any) -> None:
    from brickyard.agents import Tool

    def echo(text: str) -> str:
        return f"echoed {text}"

    def broken() -> str:
        raise RuntimeError("disk on fire")

    def again() -> str:
        return 'CALL again {}'  # a tool whose output asks for itself: only the budget ends this

    schema: dict[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}}
    tools = [Tool("echo", "Echo text.", schema, echo), Tool("broken", "Always fails.", {"type": "object"}, broken)]
    agent = _agent(client, tools)
    out = agent.predict(_request('CALL echo {"text": "hi"}\nCALL broken {}\nCALL missing {}'))
    items = [i.model_dump() if hasattr(i, "model_dump") else i for i in out.output]
    outputs = [i["output"] for i in items if i["type"] == "function_call_output"]
    assert outputs[0] == "echoed hi"
    assert outputs[1].startswith("ERROR: broken failed: RuntimeError: disk on fire")
    assert outputs[2].startswith("ERROR: there is no tool called 'missing'")
    assert items[-1]["type"] == "message" and "echoed hi" in items[-1]["content"][0]["text"]

    looping = _agent(client, [Tool("again", "Loops.", {"type": "object"}, again)], max_steps=3)
    stopped = looping.predict(_request("CALL again {}"))
    assert stopped.custom_outputs == {"stopped": "the step budget of 3 model calls"}
    timed = _agent(client, [Tool("again", "Loops.", {"type": "object"}, again)], max_seconds=0.0)
    assert "time budget" in timed.predict(_request("CALL again {}")).custom_outputs["stopped"]


def test_streaming_events(client: Any) -> None:
    agent = _agent(client, [])
    events = list(agent.predict_stream(_request("a plain question")))
    kinds = [e.type for e in events]
    assert kinds.count("response.output_text.delta") >= 1 and kinds[-1] == "response.output_item.done"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "ANSWER: a plain question" == events[-1].item["content"][0]["text"]


def test_the_tracing_benchmark_runs_at_a_tiny_size() -> None:
    """Not a timed test: it proves ``brickyard bench tracing`` works and reports what it says."""
    from brickyard.bench import run_tracing_bench

    out = run_tracing_bench(calls=300)
    assert set(out["in_deployed_model"]) == {"untraced_call_cpu_us", "root_span", "child_span"}
    assert out["server_record_trace"]["traces"] == 50 and out["server_record_trace"]["p50_ms"] > 0
