"""The way into apps. An app answers at two places, as on Databricks where each app has a host of its own:

- ``/apps/<name>/...`` on the workspace's origin, for programs with a bearer token (the SDK, Gradio's client,
  MCP clients): authenticated like the API, CAN_USE needed, the prefix taken off.
- ``http://<name>.localhost:<port>/`` for browsers: an origin of its own (browsers send ``*.localhost`` to the
  loopback), so an app's pages and scripts can reach neither the workspace's pages (the session cookie is the
  workspace host's, ``SameSite=Strict``) nor another app. A signed-in browser opening ``/apps/<name>/`` is sent
  there with a one-time code (60 s, good for that app only) that becomes a cookie of that host only, limited to
  that app, for an hour. Cookie requests to ``/apps/<name>/`` that are not page loads are refused.

The app gets who is asking, never the caller's credentials: the ``Authorization`` header and Brickyard's
cookies are removed, headers a client sent as ``X-Forwarded-*`` are dropped, and the proxy sets
``X-Forwarded-Email``, ``X-Forwarded-User``, ``X-Forwarded-Preferred-Username``, ``X-Forwarded-Host``,
``X-Forwarded-Proto``, ``X-Forwarded-Prefix`` (on the workspace's origin) and ``X-Real-Ip``; and
``X-Forwarded-Access-Token`` when the app has user authorization (a token of the caller limited to the app's
``user_api_scopes``). An app cannot set Brickyard's cookies. Responses stream (server-sent events, MCP's
streamable HTTP). WebSocket connections are not proxied."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import anyio
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ..core.errors import (
    BrickyardError,
    PayloadTooLarge,
    PermissionDenied,
    TemporarilyUnavailable,
    Unauthenticated,
)
from ._access import SCOPE_KEY
from ._http import SESSION_COOKIE, bearer, error_body, error_response, host_allowed, origin_allowed

log = logging.getLogger("brickyard.apps")

PREFIX = "/apps/"
HANDOFF = "/.brickyard/handoff"
APP_COOKIE = "brickyard_app_session"
APP_SESSION_SECONDS = 3600
HANDOFF_SECONDS = 60
OURS = {SESSION_COOKIE, APP_COOKIE}
HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
       "transfer-encoding", "upgrade", "host", "authorization", "cookie"}
APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$")


def app_of_host(host: str) -> str | None:
    """The app a ``Host`` header names (``<name>.localhost[:port]``), or None."""
    name = host.rsplit(":", 1)[0].lower() if not host.startswith("[") else ""
    if name.endswith(".localhost") and name.count(".") == 1:
        label = name[: -len(".localhost")]
        return label if APP_NAME.match(label) else None
    return None


def _navigation(request: Request) -> bool:
    """A browser loading a page (not a script's request)."""
    if request.method != "GET":
        return False
    mode = request.headers.get("sec-fetch-mode")
    return mode == "navigate" if mode is not None else "text/html" in request.headers.get("accept", "")


class AppsProxy:
    def __init__(self, app: Any, workspace: Any) -> None:
        self.app = app
        self.ws = workspace
        self._client: httpx.AsyncClient | None = None

    def __getattr__(self, name: str) -> Any:  # state, routes, ... of the wrapped app
        return getattr(self.app, name)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        host = next((v for k, v in scope.get("headers", []) if k == b"host"), b"")
        # every request passes here (the serving data plane too): a bytes test first, the parsing only for apps
        own = app_of_host(host.decode("latin-1")) if b".localhost" in host else None
        if own is None and not scope.get("path", "").startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003, "reason": "WebSocket connections to apps are not "
                        "proxied by Brickyard"})
            return
        request = Request(scope, receive)
        try:
            if own is not None:
                response = await self._app_origin(own, request, scope, receive, send)
            else:
                response = await self._workspace_origin(request, scope, receive, send)
        except BrickyardError as exc:
            response = error_response(exc, request)
        if response is not None:
            await response(scope, receive, send)

    # -- /apps/<name>/ on the workspace's origin ---------------------------------------------------------------
    async def _workspace_origin(self, request: Request, scope: Any, receive: Any, send: Any) -> Any:
        settings = self.ws.settings
        name, slash, rest = scope["path"][len(PREFIX):].partition("/")
        if not name:
            return JSONResponse(error_body("ENDPOINT_NOT_FOUND", "no app named in the path: /apps/<name>/", request),
                                status_code=404)
        if not slash:  # /apps/x -> /apps/x/, as a browser needs for relative links
            return RedirectResponse(f"{PREFIX}{quote(name)}/{_query(scope)}", status_code=307)
        if not host_allowed(request, settings.host):
            return JSONResponse(error_body("BAD_REQUEST", "unknown Host header", request), status_code=421)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not origin_allowed(request, settings.host):
            raise PermissionDenied("cross-origin requests are not allowed")
        identity = self.ws.identity
        if request.headers.get("authorization"):
            token = bearer(request)
            principal = identity.cached(token) or await anyio.to_thread.run_sync(identity.authenticate, token)
            return await self._forward(principal, name, "/" + rest + _query(scope), request, scope, receive, send,
                                       prefix=f"{PREFIX}{name}")
        session = request.cookies.get(SESSION_COOKIE) or ""
        if not _navigation(request):
            if not session:
                bearer(request)  # the 401 that says how to authenticate
            raise PermissionDenied(f"in a browser, app {name!r} runs at its own origin: open "
                                   f"{self._app_url(request, name)}; programs send 'Authorization: Bearer <token>'")
        try:
            principal = identity.cached(session) or await anyio.to_thread.run_sync(identity.authenticate, session)
        except BrickyardError:
            return RedirectResponse("/login?next=" + quote(scope["path"] + _query(scope), safe=""), status_code=303)
        self._unscoped(principal)
        await anyio.to_thread.run_sync(self.ws.apps.get, principal, name)  # 404 unless the user may use it
        code, _ = await anyio.to_thread.run_sync(lambda: identity.create_token(
            principal.id, lifetime_seconds=HANDOFF_SECONDS, kind="handoff", comment=f"open app {name}",
            api_scopes=[f"handoff:{name}"]))
        target = quote("/" + rest + _query(scope), safe="/?&=%:@+,;")
        url = f"{self._app_url(request, name)}{HANDOFF[1:]}?code={code}&next={quote(target, safe='')}"
        return _interstitial(name, url)

    def _app_url(self, request: Request, name: str) -> str:
        host = request.headers.get("host", "")
        port = host.rsplit(":", 1)[1] if ":" in host and not host.endswith("]") else ""
        return f"{request.url.scheme}://{name}.localhost{':' + port if port else ''}/"

    # -- <name>.localhost: the app's own origin ----------------------------------------------------------------
    async def _app_origin(self, name: str, request: Request, scope: Any, receive: Any, send: Any) -> Any:
        identity = self.ws.identity
        path = scope["path"]
        if path == HANDOFF:
            return await self._handoff(name, request)
        if path == f"{PREFIX}{name}" or path.startswith(f"{PREFIX}{name}/"):
            path = path[len(PREFIX) + len(name):] or "/"  # links an app made for the workspace's path
        if request.headers.get("authorization"):
            token = bearer(request)
            principal = identity.cached(token) or await anyio.to_thread.run_sync(identity.authenticate, token)
        else:
            cookie = request.cookies.get(APP_COOKIE) or ""
            try:
                if not cookie:
                    raise Unauthenticated("no app session")
                principal = identity.cached(cookie) or await anyio.to_thread.run_sync(identity.authenticate, cookie)
                if principal.api_scopes != frozenset({f"app:{name}"}):
                    raise Unauthenticated("this session is not for this app")
            except BrickyardError:
                if not _navigation(request):
                    raise Unauthenticated(f"sign in: open {self._workspace_url(request)}{PREFIX}{name}/ in a "
                                          "browser, or send 'Authorization: Bearer <token>'") from None
                return RedirectResponse(f"{self._workspace_url(request)}{PREFIX}{quote(name)}{path}{_query(scope)}",
                                        status_code=303)
            principal = replace(principal, api_scopes=None)  # the user, for the app
        return await self._forward(principal, name, path + _query(scope), request, scope, receive, send, prefix=None)

    async def _handoff(self, name: str, request: Request) -> Response:
        identity = self.ws.identity
        code = request.query_params.get("code") or ""
        try:
            principal = await anyio.to_thread.run_sync(identity.authenticate, code)
        except BrickyardError:
            principal = None
        if principal is None or principal.api_scopes != frozenset({f"handoff:{name}"}):
            raise Unauthenticated(f"this sign-in link is not valid (any more); open "
                                  f"{self._workspace_url(request)}{PREFIX}{name}/ again")
        await anyio.to_thread.run_sync(identity.revoke_secret_token, code)  # once
        session, _ = await anyio.to_thread.run_sync(lambda: identity.create_token(
            principal.id, lifetime_seconds=APP_SESSION_SECONDS, kind="web", comment=f"app {name} browser session",
            api_scopes=[f"app:{name}"]))
        target = request.query_params.get("next") or "/"
        if not target.startswith("/") or target.startswith("//") or "\\" in target:
            target = "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(APP_COOKIE, session, max_age=APP_SESSION_SECONDS, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https", path="/")
        return response

    def _workspace_url(self, request: Request) -> str:
        host = self.ws.settings.host
        host = "localhost" if host in ("0.0.0.0", "::", "") else (f"[{host}]" if ":" in host else host)  # noqa: S104
        port = request.headers.get("host", "").rsplit(":", 1)
        return f"{request.url.scheme}://{host}" + (f":{port[1]}" if len(port) == 2 else "")

    # -- to the app --------------------------------------------------------------------------------------------
    @staticmethod
    def _unscoped(principal: Any) -> None:
        if principal.limited:
            raise PermissionDenied("a scoped credential (a served model's, an app's token for its user, an app's "
                                   "browser session) cannot call apps")

    async def _forward(self, principal: Any, name: str, target: str, request: Request, scope: Any, receive: Any,
                       send: Any, *, prefix: str | None) -> Any:
        settings = self.ws.settings
        access = scope.get(SCOPE_KEY)
        if access is not None:
            access["principal"], access["route"] = principal.name, "/apps/{name}/{path}"
        self._unscoped(principal)
        if request.method not in ("GET", "HEAD", "OPTIONS") and prefix is None:
            origin = request.headers.get("origin")
            if origin is not None and origin.lower().rstrip("/") != f"{request.url.scheme}://{request.headers.get('host', '')}".lower():
                raise PermissionDenied("cross-origin requests are not allowed")
        port, user_token = await anyio.to_thread.run_sync(self.ws.apps.route, principal, name)
        headers = [(k, v) for k, v in request.headers.items()
                   if k.lower() not in HOP and not k.lower().startswith("x-forwarded-") and k.lower() != "x-real-ip"]
        cookies = [c for c in request.headers.get("cookie", "").split(";")
                   if c.strip() and c.strip().split("=", 1)[0] not in OURS]
        if cookies:
            headers.append(("cookie", ";".join(cookies).strip()))
        client = scope.get("client") or ("", 0)
        headers += [("x-forwarded-email", principal.name),
                    ("x-forwarded-user", f"{principal.id}@{self.ws.workspace_id}"),
                    ("x-forwarded-preferred-username", principal.display_name or principal.name),
                    ("x-forwarded-host", request.headers.get("host", "")), ("x-forwarded-proto", request.url.scheme),
                    ("x-real-ip", str(client[0]))]
        if prefix is not None:
            headers.append(("x-forwarded-prefix", prefix))
        if user_token is not None:
            headers.append(("x-forwarded-access-token", user_token))
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
                if key in HOP:
                    continue
                value = v.decode("latin-1")
                if key == "set-cookie":
                    value = _cookie_for_app(value, prefix)
                    if value is None:
                        continue
                if key == "location" and prefix and value.startswith("/") and not value.startswith(f"{prefix}/"):
                    value = f"{prefix}{value}"
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

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _query(scope: Any) -> str:
    return f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""


def _cookie_for_app(value: str, prefix: str | None) -> str | None:
    """An app's ``Set-Cookie``: never one of Brickyard's cookies; on the workspace's origin, kept below the app's
    path (so an app's cookies reach only that app)."""
    name = value.split("=", 1)[0].strip()
    if name in OURS:
        return None
    if prefix is None:
        return value
    parts = [p for p in value.split(";") if not p.strip().lower().startswith("path=")]
    return "; ".join(p.strip() for p in parts) + f"; Path={prefix}/"


def _interstitial(name: str, url: str) -> Response:
    """The page that sends a browser on to the app's origin. A page rather than a redirect: a redirect would end
    a sign-in form's chain at another origin, which the pages' ``form-action 'self'`` policy stops."""
    from html import escape

    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Opening {escape(name)}</title>'
            f'<meta http-equiv="refresh" content="0;url={escape(url)}"></head><body><p>Opening app '
            f'<a href="{escape(url)}">{escape(name)}</a>...</p></body></html>')
    return Response(body, media_type="text/html", headers={
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})
