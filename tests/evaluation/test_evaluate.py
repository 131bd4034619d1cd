"""``mlflow.genai.evaluate`` end to end against a Brickyard server: a prediction function traced per row, the
built-in judges and a custom ``@scorer`` on each row, the traces linked to the evaluation's run with their
assessments, aggregate metrics on the run, and two runs compared through ``mlflow.search_runs``."""

from __future__ import annotations

from typing import Any

import pytest

from brickyard.workspace import Workspace
from tests.evaluation.conftest import RuleJudge

pytest.importorskip("databricks.agents", reason="needs databricks-agents (the dev group)")

DATA = [
    {"inputs": {"question": "What is the capital of France?"}, "expectations": {"expected_facts": ["Paris"]}},
    {"inputs": {"question": "Which city is the capital of France, again?"}, "expectations": {"expected_facts": ["Paris"]}},
    {"inputs": {"question": "Name the French capital."}, "expectations": {"expected_response": "Paris"}},
    {"inputs": {"question": "Where does the French president work?"}, "expectations": {"expected_facts": ["Paris"]}},
]


def test_evaluate_links_traces_scores_rows_and_compares_runs(judged: tuple[Workspace, RuleJudge]) -> None:
    import mlflow
    from mlflow.genai.scorers import Correctness, RelevanceToQuery, scorer

    mlflow.set_experiment("/Users/eval@example.com/capitals")

    @scorer
    def concise(outputs: Any) -> bool:
        return len(str(outputs)) < 40

    def baseline(question: str) -> str:
        return "Paris." if "capital of France" in question else "Lyon, I think, or maybe somewhere else entirely."

    def improved(question: str) -> str:
        return "Paris."

    runs = {}
    for name, predict in (("baseline", baseline), ("improved", improved)):
        with mlflow.start_run(run_name=name) as run:
            result = mlflow.genai.evaluate(data=DATA, predict_fn=predict,
                                           scorers=[Correctness(), RelevanceToQuery(), concise])
        runs[name] = run.info.run_id
        assert result.run_id == run.info.run_id
        traces = mlflow.search_traces(run_id=run.info.run_id, return_type="list")
        assert len(traces) == len(DATA)  # every row's trace is linked to the run
        for trace in traces:
            names = {a.name for a in trace.info.assessments}
            assert {"correctness", "relevance_to_query", "concise"} <= names, names
            judged_by = [a for a in trace.info.assessments if a.name == "correctness"]
            assert judged_by[0].rationale.startswith("rule says")
    found = mlflow.search_runs(search_all_experiments=True, filter_string="attributes.run_name = 'improved'")
    assert list(found["run_id"]) == [runs["improved"]]
    metrics = {name: mlflow.get_run(run_id).data.metrics for name, run_id in runs.items()}
    assert metrics["baseline"]["correctness/mean"] == 0.5 and metrics["improved"]["correctness/mean"] == 1.0
    assert metrics["baseline"]["concise/mean"] == 0.5 and metrics["improved"]["concise/mean"] == 1.0


def test_evaluate_with_every_builtin_judge_on_a_judge_model(judged: tuple[Workspace, RuleJudge]) -> None:
    """Every built-in judge of mlflow.genai.scorers, asked of the (deterministic) judge model: a verdict with the
    model's rationale on every row's trace, for the retrieval judges too."""
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

    mlflow.set_experiment("/Users/eval@example.com/all-judges")

    @mlflow.trace(span_type=SpanType.RETRIEVER)
    def retrieve(question: str) -> list[Document]:
        return [Document(page_content="Paris is the capital of France.", metadata={"doc_uri": "docs/france.md"}),
                Document(page_content="Bread is baked in an oven.", metadata={"doc_uri": "docs/bread.md"})]

    @mlflow.trace
    def predict(question: str) -> str:
        retrieve(question)
        return "Paris."

    data = [{"inputs": {"question": "What is the capital of France?"},
             "expectations": {"expected_facts": ["Paris"], "guidelines": ["Name the city"]}}]
    judges = [Correctness(), RelevanceToQuery(), RetrievalGroundedness(), RetrievalRelevance(), RetrievalSufficiency(),
              Safety(), Guidelines(guidelines=["Answer in English"]), ExpectationsGuidelines()]
    with mlflow.start_run() as run:
        mlflow.genai.evaluate(data=data, predict_fn=predict, scorers=judges)
    (trace,) = mlflow.search_traces(run_id=run.info.run_id, return_type="list")
    got = {a.name: a for a in trace.info.assessments if isinstance(a, Feedback) and "/" not in a.name}
    for name in ("correctness", "relevance_to_query", "retrieval_groundedness", "retrieval_relevance",
                 "retrieval_sufficiency", "safety", "guidelines", "expectations_guidelines"):
        assert name in got and got[name].error is None, (name, got.get(name))
        assert str(got[name].rationale).startswith("rule says"), (name, got[name].rationale)
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics["correctness/mean"] == 1.0 and metrics["safety/mean"] == 1.0
