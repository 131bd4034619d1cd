"""Synthetic evaluation sets: ``databricks.agents.evals.generate_evals_df`` unchanged against the server (its
``generate-questions`` and ``generate-answer`` calls answered with the judge model), the server-side flow from a
chunks table into an evaluation dataset, and the refusals (no judge model, an unusable answer)."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from brickyard.core.settings import Settings
from brickyard.models._fakes import completion
from brickyard.workspace import Workspace
from tests.conftest import serve

pytest.importorskip("databricks.agents", reason="needs databricks-agents (the dev group)")

DOCS = {
    "docs/delta.md": "Delta tables keep a transaction log. You can read an older version with time travel. "
                     "Vacuum removes files older than the retention period. Merge updates rows by key.",
    "docs/serving.md": "Serving endpoints answer chat requests. Rate limits are set in the AI Gateway. "
                       "Usage tracking writes one row per request. Fallbacks try the next served model.",
}


class Writer:
    """A deterministic judge model that writes evaluation data: one question per sentence of the document, the
    sentence as its context and as its only fact. A document holding GARBAGE gets an answer that is not JSON."""

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        prompt = request["messages"][-1]["content"]
        if "GARBAGE" in prompt:
            return completion("writer", "I cannot do that.", prompt_tokens=10)
        if prompt.startswith("Document:\n"):
            doc = prompt[len("Document:\n"):].split("\n\n", 1)[0]
            count = int(re.search(r"Write (\d+) different", prompt).group(1))  # type: ignore[union-attr]
            sentences = [s.strip() for s in doc.split(". ") if s.strip()]
            questions = [{"question": f"What about: {s.split()[0]} {s.split()[1]}?",
                          "context": s if s.endswith(".") else s + "."} for s in sentences[:count]]
            return completion("writer", json.dumps({"questions": questions}), prompt_tokens=10)
        passage = prompt[len("Passage:\n"):].split("\n\nQuestion:", 1)[0]
        return completion("writer", json.dumps({"facts": [passage], "answer": passage}), prompt_tokens=10)


def _ready(ws: Workspace, name: str) -> None:
    p = ws.principal("eval@example.com")
    for _ in range(1000):
        if ws.serving.get(p, name)["state"]["config_update"] == "NOT_UPDATING":
            return
        time.sleep(0.01)


@pytest.fixture
def writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    import mlflow

    ws = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1, judge_endpoint="writer", access_log="off"))
    ws.serving._factories["system.ai.fake-chat"] = Writer
    token = ws.create_token("eval@example.com", admin=True)
    ws.serving.create(ws.principal("eval@example.com"), {"name": "writer", "config": {"served_entities": [
        {"entity_name": "system.ai.fake-chat"}]}})
    _ready(ws, "writer")
    with serve(ws) as url:
        monkeypatch.setenv("DATABRICKS_HOST", url)
        monkeypatch.setenv("DATABRICKS_TOKEN", token)
        mlflow.set_tracking_uri("databricks")
        yield ws
    ws.close()


def test_generate_evals_df_through_the_client(writer: Workspace) -> None:
    import pandas as pd
    from databricks.agents.evals import generate_evals_df

    docs = pd.DataFrame([{"doc_uri": uri, "content": text} for uri, text in DOCS.items()])
    evals = generate_evals_df(docs, num_evals=4, agent_description="A Brickyard helper")
    assert len(evals) == 4
    rows = evals.to_dict(orient="records")
    expectations = [r["expectations"] for r in rows]
    facts = [f for e in expectations for f in e["expected_facts"]]
    sentences = {s.strip().rstrip(".") + "." for text in DOCS.values() for s in text.split(". ")}
    assert facts and set(facts) <= sentences  # every fact is a sentence of a document (the writer's rule)
    uris = {c["doc_uri"] for e in expectations for c in e["expected_retrieved_context"]}
    assert uris == set(DOCS)


def test_generate_from_a_chunks_table(writer: Workspace) -> None:
    ws = writer
    p = ws.principal("eval@example.com")
    ws.tables.create(p, "main.default.chunks", schema=pa.schema([("source", pa.string()), ("text", pa.string())]))
    ws.tables.write(p, "main.default.chunks", pa.Table.from_pylist(
        [{"source": uri, "text": text} for uri, text in DOCS.items()] + [{"source": "bad.md", "text": "GARBAGE here"}]),
        mode="append")
    seen: list[int] = []
    out = ws.evaluations.generate(p, "main.default.chunks", num_evals=3, dataset="main.default.synth",
                                  progress=seen.append)
    assert out["records"] == 2 and len(out["problems"]) == 1 and "bad.md" in out["problems"][0]
    assert sum(seen) == 2
    rows = ws.datasets.rows(p, "main.default.synth")
    assert {r["inputs"]["question"] for r in rows} == {"What about: Delta tables?", "What about: Serving endpoints?"}
    assert all(r["expectations"]["expected_facts"] and r["expectations"]["expected_retrieved_context"] for r in rows)
    # the dataset is ready to evaluate with: a second run appends to it
    again = ws.evaluations.generate(p, "main.default.chunks", num_evals=2, dataset="main.default.synth")
    assert again["records"] == 2 and len(ws.datasets.rows(p, "main.default.synth")) == 4


def test_refusals(writer: Workspace, tmp_path: Path) -> None:
    base, token = os.environ["DATABRICKS_HOST"], os.environ["DATABRICKS_TOKEN"]
    h = {"authorization": f"Bearer {token}"}
    route = base + "/api/2.0/managed-evals/generate-questions"
    r = httpx.post(route, headers=h, json={"doc_content": "GARBAGE", "num_questions": 1})
    assert r.status_code == 503 and "not a JSON object" in r.json()["message"]
    for bad in ({"num_questions": 1}, {"doc_content": "x", "num_questions": 0}, {"doc_content": "x", "num_questions": "2"}):
        assert httpx.post(route, headers=h, json=bad).status_code == 400
    assert httpx.post(base + "/api/2.0/managed-evals/generate-answer", headers=h,
                      json={"question": "q", "context": "c", "answer_types": ["ESSAY"]}).status_code == 400
    assert httpx.post(route, json={"doc_content": "x"}).status_code == 401
    with Workspace(Settings(home=tmp_path / "other"), background=False) as plain:
        p = plain.ensure_user("a@example.com")
        with pytest.raises(Exception, match="JUDGE_NOT_CONFIGURED|judge model") as info:
            plain.evaluations.generate_questions(p, {"doc_content": "x", "num_questions": 1})
        assert getattr(info.value, "error_code", "") == "JUDGE_NOT_CONFIGURED"
