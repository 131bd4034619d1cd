"""Deterministic scorers for ``mlflow.genai.evaluate``: no judge model, the same verdict every time.

    from brickyard.evaluation.scorers import exact_match, token_f1, latency_seconds, retrieval_scorers
    mlflow.genai.evaluate(data=..., predict_fn=..., scorers=[exact_match, token_f1, latency_seconds,
                                                             *retrieval_scorers(k=5)])

* ``exact_match``: the output equals ``expectations["expected_response"]`` after normalisation (case,
  punctuation, articles and spacing ignored, as in SQuAD's evaluation);
* ``token_f1``: the harmonic mean of token precision and recall against the expected response, normalised the
  same way;
* ``rouge1``, ``rouge2``, ``rougeL``: ROUGE F-measure against the expected response (Google's ``rouge-score``,
  Porter stemming on, case ignored), and ``bleu``: sentence BLEU (``sacrebleu``'s defaults: case-sensitive,
  exponential smoothing, on its 0-100 scale);
* ``latency_seconds``: the traced call's duration; ``total_tokens``: the tokens its model calls used (the
  trace's token usage, which mlflow sums from its LLM spans);
* ``token_cost(prices)``: dollars spent by the trace's model calls: each LLM span's token usage priced by
  the endpoint (the span's model) in a price table (``{"name": {"input_per_1m", "output_per_1m"}}`` or the
  path of one, such as a workspace's ``prices.json``); spans whose model has no price are named in the
  rationale and not counted;
* ``tool_call_correctness``: whether the trace's TOOL spans made ``expectations["expected_tool_calls"]``
  (a list of ``{"name", "arguments"?}``) in that order (other calls may come between; arguments are compared
  only where the expectation gives them);
* ``retrieval_scorers(k)``: precision@k, recall@k, MRR and nDCG@k of the documents the trace's RETRIEVER spans
  returned (their ``doc_uri`` or ``id``) against ``expectations["expected_retrieved_context"]`` (a list of
  ``{"doc_uri": ...}``) or ``expectations["expected_document_ids"]``; with binary relevance, nDCG is
  DCG@k / IDCG@k with gains 1 / log2(rank + 1).

A row that lacks what a scorer needs gets no value from it (``None``), never a made-up one.
This module imports mlflow; ``import brickyard`` does not import it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlflow.entities import Feedback, SpanType
from mlflow.genai.scorers import scorer
from mlflow.tracing.constant import SpanAttributeKey

from ._metrics import bleu_score, expected_ids, f1, normalise, ranking_metrics, rouge, tool_calls_match


def _expected_response(expectations: dict[str, Any] | None) -> str | None:
    value = (expectations or {}).get("expected_response")
    return None if value is None else str(value)


@scorer(name="exact_match")
def exact_match(outputs: Any, expectations: dict[str, Any] | None = None) -> Feedback | None:
    expected = _expected_response(expectations)
    if expected is None:
        return None
    same = normalise(outputs) == normalise(expected)
    return Feedback(value=same, rationale="the normalised output equals the expected response" if same
                    else "the normalised output differs from the expected response")


@scorer(name="token_f1")
def token_f1(outputs: Any, expectations: dict[str, Any] | None = None) -> float | None:
    expected = _expected_response(expectations)
    return None if expected is None else round(f1(outputs, expected), 6)


def _rouge_scorer(metric: str) -> Callable[..., Any]:
    @scorer(name=metric)
    def score(outputs: Any, expectations: dict[str, Any] | None = None) -> float | None:
        expected = _expected_response(expectations)
        return None if expected is None else rouge(outputs, expected)[metric]

    return score  # type: ignore[no-any-return]


rouge1, rouge2, rougeL = (_rouge_scorer(m) for m in ("rouge1", "rouge2", "rougeL"))  # noqa: N816


@scorer(name="bleu")
def bleu(outputs: Any, expectations: dict[str, Any] | None = None) -> float | None:
    expected = _expected_response(expectations)
    return None if expected is None else bleu_score(outputs, expected)


def llm_calls(trace: Any) -> list[tuple[str | None, int, int]]:
    """(model, input tokens, output tokens) of each span of the trace that recorded token usage."""
    out = []
    for span in getattr(getattr(trace, "data", None), "spans", None) or []:
        usage = span.get_attribute(SpanAttributeKey.CHAT_USAGE)
        if not usage:
            continue
        model = span.get_attribute(SpanAttributeKey.MODEL)
        if model is None and isinstance(span.inputs, dict):
            model = span.inputs.get("model")
        out.append((None if model is None else str(model), int(usage.get("input_tokens") or 0),
                    int(usage.get("output_tokens") or 0)))
    return out


def token_cost(prices: Any, *, name: str = "token_cost") -> Callable[..., Any]:
    """A scorer of the dollars a trace's model calls cost, by ``prices`` (a table or its file's path)."""
    from ._prices import load_prices

    table = load_prices(prices)

    @scorer(name=name)
    def cost(trace: Any = None) -> Feedback | None:
        calls = llm_calls(trace)
        if not calls:
            return None
        total, unpriced = 0.0, []
        for model, tokens_in, tokens_out in calls:
            price = table.get(model.split("/")[-1]) if model else None
            if price is None:
                unpriced.append(model or "(no model recorded)")
            else:
                total += price.cost(tokens_in, tokens_out)
        if len(unpriced) == len(calls):
            return Feedback(value=None, error=f"no price for {sorted(set(unpriced))}: add them to the price table")
        note = f"; not counted (no price): {sorted(set(unpriced))}" if unpriced else ""
        return Feedback(value=round(total, 8), rationale=f"{len(calls) - len(unpriced)} priced model call(s){note}")

    return cost  # type: ignore[no-any-return]


@scorer(name="latency_seconds")
def latency_seconds(trace: Any = None) -> float | None:
    duration = getattr(getattr(trace, "info", None), "execution_duration", None)
    return None if duration is None else duration / 1000.0


@scorer(name="total_tokens")
def total_tokens(trace: Any = None) -> int | None:
    usage = getattr(getattr(trace, "info", None), "token_usage", None)
    return None if not usage or usage.get("total_tokens") is None else int(usage["total_tokens"])


def tool_calls(trace: Any) -> list[tuple[str, Any]]:
    """(name, inputs) of the trace's TOOL spans, in the order they started."""
    spans = [s for s in getattr(getattr(trace, "data", None), "spans", None) or [] if s.span_type == SpanType.TOOL]
    return [(s.name, s.inputs) for s in sorted(spans, key=lambda s: s.start_time_ns)]


@scorer(name="tool_call_correctness")
def tool_call_correctness(trace: Any = None, expectations: dict[str, Any] | None = None) -> Feedback | None:
    expected = (expectations or {}).get("expected_tool_calls")
    if expected is None or trace is None:
        return None
    ok, why = tool_calls_match(tool_calls(trace), expected)
    return Feedback(value=ok, rationale=why)


def retrieved_ids(trace: Any) -> list[str]:
    """The documents the trace's RETRIEVER spans returned, in order, first occurrence kept."""
    out: list[str] = []
    for span in getattr(getattr(trace, "data", None), "spans", None) or []:
        if span.span_type != SpanType.RETRIEVER:
            continue
        for doc in span.outputs or []:
            if isinstance(doc, dict):
                key = doc.get("doc_uri") or doc.get("id") or (doc.get("metadata") or {}).get("doc_uri")
            else:
                key = getattr(doc, "doc_uri", None) or getattr(doc, "id", None) or \
                    (getattr(doc, "metadata", None) or {}).get("doc_uri")
            if key is not None and str(key) not in out:
                out.append(str(key))
    return out


def retrieval_scorers(k: int = 5) -> list[Callable[..., Any]]:
    """precision@k, recall@k, MRR and nDCG@k scorers (named ``retrieval_precision_at_5`` and so on)."""
    if not isinstance(k, int) or k < 1:
        raise ValueError("k must be a positive whole number")

    def make(metric: str, name: str) -> Callable[..., Any]:
        @scorer(name=name)
        def score(trace: Any = None, expectations: dict[str, Any] | None = None) -> float | None:
            relevant = expected_ids(expectations)
            if relevant is None or trace is None:
                return None
            return round(ranking_metrics(retrieved_ids(trace), relevant, k)[metric], 6)

        return score  # type: ignore[no-any-return]

    return [make("precision", f"retrieval_precision_at_{k}"), make("recall", f"retrieval_recall_at_{k}"),
            make("mrr", "retrieval_mrr"), make("ndcg", f"retrieval_ndcg_at_{k}")]
