"""T22: usage tracking and payload logging stay exact under concurrency. Many concurrent requests to an
external model through the AI Gateway (a fifth streaming, a tenth rejected by the provider, one in twenty
over 1 MiB; the provider reports usage on half of them): every request has exactly one usage row and one
payload row with its status, token counts equal the provider's when it reports them, oversized payloads
are not stored but flagged, and a streamed answer is logged as the concatenation of its chunks."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import run_asgi, scaled, serve


def _plan(i: int) -> dict:
    return {"stream": i % 5 == 0, "error": i % 10 == 3, "big": i % 20 == 7, "usage": i % 2 == 0}


async def upstream(request: Request) -> Response:
    body = await request.json()
    i = int(body["messages"][-1]["content"].split(":", 2)[1])
    plan = _plan(i)
    if plan["error"]:
        return JSONResponse({"error": {"message": "rejected"}}, status_code=400)
    words = [f"w{i}", "alpha", "beta"]
    usage = {"prompt_tokens": 100 + i, "completion_tokens": 10 + i, "total_tokens": 110 + 2 * i}
    if plan["stream"]:
        chunks = [{"id": f"c{i}", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": [{"index": 0, "delta": {"content": w + " "}, "finish_reason": None}]} for w in words]
        if plan["usage"]:
            chunks.append({"id": f"c{i}", "object": "chat.completion.chunk", "created": 1, "model": "m",
                           "choices": [], "usage": usage})
        lines = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks] + [b"data: [DONE]\n\n"]
        return StreamingResponse(iter(lines), media_type="text/event-stream")
    answer = {"id": f"c{i}", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words) + " "},
                           "finish_reason": "stop"}]}
    if plan["usage"]:
        answer["usage"] = usage
    return JSONResponse(answer)


def test_usage_and_payload_rows_are_exact_under_concurrency(tmp_path: Path) -> None:
    with run_asgi(Starlette(routes=[Route("/v1/chat/completions", upstream, methods=["POST"])])) as base:
        host = base.split("//")[1]
        ws = Workspace(Settings(home=tmp_path / "home", allowed_model_hosts=host, access_log="off"))
        admin = ws.ensure_user("admin@example.com", admin=True)
        token = ws.create_token("admin@example.com", admin=True)
        ws.catalog.create(admin, "schema", "main.logs")
        ws.serving.create(admin, {"name": "ext", "config": {"served_entities": [{"name": "ext", "external_model": {
            "name": "m", "provider": "openai", "task": "llm/v1/chat",
            "openai_config": {"openai_api_base": base + "/v1", "openai_api_key_plaintext": "k"}}}]}})
        ws.gateway.configure(admin, "ext", {"usage_tracking_config": {"enabled": True}, "inference_table_config": {
            "enabled": True, "catalog_name": "main", "schema_name": "logs", "table_name_prefix": "ext"}})
        count = scaled(200, 1000)
        with serve(ws) as url:
            import time

            deadline = time.monotonic() + 30
            while ws.serving.get(admin, "ext")["state"]["ready"] != "READY":
                assert time.monotonic() < deadline
                time.sleep(0.05)

            def send(i: int) -> tuple[int, str]:
                plan = _plan(i)
                content = f"case:{i}:" + ("x" * (1024 * 1024 + 100) if plan["big"] else "hello")
                r = httpx.post(url + "/serving-endpoints/ext/invocations", timeout=60,
                               headers={"authorization": f"Bearer {token}"},
                               json={"messages": [{"role": "user", "content": content}], "stream": plan["stream"],
                                     "client_request_id": f"r{i}"})
                return r.status_code, r.text

            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(send, range(count)))
        ws.gateway.usage.flush()
        ws.gateway.payloads.flush()
        usage = ws.sql.execute(admin, "SELECT client_request_id, status_code, input_token_count, output_token_count,"
                               " request_streaming FROM system.serving.endpoint_usage").table.to_pylist()
        payloads = ws.tables.read(admin, "main.logs.ext_payload").to_pylist()
        ws.close()
    for i, (status, _text) in enumerate(answers):
        assert status == (400 if _plan(i)["error"] else 200), (i, status, _text[:300])
    by_usage = {}
    for row in usage:
        assert row["client_request_id"] not in by_usage, row  # exactly one row per request
        by_usage[row["client_request_id"]] = row
    assert set(by_usage) == {f"r{i}" for i in range(count)}
    by_payload = {}
    for row in payloads:
        assert row["client_request_id"] not in by_payload, row
        by_payload[row["client_request_id"]] = row
    assert set(by_payload) == {f"r{i}" for i in range(count)}
    for i in range(count):
        plan, u, p = _plan(i), by_usage[f"r{i}"], by_payload[f"r{i}"]
        expected_status = 400 if plan["error"] else 200
        assert u["status_code"] == expected_status and p["status_code"] == expected_status, (i, u, p["status_code"])
        assert u["request_streaming"] == plan["stream"], (i, u)
        if not plan["error"] and plan["usage"]:
            assert (u["input_token_count"], u["output_token_count"]) == (100 + i, 10 + i), (i, u)
        elif not plan["error"]:
            assert u["input_token_count"] > 0 and u["output_token_count"] > 0, (i, u)
        if plan["big"]:
            assert p["request"] is None and "MAX_REQUEST_SIZE_EXCEEDED" in p["logging_error_codes"], (i, p)
        else:
            assert p["request"] is not None and f"case:{i}:" in p["request"]
        if not plan["error"]:
            assert f"w{i} alpha beta " in (p["response"] or ""), (i, p["response"])
