"""An external MCP server (the official mcp SDK's FastMCP, stateful, with server-sent events) registered as a
UC connection, reached through /api/2.0/mcp/external/{connection} by the agent runtime's MCP client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

SECRET = "s3cret-upstream-token"


def _external_server() -> tuple[Any, int, list[str]]:
    import uvicorn
    from mcp.server.fastmcp import FastMCP

    seen: list[str] = []
    mcp = FastMCP("weather")

    @mcp.tool()
    def forecast(city: str) -> str:
        """The weather forecast for a city."""
        return f"sunny in {city}"

    inner = mcp.streamable_http_app()

    async def app(scope: Any, receive: Any, send: Any) -> None:  # the upstream demands its own token
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization", b"").decode()
            seen.append(auth)
            if auth != f"Bearer {SECRET}":
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await inner(scope, receive, send)

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, server.servers[0].sockets[0].getsockname()[1], seen


def _register(url: str, admin: str, port: int) -> None:
    """The upstream as the UC connection weather_mcp, made by ``admin`` through the REST API."""
    import httpx

    made = httpx.post(url + "/api/2.1/unity-catalog/connections", headers={"authorization": f"Bearer {admin}"},
                      json={"name": "weather_mcp", "connection_type": "HTTP", "options": {
                          "host": "http://127.0.0.1", "port": str(port), "base_path": "/mcp",
                          "bearer_token": SECRET, "is_mcp_connection": "true"}})
    assert made.status_code == 200, made.text
    assert SECRET not in made.text


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[str, str, str, list[str]]]:
    import tempfile

    upstream, port, seen = _external_server()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=f"{tmp}/home", allowed_model_hosts=f"127.0.0.1:{port}"))
        admin = ws.create_token("admin@example.com", admin=True)
        ws.ensure_user("bob@example.com")
        bob = ws.create_token("bob@example.com")
        with serve(ws) as url:

            _register(url, admin, port)
            yield url, admin, bob, seen
        ws.close()
    upstream.should_exit = True


def test_the_agent_runtime_uses_an_external_mcp_server_through_its_connection(env: Any) -> None:
    from brickyard.agents import MCPServer

    url, admin, bob, seen = env
    server = MCPServer("/api/2.0/mcp/external/weather_mcp", workspace_client=WorkspaceClient(host=url, token=admin))
    tools = server.tools()
    assert [t.name for t in tools] == ["forecast"]
    assert tools[0](city="Lyon") == "sunny in Lyon"
    assert seen and all(s == f"Bearer {SECRET}" for s in seen)  # the caller's own token never reaches it

    denied = MCPServer("/api/2.0/mcp/external/weather_mcp", workspace_client=WorkspaceClient(host=url, token=bob))
    with pytest.raises(Exception):  # noqa: B017 - bob lacks USE_CONNECTION: 403 before anything is forwarded
        denied.tools()
    import httpx

    r = httpx.post(url + "/api/2.0/mcp/external/weather_mcp", headers={"authorization": f"Bearer {bob}"},
                   json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 403


def test_the_playground_offers_an_external_mcp_servers_tools(tmp_path: Any) -> None:
    """The Playground's model calls a tool of an external MCP server (a UC connection) through the connection's
    checks and token; a user without USE_CONNECTION is not offered it and cannot name it."""

    from tests.ui._setup import csrf, sign_in

    upstream, port, seen = _external_server()
    ws = Workspace(Settings(home=tmp_path / "home", allowed_model_hosts=f"127.0.0.1:{port}", enable_fake_models=1,
                            access_log="off"))
    admin = ws.create_token("admin@example.com", admin=True)
    ws.ensure_user("bob@example.com")
    owner = ws.principal("admin@example.com")
    ws.serving.create(owner, {"name": "obedient", "config": {"served_entities": [
        {"entity_name": "system.ai.fake-obedient"}]}})
    try:
        with serve(ws) as url:
            _register(url, admin, port)
            deadline = time.monotonic() + 60
            while ws.serving.get(owner, "obedient")["state"]["ready"] != "READY":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            page = sign_in(url, admin)
            form = page.get("/ml/playground?endpoint=obedient").text
            assert "external/weather_mcp" in form
            said = page.post("/ml/playground", data={"csrf": csrf(form), "endpoint": "obedient",
                                                     "message": 'CALL forecast {"city": "Oslo"}',
                                                     "tools": ["external/weather_mcp"]})
            assert said.status_code == 200 and "ANSWER: sunny in Oslo" in said.text, said.text[-2000:]
            assert f"Bearer {SECRET}" in seen  # the connection's token went to the upstream, never to the page
            assert SECRET not in said.text
            ws.serving.set_acl(owner, ws.serving.get(owner, "obedient")["id"],
                               [{"user_name": "bob@example.com", "permission_level": "CAN_QUERY"}], replace=False)
            bob = sign_in(url, ws.create_token("bob@example.com"))
            bob_form = bob.get("/ml/playground?endpoint=obedient").text
            assert "external/weather_mcp" not in bob_form
            refused = bob.post("/ml/playground", data={"csrf": csrf(bob_form), "endpoint": "obedient",
                                                       "message": 'CALL forecast {"city": "Oslo"}',
                                                       "tools": ["external/weather_mcp"]})
            assert refused.status_code == 403 and "sunny" not in refused.text
            page.close()
            bob.close()
    finally:
        ws.close()
        upstream.should_exit = True
