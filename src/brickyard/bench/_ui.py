"""``brickyard bench ui``: the server time of every workspace page, and what the pages cost the API.

A workspace like the demo's is built in a temporary home (a table of a few thousand rows and a second one, a
volume with files, a SQL function, a chat endpoint on the test model with usage tracking, a Vector Search index
over the table, an experiment with runs, metric histories and traces, a SQL statement's result). Each page is
then asked for ``repeat`` times, in this process through the ASGI app (no network, so the figure is the
server's), signed in as the owner; the report gives each page's median and p95 in milliseconds.

The pages' cost to the API: one API route (a table's metadata) and the data plane (a chat completion) timed on
an app built without the pages and on one with them, alternately in the same run; the ratio should be 1.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PAGES = [
    ("home", "/"),
    ("catalogs", "/explore/data"),
    ("schema", "/explore/data/main/default"),
    ("table columns", "/explore/data/main/default/orders"),
    ("table sample", "/explore/data/main/default/orders?tab=sample"),
    ("table history", "/explore/data/main/default/orders?tab=history"),
    ("table grants", "/explore/data/main/default/orders?tab=grants"),
    ("table lineage", "/explore/data/main/default/orders?tab=lineage"),
    ("volume", "/explore/data/volumes/main/default/files"),
    ("function", "/explore/data/functions/main/default/discount"),
    ("sql editor", "/sql/editor"),
    ("sql result", "{statement}"),
    ("sql result chart", "{statement}?chart=bar&x=region&y=total"),
    ("endpoints", "/ml/endpoints"),
    ("endpoint metrics", "/ml/endpoints/chat"),
    ("playground", "/ml/playground"),
    ("vector search", "/compute/vector-search"),
    ("index query", "/compute/vector-search/indexes/main.default.orders_index?q=blue+widget&query_type=HYBRID"),
    ("experiments", "/ml/experiments"),
    ("experiment runs", "/ml/experiments/{experiment}"),
    ("experiment traces", "/ml/experiments/{experiment}?tab=traces"),
    ("run", "/ml/experiments/{experiment}/runs/{run}"),
    ("compare runs", "/ml/experiments/{experiment}/compare?runs={run}&runs={run2}"),
    ("trace", "/ml/experiments/{experiment}/traces/{trace}"),
]
OWNER = "owner@example.com"


def build(home: Path, rows: int) -> dict[str, Any]:
    """The demo-like workspace, and the ids the page URLs need."""
    from ..core.settings import Settings
    from ..evaluation._harness import Prediction, Row, trace_of
    from ..workspace import Workspace

    ws = Workspace(Settings(home=home, access_log="off", monitor_interval_seconds=0, enable_fake_models=1))
    ws.ensure_user(OWNER, admin=True)
    p = ws.principal(OWNER)
    sql = ws.sql.execute
    sql(p, "CREATE TABLE main.default.orders (id BIGINT, region STRING, product STRING, total DOUBLE) "
           "COMMENT 'Orders of the demo shop'")
    regions, products = ["north", "south", "east", "west"], ["blue widget", "red gadget", "green gizmo", "bolt"]
    for start in range(0, rows, 1000):
        values = ", ".join(f"({i}, '{regions[i % 4]}', '{products[i % 4]} {i % 97}', {i * 1.5})"
                           for i in range(start, min(rows, start + 1000)))
        sql(p, f"INSERT INTO main.default.orders VALUES {values}")  # noqa: S608 - generated numbers and constants
    sql(p, "CREATE TABLE main.default.regions AS SELECT region, sum(total) AS total FROM main.default.orders "
           "GROUP BY region")
    sql(p, "CREATE FUNCTION main.default.discount(total DOUBLE COMMENT 'the order total') RETURNS DOUBLE "
           "COMMENT 'Ten percent off.' RETURN total * 0.9")
    ws.volumes.create(p, "main.default.files")
    for i in range(20):
        ws.volumes.upload(p, f"/Volumes/main/default/files/doc-{i}.txt", f"document {i}\n".encode() * 50)
    ws.serving.create(p, {"name": "chat", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
                          "ai_gateway": {"usage_tracking_config": {"enabled": True}}})
    ws.vectorsearch.create_endpoint(p, {"name": "vs"})
    ws.vectorsearch.create_index(p, {
        "name": "main.default.orders_index", "endpoint_name": "vs", "primary_key": "id", "index_type": "DELTA_SYNC",
        "delta_sync_index_spec": {"source_table": "main.default.orders", "pipeline_type": "TRIGGERED",
                                  "columns_to_sync": ["id", "region", "product"],
                                  "embedding_source_columns": [{"name": "product",
                                                                "embedding_model_endpoint_name": "databricks-gte-large-en"}]}})
    ws.vectorsearch.sync_now("main.default.orders_index")
    experiment = ws.tracking.create_experiment(p, f"/Users/{OWNER}/demo")
    runs = []
    for r in range(20):
        run = ws.tracking.create_run(p, experiment, tags=[{"key": "mlflow.runName", "value": f"run-{r}"}])
        rid = run["info"]["run_id"]
        ws.tracking.log_batch(p, rid, params=[{"key": "lr", "value": str(0.01 * (r + 1))}],
                              metrics=[{"key": "loss", "value": 1 / (s + r + 1), "timestamp": s, "step": s}
                                       for s in range(50)])
        runs.append(rid)
    traces = []
    for t in range(50):
        info, spans = trace_of(Row({"question": f"question {t}"}), Prediction(f"answer {t}", 0.01, model="chat"),
                               time.time_ns(), run_id=runs[0])
        traces.append(ws.traces.record(p, experiment, info, spans))
    deadline = time.monotonic() + 120
    while ws.serving.get(p, "chat")["state"]["ready"] != "READY" and time.monotonic() < deadline:
        time.sleep(0.05)
    for i in range(20):
        ws.gateway.call(p, "chat", {"messages": [{"role": "user", "content": f"hello {i}"}]}, route="chat")
    statement = ws.statements.submit(p, "SELECT region, sum(total) AS total, count(*) AS n FROM main.default.orders "
                                        "GROUP BY region ORDER BY region", wait_timeout="30s")
    return {"ws": ws, "experiment": experiment, "run": runs[0], "run2": runs[1], "trace": traces[0],
            "statement": f"/sql/editor/statements/{statement['statement_id']}"}


async def _timed(client: Any, path: str, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = await client.get(path)
        out.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
    return out


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"median_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 2)}


def run_ui_bench(*, rows: int = 5000, repeat: int = 30) -> dict[str, Any]:
    import httpx

    from ..api import create_app
    from ..api._http import Api
    from ..api.app import ROUTERS

    with tempfile.TemporaryDirectory(prefix="brickyard-bench-ui-") as tmp:
        started = time.perf_counter()
        env = build(Path(tmp) / "home", rows)
        ws = env.pop("ws")
        setup_s = time.perf_counter() - started
        token = ws.create_token(OWNER, admin=True)
        try:
            result = asyncio.run(_measure(ws, env, token, repeat, httpx, create_app, ROUTERS, Api))
        finally:
            ws.close()
    return {"bench": "ui", "rows": rows, "repeat": repeat, "setup_s": round(setup_s, 1), **result,
            "target_ms": 50}


async def _measure(ws: Any, env: dict[str, Any], token: str, repeat: int, httpx: Any, create_app: Any,
                   routers: tuple[Any, ...], api_class: Any) -> dict[str, Any]:
    app = create_app(ws)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        signed = await client.post("/login", data={"token": token, "next": "/"})
        if signed.status_code != 303:
            raise RuntimeError(f"sign-in failed: {signed.status_code}")
        pages = {}
        for name, template in PAGES:
            path = template.format(**env)
            await _timed(client, path, 2)  # warm: first-use imports and caches
            pages[name] = _summary(await _timed(client, path, repeat))
    slowest = max(pages.items(), key=lambda kv: kv[1]["median_ms"])

    # the API with and without the pages: alternate rounds in one run
    bare_api = api_class()
    for module in routers:
        if module.__name__.rsplit(".", 1)[-1] != "_ui":
            module.register(bare_api, ws)
    with_ui, without_ui = create_app(ws), create_app(ws, bare_api)
    headers = {"Authorization": f"Bearer {token}"}
    api_paths = [("GET", "/api/2.1/unity-catalog/tables/main.default.orders", None),
                 ("POST", "/serving-endpoints/chat/invocations", {"messages": [{"role": "user", "content": "hi"}]})]
    cost: dict[str, dict[str, float]] = {}
    for method, path, body in api_paths:
        times: dict[str, list[float]] = {"with_pages": [], "without_pages": []}
        for _ in range(5):
            for label, candidate in (("with_pages", with_ui), ("without_pages", without_ui)):
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=candidate),
                                             base_url="http://127.0.0.1", headers=headers) as api:
                    for _ in range(max(4, repeat // 5)):
                        started = time.perf_counter()
                        response = await (api.get(path) if method == "GET" else api.post(path, json=body))
                        times[label].append((time.perf_counter() - started) * 1000)
                        if response.status_code != 200:
                            raise RuntimeError(f"{path} answered {response.status_code}")
        a, b = statistics.median(times["with_pages"]), statistics.median(times["without_pages"])
        cost[f"{method} {path}"] = {"with_pages_ms": round(a, 3), "without_pages_ms": round(b, 3),
                                    "ratio": round(a / b, 3) if b else None}
    for candidate in (app, with_ui, without_ui):
        candidate.close()
    return {"pages": pages, "slowest_page": {"name": slowest[0], **slowest[1]},
            "all_under_target": all(v["median_ms"] < 50 for v in pages.values()), "api_cost": cost}
