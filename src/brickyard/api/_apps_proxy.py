"""The way into apps: ``/apps/<name>/...`` is authenticated like the rest of the workspace (a bearer token, or
a browser's session cookie), needs CAN_USE on the app, and is passed to the app's private loopback port with
the prefix taken off, as the app would see it at the root of its own host on Databricks.

The app gets who is asking, never the caller's credentials: the ``Authorization`` header and the session
cookie are removed, headers a client sent as ``X-Forwarded-*`` are dropped, and the proxy sets
``X-Forwarded-Email``, ``X-Forwarded-User``, ``X-Forwarded-Preferred-Username``, ``X-Forwarded-Host``,
``X-Forwarded-Proto``, ``X-Forwarded-Prefix`` and ``X-Real-Ip``; ``X-Forwarded-Access-Token`` too when the app
has user authorization (a token of the signed-in user limited to the app's ``user_api_scopes``). Responses
stream (server-sent events, MCP's streamable HTTP). WebSocket connections are not proxied."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse

from ..core.errors import BrickyardError, PayloadTooLarge, PermissionDenied, TemporarilyUnavailable
from ._access import SCOPE_KEY
from ._http import SESSION_COOKIE, bearer, error_body, error_response, host_allowed, origin_allowed

log = logging.getLogger("brickyard.apps")

PREFIX = "/apps/"
HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
       "transfer-encoding", "upgrade", "host", "authorization", "cookie"}


class AppsProxy:
    def __init__(self, app: Any, workspace: Any) -> None:
        self.app = app
        self.ws = workspace
        self._client: httpx.AsyncClient | None = None

    def __getattr__(self, name: str) -> Any:  # state, routes, ... of the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan" or not scope.get("path", "").startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003, "reason": "WebSocket connections to apps are not "
                        "proxied by Brickyard"})
            return
        request = Request(scope, receive)
        try:
            response = await self._forward(request, scope, receive, send)
        except BrickyardError as exc:
            response = error_response(exc, request)
        if response is not None:
            await response(scope, receive, send)

    async def _forward(self, request: Request, scope: Any, receive: Any, send: Any) -> Any:
        settings = self.ws.settings
        name, slash, rest = scope["path"][len(PREFIX):].partition("/")
        if not name:
            return JSONResponse(error_body("ENDPOINT_NOT_FOUND", "no app named in the path: /apps/<name>/", request),
                                status_code=404)
        if not slash:  # /apps/x -> /apps/x/, as a browser needs for relative links
            query = f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
            return RedirectResponse(f"{PREFIX}{quote(name)}/{query}", status_code=307)
        if not host_allowed(request, settings.host):
            return JSONResponse(error_body("BAD_REQUEST", "unknown Host header", request), status_code=421)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not origin_allowed(request, settings.host):
            raise PermissionDenied("cross-origin requests are not allowed")
        principal = await self._caller(request)
        if principal is None:
            return RedirectResponse("/login?next=" + quote(scope["path"], safe=""), status_code=303)
        access = scope.get(SCOPE_KEY)
        if access is not None:
            access["principal"], access["route"] = principal.name, "/apps/{name}/{path}"
        if principal.scope is not None or principal.api_scopes is not None:
            raise PermissionDenied("a scoped credential (a served model's, or an app's token for its user) cannot "
                                   "call apps")
        port, user_token = await anyio.to_thread.run_sync(self.ws.apps.route, principal, name)
        headers = [(k, v) for k, v in request.headers.items()
                   if k.lower() not in HOP and not k.lower().startswith("x-forwarded-") and k.lower() != "x-real-ip"]
        cookies = [c for c in request.headers.get("cookie", "").split(";")
                   if c.strip() and c.strip().split("=", 1)[0] != SESSION_COOKIE]
        if cookies:
            headers.append(("cookie", ";".join(cookies).strip()))
        client = scope.get("client") or ("", 0)
        headers += [("x-forwarded-email", principal.name), ("x-forwarded-user",
                                                            f"{principal.id}@{self.ws.workspace_id}"),
                    ("x-forwarded-preferred-username", principal.display_name or principal.name),
                    ("x-forwarded-host", request.headers.get("host", "")), ("x-forwarded-proto", request.url.scheme),
                    ("x-forwarded-prefix", f"{PREFIX}{name}"), ("x-real-ip", str(client[0]))]
        if user_token is not None:
            headers.append(("x-forwarded-access-token", user_token))
        target = "/" + rest + (f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else "")
        limit = settings.max_upload_bytes

        async def body() -> AsyncIterator[bytes]:
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
                if chunk:
                    yield chunk
                if not message.get("more_body"):
                    return

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=5.0), follow_redirects=False,
                                             trust_env=False)
        has_body = request.method not in ("GET", "HEAD") or "content-length" in request.headers
        upstream = self._client.build_request(request.method, f"http://127.0.0.1:{port}{target}", headers=headers,
                                              content=body() if has_body else None)
        try:
            reply = await self._client.send(upstream, stream=True)
        except httpx.HTTPError as exc:
            raise TemporarilyUnavailable(f"app {name!r} is not answering on its port ({type(exc).__name__}); see "
                                         "its logs", retry_after=1) from None
        try:
            out = []
            for k, v in reply.headers.raw:
                key = k.decode("latin-1").lower()
                if key in HOP and key not in ("cookie",):
                    continue
                value = v.decode("latin-1")
                if key == "location" and value.startswith("/") and not value.startswith(f"{PREFIX}{name}/"):
                    value = f"{PREFIX}{name}{value}"
                out.append((key.encode("latin-1"), value.encode("latin-1")))
            await send({"type": "http.response.start", "status": reply.status_code, "headers": out})
            try:
                async for chunk in reply.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except asyncio.CancelledError:
                return None  # the server is shutting down with a stream (server-sent events) still open
            except httpx.HTTPError:
                pass  # the app went away mid-answer: the response ends here
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:
                pass  # the client went away first
        finally:
            await reply.aclose()
        return None

    async def _caller(self, request: Request) -> Any:
        """The principal, by its bearer token or its browser's session cookie; None sends a browser to sign in."""
        identity = self.ws.identity
        if request.headers.get("authorization"):
            token = bearer(request)
            return identity.cached(token) or await anyio.to_thread.run_sync(identity.authenticate, token)
        token = request.cookies.get(SESSION_COOKIE) or ""
        page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
        try:
            if not token:
                bearer(request)  # raises the 401 that says how to authenticate
            return identity.cached(token) or await anyio.to_thread.run_sync(identity.authenticate, token)
        except BrickyardError:
            if page:
                return None
            raise

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
