"""Deterministic scorers: the formulas on hand-worked cases, and the scorers inside ``mlflow.genai.evaluate``
(values per row on the traces, means on the run), reading retrieved documents from the trace."""

from __future__ import annotations

import math
from typing import Any

import pytest

from brickyard.workspace import Workspace
from tests.evaluation.conftest import RuleJudge

pytest.importorskip("mlflow.genai", reason="needs mlflow 3")

from brickyard.evaluation.scorers import (  # noqa: E402
    exact_match,
    f1,
    latency_seconds,
    normalise,
    ranking_metrics,
    retrieval_scorers,
    token_f1,
)


def test_formulas() -> None:
    assert normalise("The  Eiffel Tower, in PARIS!") == "eiffel tower in paris"
    assert f1("Paris", "paris.") == 1.0 and f1("Lyon", "Paris") == 0.0
    assert f1("the capital is Paris", "Paris is the capital of France") == pytest.approx(2 * (3 / 3) * (3 / 5) / (1 + 3 / 5))
    m = ranking_metrics(["a", "x", "b", "y"], {"a", "b", "c"}, k=4)
    assert m["precision"] == 0.5 and m["recall"] == pytest.approx(2 / 3) and m["mrr"] == 1.0
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / ideal)
    assert ranking_metrics(["x", "a"], {"a"}, k=1) == {"precision": 0.0, "recall": 0.0, "mrr": 0.5, "ndcg": 0.0}
    with pytest.raises(ValueError):
        retrieval_scorers(k=0)


def test_scorers_in_an_evaluation(judged: tuple[Workspace, RuleJudge]) -> None:
    import mlflow
    from mlflow.entities import SpanType

    mlflow.set_experiment("/Users/eval@example.com/deterministic")

    @mlflow.trace(span_type=SpanType.RETRIEVER)
    def retrieve(question: str) -> list[dict[str, Any]]:
        docs = ["docs/paris.md", "docs/lyon.md"] if "France" in question else ["docs/lyon.md", "docs/rome.md"]
        return [{"doc_uri": d, "page_content": f"about {d}"} for d in docs]

    def predict(question: str) -> str:
        retrieve(question)
        return "Paris." if "France" in question else "Milan"

    data = [
        {"inputs": {"question": "Capital of France?"},
         "expectations": {"expected_response": "paris", "expected_retrieved_context": [{"doc_uri": "docs/paris.md"}]}},
        {"inputs": {"question": "Capital of Italy?"},
         "expectations": {"expected_response": "Rome", "expected_document_ids": ["docs/rome.md"]}},
    ]
    with mlflow.start_run() as run:
        mlflow.genai.evaluate(data=data, predict_fn=predict,
                              scorers=[exact_match, token_f1, latency_seconds, *retrieval_scorers(k=2)])
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics["exact_match/mean"] == 0.5 and metrics["token_f1/mean"] == 0.5
    assert metrics["retrieval_precision_at_2/mean"] == 0.5  # 1/2 on each row
    assert metrics["retrieval_recall_at_2/mean"] == 1.0
    assert metrics["retrieval_mrr/mean"] == 0.75  # first on row 1, second on row 2
    assert metrics["retrieval_ndcg_at_2/mean"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert metrics["latency_seconds/mean"] >= 0
    traces = mlflow.search_traces(run_id=run.info.run_id, return_type="list")
    assert len(traces) == 2 and all("retrieval_mrr" in {a.name for a in t.info.assessments} for t in traces)


def test_tool_calls_and_tokens_from_the_trace(judged: tuple[Workspace, RuleJudge]) -> None:
    import mlflow
    from mlflow.entities import SpanType

    from brickyard.evaluation.scorers import tool_call_correctness, total_tokens

    mlflow.set_experiment("/Users/eval@example.com/tools")

    @mlflow.trace(span_type=SpanType.TOOL, name="lookup")
    def lookup(city: str) -> str:
        return f"{city} facts"

    @mlflow.trace(span_type=SpanType.TOOL, name="weather")
    def weather(city: str) -> str:
        return "sunny"

    @mlflow.trace(span_type=SpanType.CHAT_MODEL, name="llm")
    def llm(prompt: str) -> str:
        span = mlflow.get_current_active_span()
        if span is not None:  # evaluate first tries the function once without tracing
            span.set_attribute("mlflow.chat.tokenUsage", {"input_tokens": 12, "output_tokens": 5, "total_tokens": 17})
        return "done"

    @mlflow.trace(span_type=SpanType.AGENT, name="agent")  # one trace per row, the tools' spans inside it
    def predict(question: str) -> str:
        lookup(city="Paris")
        if "weather" in question:
            weather(city="Paris")
        return llm(question)

    data = [
        {"inputs": {"question": "weather in Paris?"},
         "expectations": {"expected_tool_calls": [{"name": "lookup", "arguments": {"city": "Paris"}},
                                                  {"name": "weather"}]}},
        {"inputs": {"question": "facts about Paris?"},
         "expectations": {"expected_tool_calls": [{"name": "weather"}]}},
    ]
    with mlflow.start_run() as run:
        mlflow.genai.evaluate(data=data, predict_fn=predict, scorers=[tool_call_correctness, total_tokens])
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics["tool_call_correctness/mean"] == 0.5
    assert metrics["total_tokens/mean"] == 17
    traces = mlflow.search_traces(run_id=run.info.run_id, return_type="list")
    wrong = [a for t in traces for a in t.info.assessments if a.name == "tool_call_correctness"
             and "not made" in (a.rationale or "")]
    assert len(wrong) == 1 and "weather" in wrong[0].rationale
