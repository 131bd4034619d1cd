"""The agent deploy loop through the unchanged ``databricks-agents`` client: ``agents.deploy`` creates the endpoint
(inference table and usage tracking on) and records the deployment, the printed query and review-app URLs work,
a second version takes the traffic, ``list_deployments`` / ``get_deployments`` / ``delete_deployment`` agree, and
lineage runs from the model version to the endpoint."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import mlflow_against, serve

pytest.importorskip("databricks.agents", reason="needs databricks-agents (the agents extra)")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning",
                                        "ignore::FutureWarning")

ECHO = '''
import mlflow
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import ResponsesAgentResponse

VERSION = "{version}"


class Echo(ResponsesAgent):
    def predict(self, request):
        text = request.input[-1].content
        return ResponsesAgentResponse(output=[self.create_text_output_item(text=f"{{VERSION}}: {{text}}", id="m1")])


mlflow.models.set_model(Echo())
'''
MODEL = "main.agents.echo"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import mlflow

    tmp = tmp_path_factory.mktemp("agents-deploy")
    ws = Workspace(Settings(home=tmp / "home", access_log="off", monitor_interval_seconds=0))
    token = ws.create_token("alice@example.com", admin=True)
    root = ws.principal("alice@example.com")
    ws.catalog.create(root, "schema", "main.agents")
    with serve(ws) as url, mlflow_against(url, token, "/Users/alice@example.com/echo-agent"):
        experiment = mlflow.get_experiment_by_name("/Users/alice@example.com/echo-agent")
        for version in ("v1", "v2"):
            (tmp / f"echo_{version}.py").write_text(ECHO.format(version=version))
            with mlflow.start_run():
                info = mlflow.pyfunc.log_model(name="echo", python_model=str(tmp / f"echo_{version}.py"))
            mlflow.register_model(info.model_uri, MODEL)
        yield {"ws": ws, "url": url, "token": token, "experiment": experiment.experiment_id,
               "h": {"authorization": f"Bearer {token}"}}
    ws.close()


def _wait(env: dict[str, Any], endpoint: str) -> dict[str, Any]:
    for _ in range(6000):
        shown = httpx.get(f"{env['url']}/api/2.0/serving-endpoints/{endpoint}", headers=env["h"]).json()
        if shown["state"]["config_update"] != "IN_PROGRESS":
            assert shown["state"]["config_update"] == "NOT_UPDATING", shown["state"]
            return shown
        time.sleep(0.02)
    raise AssertionError("the endpoint did not finish deploying")


def test_deploy_query_redeploy_list_and_delete(env: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    from databricks import agents
    from openai import OpenAI

    first = agents.deploy(MODEL, 1)
    printed = capsys.readouterr().out
    assert first.endpoint_name == "agents_main-agents-echo" and first.served_entity_name == "main-agents-echo_1"
    assert first.query_endpoint == (f"{env['url']}/serving-endpoints/agents_main-agents-echo/served-models/"
                                    "main-agents-echo_1/invocations")
    assert re.search(r"/ml/review-v2/[0-9a-f]+/chat$", first.review_app_url), first.review_app_url
    assert first.review_app_url in printed and first.endpoint_url in printed
    shown = _wait(env, first.endpoint_name)
    assert shown["ai_gateway"]["usage_tracking_config"] == {"enabled": True}
    assert shown["ai_gateway"]["inference_table_config"]["enabled"] is True
    assert shown["task"] == "agent/v1/responses"

    client = OpenAI(base_url=env["url"] + "/serving-endpoints", api_key=env["token"])
    answer = client.responses.create(model=first.endpoint_name, input="hello")
    assert answer.output_text == "v1: hello"

    second = agents.deploy(MODEL, 2)
    shown = _wait(env, second.endpoint_name)
    routes = {r["served_entity_name"]: r["traffic_percentage"] for r in shown["config"]["traffic_config"]["routes"]}
    assert routes == {"main-agents-echo_2": 100, "main-agents-echo_1": 0}
    assert client.responses.create(model=second.endpoint_name, input="again").output_text == "v2: again"
    chat = client.chat.completions.create(model=second.endpoint_name, messages=[{"role": "user", "content": "chat"}])
    assert chat.choices[0].message.content == "v2: chat"  # Chat Completions clients reach the agent too
    streamed = client.chat.completions.create(model=second.endpoint_name, stream=True,
                                              messages=[{"role": "user", "content": "streamed"}])
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == "v2: streamed"
    old = httpx.post(first.query_endpoint, headers=env["h"], json={"input": [{"role": "user", "content": "old"}]},
                     timeout=120)
    assert old.status_code == 200 and old.json()["output"][0]["content"][0]["text"] == "v1: old"  # 0% still answers

    listed = {(d.model_name, d.model_version) for d in agents.list_deployments()}
    assert {(MODEL, "1"), (MODEL, "2")} <= listed
    assert [d.model_version for d in agents.get_deployments(MODEL, 2)] == ["2"]

    lineage = httpx.get(f"{env['url']}/api/brickyard/lineage/serving_endpoint/{first.endpoint_name}",
                        headers=env["h"]).json()
    assert {(u["full_name"], u["detail"]) for u in lineage["upstreams"]} >= {(MODEL, "version 1"), (MODEL, "version 2")}
    model_lineage = httpx.get(f"{env['url']}/api/brickyard/lineage/registered_model/{MODEL}", headers=env["h"]).json()
    assert {"kind": "serving_endpoint", "full_name": first.endpoint_name, "edge": "SERVED_BY",
            "detail": "version 2"} in [{k: d[k] for k in ("kind", "full_name", "edge", "detail")}
                                       for d in model_lineage["downstreams"]]

    agents.delete_deployment(MODEL, 1)
    shown = _wait(env, first.endpoint_name)
    assert [e["entity_version"] for e in shown["config"]["served_entities"]] == ["2"]
    assert [d.model_version for d in agents.get_deployments(MODEL)] == ["2"]


def test_the_review_app_chat_page(env: dict[str, Any]) -> None:
    from databricks import agents

    deployment = agents.get_deployments(MODEL)[-1] if agents.get_deployments(MODEL) else agents.deploy(MODEL, 2)
    _wait(env, deployment.endpoint_name)
    path = re.sub(r"^https?://[^/]+", "", deployment.review_app_url)
    with httpx.Client(base_url=env["url"], timeout=120) as browser:
        signed = browser.post("/login", data={"token": env["token"], "next": path})
        assert signed.status_code == 303 and signed.headers["location"] == path
        page = browser.get(path)
        assert page.status_code == 200 and MODEL in page.text, page.text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
        first = browser.post(path, data={"csrf": csrf, "agent": MODEL, "history": "[]",
                                         "question": "<b>is it live?</b>"})
        assert first.status_code == 200, first.text
        assert "v2: &lt;b&gt;is it live?&lt;/b&gt;" in first.text  # escaped, never markup
        history = re.search(r'name="history" value="([^"]*)"', first.text).group(1)
        import html

        second = browser.post(path, data={"csrf": csrf, "agent": MODEL, "history": html.unescape(history),
                                          "question": "and now?"})
        assert "v2: and now?" in second.text and "is it live?" in second.text  # the conversation carried on
        forged = browser.post(path, data={"csrf": "0" * 40, "agent": MODEL, "history": "[]", "question": "x"})
        assert forged.status_code == 403
