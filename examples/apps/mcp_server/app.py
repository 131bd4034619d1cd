"""A custom MCP server deployed as an app: tools an agent reaches through the workspace at
``/apps/<name>/mcp`` (streamable HTTP), with the caller's identity checked by the workspace before the request
gets here. ``whoami`` tells who is calling (``X-Forwarded-Email``); ``count_rows`` runs SQL *as the caller*
with the token the workspace forwards for apps with user authorization (the ``sql`` scope); ``word_count``
needs no one."""

from __future__ import annotations

import os
import re

from databricks.sdk import WorkspaceClient
from databricks.sdk.core import Config
from mcp.server.fastmcp import Context, FastMCP

mcp = FastMCP("docs-tools", host="127.0.0.1", port=int(os.environ.get("DATABRICKS_APP_PORT", "8000")),
              stateless_http=True, json_response=True)


def _headers(ctx: Context) -> dict[str, str]:
    request = ctx.request_context.request
    return {k.lower(): v for k, v in request.headers.items()} if request is not None else {}


@mcp.tool()
def whoami(ctx: Context) -> str:
    """The user or service principal calling this tool, as the workspace identified it."""
    return _headers(ctx).get("x-forwarded-email", "unknown")


@mcp.tool()
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


@mcp.tool()
def count_rows(table: str, ctx: Context) -> str:
    """Count the rows of a table the caller may read (a three-part name such as main.docs.chunks)."""
    if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+){2}", table):
        return "table must be a three-part name such as main.docs.chunks"
    token = _headers(ctx).get("x-forwarded-access-token")
    if not token:
        return "this app needs user authorization (user_api_scopes: [sql]) to act for its caller"
    w = WorkspaceClient(config=Config(host=os.environ["DATABRICKS_HOST"], token=token, auth_type="pat"))
    result = w.statement_execution.execute_statement(statement=f"SELECT count(*) FROM {table}",  # noqa: S608 - checked
                                                     warehouse_id=os.environ.get("WAREHOUSE_ID", "brickyard"),
                                                     wait_timeout="30s")
    if result.status.error is not None:
        return f"error: {result.status.error.message}"
    return str(result.result.data_array[0][0])


if __name__ == "__main__":
    mcp.run(transport="streamable-http")
