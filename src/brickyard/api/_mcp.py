"""Managed MCP servers over streamable HTTP: ``/api/2.0/mcp/functions/...`` and ``/api/2.0/mcp/vector-search/...``,
and the proxy to external MCP servers registered as UC connections (``/api/2.0/mcp/external/{connection}``).
One JSON-RPC message per POST, answered as JSON; GET and DELETE answer 405 (the server keeps no sessions and
sends nothing on its own)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ._http import JSON, Api, Req

MCP = "/api/2.0/mcp"


def register(api: Api, ws: Any) -> None:
    servers = ws.mcp

    def answer(req: Req, kind: str) -> Response:
        out = servers.handle(req.user, kind, req.path["catalog"], req.path["schema"], req.path.get("item"),
                             req.body)
        if out is None:
            return Response(status_code=202)
        return JSON(out, headers={"mcp-protocol-version": str(req.headers.get("mcp-protocol-version") or "")})

    for kind, prefix in (("functions", MCP + "/functions"), ("vector-search", MCP + "/vector-search")):
        def post(req: Req, kind: str = kind) -> Response:
            return answer(req, kind)

        def refuse(req: Req) -> Response:
            return Response(status_code=405, headers={"allow": "POST"})

        post.__name__ = f"mcp_{kind.replace('-', '_')}"
        refuse.__name__ = f"mcp_{kind.replace('-', '_')}_no_stream"
        for path in (prefix + "/{catalog}/{schema}", prefix + "/{catalog}/{schema}/{item}"):
            api.route("POST", path, policy="authenticated")(post)
            api.route("GET", path, policy="authenticated", body="none")(refuse)
            api.route("DELETE", path, policy="authenticated", body="none")(refuse)

    external = ws.mcp_external

    def proxy(req: Req) -> Response:
        from starlette.responses import StreamingResponse

        body = req.file.read() if req.file is not None else b""
        upstream = external.forward(req.user, req.path["connection"], req.request.method, req.headers, body)
        keep = {k: v for k, v in upstream.headers.items() if k.lower() in ("content-type", "mcp-session-id")}

        def chunks() -> Any:
            try:
                yield from upstream.iter_raw()
            finally:
                upstream.close()
                upstream.extensions["brickyard_client"].close()

        return StreamingResponse(chunks(), status_code=upstream.status_code, headers=keep)

    for method in ("POST", "GET", "DELETE"):
        api.route(method, MCP + "/external/{connection}", policy="authenticated",
                  body="file" if method == "POST" else "none")(proxy)
