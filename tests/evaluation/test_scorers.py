"""Deterministic scorers: the formulas on hand-worked cases, and the scorers inside ``mlflow.genai.evaluate``
(values per row on the traces, means on the run), reading retrieved documents from the trace."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from brickyard.workspace import Workspace
from tests.evaluation.conftest import RuleJudge

pytest.importorskip("mlflow.genai", reason="needs mlflow 3")

from brickyard.evaluation.scorers import (  # noqa: E402
    bleu,
    bleu_score,
    exact_match,
    f1,
    latency_seconds,
    normalise,
    ranking_metrics,
    retrieval_scorers,
    rouge,
    rouge1,
    rougeL,
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
    # ROUGE by hand: 5 of 6 unigrams and 3 of 5 bigrams shared; the longest common subsequence is 5 words
    assert rouge("the cat sat on the mat", "the cat is on the mat") == {
        "rouge1": pytest.approx(5 / 6, abs=1e-6), "rouge2": pytest.approx(0.6), "rougeL": pytest.approx(5 / 6, abs=1e-6)}
    assert rouge("cats sitting", "cat sits")["rouge1"] == 1.0  # Porter stemming
    assert bleu_score("the cat is on the mat", "the cat is on the mat") == 100.0
    assert 0 < bleu_score("the cat sat on the mat", "the cat is on the mat") < 100
    assert bleu_score("completely different words", "the cat is on the mat") == 0.0


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
                              scorers=[exact_match, token_f1, rouge1, rougeL, bleu, latency_seconds,
                                       *retrieval_scorers(k=2)])
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics["rouge1/mean"] == 0.5 and metrics["rougeL/mean"] == 0.5  # "Paris." = "paris"; "Milan" != "Rome"
    assert metrics["bleu/mean"] == 0.0  # BLEU is case-sensitive (sacrebleu's default): "Paris." vs "paris"
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

    from brickyard.evaluation.scorers import token_cost, tool_call_correctness, total_tokens

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
            span.set_attribute("mlflow.llm.model", "endpoints/small-chat")
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
        mlflow.genai.evaluate(data=data, predict_fn=predict, scorers=[
            tool_call_correctness, total_tokens,
            token_cost({"small-chat": {"input_per_1m": 1.0, "output_per_1m": 2.0}}),
            token_cost({"other": {"input_per_1m": 1.0}}, name="unpriced_cost")])
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics["token_cost/mean"] == pytest.approx((12 * 1.0 + 5 * 2.0) / 1e6)
    assert "unpriced_cost/mean" not in metrics  # no price for the model: an error, not a zero
    assert metrics["tool_call_correctness/mean"] == 0.5
    assert metrics["total_tokens/mean"] == 17
    traces = mlflow.search_traces(run_id=run.info.run_id, return_type="list")
    unpriced = [a for t in traces for a in t.info.assessments if a.name == "unpriced_cost"]
    assert unpriced and all("small-chat" in str(a.error) for a in unpriced)
    wrong = [a for t in traces for a in t.info.assessments if a.name == "tool_call_correctness"
             and "not made" in (a.rationale or "")]
    assert len(wrong) == 1 and "weather" in wrong[0].rationale


def test_price_table(tmp_path: Path) -> None:
    """The workspace's price table: validated, edited by the CLI, written atomically."""
    import subprocess
    import sys

    from brickyard.core.errors import InvalidParameterValue
    from brickyard.evaluation import Price, PriceTable, load_prices

    table = PriceTable(tmp_path / "prices.json")
    assert table.load() == {}
    table.set("chat", 0.5, 1.5)
    assert load_prices(tmp_path / "prices.json") == {"chat": Price(0.5, 1.5)}
    assert Price(0.5, 1.5).cost(1_000_000, 2_000_000) == pytest.approx(3.5)
    for bad in ({"chat": {"input_per_1m": -1}}, {"chat": {"input_per_1m": "free"}}, {"chat": {"tokens": 1}},
                ["chat"], {"chat": {"input_per_1m": float("nan")}}):
        with pytest.raises(InvalidParameterValue):
            load_prices(bad)  # type: ignore[arg-type]
    assert table.delete("chat") and not table.delete("chat")
    assert list(tmp_path.iterdir()) == [tmp_path / "prices.json"]  # no temporary file left behind
    (tmp_path / "prices.json").write_text("{broken")
    with pytest.raises(InvalidParameterValue, match="not valid JSON"):
        table.load()

    home = tmp_path / "home"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "brickyard.cli", *args, "--home", str(home)],
                              capture_output=True, text=True, timeout=120)

    done = cli("prices", "set", "databricks-claude-sonnet-4", "--input", "3", "--output", "15")
    assert done.returncode == 0, done.stderr
    listed = cli("prices", "list", "--json")
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [{"endpoint": "databricks-claude-sonnet-4", "input_per_1m": 3.0,
                                          "output_per_1m": 15.0}]
    bad = cli("prices", "set", "x", "--input", "-1", "--output", "0")
    assert bad.returncode != 0 and "must be a number >= 0" in bad.stderr
    assert cli("prices", "delete", "nope").returncode == 1
