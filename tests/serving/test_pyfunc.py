"""Any registered model version is servable, not only agents: a plain ``PythonModel`` (it upper-cases text), logged
with a signature, registered in Unity Catalog and served, answers ``/invocations`` in every Databricks input format
(``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``, with ``params``) through the REST route,
``w.serving_endpoints.query`` and ``mlflow.deployments``; its signature is enforced with a 400 that names the
column."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import mlflow_against, serve, wait_deployed

pytest.importorskip("mlflow.pyfunc", reason="needs mlflow (the agents extra)")

MODEL = '''
import mlflow
import pandas as pd


class Upper(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        suffix = (params or {}).get("suffix", "")
        return [str(t).upper() + suffix for t in model_input["text"]]


mlflow.models.set_model(Upper())
'''


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    tmp = tmp_path_factory.mktemp("pyfunc")
    ws = Workspace(Settings(home=tmp / "home", access_log="off", monitor_interval_seconds=0))
    token = ws.create_token("alice@example.com", admin=True)
    p = ws.principal("alice@example.com")
    with serve(ws) as url, mlflow_against(url, token, "/Users/alice@example.com/upper"):
        (tmp / "upper.py").write_text(MODEL)
        signature = infer_signature(pd.DataFrame({"text": ["a"]}), ["A"], params={"suffix": ""})
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="upper", python_model=str(tmp / "upper.py"), signature=signature,
                                           input_example=pd.DataFrame({"text": ["a"]}))
        mlflow.register_model(info.model_uri, "main.default.upper")
        ws.serving.create(p, {"name": "upper", "config": {"served_entities": [
            {"entity_name": "main.default.upper", "entity_version": "1"}]}})
        assert wait_deployed(ws, p, "upper")["state"]["ready"] == "READY"
        yield {"ws": ws, "url": url, "token": token}
    ws.close()


@pytest.mark.parametrize("body", [
    {"dataframe_split": {"columns": ["text"], "data": [["hello"], ["brickyard"]]}},
    {"dataframe_records": [{"text": "hello"}, {"text": "brickyard"}]},
    {"instances": [{"text": "hello"}, {"text": "brickyard"}]},
    {"inputs": {"text": ["hello", "brickyard"]}},
], ids=["dataframe_split", "dataframe_records", "instances", "inputs"])
def test_every_input_format_over_rest(served: dict[str, Any], body: dict[str, Any]) -> None:
    h = {"authorization": f"Bearer {served['token']}"}
    r = httpx.post(f"{served['url']}/serving-endpoints/upper/invocations", headers=h, json=body, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == ["HELLO", "BRICKYARD"]
    with_params = httpx.post(f"{served['url']}/serving-endpoints/upper/invocations", headers=h,
                             json={**body, "params": {"suffix": "!"}}, timeout=120)
    assert with_params.json()["predictions"] == ["HELLO!", "BRICKYARD!"]


def test_official_clients_and_the_signature(served: dict[str, Any]) -> None:
    from databricks.sdk import WorkspaceClient
    from mlflow.deployments import get_deploy_client

    w = WorkspaceClient(host=served["url"], token=served["token"])
    answer = w.serving_endpoints.query(name="upper", dataframe_records=[{"text": "sdk"}])
    assert answer.predictions == ["SDK"]
    client = get_deploy_client("databricks")
    assert client.predict(endpoint="upper", inputs={"dataframe_split": {"columns": ["text"], "data": [["mlflow"]]},
                                                    "params": {"suffix": "?"}})["predictions"] == ["MLFLOW?"]
    h = {"authorization": f"Bearer {served['token']}"}
    wrong = httpx.post(f"{served['url']}/serving-endpoints/upper/invocations", headers=h,
                       json={"dataframe_records": [{"words": "x"}]}, timeout=120)
    assert wrong.status_code == 400 and "text" in wrong.json()["message"], wrong.text
    unknown = httpx.post(f"{served['url']}/serving-endpoints/upper/invocations", headers=h,
                         json={"dataframe_split": {"columns": ["text"], "data": [["x"]]}, "params": {"nope": 1}},
                         timeout=120)
    assert unknown.status_code in (200, 400)  # mlflow ignores or refuses unknown params by its own rule



@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_a_model_of_another_mlflow_flavour(served: dict[str, Any]) -> None:
    """An ``mlflow.sklearn`` model (loaded by its own flavour, in the worker: the server never unpickles)."""
    sklearn = pytest.importorskip("sklearn.linear_model", reason="needs scikit-learn")
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from tests.conftest import mlflow_against

    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 0.0, 1.0, 1.0]})
    model = sklearn.LogisticRegression().fit(frame[["x"]], frame["y"].astype(int))
    with mlflow_against(served["url"], served["token"], "/Users/alice@example.com/sklearn"):
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="clf",
                                            signature=infer_signature(frame[["x"]], model.predict(frame[["x"]])))
        mlflow.register_model(info.model_uri, "main.default.clf")
    ws = served["ws"]
    p = ws.principal("alice@example.com")
    ws.serving.create(p, {"name": "clf", "config": {"served_entities": [
        {"entity_name": "main.default.clf", "entity_version": "1"}]}})
    assert wait_deployed(ws, p, "clf")["state"]["ready"] == "READY"
    r = httpx.post(f"{served['url']}/serving-endpoints/clf/invocations", timeout=120,
                   headers={"authorization": f"Bearer {served['token']}"},
                   json={"dataframe_split": {"columns": ["x"], "data": [[0.0], [3.0]]}})
    assert r.status_code == 200 and r.json()["predictions"] == [0, 1], r.text


def test_ai_query_on_a_custom_model(served: dict[str, Any]) -> None:
    """SQL's ai_query sends a struct request to a custom model as dataframe records (many rows per request)."""
    ws = served["ws"]
    p = ws.principal("alice@example.com")
    rows = ws.sql.execute(p, "SELECT x, ai_query('upper', named_struct('text', x), returnType => 'STRING') AS r FROM "
                             "(VALUES (1, 'a'), (2, 'bc'), (3, 'def')) AS v(i, x) ORDER BY i").table.to_pylist()
    assert [r["r"] for r in rows] == ["A", "BC", "DEF"]
    with pytest.raises(Exception, match="returnType"):
        ws.sql.execute(p, "SELECT ai_query('upper', named_struct('text', 'a'))")
