"""Registered pyfunc models whose task is chat, completions or embeddings answer on the OpenAI routes too, with the
OpenAI client, the SDK and MLflow's deployments client; completions and embeddings bodies go through MLflow's own
scoring parser (the model's signature applies)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import mlflow_against, serve, wait_deployed

pytest.importorskip("mlflow.pyfunc", reason="needs mlflow (the agents extra)")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")  # ChatModel is deprecated, still served

EMBEDDER = '''
import mlflow


class Lengths(mlflow.pyfunc.PythonModel):
    """A two-dimensional embedding: (length of the text, number of words)."""

    def predict(self, context, model_input, params=None):
        texts = model_input["input"][0]
        texts = [texts] if isinstance(texts, str) else list(texts)
        return {"object": "list", "model": "lengths",
                "data": [{"object": "embedding", "index": i, "embedding": [float(len(t)), float(len(t.split()))]}
                         for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}}


mlflow.models.set_model(Lengths())
'''

COMPLETER = '''
import mlflow


class Shout(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        prompt = str(model_input["prompt"][0])
        return {"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "shout",
                "choices": [{"index": 0, "text": prompt.upper(), "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


mlflow.models.set_model(Shout())
'''


CHATTER = '''
import mlflow
from mlflow.types.llm import ChatChoice, ChatCompletionResponse, ChatMessage


class Parrot(mlflow.pyfunc.ChatModel):
    def predict(self, context, messages, params):
        said = messages[-1].content
        return ChatCompletionResponse(choices=[ChatChoice(index=0, message=ChatMessage(role="assistant",
                                                                                       content=f"parrot: {said}"))])


mlflow.models.set_model(Parrot())
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import mlflow

    tmp = tmp_path_factory.mktemp("llm-pyfunc")
    ws = Workspace(Settings(home=tmp / "home", access_log="off", monitor_interval_seconds=0))
    token = ws.create_token("alice@example.com", admin=True)
    p = ws.principal("alice@example.com")
    with serve(ws) as url, mlflow_against(url, token, "/Users/alice@example.com/llm-pyfunc"):
        for name, code, task, example in (
                ("lengths", EMBEDDER, "llm/v1/embeddings", {"input": ["two words", "x"]}),
                ("shout", COMPLETER, "llm/v1/completions", {"prompt": "hello"}),
                ("parrot", CHATTER, None, None)):
            (tmp / f"{name}.py").write_text(code)
            with mlflow.start_run():
                info = mlflow.pyfunc.log_model(name=name, python_model=str(tmp / f"{name}.py"),
                                               **({"metadata": {"task": task}, "input_example": example}
                                                  if task else {}))
            mlflow.register_model(info.model_uri, f"main.default.{name}")
            ws.serving.create(p, {"name": name, "config": {"served_entities": [
                {"entity_name": f"main.default.{name}", "entity_version": "1"}]}})
        for name in ("lengths", "shout", "parrot"):
            assert wait_deployed(ws, p, name)["state"]["ready"] == "READY"
        yield {"url": url, "token": token}
    ws.close()


def test_an_embeddings_model_on_the_openai_route(env: dict[str, Any]) -> None:
    from databricks.sdk import WorkspaceClient
    from openai import OpenAI

    client = OpenAI(base_url=env["url"] + "/serving-endpoints", api_key=env["token"])
    answer = client.embeddings.create(model="lengths", input=["two words", "three words here"])
    assert [d.embedding for d in answer.data] == [[9.0, 2.0], [16.0, 3.0]]
    w = WorkspaceClient(host=env["url"], token=env["token"])
    assert [d.embedding for d in w.serving_endpoints.query(name="lengths", input=["a b"]).data] == [[3.0, 2.0]]
    task_mismatch = httpx.post(env["url"] + "/serving-endpoints/completions", json={"model": "lengths",
                                                                                 "prompt": "x"},
                               headers={"authorization": f"Bearer {env['token']}"})
    assert task_mismatch.status_code == 400 and "llm/v1/embeddings" in task_mismatch.json()["message"]


def test_a_completions_model_on_the_openai_route(env: dict[str, Any]) -> None:
    from mlflow.deployments import get_deploy_client
    from openai import OpenAI

    client = OpenAI(base_url=env["url"] + "/serving-endpoints", api_key=env["token"])
    assert client.completions.create(model="shout", prompt="quiet please").choices[0].text == "QUIET PLEASE"
    rest = httpx.post(env["url"] + "/serving-endpoints/shout/invocations", json={"prompt": "rest"},
                      headers={"authorization": f"Bearer {env['token']}"}, timeout=60)
    assert rest.status_code == 200 and rest.json()["choices"][0]["text"] == "REST", rest.text
    assert get_deploy_client("databricks").predict(endpoint="shout", inputs={"prompt": "mlflow"})[
        "choices"][0]["text"] == "MLFLOW"


def test_a_chat_model_on_the_openai_route(env: dict[str, Any]) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=env["url"] + "/serving-endpoints", api_key=env["token"])
    answer = client.chat.completions.create(model="parrot", messages=[{"role": "user", "content": "polly"}])
    assert answer.choices[0].message.content == "parrot: polly"
