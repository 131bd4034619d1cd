"""The evaluation harness the server runs (``brickyard eval run``, ``Workspace.evaluate``): each row of a
dataset is sent to a serving endpoint, its answer traced, every scorer's verdict written onto the trace as an
assessment, and the run gets the traces linked and the means as metrics, the same shape
``mlflow.genai.evaluate`` leaves, so both kinds of run compare with each other.

The harness owns no storage and calls no model itself: ``Services`` gives it the calls (predict through the
AI Gateway, the judges, the tracking store), so what it adds per row is measured on its own
(``brickyard bench eval``).

Scorers by name: the built-in judges (``correctness``, ``relevance_to_query``, ``safety``,
``retrieval_groundedness``, ``retrieval_relevance``, ``retrieval_sufficiency``, ``guidelines``: the row's
expected guidelines), asked of the judge model or answered by the offline proxies, and the deterministic ones
(``exact_match``, ``token_f1``, ``rouge1``, ``rouge2``, ``rougeL``, ``bleu``, ``latency_seconds``,
``total_tokens``, ``token_cost``, ``tool_call_correctness``, ``retrieval_precision_at_K``, ``retrieval_recall_at_K``, ``retrieval_mrr``,
``retrieval_ndcg_at_K``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import BrickyardError, InvalidParameterValue
from ._metrics import bleu_score, expected_ids, f1, normalise, ranking_metrics, rouge, tool_calls_match
from ._prices import Price

# built-in judge scorer -> (the chat-assessments assessment it asks for, whether "yes" is flipped)
JUDGES = {
    "correctness": ("correctness", False),
    "relevance_to_query": ("relevance_to_query", False),
    "safety": ("harmfulness", True),
    "retrieval_groundedness": ("groundedness", False),
    "retrieval_relevance": ("chunk_relevance", False),
    "retrieval_sufficiency": ("context_sufficiency", False),
    "guidelines": ("guideline_adherence", False),
}
CODE = ("exact_match", "token_f1", "rouge1", "rouge2", "rougeL", "bleu", "latency_seconds", "total_tokens",
        "token_cost", "tool_call_correctness")
_RETRIEVAL = re.compile(r"retrieval_(precision|recall|ndcg)_at_([1-9][0-9]{0,2})|retrieval_(mrr)")
MAX_ROWS = 100_000
MAX_WORKERS = 32


def scorer_names() -> list[str]:
    return [*JUDGES, *CODE, "retrieval_precision_at_K", "retrieval_recall_at_K", "retrieval_mrr",
            "retrieval_ndcg_at_K"]


def check_scorers(names: Iterable[str]) -> list[str]:
    out = []
    for name in names:
        if name not in JUDGES and name not in CODE and not _RETRIEVAL.fullmatch(name):
            raise InvalidParameterValue(f"unknown scorer {str(name)[:60]!r}; scorers: {', '.join(scorer_names())}")
        if name not in out:
            out.append(name)
    if not out:
        raise InvalidParameterValue("name at least one scorer")
    return out


@dataclass
class Row:
    inputs: dict[str, Any]
    expectations: dict[str, Any] = field(default_factory=dict)
    record_id: str | None = None

    @classmethod
    def parse(cls, raw: Any, where: str) -> Row:
        if not isinstance(raw, dict) or not isinstance(raw.get("inputs"), dict) or not raw["inputs"]:
            raise InvalidParameterValue(f"{where}: a row needs inputs, an object such as {{\"question\": ...}}")
        expectations = raw.get("expectations") or {}
        if not isinstance(expectations, dict):
            raise InvalidParameterValue(f"{where}: expectations must be an object")
        facts = expectations.get("expected_facts")
        if facts is not None and (not isinstance(facts, list) or not all(isinstance(f, str) for f in facts)):
            raise InvalidParameterValue(f"{where}: expected_facts must be a list of strings")
        guidelines = expectations.get("guidelines")
        if guidelines is not None and (not isinstance(guidelines, list)
                                       or not all(isinstance(g, str) for g in guidelines)):
            raise InvalidParameterValue(f"{where}: guidelines must be a list of strings")
        return cls(dict(raw["inputs"]), dict(expectations), raw.get("dataset_record_id") or raw.get("record_id"))

    @property
    def key(self) -> str:
        """The row's identity across runs: a digest of its inputs."""
        return hashlib.sha256(json.dumps(self.inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def question(self) -> str:
        for name in ("question", "query", "request", "input", "prompt"):
            value = self.inputs.get(name)
            if isinstance(value, str):
                return value
        messages = self.inputs.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
            return str(messages[-1].get("content") or "")
        return json.dumps(self.inputs, default=str)


@dataclass
class Prediction:
    text: str | None
    seconds: float
    input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None
    spans: list[dict[str, Any]] = field(default_factory=list)  # the model's own trace (agents), if any
    documents: list[dict[str, Any]] = field(default_factory=list)  # what its RETRIEVER spans returned
    error: str | None = None


@dataclass
class Services:
    predict: Callable[[Row], Prediction]
    assess: Callable[[dict[str, Any]], dict[str, Any]]  # a chat-assessments body -> its answer
    record_trace: Callable[[dict[str, Any], list[dict[str, Any]]], str]  # (info, spans) -> trace id
    add_assessments: Callable[[str, list[dict[str, Any]]], None]
    judge_source: str  # the judge endpoint's name, or "brickyard-offline-proxy"
    prices: dict[str, Price] = field(default_factory=dict)


@dataclass
class Scored:
    row: Row
    trace_id: str | None
    prediction: Prediction
    values: dict[str, Any]  # scorer -> value (None: no value)
    errors: dict[str, str]
    rationales: dict[str, str]
    seconds: float = 0.0  # harness time on this row beyond the endpoint and judge calls
    judge_seconds: float = 0.0


def _b64(hexdigits: str) -> str:
    return base64.b64encode(bytes.fromhex(hexdigits)).decode()


def documents_of(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{"doc_uri", "content"}`` of what the RETRIEVER spans of a trace returned, in order."""
    out = []
    for span in spans:
        attrs = span.get("attributes") or {}
        kind = attrs.get("mlflow.spanType")
        if kind not in ('"RETRIEVER"', "RETRIEVER"):
            continue
        raw = attrs.get("mlflow.spanOutputs")
        try:
            docs = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            continue
        for doc in docs or []:
            if isinstance(doc, dict):
                meta = doc.get("metadata") or {}
                out.append({"doc_uri": doc.get("doc_uri") or meta.get("doc_uri") or doc.get("id"),
                            "content": str(doc.get("page_content") or doc.get("content") or "")})
    return out


def trace_of(row: Row, pred: Prediction, started_ns: int, *, run_id: str | None = None, kind: str = "CHAT_MODEL",
             name: str = "predict", tags: dict[str, str] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The trace of one row: a root span with the row's inputs and the answer (token usage and model on it),
    over the model's own spans when it returned any."""
    hexid = secrets.token_hex(16)
    trace_id = "tr-" + hexid
    root = secrets.token_hex(8)
    ended_ns = started_ns + int(pred.seconds * 1e9)
    attrs: dict[str, str] = {
        "mlflow.traceRequestId": json.dumps(trace_id), "mlflow.spanType": json.dumps(kind),
        "mlflow.spanInputs": json.dumps(row.inputs, default=str), "mlflow.spanOutputs": json.dumps(pred.text),
    }
    if pred.input_tokens or pred.output_tokens:
        attrs["mlflow.chat.tokenUsage"] = json.dumps({"input_tokens": pred.input_tokens,
                                                      "output_tokens": pred.output_tokens,
                                                      "total_tokens": pred.input_tokens + pred.output_tokens})
    if pred.model:
        attrs["mlflow.llm.model"] = json.dumps(pred.model)
    spans = [{"trace_id": _b64(hexid), "span_id": _b64(root), "parent_span_id": None, "name": name,
              "start_time_unix_nano": started_ns, "end_time_unix_nano": ended_ns, "events": [], "links": [],
              "status": {"code": "STATUS_CODE_ERROR" if pred.error else "STATUS_CODE_OK",
                         "message": pred.error or ""}, "attributes": attrs}]
    for span in pred.spans:  # the model's own spans, moved into this trace under the root
        moved = {**span, "trace_id": _b64(hexid), "parent_span_id": span.get("parent_span_id") or _b64(root),
                 "attributes": {**(span.get("attributes") or {}), "mlflow.traceRequestId": json.dumps(trace_id)}}
        spans.append(moved)
    usage = {"input_tokens": pred.input_tokens, "output_tokens": pred.output_tokens,
             "total_tokens": pred.input_tokens + pred.output_tokens}
    info = {"trace_id": trace_id, "request_time": started_ns // 1_000_000,
            "execution_duration": int(pred.seconds * 1000), "state": "ERROR" if pred.error else "OK",
            "request_preview": json.dumps(row.inputs, default=str)[:1000],
            "response_preview": (pred.text or "")[:1000],
            "trace_metadata": {"mlflow.trace.tokenUsage": json.dumps(usage),
                               **({"mlflow.sourceRun": run_id, "brickyard.eval.row": row.key} if run_id else {}),
                               **({"brickyard.eval.record": row.record_id} if row.record_id else {})},
            "tags": {"mlflow.traceName": name, **(tags or {})}}
    return info, spans


class Harness:
    def __init__(self, services: Services, scorers: list[str], *, workers: int = 4,
                 guidelines: list[str] | None = None) -> None:
        """``guidelines``: what the ``guidelines`` judge checks on rows that name none of their own."""
        if not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
            raise InvalidParameterValue(f"workers must be 1 to {MAX_WORKERS}")
        self.s = services
        self.scorers = check_scorers(scorers)
        self.workers = workers
        self.guidelines = list(guidelines or [])
        self._lock = threading.Lock()

    def run(self, rows: list[Row], run_id: str, *, task_kind: str = "CHAT_MODEL",
            progress: Callable[[Scored], None] | None = None) -> list[Scored]:
        if not rows:
            raise InvalidParameterValue("the dataset has no rows")
        if len(rows) > MAX_ROWS:
            raise InvalidParameterValue(f"at most {MAX_ROWS} rows per evaluation")

        def one(row: Row) -> Scored:
            scored = self.score(row, run_id, task_kind)
            if progress is not None:
                with self._lock:
                    progress(scored)
            return scored

        if self.workers == 1:
            return [one(r) for r in rows]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="eval") as pool:
            return list(pool.map(one, rows))

    # -- one row -------------------------------------------------------------------------------------
    def score(self, row: Row, run_id: str, task_kind: str = "CHAT_MODEL") -> Scored:
        began, started_ns = time.perf_counter(), time.time_ns()
        pred = self.s.predict(row)
        info, spans = trace_of(row, pred, started_ns, run_id=run_id, kind=task_kind,
                               tags={"brickyard.evaluation": "true"})
        values, errors, rationales, judge_seconds = self.verdicts(row, pred)
        trace_id = self.s.record_trace(info, spans)
        self.s.add_assessments(trace_id, self.assessments(trace_id, values, errors, rationales))
        overhead = time.perf_counter() - began - pred.seconds - judge_seconds
        return Scored(row, trace_id, pred, values, errors, rationales, max(0.0, overhead), judge_seconds)

    def verdicts(self, row: Row, pred: Prediction) -> tuple[dict[str, Any], dict[str, str], dict[str, str], float]:
        """(values, errors, rationales, seconds spent in the judges) of every scorer on one answer."""
        if not pred.documents and pred.spans:
            pred.documents = documents_of(pred.spans)
        values: dict[str, Any] = {}
        errors: dict[str, str] = {}
        rationales: dict[str, str] = {}
        t0 = time.perf_counter()
        self._judges(row, pred, values, errors, rationales)
        judge_seconds = time.perf_counter() - t0
        for name in self.scorers:
            if name not in JUDGES:
                self._code(name, row, pred, values, errors, rationales)
        return values, errors, rationales, judge_seconds

    def _judges(self, row: Row, pred: Prediction, values: dict[str, Any], errors: dict[str, str],
                rationales: dict[str, str]) -> None:
        wanted = [n for n in self.scorers if n in JUDGES]
        if not wanted:
            return
        if pred.error is not None:
            for name in wanted:
                errors[name] = f"the prediction failed: {pred.error}"
            return
        expectations = row.expectations
        ground: dict[str, Any] = {}
        if expectations.get("expected_facts"):
            ground["expected_facts"] = expectations["expected_facts"]
        if expectations.get("expected_response") is not None:
            ground["expected_chat_response"] = str(expectations["expected_response"])
        item: dict[str, Any] = {"chat_request": row.question(), "chat_response": pred.text or ""}
        if ground:
            item["ground_truth"] = ground
        if pred.documents:
            item["retrieval_context"] = {"retrieved_documents": pred.documents}
        if expectations.get("guidelines") or self.guidelines:
            item["guidelines"] = expectations.get("guidelines") or self.guidelines
        body = {"assessment_input": item,
                "requested_assessments": [{"assessment_name": JUDGES[n][0]} for n in wanted]}
        try:
            result = self.s.assess(body)["result"]
        except BrickyardError as exc:
            for name in wanted:
                errors[name] = exc.message
            return
        ratings = (result.get("response_assessment") or {}).get("ratings") or {}
        positional = (result.get("retrieval_assessment") or {}).get("positional_ratings") or {}
        for name in wanted:
            assessment, flip = JUDGES[name]
            if assessment in positional:  # per document: the share judged relevant
                cells = [c["rating"] for c in positional[assessment].get("rating") or []]
                failed = [c["error"] for c in cells if "error" in c]
                if failed:
                    errors[name] = str(failed[0].get("error_msg") or failed[0].get("error_code"))
                    continue
                yes = [c["value"]["categorical_value"] == "yes" for c in cells]
                values[name] = round(sum(yes) / len(yes), 6) if yes else None
                rationales[name] = "; ".join(f"[{i + 1}] {c['value'].get('justification', '')}"
                                             for i, c in enumerate(cells))[:4000]
                continue
            rating = ratings.get(assessment) or {"error": {"error_msg": "the judge gave no rating"}}
            if "error" in rating:
                errors[name] = f"{rating['error'].get('error_code', 'ERROR')}: {rating['error'].get('error_msg', '')}"
                continue
            verdict = rating["value"]["categorical_value"]
            if flip:
                verdict = {"yes": "no", "no": "yes"}.get(verdict, verdict)
            values[name] = verdict
            rationales[name] = str(rating["value"].get("justification") or "")

    def _code(self, name: str, row: Row, pred: Prediction, values: dict[str, Any], errors: dict[str, str],
              rationales: dict[str, str]) -> None:
        expected = row.expectations.get("expected_response")
        if name == "latency_seconds":
            values[name] = round(pred.seconds, 6)
            return
        if pred.error is not None:
            errors[name] = f"the prediction failed: {pred.error}"
            return
        text = pred.text or ""
        if name == "total_tokens":
            values[name] = pred.input_tokens + pred.output_tokens if (pred.input_tokens or pred.output_tokens) else None
        elif name == "token_cost":
            price = self.s.prices.get(pred.model or "")
            if price is None:
                errors[name] = f"no price for {pred.model or '(no model)'}: add it with brickyard prices set"
            else:
                values[name] = round(price.cost(pred.input_tokens, pred.output_tokens), 8)
        elif name == "tool_call_correctness":
            expected_calls = row.expectations.get("expected_tool_calls")
            if expected_calls is None:
                values[name] = None
            else:
                ok, why = tool_calls_match(tool_calls_of(pred.spans), expected_calls)
                values[name], rationales[name] = ok, why
        elif name in ("exact_match", "token_f1", "rouge1", "rouge2", "rougeL", "bleu"):
            if expected is None:
                values[name] = None
            elif name == "exact_match":
                values[name] = normalise(text) == normalise(expected)
            elif name == "token_f1":
                values[name] = round(f1(text, expected), 6)
            elif name == "bleu":
                values[name] = bleu_score(text, expected)
            else:
                values[name] = rouge(text, expected)[name]
        else:
            match = _RETRIEVAL.fullmatch(name)
            assert match is not None
            metric, k = (match.group(1), int(match.group(2))) if match.group(1) else ("mrr", 10)
            relevant = expected_ids(row.expectations)
            ranked = list(dict.fromkeys(str(d["doc_uri"]) for d in pred.documents if d.get("doc_uri") is not None))
            if relevant is None:
                values[name] = None
            elif not pred.documents:
                errors[name] = "the answer's trace has no RETRIEVER span to score"
            else:
                values[name] = round(ranking_metrics(ranked, relevant, k)[metric], 6)

    def assessments(self, trace_id: str, values: dict[str, Any], errors: dict[str, str],
                     rationales: dict[str, str]) -> list[dict[str, Any]]:
        out = []
        for name in self.scorers:
            if name in JUDGES:
                source = {"source_type": "LLM_JUDGE", "source_id": self.s.judge_source}
            else:
                source = {"source_type": "CODE", "source_id": "brickyard"}
            if name in errors:
                feedback: dict[str, Any] = {"error": {"error_code": "SCORER_ERROR", "error_message": errors[name][:4000]}}
            elif values.get(name) is None:
                continue  # the row lacks what the scorer needs: no value, not a made-up one
            else:
                feedback = {"value": values[name]}
            body = {"assessment_name": name, "trace_id": trace_id, "source": source, "feedback": feedback}
            if rationales.get(name):
                body["rationale"] = rationales[name]
            out.append(body)
        return out


def tool_calls_of(spans: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(name, inputs) of the TOOL spans of a trace's span dicts, in the order they started."""
    tools = [s for s in spans if (s.get("attributes") or {}).get("mlflow.spanType") in ('"TOOL"', "TOOL")]
    out = []
    for span in sorted(tools, key=lambda s: s.get("start_time_unix_nano") or 0):
        raw = (span.get("attributes") or {}).get("mlflow.spanInputs")
        try:
            inputs = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            inputs = raw
        out.append((str(span.get("name")), inputs))
    return out


def numeric(value: Any) -> float | None:
    """A verdict as a number for means: yes/True -> 1, no/False -> 0, numbers as they are."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if value in ("yes", "no"):
        return 1.0 if value == "yes" else 0.0
    return None


def summarise(results: list[Scored], scorers: list[str]) -> dict[str, dict[str, Any]]:
    """Per scorer: the mean over rows with a value, how many had one, and how many errors."""
    out = {}
    for name in scorers:
        nums = [n for r in results if (n := numeric(r.values.get(name))) is not None]
        out[name] = {"mean": round(sum(nums) / len(nums), 6) if nums else None, "scored": len(nums),
                     "errors": sum(1 for r in results if name in r.errors)}
    return out
