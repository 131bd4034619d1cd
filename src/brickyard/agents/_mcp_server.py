"""Databricks-managed MCP servers, served by Brickyard over MCP's streamable HTTP transport:

* ``/api/2.0/mcp/functions/{catalog}/{schema}[/{function}]``: Unity Catalog functions as tools;
* ``/api/2.0/mcp/vector-search/{catalog}/{schema}[/{index}]``: one retrieval tool per vector index.

The server is stateless: every POST carries one JSON-RPC message and gets its answer as
``application/json`` (notifications get 202), which MCP's streamable HTTP transport allows; there are
no server-initiated messages, so GET answers 405. Tools are listed and called as the authenticated
caller: a function needs EXECUTE, an index SELECT, exactly as through the REST API. Tool names are
``catalog__schema__name``, as Databricks names them.
"""

from __future__ import annotations

import json
from typing import Any

from ..catalog import Principal
from ..core.errors import (
    BrickyardError,
    InvalidParameterValue,
    NotFound,
    PermissionDenied,
    RateLimited,
    TemporarilyUnavailable,
)
from ..functions import Functions, tool_name, tool_spec

PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
SERVER_VERSION = "0.1.0"

# JSON-RPC error codes
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602

RETRIEVER_SCHEMA = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "What to look for, in plain words"},
        "num_results": {"type": "integer", "description": "How many documents to return (1-50, default 5)"},
        "filters": {"type": "object", "description": "Metadata filters, e.g. {\"source\": \"docs/api.md\"}"},
    },
    "required": ["query"],
    "additionalProperties": False,
}


class ManagedMCP:
    def __init__(self, functions: Functions, vectorsearch: Any) -> None:
        self.functions = functions
        self.vectorsearch = vectorsearch

    # -- tools ---------------------------------------------------------------------------------------
    def tools(self, p: Principal, kind: str, catalog: str, schema: str, item: str | None) -> list[dict[str, Any]]:
        where = f"{catalog}.{schema}"
        if kind == "functions":
            objs = [self.functions.get(p, f"{where}.{item}")] if item else self.functions.list(p, where)
            out = []
            for obj in objs:
                spec = tool_spec(obj)
                out.append({"name": spec["name"], "description": spec["description"],
                            "inputSchema": spec["parameters"]})
            return out
        indexes = self.vectorsearch.indexes_in(p, where)
        if item:
            indexes = [(n, c) for n, c in indexes if n == f"{where}.{item}"]
            if not indexes:
                raise NotFound(f"vector index {where}.{item} does not exist or you cannot query it")
        return [{"name": tool_name(name), "description": comment or f"Search the vector index {name} for documents "
                 "relevant to a query.", "inputSchema": RETRIEVER_SCHEMA} for name, comment in indexes]

    def call(self, p: Principal, kind: str, catalog: str, schema: str, item: str | None, name: str,
             arguments: dict[str, Any]) -> dict[str, Any]:
        full = name.replace("__", ".")
        if full.rsplit(".", 1)[0] != f"{catalog}.{schema}" or (item and full.rsplit(".", 1)[1] != item):
            raise InvalidParameterValue(f"tool {name!r} is not served at this address")
        if kind == "functions":
            result = self.functions.execute(p, full, arguments)
            value = result["value"]
            text = value if isinstance(value, str) else json.dumps(value)
        else:
            rows = self.vectorsearch.retrieve(p, full, str(arguments.get("query") or ""),
                                              num_results=int(arguments.get("num_results") or 5),
                                              filters=arguments.get("filters"))
            text = json.dumps(rows, default=str)
        return {"content": [{"type": "text", "text": text}], "isError": False}

    # -- JSON-RPC --------------------------------------------------------------------------------------
    def handle(self, p: Principal, kind: str, catalog: str, schema: str, item: str | None,
               message: Any) -> dict[str, Any] | None:
        """Answer one JSON-RPC message (None for a notification)."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or not isinstance(message.get("method"), str):
            return _error(message.get("id") if isinstance(message, dict) else None, INVALID_REQUEST,
                          "expected one JSON-RPC 2.0 request")
        ident = message.get("id")
        method = message["method"]
        params = message.get("params") or {}
        if "id" not in message:  # a notification, such as notifications/initialized
            return None
        try:
            if method == "initialize":
                asked = params.get("protocolVersion")
                version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
                label = f"{kind} {catalog}.{schema}" + (f".{item}" if item else "")
                return _result(ident, {"protocolVersion": version, "capabilities": {"tools": {"listChanged": False}},
                                       "serverInfo": {"name": f"brickyard-{kind}", "title": f"Brickyard {label}",
                                                      "version": SERVER_VERSION},
                                       "instructions": f"Unity Catalog {label}, as the calling user."})
            if method == "ping":
                return _result(ident, {})
            if method == "tools/list":
                return _result(ident, {"tools": self.tools(p, kind, catalog, schema, item)})
            if method == "tools/call":
                name, arguments = params.get("name"), params.get("arguments") or {}
                if not isinstance(name, str) or not isinstance(arguments, dict):
                    return _error(ident, INVALID_PARAMS, "tools/call needs a tool name and an arguments object")
                try:
                    return _result(ident, self.call(p, kind, catalog, schema, item, name, arguments))
                except (RateLimited, TemporarilyUnavailable):
                    raise  # the server is busy, not the tool wrong: the HTTP answer says when to retry
                except (PermissionDenied, NotFound, InvalidParameterValue, BrickyardError) as exc:
                    # a tool that fails answers with isError, so the model can read why and adapt
                    return _result(ident, {"content": [{"type": "text", "text": f"{exc.error_code}: {exc.message}"}],
                                           "isError": True})
            if method in ("resources/list", "prompts/list"):
                return _result(ident, {method.split("/")[0]: []})
            return _error(ident, METHOD_NOT_FOUND, f"method {method!r} is not offered by this server")
        except (RateLimited, TemporarilyUnavailable):
            raise
        except BrickyardError as exc:
            return _error(ident, INVALID_PARAMS, f"{exc.error_code}: {exc.message}")


def _result(ident: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "result": result}


def _error(ident: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}


class ExternalMCP:
    """``/api/2.0/mcp/external/{connection}``: a proxy to an MCP server registered as a Unity Catalog HTTP
    connection. The caller needs USE_CONNECTION; the connection's bearer token (a secret option, never shown)
    is added on the way out; the target is checked like an external model's (no private or loopback
    address unless an admin allowed the host in ``BRICKYARD_ALLOWED_MODEL_HOSTS``). Requests and answers,
    including server-sent event streams and the ``Mcp-Session-Id`` header, pass through unchanged."""

    FORWARDED = ("content-type", "accept", "mcp-session-id", "mcp-protocol-version", "last-event-id")

    def __init__(self, catalog: Any, secrets: Any, allowed_hosts: frozenset[str]) -> None:
        self.catalog = catalog
        self.secrets = secrets
        self.allowed_hosts = allowed_hosts

    def target(self, p: Principal, name: str) -> tuple[str, dict[str, str]]:
        """(URL, headers to add) for connection ``name``, if ``p`` may use it."""
        from ..models._openai import check_url

        obj = self.catalog.require(p, "USE_CONNECTION", "connection", name, action="useMcpConnection")
        if obj.spec.get("connection_type") != "HTTP":
            raise InvalidParameterValue(f"connection {name} is a {obj.spec.get('connection_type')} connection; "
                                        "an MCP server is an HTTP connection")
        options = obj.spec.get("options") or {}
        host = str(options.get("host") or "").rstrip("/")
        if not host.startswith(("http://", "https://")):
            raise InvalidParameterValue(f"connection {name} needs a host option such as https://mcp.example.com")
        port = str(options.get("port") or "")
        path = "/" + str(options.get("base_path") or "").lstrip("/")
        url = host + (f":{port}" if port and host.count(":") == 1 else "") + path
        check_url(url, self.allowed_hosts)  # refuse early, with a clear message; forward() pins the address
        headers = {}
        token = self.secrets.get(obj.id).get("bearer_token")
        if token:
            headers["authorization"] = f"Bearer {token}"
        return url, headers

    def forward(self, p: Principal, name: str, method: str, headers: dict[str, str], body: bytes) -> Any:
        """Send the request on; returns an open ``httpx`` response for the caller to stream and close."""
        import httpx

        from ..models._openai import pinned_http_client

        url, extra = self.target(p, name)
        out = {k: v for k, v in headers.items() if k.lower() in self.FORWARDED}
        out.update(extra)
        client = pinned_http_client(url, self.allowed_hosts, timeout=httpx.Timeout(60.0, connect=10.0))
        try:
            request = client.build_request(method, url, headers=out, content=body or None)
            response = client.send(request, stream=True)
        except httpx.HTTPError as exc:
            client.close()
            raise UpstreamUnavailable(f"the MCP server of connection {name} did not answer: {type(exc).__name__}") \
                from None
        response.extensions["brickyard_client"] = client
        return response


    def session(self, p: Principal, name: str) -> ExternalSession:
        """A client session with connection ``name``'s MCP server, as ``p`` (initialized; close it after use)."""
        return ExternalSession(self, p, name)


class ExternalSession:
    """The client side of MCP's streamable HTTP transport, for the server's own use of an external MCP server
    (the Playground's tools): JSON-RPC requests sent through :meth:`ExternalMCP.forward` (the connection's
    checks, its token and the pinned address), answers read as JSON or from a server-sent event stream, and
    the ``Mcp-Session-Id`` the server gives kept for the requests that follow."""

    ACCEPT = "application/json, text/event-stream"
    MAX_ANSWER = 4 << 20

    def __init__(self, external: ExternalMCP, p: Principal, name: str) -> None:
        self.external, self.p, self.name = external, p, name
        self.session_id: str | None = None
        self._next = 0
        self.request("initialize", {"protocolVersion": PROTOCOL_VERSIONS[0], "capabilities": {},
                                    "clientInfo": {"name": "brickyard-playground", "version": SERVER_VERSION}})
        self._send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def tools(self) -> list[dict[str, Any]]:
        return list(self.request("tools/list", {}).get("tools") or [])

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return self.request("tools/call", {"name": tool, "arguments": arguments})

    def close(self) -> None:
        if self.session_id:
            try:
                self.external.forward(self.p, self.name, "DELETE", self._headers(), b"").close()
            except BrickyardError:
                pass

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        answer = self._send({"jsonrpc": "2.0", "id": self._next, "method": method, "params": params})
        if answer is None:
            raise UpstreamUnavailable(f"the MCP server of connection {self.name} did not answer {method}")
        if "error" in answer:
            message = str((answer["error"] or {}).get("message") or answer["error"])[:500]
            raise InvalidParameterValue(f"the MCP server of connection {self.name} refused {method}: {message}")
        return dict(answer.get("result") or {})

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": self.ACCEPT,
                   "mcp-protocol-version": PROTOCOL_VERSIONS[0]}
        if self.session_id:
            headers["mcp-session-id"] = self.session_id
        return headers

    def _send(self, message: dict[str, Any]) -> dict[str, Any] | None:
        response = self.external.forward(self.p, self.name, "POST", self._headers(), json.dumps(message).encode())
        try:
            if response.status_code >= 400:
                raise UpstreamUnavailable(f"the MCP server of connection {self.name} answered HTTP "
                                          f"{response.status_code}")
            self.session_id = response.headers.get("mcp-session-id") or self.session_id
            if "id" not in message:
                return None
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > self.MAX_ANSWER:
                    raise UpstreamUnavailable(f"the MCP server of connection {self.name} answered too much")
                if "text/event-stream" in response.headers.get("content-type", "") and b"\n\n" in body:
                    found = _event_answer(body, message["id"])
                    if found is not None:
                        return found
            if "text/event-stream" in response.headers.get("content-type", ""):
                return _event_answer(body, message["id"])
            try:
                answer = json.loads(body or b"null")
            except ValueError:
                raise UpstreamUnavailable(f"the MCP server of connection {self.name} sent no JSON") from None
            return answer if isinstance(answer, dict) else None
        finally:
            response.close()
            client = response.extensions.get("brickyard_client")
            if client is not None:
                client.close()


def _event_answer(body: bytes, ident: Any) -> dict[str, Any] | None:
    """The JSON-RPC answer to ``ident`` among the server-sent events received so far."""
    for event in body.decode("utf-8", "replace").split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in event.splitlines() if line.startswith("data:"))
        if not data:
            continue
        try:
            message = json.loads(data)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") == ident and ("result" in message or "error" in message):
            return message
    return None


class UpstreamUnavailable(BrickyardError):
    error_code = "TEMPORARILY_UNAVAILABLE"
    http_status = 502
