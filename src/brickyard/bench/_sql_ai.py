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
