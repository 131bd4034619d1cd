"""``brickyard bench eval``: how fast evaluation runs, apart from the models it calls.

- deterministic scorers: rows per second of each through the harness (a canned answer, no storage);
- offline proxies: assessments per second of each (MiniLM on this machine), on generated texts;
- judge calls per second through ``chat-assessments``' logic and the AI Gateway to a local test endpoint that
  answers a verdict at once (what is measured is Brickyard's side of a judge call, its trace included);
- the harness's own time per row in a real ``evaluations.run`` (trace and assessments written to the
  metastore, the run's metrics and links), beyond the endpoint and judge calls: target under 5 ms.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_MS = 5.0
_WORDS = ("cell protein gene receptor insulin tumour kidney liver signal pathway expression mouse patient trial "
          "dose risk increase decrease level blood brain immune response").split()


def _sentence(rng: Any, n: int = 12) -> str:
    return " ".join(rng.choice(_WORDS, n)).capitalize() + "."


class _Verdicts:
    """A test judge model: answers every prompt with a verdict at once."""

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        from ..models._fakes import completion

        return completion("verdicts", json.dumps({"rationale": "test verdict", "result": "yes"}), prompt_tokens=50)


def run_eval_bench(*, rows: int = 200, seconds: float = 2.0) -> dict[str, Any]:
    import numpy as np

    from ..core.settings import Settings
    from ..evaluation._harness import Harness, Prediction, Row, Services
    from ..workspace import Workspace

    rng = np.random.default_rng(0)
    data = [Row({"question": _sentence(rng, 8)}, {"expected_response": _sentence(rng),
                                                  "expected_document_ids": ["d1", "d3"]}) for _ in range(rows)]
    answer = Prediction(_sentence(rng, 30), 0.0, 40, 30, model="bot",
                        documents=[{"doc_uri": f"d{i}", "content": _sentence(rng)} for i in range(5)])
    out: dict[str, Any] = {"bench": "eval", "rows": rows}

    def services(assess: Any = None) -> Services:
        return Services(predict=lambda row: answer, assess=assess or (lambda body: {"result": {}}),
                        record_trace=lambda info, spans: info["trace_id"], add_assessments=lambda t, a: None,
                        judge_source="bench")

    code = {}
    for scorer in ("exact_match", "token_f1", "rougeL", "bleu", "latency_seconds", "retrieval_ndcg_at_5"):
        harness = Harness(services(), [scorer], workers=1)
        harness.run(data[:1], "warm-up")  # imports and caches outside the timing
        t0 = time.perf_counter()
        harness.run(data, "bench-run")
        code[scorer] = round(rows / (time.perf_counter() - t0))
    out["deterministic_rows_per_second"] = code

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        ws = Workspace(Settings(home=home, enable_fake_models=1, judge_endpoint="judge", access_log="off"),
                       background=False)
        try:
            ws.serving._factories["system.ai.fake-obedient"] = _Verdicts
            p = ws.ensure_user("bench@example.com", admin=True)
            for name, entity in (("bot", "system.ai.fake-chat"), ("judge", "system.ai.fake-obedient")):
                ws.serving.create(p, {"name": name, "config": {"served_entities": [{"entity_name": entity}]}})
                while ws.serving.get(p, name)["state"]["config_update"] != "NOT_UPDATING":
                    time.sleep(0.01)
            # proxies: assessments per second
            proxies = ws.judge_proxies()
            if proxies is not None:
                from ..evaluation import assess

                item = {"chat_request": data[0].question(), "chat_response": answer.text,
                        "ground_truth": {"expected_facts": [_sentence(rng), _sentence(rng)]},
                        "retrieval_context": {"retrieved_documents": answer.documents}}
                assess({"assessment_input": item, "requested_assessments": [{"assessment_name": "correctness"}]},
                       None, proxies)  # load the model once, outside the timing
                rates = {}
                for name in ("correctness", "groundedness", "context_sufficiency", "relevance_to_query",
                             "chunk_relevance", "harmfulness"):
                    assess({"assessment_input": item, "requested_assessments": [{"assessment_name": name}]},
                           None, proxies)  # what it loads on first use (Presidio for harmfulness), untimed
                    n, t0 = 0, time.perf_counter()
                    while time.perf_counter() - t0 < seconds:
                        fresh = {**item, "chat_response": _sentence(rng, 30)}  # nothing cached between calls
                        assess({"assessment_input": fresh, "requested_assessments": [{"assessment_name": name}]},
                               None, proxies)
                        n += 1
                    rates[name] = round(n / (time.perf_counter() - t0), 1)
                out["proxy_assessments_per_second"] = rates
                out["proxy_note"] = "chunk_relevance: one assessment per retrieved document (5 per call here)"
            # judge calls through the gateway to the test endpoint
            body = {"assessment_input": {"chat_request": "q?", "chat_response": "a."},
                    "requested_assessments": [{"assessment_name": "relevance_to_query"}]}
            ws.assess(p, body)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                ws.assess(p, body)
                n += 1
            out["judge_calls_per_second"] = round(n / (time.perf_counter() - t0), 1)
            # the harness's own time per row, in a real run (one worker, so nothing overlaps)
            file = Path(tmp) / "rows.jsonl"
            file.write_text("\n".join(json.dumps({"inputs": r.inputs, "expectations": r.expectations})
                                      for r in data[:100]))
            ws.evaluations.run(p, endpoint="bot", dataset=str(file), scorers=["token_f1"], workers=1)  # warm
            per_row = []
            for scorers in (["token_f1", "exact_match", "latency_seconds"], ["relevance_to_query", "token_f1"]):
                result = ws.evaluations.run(p, endpoint="bot", dataset=str(file), scorers=scorers, workers=1)
                per_row.append({"scorers": scorers, "harness_ms_per_row": result["harness_ms_per_row"],
                                "rows_per_second": round(result["rows"] / result["seconds"], 1)})
            out["harness"] = per_row
            worst = max(x["harness_ms_per_row"] for x in per_row)
            out["harness_ms_per_row"] = worst
            out["target_ms"] = TARGET_MS
            out["target_met"] = worst < TARGET_MS
            out["median_deterministic_rows_per_second"] = round(statistics.median(code.values()))
        finally:
            ws.close()
    return out
