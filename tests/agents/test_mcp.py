"""Managed MCP servers through the official databricks-mcp client (on the official mcp SDK)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from databricks.sdk import WorkspaceClient

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve


@dataclass
class Env:
    ws: Workspace
    url: str
    admin: str
    bob: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    from brickyard.catalog._objects import function_spec

    ws = Workspace(Settings(home=tmp_path_factory.mktemp("mcp") / "home"))
    admin_token = ws.create_token("admin@example.com", admin=True)
    ws.ensure_user("bob@example.com")
    bob_token = ws.create_token("bob@example.com")
    admin = ws.principal("admin@example.com")
    ws.catalog.create(admin, "schema", "main.tools")
    ws.catalog.create(admin, "function", "main.tools.shout", comment="Shout a word.", spec=function_spec({
        "name": "shout", "data_type": "STRING", "routine_body": "SQL", "routine_definition": "upper(word) || '!'",
        "input_params": {"parameters": [{"name": "word", "type_text": "STRING", "comment": "what to shout"}]}}))
    ws.vectorsearch.create_endpoint(admin, {"name": "ep"})
    ws.vectorsearch.create_index(admin, {
        "name": "main.tools.docs", "primary_key": "id", "index_type": "DIRECT_ACCESS",
        "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": 2}],
                                     "schema_json": json.dumps({"id": "integer", "text": "string", "v": "array<float>"})}},
        endpoint="ep")
    ws.vectorsearch.upsert(admin, "main.tools.docs", [
        {"id": 1, "text": "Rate limits are set per endpoint in the AI Gateway.", "v": [1.0, 0.0]},
        {"id": 2, "text": "Vector indexes sync from Delta tables.", "v": [0.0, 1.0]}])
    ws.catalog.update_grants(admin, "catalog", "main", [{"principal": "bob@example.com", "add": ["USE_CATALOG"]}])
    ws.catalog.update_grants(admin, "schema", "main.tools", [{"principal": "bob@example.com", "add": ["USE_SCHEMA"]}])
    with serve(ws) as url:
        yield Env(ws, url, admin_token, bob_token)
    ws.close()


def client(env: Env, url: str, token: str) -> object:
    from databricks_mcp import DatabricksMCPClient

    return DatabricksMCPClient(server_url=env.url + url, workspace_client=WorkspaceClient(host=env.url, token=token))


def test_function_tools_list_and_call(env: Env) -> None:
    mcp = client(env, "/api/2.0/mcp/functions/main/tools", env.admin)
    tools = mcp.list_tools()  # type: ignore[attr-defined]
    assert [t.name for t in tools] == ["main__tools__shout"]
    assert tools[0].description == "Shout a word." and tools[0].inputSchema["required"] == ["word"]
    result = mcp.call_tool("main__tools__shout", {"word": "hello"})  # type: ignore[attr-defined]
    assert not result.isError and result.content[0].text == "HELLO!"
    resources = mcp.get_databricks_resources()  # type: ignore[attr-defined]
    assert [r.name for r in resources] == ["main.tools.shout"]
    single = client(env, "/api/2.0/mcp/functions/main/tools/shout", env.admin)
    assert [t.name for t in single.list_tools()] == ["main__tools__shout"]  # type: ignore[attr-defined]


def test_vector_search_tools(env: Env) -> None:
    mcp = client(env, "/api/2.0/mcp/vector-search/main/tools", env.admin)
    assert [t.name for t in mcp.list_tools()] == ["main__tools__docs"]  # type: ignore[attr-defined]
    result = mcp.call_tool("main__tools__docs", {"query": "rate limits", "num_results": 1})  # type: ignore[attr-defined]
    rows = json.loads(result.content[0].text)
    assert [r["id"] for r in rows] == [1] and "Rate limits" in rows[0]["text"]


def test_grants_are_enforced_for_the_caller(env: Env) -> None:
    functions = client(env, "/api/2.0/mcp/functions/main/tools", env.bob)
    assert functions.list_tools() == []  # type: ignore[attr-defined]  # bob cannot see the function
    denied = functions.call_tool("main__tools__shout", {"word": "x"})  # type: ignore[attr-defined]
    said = denied.content[0].text
    assert denied.isError and ("PERMISSION_DENIED" in said or "DOES_NOT_EXIST" in said), said
    search = client(env, "/api/2.0/mcp/vector-search/main/tools", env.bob)
    assert search.list_tools() == []  # type: ignore[attr-defined]
    blocked = search.call_tool("main__tools__docs", {"query": "rate"})  # type: ignore[attr-defined]
    assert blocked.isError
    admin = env.ws.principal("admin@example.com")
    env.ws.catalog.update_grants(admin, "function", "main.tools.shout",
                                 [{"principal": "bob@example.com", "add": ["EXECUTE"]}])
    import time

    time.sleep(1.1)  # grants apply to cached decisions within a second
    assert functions.call_tool("main__tools__shout", {"word": "ok"}).content[0].text == "OK!"  # type: ignore[attr-defined]


def test_transport_details(env: Env) -> None:
    import httpx

    url = env.url + "/api/2.0/mcp/functions/main/tools"
    h = {"authorization": f"Bearer {env.admin}", "accept": "application/json, text/event-stream"}
    assert httpx.get(url, headers=h).status_code == 405
    assert httpx.post(url, headers=h, json={"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202
    unknown = httpx.post(url, headers=h, json={"jsonrpc": "2.0", "id": 7, "method": "nope"}).json()
    assert unknown["error"]["code"] == -32601 and unknown["id"] == 7
    assert httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).status_code == 401
