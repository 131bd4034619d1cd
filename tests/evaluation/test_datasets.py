"""Evaluation datasets through ``mlflow.genai.datasets`` (databricks-agents' managed-evals client, unchanged):
a dataset is a UC Delta table; records are created, merged (same inputs -> one record, expectations merged),
read back exactly, versioned, and governed by the table's grants."""

from __future__ import annotations

import os

import httpx
import pytest

from brickyard.workspace import Workspace
from tests.evaluation.conftest import RuleJudge

pytest.importorskip("databricks.agents", reason="needs databricks-agents (the dev group)")

RECORDS = [
    {"inputs": {"question": "What is the capital of France?"},
     "expectations": {"expected_facts": ["Paris"], "guidelines": ["Answer in one word"]}},
    {"inputs": {"question": "Capital of Italy?", "context": {"lang": "en", "n": 2}},
     "expectations": {"expected_response": "Rome",
                      "expected_retrieved_context": [{"doc_uri": "docs/rome.md", "content": "Rome is..."}]}},
]


def test_datasets_round_trip_merge_and_version(judged: tuple[Workspace, RuleJudge]) -> None:
    import mlflow
    from mlflow.genai import datasets

    ws, _ = judged
    exp = mlflow.set_experiment("/Users/eval@example.com/datasets")
    ds = datasets.create_dataset(name="main.default.capitals", experiment_id=exp.experiment_id)
    ds.merge_records(RECORDS)
    df = datasets.get_dataset(name="main.default.capitals").to_df()
    assert len(df) == 2
    got = {r["inputs"]["question"]: r for r in df.to_dict("records")}
    assert got["Capital of Italy?"]["inputs"]["context"] == {"lang": "en", "n": 2}
    assert got["Capital of Italy?"]["expectations"]["expected_retrieved_context"][0]["doc_uri"] == "docs/rome.md"
    assert got["What is the capital of France?"]["expectations"]["guidelines"] == ["Answer in one word"]
    # merging a record with the same inputs merges its expectations instead of adding a row
    ds.merge_records([{"inputs": {"question": "What is the capital of France?"},
                       "expectations": {"expected_response": "Paris"}}])
    df = datasets.get_dataset(name="main.default.capitals").to_df()
    assert len(df) == 2
    france = next(r for r in df.to_dict("records") if r["inputs"]["question"].endswith("France?"))
    assert france["expectations"]["expected_response"] == "Paris" and france["expectations"]["expected_facts"] == [
        "Paris"]
    # it is a Delta table in Unity Catalog: SQL sees it, history counts the merges
    rows = ws.sql.execute(ws.principal("eval@example.com"), "SELECT count(*) AS n FROM main.default.capitals").table
    assert rows.to_pylist() == [{"n": 2}]
    # grants: another user sees nothing without SELECT on it
    table_id = ds.dataset_id
    outsider = {"authorization": f"Bearer {ws.create_token('outsider@example.com')}"}
    base = os.environ["DATABRICKS_HOST"] + "/api/2.0/managed-evals/datasets/" + table_id
    assert httpx.get(base + "/records", headers=outsider).status_code == 403
    assert httpx.get(base.rsplit("/", 1)[0] + "/nope", headers=outsider).status_code == 404
    versions = httpx.get(base + "/versions", headers={"authorization": f"Bearer {os.environ['DATABRICKS_TOKEN']}"})
    assert len(versions.json()["dataset_versions"]) >= 3
    datasets.delete_dataset(name="main.default.capitals")
    assert not ws.catalog.exists("table", "main.default.capitals")


def test_records_merge_from_search_traces(judged: tuple[Workspace, RuleJudge]) -> None:
    """The output of ``mlflow.search_traces`` merges into a dataset: each trace becomes a record with the
    trace's inputs, and the record remembers which trace it came from."""
    import mlflow
    from mlflow.genai import datasets

    exp = mlflow.set_experiment("/Users/eval@example.com/from-traces")

    @mlflow.trace
    def answer(question: str) -> str:
        return "Paris"

    answer("Capital of France?")
    answer("Capital of Spain?")
    trace_ids = {mlflow.get_last_active_trace_id()}
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(locations=[exp.experiment_id])
    ds = datasets.create_dataset(name="main.default.from_traces", experiment_id=exp.experiment_id)
    ds.merge_records(traces)
    df = datasets.get_dataset(name="main.default.from_traces").to_df()
    assert sorted(r["question"] for r in df["inputs"]) == ["Capital of France?", "Capital of Spain?"]
    h = {"authorization": f"Bearer {os.environ['DATABRICKS_TOKEN']}"}
    records = httpx.get(f"{os.environ['DATABRICKS_HOST']}/api/2.0/managed-evals/datasets/{ds.dataset_id}/records",
                        headers=h).json()["dataset_records"]
    sources = {r["source"]["trace"]["trace_id"] for r in records if "trace" in (r.get("source") or {})}
    assert trace_ids <= sources and len(sources) == 2


def test_profile_and_expectation_upserts(judged: tuple[Workspace, RuleJudge]) -> None:
    import mlflow
    from mlflow.genai import datasets

    ws, _ = judged
    exp = mlflow.set_experiment("/Users/eval@example.com/upserts")
    ds = datasets.create_dataset(name="main.default.upserts", experiment_id=exp.experiment_id)
    ds.merge_records(RECORDS[:1])
    h = {"authorization": f"Bearer {os.environ['DATABRICKS_TOKEN']}"}
    base = f"{os.environ['DATABRICKS_HOST']}/api/2.0/managed-evals/datasets/{ds.dataset_id}"
    record = httpx.get(base + "/records", headers=h).json()["dataset_records"][0]
    r = httpx.post(f"{base}/records/{record['dataset_record_id']}/expectations", headers=h,
                   json={"expectations": {"expected_response": {"value": "Paris"}}})
    assert r.status_code == 200, r.text
    after = httpx.get(base + "/records", headers=h).json()["dataset_records"][0]["expectations"]
    assert after == {**record["expectations"], "expected_response": {"value": "Paris"}}
    assert httpx.post(f"{base}/records/nope/expectations", headers=h,
                      json={"expectations": {"x": {"value": 1}}}).status_code == 404
    assert httpx.post(f"{base}/records/{record['dataset_record_id']}/expectations", headers=h,
                      json={"expectations": {"x": 1}}).status_code == 400
    r = httpx.patch(base + "?update_mask=profile", headers=h, json={"profile": "dev"})
    assert r.status_code == 200 and r.json()["profile"] == "dev"
    assert httpx.patch(base + "?update_mask=name", headers=h, json={"name": "x"}).status_code == 400
    outsider = {"authorization": f"Bearer {ws.create_token('outsider@example.com')}"}
    assert httpx.patch(base + "?update_mask=profile", headers=outsider, json={"profile": "x"}).status_code == 403
