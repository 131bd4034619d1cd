"""Issue 17, point 6: upstream streams are parsed incrementally (linear in their size), a reply is capped,
and a malformed, empty or oversized upstream answers 502 with the reason instead of an empty 200."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from brickyard.core.settings import Settings
from brickyard.models._openai import MAX_EVENT_BYTES, UpstreamError, sse_events
from brickyard.workspace import Workspace
from tests.conftest import run_asgi, serve

CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}


def _blocks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_parsing_is_linear_and_bounded() -> None:
    line = b"data: " + json.dumps(CHUNK).encode() + b"\n\n"
    many = line * ((48 << 20) // len(line))  # 48 MiB of small events, in 64 KiB blocks
    started = time.process_time()
    count = sum(1 for _ in sse_events(_blocks(many + b"data: [DONE]\n\n")))
    assert count == many.count(b"data:") and time.process_time() - started < 15
    started = time.process_time()
    with pytest.raises(UpstreamError, match="longer than"):
        for _ in sse_events(_blocks(b"x" * (16 << 20))):  # 16 MiB without a newline: refused at 1 MiB
            pass
    assert time.process_time() - started < 1
    with pytest.raises(UpstreamError, match="larger than"):
        for _ in sse_events(_blocks(line * ((70 << 20) // len(line)))):
            pass


@pytest.mark.parametrize(("body", "reason"), [
    (b"<html>not a stream</html>\n", "not server-sent events"),
    (b"data: {not json}\n\n", "not valid JSON"),
    (b"data: [1, 2]\n\n", "not a JSON object"),
    (b"", "without any event"),
    (b"data: [DONE]\n\n", "without any event"),
    (b'data: {"error": {"message": "quota"}}\n\n', "quota"),
    (b"data: " + b"x" * (MAX_EVENT_BYTES + 10), "longer than"),
])
def test_malformed_streams_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(UpstreamError, match=reason):
        list(sse_events(_blocks(body)))


def test_comments_events_and_a_last_line_without_newline_are_read() -> None:
    body = b": keep-alive\nevent: message\nid: 1\ndata: " + json.dumps(CHUNK).encode()
    assert list(sse_events(_blocks(body, 7))) == [CHUNK]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    async def chat(request: Request) -> Response:
        model = (await request.json())["model"]
        if model == "html":
            return Response(b"<html>" + b"a" * (16 << 20) + b"</html>", media_type="text/html")
        if model == "badjson":
            return StreamingResponse(iter([b"data: {oops\n\n", b"data: [DONE]\n\n"]), media_type="text/event-stream")
        if model == "empty":
            return StreamingResponse(iter([b"data: [DONE]\n\n"]), media_type="text/event-stream")
        if model == "plain":  # a server that ignores stream=true
            return JSONResponse({"id": "x", "object": "chat.completion", "created": 1, "model": "plain",
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"},
                                              "finish_reason": "stop"}]})
        lines = [b"data: " + json.dumps(CHUNK).encode() + b"\n\n"] * 3 + [b"data: [DONE]\n\n"]
        return StreamingResponse(iter(lines), media_type="text/event-stream")

    with run_asgi(Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])) as url:
        yield url + "/v1"


def test_the_gateway_answers_502_with_the_reason(upstream: str, tmp_path: Path) -> None:
    host = upstream.split("//")[1].split("/")[0]
    ws = Workspace(Settings(home=tmp_path / "home", allowed_model_hosts=host))
    admin = ws.ensure_user("admin@example.com", admin=True)
    token = ws.create_token("admin@example.com", admin=True)
    for model in ("html", "badjson", "empty", "plain", "good"):
        ws.serving.create(admin, {"name": model, "config": {"served_entities": [{"name": model, "external_model": {
            "name": model, "provider": "openai", "task": "llm/v1/chat",
            "openai_config": {"openai_api_base": upstream, "openai_api_key_plaintext": "k"}}}]}})
    with serve(ws) as url:
        for model in ("html", "badjson", "empty", "plain", "good"):
            deadline = time.monotonic() + 30
            while ws.serving.get(admin, model)["state"]["ready"] != "READY" and time.monotonic() < deadline:
                time.sleep(0.05)

        def ask(model: str) -> httpx.Response:
            return httpx.post(url + "/serving-endpoints/chat/completions", timeout=60,
                              headers={"authorization": f"Bearer {token}"},
                              json={"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]})

        started = time.process_time()
        r = ask("html")
        assert r.status_code == 502 and "not server-sent events" in r.json()["message"], r.text
        assert time.process_time() - started < 5
        assert ask("badjson").status_code == 502 and "JSON" in ask("badjson").json()["message"]
        assert ask("empty").status_code == 502
        plain = ask("plain")
        assert plain.status_code == 200 and '"whole"' in plain.text and plain.text.endswith("data: [DONE]\n\n")
        good = ask("good")
        assert good.status_code == 200 and good.text.count('"hi"') == 3
    ws.close()
