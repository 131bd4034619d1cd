"""Fixtures for the serving tests: a fake OpenAI-compatible upstream and a live server with endpoints."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput
from openai import OpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

CANARY = "sk-canary-9f8e7d6c5b4a39281706"


@dataclass
class Upstream:
    """A fake OpenAI-compatible provider on loopback that records what it receives."""

    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    fail_next: int = 0


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    import uvicorn

    state = Upstream()

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        state.seen.append({"auth": request.headers.get("authorization"), "body": body})
        if state.fail_next > 0:
            state.fail_next -= 1
            return JSONResponse({"error": {"message": "transient"}}, status_code=503)
        if state.status != 200:
            return JSONResponse({"error": {"message": "nope"}}, status_code=state.status, headers={"retry-after": "7"})
        return JSONResponse({"id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": body["model"],
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "from upstream"},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    state.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}/v1"
    yield state
    server.should_exit = True
    thread.join(timeout=5)


@dataclass
class Env:
    url: str
    ws: Workspace
    admin: WorkspaceClient
    admin_token: str

    def openai(self, token: str | None = None) -> OpenAI:
        return OpenAI(base_url=self.url + "/serving-endpoints", api_key=token or self.admin_token, max_retries=0)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Env]:
    host = upstream.url.split("//")[1].split("/")[0]
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("serving") / "home", enable_fake_models=1,
                            allowed_model_hosts=host, serving_queue_size=2))
    token = ws.create_token("admin@example.com", admin=True)
    with serve(ws) as url:
        admin = WorkspaceClient(host=url, token=token)
        admin.serving_endpoints.create_and_wait(name="echo", config=EndpointCoreConfigInput(
            name="echo", served_entities=[ServedEntityInput(entity_name="system.ai.fake-chat")]))
        yield Env(url, ws, admin, token)
    ws.close()


