"""``brickyard bench sql-ai``: ``ai_query`` over a table against a plain Python loop calling the same endpoint.

A local OpenAI-compatible upstream answers after ``latency_ms`` (as a remote model would), behind a serving
endpoint (an external model, through the AI Gateway). In one run: ``SELECT ai_query(...) FROM t`` over ``rows``
rows, and a loop calling the endpoint through the gateway once per row (on a sample, it is slow), both as the same
user; then the same two with an upstream that answers at once, which shows the SQL path's own cost per row.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._gateway import _free_port, _wait


def run_sql_ai_bench(*, rows: int = 10_000, latency_ms: float = 20.0, loop_rows: int = 300) -> dict[str, Any]:
    from ..core.settings import Settings
    from ..sql import _ai
    from ..workspace import Workspace

    out: dict[str, Any] = {"rows": rows, "latency_ms": latency_ms, "concurrency_per_call_site": _ai.CONCURRENCY}
    for label, delay in (("with_latency", latency_ms), ("instant_upstream", 0.0)):
        port = _free_port()
        upstream = subprocess.Popen([sys.executable, "-m", "brickyard.bench._upstream", str(port), str(delay)],
                                    env=Settings.child_environ())
        try:
            _wait(f"http://127.0.0.1:{port}/", upstream)
            with tempfile.TemporaryDirectory() as tmp:
                ws = Workspace(Settings(home=Path(tmp) / "home", allowed_model_hosts=f"127.0.0.1:{port}",
                                        access_log="off", monitor_interval_seconds=0, serving_queue_size=10_000))
                try:
                    out[label] = _measure(ws, port, rows, loop_rows)
                finally:
                    ws.close()
        finally:
            upstream.terminate()
            upstream.wait(timeout=10)
    timed = out["with_latency"]
    out["ratio_sql_to_loop"] = round(timed["sql_rows_per_s"] / timed["loop_rows_per_s"], 2)
    out["target"] = ">= 5x the loop"
    instant = out["instant_upstream"]
    out["sql_overhead_ms_per_row"] = round(1000 / instant["sql_rows_per_s"], 3)
    out["loop_cost_ms_per_row"] = round(1000 / instant["loop_rows_per_s"], 3)
    return out


def _measure(ws: Any, port: int, rows: int, loop_rows: int) -> dict[str, Any]:
    admin = ws.ensure_user("bench@example.com", admin=True)
    ws.serving.create(admin, {"name": "upstream", "config": {"served_entities": [{"name": "up", "external_model": {
        "name": "bench", "provider": "custom", "task": "llm/v1/chat",
        "custom_provider_config": {"custom_provider_url": f"http://127.0.0.1:{port}/v1"}}}]}})
    while ws.serving.get(admin, "upstream")["state"]["config_update"] == "IN_PROGRESS":
        time.sleep(0.02)
    ws.tables.create(admin, "main.default.questions", columns=[{"name": "id", "type_text": "bigint"},
                                                               {"name": "q", "type_text": "string"}])
    ws.tables.write(admin, "main.default.questions", [{"id": i, "q": f"question {i}"} for i in range(rows)])
    ws.sql.execute(admin, "SELECT ai_query('upstream', q) FROM main.default.questions LIMIT 10")  # warm
    began = time.perf_counter()
    result = ws.sql.execute(admin, "SELECT count(ai_query('upstream', q)) AS n FROM main.default.questions")
    sql_seconds = time.perf_counter() - began
    assert result.table.column("n")[0].as_py() == rows
    began = time.perf_counter()
    for i in range(loop_rows):
        ws.gateway.call(admin, "upstream", {"messages": [{"role": "user", "content": f"question {i}"}]}, route="chat")
    loop_seconds = time.perf_counter() - began
    return {"sql_seconds": round(sql_seconds, 3), "sql_rows_per_s": round(rows / sql_seconds, 1),
            "loop_rows": loop_rows, "loop_rows_per_s": round(loop_rows / loop_seconds, 1)}


def run_sql_ai_ray_bench(*, rows: int = 4000) -> dict[str, Any]:
    """``ai_query`` of the bundled embedding model over ``rows`` rows: in this process, then on a Ray cluster on
    this machine's loopback with one worker and with two (a second node joined), in the same run. Each run goes
    through the AI Gateway here; only the model runs in the workers."""
    from ..core.settings import Settings
    from ._raycluster import LocalCluster

    Settings.join_ray_on_loopback()  # before Ray is imported by anything below
    out: dict[str, Any] = {"rows": rows, "model": "databricks-gte-large-en (all-MiniLM-L6-v2, local)"}
    out["in_process"] = _embed_rows(None, rows)
    cluster = LocalCluster(workers=0, cpus=1)
    address = cluster.__enter__()
    try:
        out["ray_1_worker"] = _embed_rows(address, rows)
        cluster.add_worker()  # a second node joins: two workers
        out["ray_2_workers"] = _embed_rows(address, rows)
    finally:
        cluster.__exit__(None, None, None)
    one, two = out["ray_1_worker"]["rows_per_s"], out["ray_2_workers"]["rows_per_s"]
    out["scaling_1_to_2_workers"] = round(two / one, 2)
    out["target"] = "near 2x from 1 to 2 workers (the server process shares this machine's 2 cores)"
    return out


def _embed_rows(address: str | None, rows: int) -> dict[str, Any]:
    from ..core.settings import Settings
    from ..workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp) / "home", ray_address=address, access_log="off",
                                monitor_interval_seconds=0))
        try:
            admin = ws.ensure_user("bench@example.com", admin=True)
            ws.tables.create(admin, "main.default.texts", columns=[{"name": "id", "type_text": "bigint"},
                                                                   {"name": "t", "type_text": "string"}])
            body = " ".join(["A passage about rate limits, usage tracking, inference tables and the vector search "
                             "indexes a retrieval agent reads before it answers a question."] * 6)
            ws.tables.write(admin, "main.default.texts", [{"id": i, "t": f"{i}: {body}"} for i in range(rows)])
            ws.sql.execute(admin, "SELECT ai_query('databricks-gte-large-en', t) FROM main.default.texts LIMIT 64")
            workers = ws.serving.ray.workers() if ws.serving.ray is not None else 0
            if ws.serving.ray is not None:  # every worker loaded its model before the clock starts
                ws.serving.ray.pids("minilm")
            began = time.perf_counter()
            result = ws.sql.execute(admin, "SELECT count(ai_query('databricks-gte-large-en', t)) AS n "
                                           "FROM main.default.texts")
            seconds = time.perf_counter() - began
            assert result.table.column("n")[0].as_py() == rows
            return {"workers": workers, "seconds": round(seconds, 3), "rows_per_s": round(rows / seconds, 1)}
        finally:
            ws.close()
