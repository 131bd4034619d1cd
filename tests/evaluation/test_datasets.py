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
