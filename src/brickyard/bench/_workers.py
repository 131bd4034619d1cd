"""``brickyard bench model-workers``: served model versions on their worker pools, through a real server.

A registered pyfunc model that takes ``service_ms`` per request (it sleeps: the figure is about queueing, not
compute) is served three ways and measured in one run:

* **overload**: with one worker (workload_size Small) and with two (Medium), requests arrive open-loop at twice
  the pool's capacity for ``seconds``. Reported: answered requests per second (should be the capacity),
  latency and queue wait (the server's ``x-brickyard-queue-ms``) p50/p99 of answered requests, and how many
  got 503 + Retry-After once the bounded queue was full (and how fast that refusal came).
* **cold start**: with scale_to_zero_enabled and a 1-second idle time, the latency of the first request after
  the workers stopped (a process start and model load) against a warm request.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._gateway import _free_port, _wait

MODEL = '''
import time

import mlflow


class Sleeper(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        time.sleep({seconds})
        return [str(t) for t in model_input["text"]]


mlflow.models.set_model(Sleeper())
'''


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


REGISTER = """
import sys

import mlflow
import pandas as pd
from mlflow.models import infer_signature

mlflow.set_tracking_uri("databricks")
mlflow.set_registry_uri("databricks-uc")
mlflow.set_experiment("/Users/bench@example.com/model-workers")
with mlflow.start_run():
    info = mlflow.pyfunc.log_model(name="sleeper", python_model=sys.argv[1],
                                   signature=infer_signature(pd.DataFrame({"text": ["a"]}), ["a"]))
mlflow.register_model(info.model_uri, "main.default.sleeper")
"""


def run_workers_bench(*, seconds: float = 5.0, service_ms: float = 50.0) -> dict[str, Any]:
    import httpx

    from ..core.settings import Settings
    from ..workspace import Workspace

    home = Path(tempfile.mkdtemp(prefix="brickyard-bench-"))
    ws = Workspace(Settings(home=home))
    token = ws.create_token("bench@example.com", admin=True)
    ws.close()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "brickyard.cli", "serve", "--home", str(home), "--port", str(port),
                               "--log-level", "warning"],
                              env=Settings.child_environ(scale_to_zero_seconds="1", access_log="off"))
    h = {"authorization": f"Bearer {token}"}
    results: dict[str, Any] = {"config": {"seconds": seconds, "service_ms": service_ms, "queue_per_worker": 16}}
    try:
        _wait(f"{url}/health", server)
        code = home / "sleeper.py"
        code.write_text(MODEL.format(seconds=service_ms / 1000))
        subprocess.run([sys.executable, "-c", REGISTER, str(code)], check=True, capture_output=True,
                       env={**Settings.child_environ(), "DATABRICKS_HOST": url, "DATABRICKS_TOKEN": token})
        with httpx.Client(base_url=url, headers=h, timeout=120,
                          limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)) as client:
            for name, scale in (("small", {"workload_size": "Small"}), ("medium", {"workload_size": "Medium"}),
                                ("sleepy", {"scale_to_zero_enabled": True})):
                _deploy(client, name, scale)
            for name, workers in (("small", 1), ("medium", 2)):
                results[f"overload_{name}"] = _overload(client, name, workers, seconds, service_ms)
            results["cold_start"] = _cold(client)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def _deploy(client: Any, name: str, scale: dict[str, Any]) -> None:
    r = client.post("/api/2.0/serving-endpoints", json={"name": name, "config": {"served_entities": [
        {"entity_name": "main.default.sleeper", "entity_version": "1", **scale}]}})
    r.raise_for_status()
    while client.get(f"/api/2.0/serving-endpoints/{name}").json()["state"]["config_update"] == "IN_PROGRESS":
        time.sleep(0.05)


def _ask(client: Any, name: str) -> tuple[int, float, float | None, bool]:
    began = time.perf_counter()
    r = client.post(f"/serving-endpoints/{name}/invocations", json={"dataframe_records": [{"text": "x"}]})
    queued = r.headers.get("x-brickyard-queue-ms")
    return (r.status_code, (time.perf_counter() - began) * 1000, float(queued) if queued else None,
            r.headers.get("x-brickyard-cold-start") == "true")


def _overload(client: Any, name: str, workers: int, seconds: float, service_ms: float) -> dict[str, Any]:
    capacity = workers * 1000 / service_ms
    rate = 2 * capacity
    count = int(rate * seconds)
    start = time.perf_counter() + 0.2
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(256, count)) as pool:
        def at(i: int) -> tuple[int, float, float | None, bool]:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            return _ask(client, name)

        outcomes = list(pool.map(at, range(count)))
    elapsed = time.perf_counter() - start
    ok = [o for o in outcomes if o[0] == 200]
    refused = [o for o in outcomes if o[0] == 503]
    return {"workers": workers, "capacity_rps": round(capacity, 1), "offered_rps": round(rate, 1),
            "answered_rps": round(len(ok) / elapsed, 1), "answered": len(ok), "refused_503": len(refused),
            "other_status": sorted({o[0] for o in outcomes} - {200, 503}),
            "latency_ms_p50": _pct([o[1] for o in ok], 0.5), "latency_ms_p99": _pct([o[1] for o in ok], 0.99),
            "queue_ms_p50": _pct([o[2] or 0.0 for o in ok], 0.5), "queue_ms_p99": _pct([o[2] or 0.0 for o in ok], 0.99),
            "refusal_ms_p50": _pct([o[1] for o in refused], 0.5)}


def _cold(client: Any) -> dict[str, Any]:
    colds, warms = [], []
    for _ in range(3):
        deadline = time.monotonic() + 30
        while client.get("/api/2.0/serving-endpoints/sleepy").json()["config"]["served_entities"][0]["state"][
                "deployment_state_message"] != "Scaled to zero":
            if time.monotonic() > deadline:
                raise RuntimeError("the endpoint did not scale to zero")
            time.sleep(0.1)
        status, ms, _, cold = _ask(client, "sleepy")
        if status != 200 or not cold:
            raise RuntimeError(f"expected a cold start, got status {status} cold={cold}")
        colds.append(ms)
        warms.append(_ask(client, "sleepy")[1])
    return {"cold_ms_median": round(statistics.median(colds), 1), "warm_ms_median": round(statistics.median(warms), 1),
            "idle_seconds_before_scale_down": 1}
