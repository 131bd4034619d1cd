"""Declared resources and auth policies. A model logged with ``resources=[...]`` (system auth policy) acts, when
served, through a short-lived credential scoped to exactly those resources -- whoever calls it, and never beyond
what its deployer may do; a model with a user auth policy also gets the caller's identity. The version returns
what it declared, deploying it needs access to every declared resource, and lineage runs index -> model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from brickyard.core.errors import Unauthenticated
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import mlflow_against, serve

pytest.importorskip("mlflow.pyfunc", reason="needs mlflow (the agents extra)")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PROBE = '''
import mlflow


class Probe(mlflow.pyfunc.PythonModel):
    """Tries what each input names with the serving environment's credentials and says what happened."""

    def predict(self, context, model_input, params=None):
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.credentials_provider import ModelServingUserCredentials

        out = []
        for action in model_input["text"]:
            kind, _, target = action.partition(":")
            try:
                w = WorkspaceClient(credentials_strategy=ModelServingUserCredentials()) if kind.startswith("user-") \\
                    else WorkspaceClient()
                kind = kind.removeprefix("user-")
                if kind == "whoami":
                    out.append(w.current_user.me().user_name)
                elif kind == "query":
                    found = w.vector_search_indexes.query_index(index_name=target, columns=["id"],
                                                                query_vector=[1.0, 0.0], num_results=1)
                    out.append(f"ok:{found.result.row_count}")
                elif kind == "catalogs":
                    out.append(f"ok:{len(list(w.catalogs.list()))}")
                else:
                    out.append("unknown action")
            except Exception as exc:
                out.append(f"denied:{type(exc).__name__}:{exc}")
        return out


mlflow.models.set_model(Probe())
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from mlflow.models.auth_policy import AuthPolicy, SystemAuthPolicy, UserAuthPolicy
    from mlflow.models.resources import DatabricksVectorSearchIndex

    tmp = tmp_path_factory.mktemp("resources")
    ws = Workspace(Settings(home=tmp / "home", access_log="off", monitor_interval_seconds=0))
    ws.ensure_user("root@example.com", admin=True)
    root = ws.principal("root@example.com")
    tokens = {u: ws.create_token(f"{u}@example.com") for u in ("alice", "bob", "carol")}
    for schema in ("main.rag", "main.models"):
        ws.catalog.create(root, "schema", schema)
    ws.catalog.update_grants(root, "catalog", "main", [{"principal": "account users", "add": ["USE_CATALOG"]}])
    for schema in ("main.rag", "main.models"):
        ws.catalog.update_grants(root, "schema", schema, [{"principal": "account users", "add": ["USE_SCHEMA"]}])
    ws.catalog.update_grants(root, "schema", "main.models", [{"principal": "alice@example.com",
                                                              "add": ["CREATE_MODEL"]}])
    ws.vectorsearch.create_endpoint(root, {"name": "vs"})
    for index in ("main.rag.docs", "main.rag.secrets"):
        ws.vectorsearch.create_index(root, {
            "name": index, "primary_key": "id", "index_type": "DIRECT_ACCESS",
            "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": 2}],
                                         "schema_json": json.dumps({"id": "integer", "v": "array<float>"})}},
            endpoint="vs")
        ws.vectorsearch.upsert(root, index, [{"id": 1, "v": [1.0, 0.0]}])
        ws.catalog.update_grants(root, "table", index, [{"principal": "alice@example.com", "add": ["SELECT"]}])
    with serve(ws) as url, mlflow_against(url, tokens["alice"], "/Users/alice@example.com/probe"):
        (tmp / "probe.py").write_text(PROBE)
        signature = infer_signature(pd.DataFrame({"text": ["a"]}), ["A"])
        docs = [DatabricksVectorSearchIndex(index_name="main.rag.docs")]
        declared = {"probe": {"resources": docs},
                    "probe_user": {"auth_policy": AuthPolicy(
                        system_auth_policy=SystemAuthPolicy(resources=docs),
                        user_auth_policy=UserAuthPolicy(api_scopes=["vectorsearch.vector-search-indexes"]))}}
        for name, how in declared.items():
            with mlflow.start_run():
                info = mlflow.pyfunc.log_model(name=name, python_model=str(tmp / "probe.py"), signature=signature,
                                               **how)
            mlflow.register_model(info.model_uri, f"main.models.{name}")
        for name in declared:
            ws.catalog.update_grants(root, "registered_model", f"main.models.{name}",
                                     [{"principal": "carol@example.com", "add": ["EXECUTE"]}])
        yield {"ws": ws, "url": url, "tokens": tokens}
    ws.close()


def _h(env: dict[str, Any], user: str) -> dict[str, str]:
    return {"authorization": f"Bearer {env['tokens'][user]}"}


def _serve(env: dict[str, Any], name: str, model: str, user: str = "alice") -> httpx.Response:
    created = httpx.post(env["url"] + "/api/2.0/serving-endpoints", headers=_h(env, user), json={
        "name": name, "config": {"served_entities": [{"entity_name": model, "entity_version": "1"}]}})
    if created.status_code != 200:
        return created
    for _ in range(6000):
        shown = httpx.get(env["url"] + f"/api/2.0/serving-endpoints/{name}", headers=_h(env, user))
        if shown.json()["state"]["config_update"] != "IN_PROGRESS":
            assert shown.json()["state"]["config_update"] == "NOT_UPDATING", shown.text
            httpx.patch(env["url"] + f"/api/2.0/permissions/serving-endpoints/{shown.json()['id']}",
                        headers=_h(env, user), json={"access_control_list": [
                            {"user_name": "bob@example.com", "permission_level": "CAN_QUERY"}]})
            return shown
        time.sleep(0.02)
    raise AssertionError("not deployed")


def _ask(env: dict[str, Any], endpoint: str, user: str, *actions: str) -> list[str]:
    r = httpx.post(env["url"] + f"/serving-endpoints/{endpoint}/invocations", headers=_h(env, user),
                   json={"dataframe_split": {"columns": ["text"], "data": [[a] for a in actions]}}, timeout=120)
    assert r.status_code == 200, r.text
    return list(r.json()["predictions"])


def test_the_version_returns_what_it_declared(env: dict[str, Any]) -> None:
    from databricks.sdk import WorkspaceClient

    w = WorkspaceClient(host=env["url"], token=env["tokens"]["alice"])
    version = w.model_versions.get("main.models.probe", 1)
    assert [d.table.table_full_name for d in version.model_version_dependencies.dependencies] == ["main.rag.docs"]
    raw = w.api_client.do("GET", "/api/2.1/unity-catalog/models/main.models.probe_user/versions/1")
    assert raw["auth_policy"]["user_auth_policy"]["api_scopes"] == ["vectorsearch.vector-search-indexes"]
    mlflow_view = httpx.get(env["url"] + "/api/2.0/mlflow/unity-catalog/model-versions/get", headers=_h(env, "alice"),
                            params={"name": "main.models.probe", "version": "1"}).json()["model_version"]
    assert mlflow_view["resources"]["databricks"]["vector_search_index"] == [{"name": "main.rag.docs"}]
    lineage = httpx.get(env["url"] + "/api/brickyard/lineage/table/main.rag.docs", headers=_h(env, "alice")).json()
    assert {"kind": "registered_model", "full_name": "main.models.probe", "edge": "MODEL_RESOURCE"} in [
        {k: d[k] for k in ("kind", "full_name", "edge")} for d in lineage["downstreams"]]


def test_deploying_needs_access_to_every_declared_resource(env: dict[str, Any]) -> None:
    refused = _serve(env, "carols-probe", "main.models.probe", user="carol")
    assert refused.status_code == 403, refused.text
    assert "main.rag.docs" in refused.json()["message"] and "carol@example.com" in refused.json()["message"]


def test_a_system_policy_model_reaches_exactly_its_declared_resources(env: dict[str, Any]) -> None:
    endpoint = _serve(env, "probe", "main.models.probe").json()
    # bob may query the endpoint but not the indexes; the model acts with its own scoped credential
    assert _ask(env, "probe", "bob", "whoami", "query:main.rag.docs") == ["alice@example.com", "ok:1"]
    undeclared, listing = _ask(env, "probe", "bob", "query:main.rag.secrets", "catalogs")
    assert undeclared.startswith("denied:PermissionDenied") and "declared resources" in undeclared, undeclared
    assert listing.startswith("denied:PermissionDenied"), listing  # no route outside the declared kinds

    [pool] = env["ws"].serving.agents.pools_of(endpoint["id"])
    env_of_worker = pool.workers[0].env
    assert "DATABRICKS_TOKEN" not in env_of_worker  # no caller token: the scoped credential only
    credential = Path(env_of_worker["SERVING_CREDENTIALS_DIR"]) / "model-dependencies-oauth-token"
    assert oct(credential.stat().st_mode & 0o777) == "0o600"
    token = json.loads(credential.read_text())["OAUTH_TOKEN"][0]["oauthTokenValue"]
    assert token not in env["tokens"].values()
    assert env["ws"].identity.authenticate(token).scope == frozenset({"table:main.rag.docs"})
    httpx.delete(env["url"] + "/api/2.0/serving-endpoints/probe", headers=_h(env, "alice"))
    with pytest.raises(Unauthenticated):  # revoked with the endpoint
        env["ws"].identity.authenticate(token)
    assert not credential.exists()


def test_a_user_policy_model_also_acts_as_its_caller(env: dict[str, Any]) -> None:
    _serve(env, "probe-user", "main.models.probe_user")
    as_bob = _ask(env, "probe-user", "bob", "user-whoami", "user-query:main.rag.docs", "query:main.rag.docs")
    assert as_bob[0] == "bob@example.com"
    assert as_bob[1].startswith("denied:PermissionDenied"), as_bob  # bob's own grants
    assert as_bob[2] == "ok:1"  # the system credential, scoped to the declared index
    assert _ask(env, "probe-user", "alice", "user-query:main.rag.docs") == ["ok:1"]


def test_the_system_credential_is_replaced_and_old_ones_expire(env: dict[str, Any]) -> None:
    from brickyard.serving._agents import CREDENTIAL_SECONDS

    endpoint = _serve(env, "probe-rotating", "main.models.probe").json()
    host = env["ws"].serving.agents
    [key] = [k for k in host._credentials if k[0] == endpoint["id"]]
    credential = host._credentials[key]
    first = credential.tokens[-1][0]
    now = credential.tokens[-1][1]
    host._rotate(credential, now + CREDENTIAL_SECONDS)
    second = credential.tokens[-1][0]
    written = json.loads((credential.directory / "model-dependencies-oauth-token").read_text())
    assert written["OAUTH_TOKEN"][0]["oauthTokenValue"] == second != first
    assert env["ws"].identity.authenticate(first).name == "alice@example.com"  # still valid for a while
    assert _ask(env, "probe-rotating", "bob", "query:main.rag.docs") == ["ok:1"]  # the model reads the new one
    host._rotate(credential, now + 2 * CREDENTIAL_SECONDS)
    with pytest.raises(Unauthenticated):
        env["ws"].identity.authenticate(first)  # replaced a full period ago: revoked
    assert env["ws"].identity.authenticate(second).scope == frozenset({"table:main.rag.docs"})
