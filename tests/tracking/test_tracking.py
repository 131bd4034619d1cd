"""Experiments, runs, metrics and artifacts through the official ``mlflow`` client, with tracking URI
``databricks`` pointed at a Brickyard server."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve


@dataclass
class Env:
    ws: Workspace
    url: str
    token: str
    bob_token: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("tracking") / "home"))
    token = ws.create_token("alice@example.com")
    ws.ensure_user("bob@example.com")
    bob = ws.create_token("bob@example.com")
    with serve(ws) as url:
        yield Env(ws, url, token, bob)
    ws.close()


@pytest.fixture
def client(env: Env, monkeypatch: pytest.MonkeyPatch) -> Any:
    import mlflow

    monkeypatch.setenv("DATABRICKS_HOST", env.url)
    monkeypatch.setenv("DATABRICKS_TOKEN", env.token)
    mlflow.set_tracking_uri("databricks")
    yield mlflow.MlflowClient(tracking_uri="databricks")
    if mlflow.active_run():
        mlflow.end_run()


def test_experiments_runs_params_metrics_tags(env: Env, client: Any, tmp_path: Path) -> None:
    import mlflow

    exp = mlflow.set_experiment("/Users/alice@example.com/rag")
    assert exp.artifact_location == f"dbfs:/databricks/mlflow-tracking/{exp.experiment_id}"
    with mlflow.start_run(run_name="first") as run:
        mlflow.log_param("model", "mini")
        mlflow.log_params({"k": 5, "chunk": "recursive"})
        for step in range(3):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"ndcg": 0.72, "odd": math.nan})
        mlflow.set_tag("team", "search")
        (tmp_path / "notes.txt").write_text("what we tried")
        mlflow.log_artifact(str(tmp_path / "notes.txt"), artifact_path="docs")
        mlflow.log_dict({"a": 1}, "config/settings.json")
    got = client.get_run(run.info.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "first" and got.info.end_time
    assert got.data.params == {"model": "mini", "k": "5", "chunk": "recursive"}
    assert got.data.metrics["loss"] == pytest.approx(1 / 3) and math.isnan(got.data.metrics["odd"])
    assert got.data.tags["team"] == "search" and got.data.tags["mlflow.user"] == "alice@example.com"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, round(m.value, 3)) for m in history] == [(0, 1.0), (1, 0.5), (2, 0.333)]

    names = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    assert names == ["config", "docs"]
    assert [a.path for a in client.list_artifacts(run.info.run_id, "docs")] == ["docs/notes.txt"]
    local = client.download_artifacts(run.info.run_id, "docs/notes.txt", str(tmp_path / "down"))
    assert Path(local).read_text() == "what we tried"
    assert mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/config/settings.json") == {"a": 1}
    stored = env.ws.home / "tracking" / "artifacts" / exp.experiment_id / "Runs" / run.info.run_id
    assert (stored / "artifacts" / "docs" / "notes.txt").read_text() == "what we tried"

    with pytest.raises(mlflow.exceptions.MlflowException, match="Changing param values is not allowed"):
        client.log_param(run.info.run_id, "model", "other")


def test_search_runs_and_experiments(env: Env, client: Any) -> None:
    import mlflow

    exp = mlflow.set_experiment("/Users/alice@example.com/sweep")
    for i, (k, score) in enumerate([(3, 0.61), (5, 0.72), (10, 0.69), (20, 0.55)]):
        with mlflow.start_run(run_name=f"k{k}"):
            mlflow.log_param("k", k)
            mlflow.log_metric("ndcg", score)
            mlflow.set_tag("family", "dense" if i % 2 else "sparse")
    runs = mlflow.search_runs([exp.experiment_id], filter_string="metrics.ndcg > 0.6 AND tags.family = 'dense'",
                              order_by=["metrics.ndcg DESC"])
    assert list(runs["params.k"]) == ["5"]
    best = client.search_runs([exp.experiment_id], order_by=["metrics.ndcg DESC"], max_results=2)
    assert [r.data.params["k"] for r in best] == ["5", "10"]
    named = client.search_runs([exp.experiment_id], filter_string="attributes.run_name LIKE 'k1%'")
    assert [r.info.run_name for r in named] == ["k10"]
    paged = client.search_runs([exp.experiment_id], max_results=3)
    assert len(paged) == 3 and paged.token
    rest = client.search_runs([exp.experiment_id], max_results=3, page_token=paged.token)
    assert len(rest) == 1 and not rest.token
    found = client.search_experiments(filter_string="name LIKE '%sweep'")
    assert [e.name for e in found] == ["/Users/alice@example.com/sweep"]
    with pytest.raises(mlflow.exceptions.MlflowException, match="OR"):
        client.search_runs([exp.experiment_id], filter_string="metrics.ndcg > 0.6 OR params.k = '5'")
    client.delete_experiment(exp.experiment_id)
    assert client.get_experiment(exp.experiment_id).lifecycle_stage == "deleted"
    client.restore_experiment(exp.experiment_id)


def test_other_users_see_nothing_until_granted(env: Env, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx
    import mlflow

    exp = mlflow.set_experiment("/Users/alice@example.com/private")
    with mlflow.start_run() as run:
        mlflow.log_metric("x", 1.0)
    bob = mlflow.MlflowClient(tracking_uri="databricks")
    monkeypatch.setenv("DATABRICKS_TOKEN", env.bob_token)
    for call in (lambda: bob.get_experiment(exp.experiment_id), lambda: bob.get_run(run.info.run_id)):
        with pytest.raises(mlflow.exceptions.MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
            call()
    assert exp.experiment_id not in {e.experiment_id for e in bob.search_experiments()}
    artifact = (f"{env.url}/api/2.0/fs/files/WorkspaceInternal/Mlflow/Artifacts/{exp.experiment_id}/Runs/"
                f"{run.info.run_id}/artifacts/planted.txt")
    assert httpx.put(artifact, content=b"x", headers={"authorization": f"Bearer {env.bob_token}"}).status_code == 404
    grant = httpx.patch(f"{env.url}/api/2.0/permissions/experiments/{exp.experiment_id}",
                        headers={"authorization": f"Bearer {env.token}"},
                        json={"access_control_list": [{"user_name": "bob@example.com", "permission_level": "CAN_READ"}]})
    assert grant.status_code == 200, grant.text
    assert bob.get_run(run.info.run_id).data.metrics == {"x": 1.0}
    with pytest.raises(mlflow.exceptions.MlflowException, match="PERMISSION_DENIED"):
        bob.log_metric(run.info.run_id, "x", 2.0)
    assert httpx.put(artifact, content=b"x", headers={"authorization": f"Bearer {env.bob_token}"}).status_code == 403


def test_traces_export_and_read_back_with_assessments(env: Env, client: Any) -> None:
    """``@mlflow.trace`` exports to the server (trace info, then spans through a signed URL); get_trace and
    search_traces read them back with span types, the parent/child tree and inputs/outputs intact."""
    import mlflow
    from mlflow.entities import AssessmentSource, SpanType

    exp = mlflow.set_experiment("/Users/alice@example.com/agent")

    @mlflow.trace(span_type=SpanType.RETRIEVER)
    def retrieve(question: str) -> list[str]:
        return [f"doc about {question}"]

    @mlflow.trace(span_type=SpanType.CHAT_MODEL)
    def answer(question: str, docs: list[str]) -> str:
        return f"{question}? see {docs[0]}"

    @mlflow.trace(span_type=SpanType.AGENT, name="agent")
    def agent(question: str) -> str:
        with mlflow.start_span("tool", span_type=SpanType.TOOL) as span:
            span.set_inputs({"q": question})
            span.set_outputs({"ok": True})
        return answer(question, retrieve(question))

    assert agent("rate limits") == "rate limits? see doc about rate limits"
    trace_id = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()
    trace = client.get_trace(trace_id)
    spans = {s.name: s for s in trace.data.spans}
    assert set(spans) == {"agent", "tool", "retrieve", "answer"}
    assert spans["agent"].span_type == SpanType.AGENT and spans["agent"].parent_id is None
    assert {spans[n].parent_id for n in ("tool", "retrieve", "answer")} == {spans["agent"].span_id}
    assert spans["retrieve"].span_type == SpanType.RETRIEVER and spans["retrieve"].outputs == ["doc about rate limits"]
    assert spans["answer"].span_type == SpanType.CHAT_MODEL and spans["answer"].inputs["question"] == "rate limits"
    assert trace.info.experiment_id == exp.experiment_id and trace.info.state.value == "OK"

    mlflow.log_feedback(trace_id=trace_id, name="helpful", value=True, rationale="cites a doc",
                        source=AssessmentSource(source_type="HUMAN", source_id="alice@example.com"))
    mlflow.log_expectation(trace_id=trace_id, name="expected", value="see the rate-limit doc")
    client.set_trace_tag(trace_id, "reviewed", "yes")
    info = client.get_trace(trace_id).info
    assert {a.name for a in info.assessments} == {"helpful", "expected"} and info.tags["reviewed"] == "yes"
    feedback = next(a for a in info.assessments if a.name == "helpful")
    assert feedback.value is True and feedback.rationale == "cites a doc"

    found = mlflow.search_traces(locations=[exp.experiment_id], filter_string="tags.reviewed = 'yes'",
                                 return_type="list")
    assert [t.info.trace_id for t in found] == [trace_id] and len(found[0].data.spans) == 4
    assert mlflow.search_traces(locations=[exp.experiment_id], filter_string="tags.reviewed = 'no'",
                                return_type="list") == []


def test_traces_linked_to_a_run_are_found_by_run(env: Env, client: Any) -> None:
    """``link_traces_to_run`` (what ``mlflow.genai.evaluate`` calls for the traces of an evaluation): a search
    by run finds the linked traces and the ones the run recorded, and nothing else."""
    import mlflow
    from mlflow.exceptions import MlflowException

    exp = mlflow.set_experiment("/Users/alice@example.com/linked")

    @mlflow.trace
    def step(x: int) -> int:
        return x + 1

    ids = []
    for i in range(3):
        step(i)
        ids.append(mlflow.get_last_active_trace_id())
    with mlflow.start_run() as run:
        step(10)
        inside = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()

    def by_run() -> set[str]:
        return {t.info.trace_id for t in mlflow.search_traces(locations=[exp.experiment_id], run_id=run.info.run_id,
                                                             return_type="list")}

    assert by_run() == {inside}
    client.link_traces_to_run(ids[:2], run.info.run_id)
    client.link_traces_to_run(ids[:1], run.info.run_id)  # linking again changes nothing
    assert by_run() == {inside, ids[0], ids[1]}
    with pytest.raises(MlflowException):
        client.link_traces_to_run(["tr-" + "0" * 32], run.info.run_id)  # no such trace
    with pytest.raises(MlflowException):
        client.link_traces_to_run(ids[2:], "no-such-run")
    assert by_run() == {inside, ids[0], ids[1]}


def test_signed_urls_are_scoped_and_expire(env: Env, client: Any) -> None:
    import httpx
    import mlflow

    mlflow.set_experiment("/Users/alice@example.com/signed")

    @mlflow.trace
    def step() -> int:
        return 1

    step()
    trace_id = mlflow.get_last_active_trace_id()
    mlflow.flush_trace_async_logging()
    h = {"authorization": f"Bearer {env.token}"}
    down = httpx.get(f"{env.url}/api/2.0/mlflow/traces/{trace_id}/credentials-for-data-download", headers=h).json()
    url = down["credential_info"]["signed_uri"]
    assert url.startswith(env.url + "/api/2.0/brickyard/signed/") and httpx.get(url).json()["spans"]
    assert httpx.put(url, content=b'{"spans": []}').status_code == 403  # a download URL cannot upload
    assert httpx.get(url[:-4] + "AAAA").status_code == 403
    bob = {"authorization": f"Bearer {env.bob_token}"}
    assert httpx.get(f"{env.url}/api/2.0/mlflow/traces/{trace_id}/credentials-for-data-download",
                     headers=bob).status_code == 404


@pytest.mark.filterwarnings("ignore::UserWarning")  # mlflow's advice to log input examples
def test_log_register_alias_and_load_through_unity_catalog(env: Env, client: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A pyfunc model logged with mlflow (MLflow 3 logged model), registered to catalog.schema.model with
    registry URI databricks-uc, given an alias and loaded back by it; the SDK sees the same version."""
    import mlflow
    from databricks.sdk import WorkspaceClient
    from mlflow.models import infer_signature

    admin = env.ws.principal("alice@example.com")
    if not env.ws.catalog.exists("catalog", "ml"):
        root = env.ws.ensure_user("root@example.com", admin=True)
        env.ws.catalog.create(root, "catalog", "ml")
        env.ws.catalog.create(root, "schema", "ml.agents")
        env.ws.catalog.update_grants(root, "catalog", "ml", [{"principal": admin.name, "add": ["USE_CATALOG"]}])
        env.ws.catalog.update_grants(root, "schema", "ml.agents", [{"principal": admin.name,
                                                                    "add": ["USE_SCHEMA", "CREATE_MODEL"]}])

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return [2 * x for x in model_input["x"]]

    import pandas as pd

    example = pd.DataFrame({"x": [1.0, 2.0]})
    mlflow.set_experiment("/Users/alice@example.com/models")
    mlflow.set_registry_uri("databricks-uc")
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="doubler", python_model=Doubler(),
                                       signature=infer_signature(example, [2.0, 4.0]))
    version = mlflow.register_model(info.model_uri, "ml.agents.doubler")
    assert version.version == "1" and version.status == "READY" and version.run_id == run.info.run_id
    uc = mlflow.MlflowClient(registry_uri="databricks-uc")
    uc.set_registered_model_alias("ml.agents.doubler", "champion", "1")
    loaded = mlflow.pyfunc.load_model("models:/ml.agents.doubler@champion")
    assert list(loaded.predict(pd.DataFrame({"x": [3.0]}))) == [6.0]
    sdk = WorkspaceClient(host=env.url, token=env.token)
    got = sdk.model_versions.get("ml.agents.doubler", 1)
    assert got.status.value == "READY" and got.run_id == run.info.run_id
    assert [a.alias_name for a in sdk.registered_models.get("ml.agents.doubler", include_aliases=True).aliases] \
        == ["champion"]
    stored = env.ws.registry.version_row(admin, "ml.agents.doubler", 1)
    assert stored["spec"]["model_id"] == info.model_id  # lineage: version -> logged model -> run

    class NoSignature(mlflow.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return model_input

    with mlflow.start_run():
        bare = mlflow.pyfunc.log_model(name="bare", python_model=NoSignature())
    with pytest.raises(mlflow.exceptions.MlflowException, match="signature"):
        mlflow.register_model(bare.model_uri, "ml.agents.bare")

    monkeypatch.setenv("DATABRICKS_TOKEN", env.bob_token)
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow.pyfunc.load_model("models:/ml.agents.doubler@champion")


def test_the_server_itself_requires_a_signature_and_keeps_ready_files_immutable(env: Env) -> None:
    """Not only mlflow's client-side check: any client that finalizes a version without a full signature is
    refused, and a READY version's files cannot be replaced."""
    import httpx

    root = env.ws.ensure_user("root@example.com", admin=True)
    token = env.ws.create_token("root@example.com")
    if not env.ws.catalog.exists("catalog", "ml"):
        env.ws.catalog.create(root, "catalog", "ml")
        env.ws.catalog.create(root, "schema", "ml.agents")
    h = {"authorization": f"Bearer {token}"}
    base = env.url + "/api/2.0/mlflow/unity-catalog"
    assert httpx.post(base + "/registered-models/create", headers=h, json={"name": "ml.agents.raw"}).status_code == 200
    version = httpx.post(base + "/model-versions/create", headers=h,
                         json={"name": "ml.agents.raw", "source": "dbfs:/x"}).json()["model_version"]
    assert version["status"] == "PENDING_REGISTRATION"
    files = f"{env.url}/api/2.0/fs/files/Models/ml/agents/raw/{version['version']}/MLmodel"
    assert httpx.put(files, headers=h, content=b"flavors: {}\n").status_code == 204
    refused = httpx.post(base + "/model-versions/finalize", headers=h, json={"name": "ml.agents.raw", "version": "1"})
    assert refused.status_code == 400 and "signature" in refused.json()["message"]
    signed = b"flavors: {}\nsignature:\n  inputs: '[{\"type\": \"double\"}]'\n  outputs: '[{\"type\": \"double\"}]'\n"
    assert httpx.put(files + "?overwrite=true", headers=h, content=signed).status_code == 204
    ready = httpx.post(base + "/model-versions/finalize", headers=h, json={"name": "ml.agents.raw", "version": "1"})
    assert ready.status_code == 200 and ready.json()["model_version"]["status"] == "READY"
    again = httpx.put(files + "?overwrite=true", headers=h, content=b"flavors: {}\n")
    assert again.status_code == 400 and again.json()["error_code"] == "INVALID_STATE"


def test_prompt_registry_versions_and_aliases(env: Env, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    root = env.ws.ensure_user("root@example.com", admin=True)
    if not env.ws.catalog.exists("catalog", "ml"):
        env.ws.catalog.create(root, "catalog", "ml")
        env.ws.catalog.create(root, "schema", "ml.agents")
    env.ws.catalog.update_grants(root, "catalog", "ml", [{"principal": "alice@example.com", "add": ["USE_CATALOG"]}])
    env.ws.catalog.update_grants(root, "schema", "ml.agents", [{"principal": "alice@example.com",
                                                                "add": ["USE_SCHEMA", "CREATE_FUNCTION"]}])
    mlflow.set_registry_uri("databricks-uc")
    first = mlflow.genai.register_prompt(name="ml.agents.qa", template="Answer {{question}} briefly.",
                                         commit_message="first")
    second = mlflow.genai.register_prompt(name="ml.agents.qa", template="Answer {{question}} citing {{doc}}.")
    assert (first.version, second.version) == (1, 2)
    mlflow.genai.set_prompt_alias("ml.agents.qa", alias="production", version=1)
    loaded = mlflow.genai.load_prompt("prompts:/ml.agents.qa@production")
    assert loaded.version == 1 and loaded.format(question="why") == "Answer why briefly."
    assert mlflow.genai.load_prompt("prompts:/ml.agents.qa/2").template == "Answer {{question}} citing {{doc}}."
    chat = mlflow.genai.register_prompt(name="ml.agents.chat", template=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "{{question}}"}])
    assert mlflow.genai.load_prompt(f"prompts:/ml.agents.chat/{chat.version}").format(question="hi")[1] == \
        {"role": "user", "content": "hi"}
    import httpx

    bob = {"authorization": f"Bearer {env.bob_token}"}  # no EXECUTE on the schema (mlflow caches loaded prompts)
    base = env.url + "/api/2.0/mlflow/unity-catalog/prompts/ml.agents.qa"
    assert httpx.get(base, headers=bob).status_code == 404
    assert httpx.get(base + "/versions/1", headers=bob).status_code == 404
    assert httpx.post(base + "/versions", headers=bob, json={"prompt_version": {"template": "x"}}).status_code == 404
