"""The HTTP shell: a route registry where every route declares its access policy, request parsing
with size limits, authentication before the body is read, and one error format.

Policies:

* ``public``        no credentials (discovery documents, health, the OAuth token endpoint, which
                    checks client credentials itself);
* ``authenticated`` a valid bearer token; what the caller may touch is then decided by the catalog;
* ``admin``         a valid token of a metastore admin.

A route cannot be registered without a policy, and the server only serves registered routes; the
route-inventory test walks the registry to prove it.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..apps import scope_allows
from ..catalog import Principal
from ..core.errors import (
    BadRequest,
    BrickyardError,
    InvalidParameterValue,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    TemporarilyUnavailable,
    Unauthenticated,
)
from ._access import SCOPE_KEY, request_id

log = logging.getLogger("brickyard.api")
POLICIES = ("public", "authenticated", "admin", "browser")
SESSION_COOKIE = "brickyard_session"  # a browser's sign-in: a short-lived token, HttpOnly, SameSite=Strict
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


@dataclass
class Req:
    """What a handler gets: the caller, path and query parameters, the parsed JSON body (or a file).
    Query parameters and headers are copied out of the request only when a handler reads them."""

    request: Request
    principal: Principal | None
    path: dict[str, str]
    body: Any = None
    file: Any = None

    @functools.cached_property
    def query(self) -> dict[str, str]:
        return dict(self.request.query_params)

    @functools.cached_property
    def query_lists(self) -> dict[str, list[str]]:
        params = self.request.query_params
        return {k: params.getlist(k) for k in params}

    @functools.cached_property
    def headers(self) -> dict[str, str]:
        return dict(self.request.headers)

    @property
    def user(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def arg(self, name: str, default: Any = None) -> Any:
        """A parameter from the JSON body, else the query string."""
        if isinstance(self.body, dict) and name in self.body:
            return self.body[name]
        return self.query.get(name, default)

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise InvalidParameterValue(f"{name} must be an integer, got {str(value)[:40]!r}")
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):
            raise InvalidParameterValue(f"{name} must be an integer, got {str(value)[:40]!r}") from None

    def bool_arg(self, name: str, default: bool = False) -> bool:
        value = self.arg(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1"):
            return True
        if str(value).lower() in ("false", "0", ""):
            return False
        raise InvalidParameterValue(f"{name} must be true or false")

    def obj_arg(self, name: str) -> dict[str, Any]:
        """A JSON object parameter (absent: an empty one); anything else is the caller's mistake."""
        value = self.arg(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise InvalidParameterValue(f"{name} must be a JSON object")
        return value

    def list_arg(self, name: str) -> list[Any]:
        """A JSON array parameter (absent: an empty one); anything else is the caller's mistake."""
        value = self.arg(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidParameterValue(f"{name} must be a JSON array")
        return value

    def str_arg(self, name: str, default: str | None = None) -> str | None:
        value = self.arg(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise InvalidParameterValue(f"{name} must be a string")
        return value

    def require(self, name: str) -> Any:
        value = self.arg(name)
        if value is None or value == "":
            raise InvalidParameterValue(f"{name} is required")
        return value


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    handler: Callable[[Req], Any]
    policy: str
    body: str = "json"  # json | json64 (numbers as 64-bit ints and doubles, parsed fast) | file | none


class Api:
    """The registry every router module adds its routes to."""

    def __init__(self) -> None:
        self.routes: list[RouteSpec] = []

    def route(self, method: str, path: str, *, policy: str, body: str = "json") -> Callable[[Callable[[Req], Any]],
                                                                                           Callable[[Req], Any]]:
        """Register a handler. A plain function runs in a worker thread; an ``async def`` one runs on the
        event loop and must never block it (the data plane's proxy path)."""
        if policy not in POLICIES:
            raise ValueError(f"route {method} {path}: policy must be one of {POLICIES}")

        def deco(fn: Callable[[Req], Any]) -> Callable[[Req], Any]:
            for m in method.split("|"):
                self.routes.append(RouteSpec(m, path, fn, policy, body))
            return fn

        return deco


def error_body(error_code: str, message: str, request: Any = None) -> dict[str, Any]:
    """A Databricks error body; with the request's id as a ``google.rpc.RequestInfo`` detail (the SDK reads it)."""
    body: dict[str, Any] = {"error_code": error_code, "message": message}
    rid = request_id(request.scope) if request is not None else None
    if rid:
        body["details"] = [{"@type": "type.googleapis.com/google.rpc.RequestInfo", "request_id": rid,
                            "serving_data": ""}]
    return body


def error_response(exc: BrickyardError, request: Any = None) -> JSONResponse:
    headers = {}
    if isinstance(exc, RateLimited | TemporarilyUnavailable):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return JSONResponse(error_body(exc.error_code, exc.message, request), status_code=exc.http_status,
                        headers=headers)


def _json_default(o: Any) -> Any:
    if isinstance(o, bytes):
        return o.decode("utf-8", "replace")
    if hasattr(o, "isoformat"):
        return o.isoformat()
    return str(o)


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        try:  # NaN and infinities become null (the standard library would refuse them)
            return orjson.dumps(content, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # an integer beyond 64 bits, a lone surrogate, a type orjson will not hand on
            text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                              default=_json_default)
            try:
                return text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: \ud800 escapes are valid JSON, raw ones not UTF-8
                return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"),
                                  default=_json_default).encode("ascii")


def _parse_json(raw: bytes, *, fast: bool = False) -> Any:
    """The request body as JSON. ``fast`` (routes declared ``json64``, such as vector queries whose bodies
    are mostly floats) parses with orjson, which reads an integer beyond 64 bits as a float; any error
    is then reported by the standard parser, with its line and column."""
    if fast:
        try:
            return orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            pass
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid UTF-8") from None

    def no_constants(name: str) -> Any:
        raise BadRequest(f"the request body contains {name}, which is not valid JSON")

    try:
        return json.loads(text, parse_constant=no_constants)
    except RecursionError:
        raise BadRequest("the request body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                         error_code="MALFORMED_REQUEST") from None


def host_allowed(request: Request, bind_host: str) -> bool:
    """Refuse requests whose Host header names another machine (DNS rebinding) when bound to loopback."""
    if bind_host not in LOCAL_HOSTS:
        return True
    host = request.headers.get("host", "")
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return name.lower() in LOCAL_HOSTS


def origin_allowed(request: Request, bind_host: str) -> bool:
    """The CSRF rule for state-changing requests: a request that carries an ``Origin`` (a browser's) must
    come from this server's own origin, scheme, host and port alike. A page on another localhost port (a
    notebook, a dev server) is another origin. Clients that are not browsers send no Origin and pass; the
    bearer token is what authenticates them. (``Origin: null``, sent from sandboxed frames and files, is
    refused.)"""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
    return origin.strip().lower().rstrip("/") == own


def bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("no credentials: send 'Authorization: Bearer <token>' (create one with "
                              "'brickyard token create')")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return value.strip()


#: what a served model's scoped credential may call: the data-plane and read routes of the resources a model
#: can declare (serving endpoints, vector indexes, functions, tables, connections through MCP, SQL); the
#: catalog and the endpoints then check each object against the scope
SCOPED_ROUTES = (
    ("POST", "/serving-endpoints/"), ("GET", "/api/2.0/serving-endpoints/"), ("GET", "/api/2.0/vector-search/"),
    ("POST", "/api/2.0/vector-search/indexes/"), ("GET", "/api/2.1/unity-catalog/functions/"),
    ("GET", "/api/2.1/unity-catalog/tables/"), ("GET", "/api/2.1/unity-catalog/connections/"),
    ("POST", "/api/2.0/mcp/"), ("GET", "/api/2.0/mcp/"), ("POST", "/api/2.0/sql/statements"),
    ("GET", "/api/2.0/sql/statements"), ("GET", "/api/2.0/preview/scim/v2/Me"),
)


def scoped_route(method: str, path: str) -> bool:
    return any(method == m and path.startswith(prefix) for m, prefix in SCOPED_ROUTES) and not (
        method == "POST" and path.startswith("/api/2.0/vector-search/indexes/")
        and not path.endswith(("/query", "/query-next-page", "/scan")))


def make_endpoint(spec: RouteSpec, workspace: Any) -> Callable[[Request], Any]:
    settings = workspace.settings
    limit = settings.max_request_bytes

    async def endpoint(request: Request) -> Response:
        access = request.scope.get(SCOPE_KEY)
        if access is not None:
            access["route"] = spec.path
        try:
            if not host_allowed(request, settings.host):
                return JSON(error_body("BAD_REQUEST", "unknown Host header; Brickyard answers to 127.0.0.1 and "
                                       "localhost only (start it with --host to change that)", request),
                            status_code=421)
            if request.method not in ("GET", "HEAD", "OPTIONS") and not origin_allowed(request, settings.host):
                raise PermissionDenied("cross-origin requests are not allowed")
            principal = None
            if spec.policy == "browser":  # pages: the session cookie (sign in at /login); a GET without one is sent there
                token = request.cookies.get(SESSION_COOKIE) or ""
                try:
                    principal = workspace.identity.cached(token) or \
                        await anyio.to_thread.run_sync(workspace.identity.authenticate, token)
                    if principal.limited:
                        raise Unauthenticated("a limited credential is not a browser session; sign in")
                except BrickyardError:
                    if request.method == "GET":
                        from urllib.parse import quote

                        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                        return Response(status_code=303, headers={"Location": "/login?next=" + quote(target, safe="")})
                    raise
                if access is not None:
                    access["principal"] = principal.name
            elif spec.policy != "public":
                token = bearer(request)
                principal = workspace.identity.cached(token)  # no database, no thread hop when fresh
                if principal is None:
                    principal = await anyio.to_thread.run_sync(workspace.identity.authenticate, token)
                if access is not None:
                    access["principal"] = principal.name
                if spec.policy == "admin" and not principal.is_admin:
                    raise PermissionDenied(f"{principal.name} is not a workspace admin")
                if principal.api_scopes is not None and not scope_allows(principal.api_scopes, request.method,
                                                                        request.url.path):
                    raise PermissionDenied(f"this token acts for {principal.name} through an app, limited to the "
                                           f"scopes {', '.join(sorted(principal.api_scopes))}; {request.method} "
                                           f"{request.url.path[:120]} needs another scope (the app's "
                                           "user_api_scopes)")
                if principal.scope is not None and not scoped_route(spec.method, spec.path):
                    raise PermissionDenied("this credential is scoped to a served model's declared resources; "
                                           f"{spec.method} {spec.path} is not a route it may use")
            declared = request.headers.get("content-length")
            if declared is not None:
                try:
                    if int(declared) > limit and spec.body != "file":
                        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
                except ValueError:
                    raise BadRequest("invalid Content-Length header") from None
            req = Req(request=request, principal=principal, path=dict(request.path_params))
            if spec.body == "file":
                if declared is not None and int(declared) > settings.max_upload_bytes:
                    raise PayloadTooLarge(f"the upload is larger than {settings.max_upload_bytes} bytes")
                req.file = await _spool(request, settings.max_upload_bytes)
            elif spec.body == "form":  # an HTML form (urlencoded): field -> list of values
                from urllib.parse import parse_qs

                raw = bytearray()
                async for chunk in request.stream():
                    raw.extend(chunk)
                    if len(raw) > limit:
                        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
                try:
                    req.body = parse_qs(bytes(raw).decode("utf-8"), keep_blank_values=True, max_num_fields=2000)
                except (UnicodeDecodeError, ValueError):
                    raise BadRequest("the form is not valid UTF-8 urlencoded data") from None
            elif spec.body in ("json", "json64"):
                raw = bytearray()
                async for chunk in request.stream():
                    raw.extend(chunk)
                    if len(raw) > limit:
                        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
                req.body = _parse_json(bytes(raw), fast=spec.body == "json64")
                if req.body is not None and not isinstance(req.body, dict):
                    raise BadRequest("the request body must be a JSON object")
            try:
                if inspect.iscoroutinefunction(spec.handler):  # the data plane: stays on the event loop
                    result = await spec.handler(req)
                else:
                    result = await anyio.to_thread.run_sync(spec.handler, req)
            finally:
                if req.file is not None:
                    req.file.close()
            if isinstance(result, Response):
                return result
            return JSON({} if result is None else result)
        except BrickyardError as exc:
            return error_response(exc, request)
        except RecursionError:
            return error_response(BadRequest("the request is nested too deeply"), request)
        except Exception:  # noqa: BLE001 - the last line of defence: log, never leak internals
            rid = request_id(request.scope)
            log.exception("unhandled error in %s %s (request %s)", spec.method, spec.path, rid)
            return JSON(error_body("INTERNAL_ERROR", f"internal error; see the server log (request {rid})", request),
                        status_code=500)

    endpoint.__name__ = f"{spec.method.lower()}_{spec.handler.__name__}"
    endpoint.brickyard_spec = spec  # type: ignore[attr-defined]
    return endpoint


async def _spool(request: Request, limit: int) -> Any:
    """Stream an upload into a temporary file (memory up to 8 MiB, disk after), at most ``limit`` bytes."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115 - closed by the endpoint
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the upload is larger than {limit} bytes")
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool
