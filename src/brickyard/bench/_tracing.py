"""``brickyard bench tracing``: what tracing costs per span, and what recording a trace costs the server.

* **In a deployed model** (the worker's mode: ``IS_IN_DB_MODEL_SERVING_ENV``, ``ENABLE_MLFLOW_TRACING``, traces
  kept in memory and returned with the answer), measured in a child process: the time per call of a tiny
  function, untraced and wrapped in a span, for root spans (one trace per call) and for child spans inside
  one trace, as the agent runtime opens them. Per CPU-second and per wall second.
* **On the server**: the time to record one trace of ten spans in an experiment (``Traces.record``: trace info
  in the metastore, spans written and fsynced).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHILD = r"""
import json, os, resource, sys, time
import mlflow
from mlflow.entities import SpanType

def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

def work(x):
    return sum(range(x))

n = int(sys.argv[1])
out = {}
for label, run in (("untraced", lambda i: work(50)),):
    for i in range(200):
        run(i)
    c, w = cpu(), time.perf_counter()
    for i in range(n):
        run(i)
    out[label] = {"cpu_us": (cpu() - c) / n * 1e6, "wall_us": (time.perf_counter() - w) / n * 1e6}

def root_span(i):
    with mlflow.start_span("call", span_type=SpanType.TOOL) as s:
        s.set_inputs({"x": 50})
        s.set_outputs(work(50))

for i in range(200):
    root_span(i)
c, w = cpu(), time.perf_counter()
for i in range(n):
    root_span(i)
out["root_span"] = {"cpu_us": (cpu() - c) / n * 1e6, "wall_us": (time.perf_counter() - w) / n * 1e6}

def children(k):
    with mlflow.start_span("agent", span_type=SpanType.AGENT):
        for j in range(k):
            with mlflow.start_span("tool", span_type=SpanType.TOOL) as s:
                s.set_inputs({"x": 50})
                s.set_outputs(work(50))

children(20)
k = 100
rounds = max(1, n // k)
c, w = cpu(), time.perf_counter()
for i in range(rounds):
    children(k)
spans = rounds * k
out["child_span"] = {"cpu_us": (cpu() - c) / spans * 1e6, "wall_us": (time.perf_counter() - w) / spans * 1e6}
print(json.dumps(out))
"""


def run_tracing_bench(*, calls: int = 5000) -> dict[str, Any]:
    from ..core.settings import Settings

    # A worker's environment: traces stay in memory (no MLFLOW_EXPERIMENT_ID, nothing exported anywhere).
    env = Settings.sandbox_environ(IS_IN_DB_MODEL_SERVING_ENV="true", ENABLE_MLFLOW_TRACING="true",
                                   MLFLOW_TRACKING_URI="databricks", DATABRICKS_HOST="http://127.0.0.1:9",
                                   DATABRICKS_TOKEN="unused", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", CHILD, str(calls)], capture_output=True, text=True, env=env,
                          timeout=120, check=True)
    worker = json.loads(done.stdout.strip().splitlines()[-1])
    base = worker["untraced"]["cpu_us"]
    per_span = {kind: {"overhead_cpu_us": round(worker[kind]["cpu_us"] - base, 1),
                       "overhead_wall_us": round(worker[kind]["wall_us"] - worker["untraced"]["wall_us"], 1)}
                for kind in ("root_span", "child_span")}
    return {"calls": calls, "in_deployed_model": {"untraced_call_cpu_us": round(base, 2), **per_span},
            "server_record_trace": _record(), "reference": (
                "a local chat-model call takes 100 ms to several seconds, a retrieval 1-20 ms: a span adds "
                "well under 1% to either")}


def _record() -> dict[str, Any]:
    import secrets

    from ..core.settings import Settings
    from ..workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp) / "home"))
        try:
            system = ws.system_principal()
            experiment = ws.tracking.create_experiment(system, "/Shared/bench")
            spans = [{"name": f"s{i}", "span_id": secrets.token_hex(8), "trace_id": "x", "start_time_unix_nano": i,
                      "end_time_unix_nano": i + 1, "attributes": {"mlflow.spanType": '"TOOL"'}} for i in range(10)]
            timings = []
            for _ in range(50):
                info = {"trace_id": "tr-" + secrets.token_hex(16), "request_time": "2026-01-01T00:00:00Z",
                        "execution_duration": "0.1s", "state": "OK", "trace_metadata": {}, "tags": {}}
                started = time.perf_counter()
                ws.traces.record(system, experiment, info, spans)
                timings.append(time.perf_counter() - started)
        finally:
            ws.close()
    timings.sort()
    return {"traces": len(timings), "spans_per_trace": 10, "p50_ms": round(timings[len(timings) // 2] * 1000, 2),
            "p99_ms": round(timings[-1] * 1000, 2),
            "note": "added once to an agent's answer, on the server, after the model has answered"}
