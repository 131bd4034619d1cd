"""Issue 17, point 4: a flood of slow Python UC function calls holds a bounded number of the server's
threads. Calls beyond the workers and the queue are refused at once with 503 and Retry-After, and ordinary
routes keep their latency meanwhile."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from brickyard.core.sandbox import landlock_abi
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve_process


@pytest.mark.skipif(landlock_abi() == 0, reason="the kernel offers no Landlock to confine Python functions")
def test_a_flood_of_slow_functions_is_shed_and_other_routes_stay_fast(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace(Settings(home=home))
    admin = ws.ensure_user("admin@example.com", admin=True)
    token = ws.create_token("admin@example.com", admin=True)
    ws.catalog.create(admin, "schema", "main.tools")
    from brickyard.catalog._objects import function_spec

    ws.catalog.create(admin, "function", "main.tools.sleepy", spec=function_spec({
        "name": "sleepy", "data_type": "STRING", "routine_body": "EXTERNAL", "external_language": "PYTHON",
        "routine_definition": "import time\ntime.sleep(2)\nreturn 'done'", "input_params": {"parameters": []}}))
    ws.close()
    headers = {"authorization": f"Bearer {token}"}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "main__tools__sleepy", "arguments": {}}}
    env = {"BRICKYARD_FUNCTION_WORKERS": "2", "BRICKYARD_FUNCTION_QUEUE_SIZE": "4"}
    with serve_process(home, env=env) as (url, _), httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        http.get("/api/2.1/unity-catalog/catalogs").raise_for_status()  # warm up
        stop = threading.Event()
        latencies: list[float] = []

        def probe() -> None:
            with httpx.Client(base_url=url, headers=headers, timeout=30) as own:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    own.get("/api/2.1/unity-catalog/catalogs").raise_for_status()
                    latencies.append(time.perf_counter() - t0)
                    time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            with ThreadPoolExecutor(50) as pool, httpx.Client(base_url=url, limits=httpx.Limits(max_connections=50), timeout=60, verify=False) as flood:
                answers = list(pool.map(lambda _: flood.post("/api/2.0/mcp/functions/main/tools/sleepy",
                                                             json=call, headers=headers, timeout=60), range(50)))
        finally:
            stop.set()
            prober.join()
    ok = [a for a in answers if a.status_code == 200]
    shed = [a for a in answers if a.status_code == 503]
    assert len(ok) + len(shed) == 50, sorted({a.status_code for a in answers})
    assert len(ok) == 6 and all(a.json()["result"]["content"][0]["text"] == "done" for a in ok)
    assert all(int(a.headers["retry-after"]) >= 1 and a.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
               for a in shed)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    assert len(latencies) >= 20 and p99 < 0.1, (p99, latencies[-5:])
