"""Build the ASGI application for a workspace: every route comes from the registry, with its policy."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import (
    _apps,
    _core_routes,
    _evaluation,
    _files,
    _ingest,
    _jobs,
    _mcp,
    _review,
    _scim,
    _serving,
    _sql,
    _tracking,
    _uc,
    _ui,
    _vectorsearch,
    _workspace_files,
)
from ._access import AccessLog
from ._apps_proxy import AppsProxy
from ._http import Api, error_body, make_endpoint

ROUTERS = (_core_routes, _scim, _uc, _files, _sql, _serving, _vectorsearch, _ingest, _tracking, _evaluation, _review,
           _mcp, _workspace_files, _jobs, _apps, _ui)  # the pages last: the API's routes are matched first
DATA_PLANE = "/serving-endpoints/"
VS_QUERY = "/api/2.0/vector-search/indexes/{index}/query"
_VS_PREFIX, _VS_SUFFIX = VS_QUERY.split("{index}")


def build_api(workspace: Any) -> Api:
    api = Api()
    for module in ROUTERS:
        module.register(api, workspace)
    return api


def create_app(workspace: Any, api: Api | None = None) -> Starlette:
    api = api or build_api(workspace)
    routes = []
    # Starlette tries routes in order with a regular expression each, so the data plane goes first (at
    # 130 routes, reaching the last one cost more than 10% of a proxied request's CPU). HEAD routes come
    # before GET ones, which Starlette would otherwise send HEAD requests to.
    for spec in sorted(api.routes, key=lambda s: (not s.path.startswith(DATA_PLANE), s.method != "HEAD")):
        routes.append(Route(spec.path, make_endpoint(spec, workspace), methods=[spec.method]))

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body("ENDPOINT_NOT_FOUND", f"No API found for '{request.method} "
                                       f"{request.url.path[:200]}'", request), status_code=404)

    async def not_allowed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body("BAD_REQUEST", f"method {request.method} is not allowed on "
                                       f"{request.url.path[:200]}", request), status_code=405)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await workspace.serving.aclose()  # upstream sessions belong to this event loop
        await apps.aclose()
        access.close()

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed}, lifespan=lifespan)
    app.state.workspace = workspace
    app.state.api = api
    fast = {spec.path: make_endpoint(spec, workspace) for spec in api.routes
            if spec.method == "POST" and (spec.path.startswith(DATA_PLANE) or spec.path == VS_QUERY)}
    apps = AppsProxy(DataPlaneFirst(app, fast), workspace)
    access = AccessLog(apps, workspace.settings.access_log)
    return access  # type: ignore[return-value]


class DataPlaneFirst:
    """Sends the hot POST routes (the serving data plane, vector search queries) straight to their endpoints,
    past Starlette's router and middleware (a tenth of a proxied request's CPU); everything else goes to
    the Starlette app. The endpoints are the registry's own (same policy, authentication and errors)."""

    def __init__(self, app: Starlette, endpoints: dict[str, Any]) -> None:
        self.app = app
        self.state = app.state
        self.routes = app.routes
        self._fixed = {path: ep for path, ep in endpoints.items() if "{" not in path}
        self._invocations = endpoints.get(DATA_PLANE + "{name}/invocations")
        self._vs_query = endpoints.get(VS_QUERY)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            endpoint, params = self._fixed.get(path), {}
            if endpoint is None and path.startswith(DATA_PLANE) and path.endswith("/invocations"):
                name = path[len(DATA_PLANE):-len("/invocations")]
                if name and "/" not in name and self._invocations is not None:
                    endpoint, params = self._invocations, {"name": name}
            elif endpoint is None and path.startswith(_VS_PREFIX) and path.endswith(_VS_SUFFIX):
                index = path[len(_VS_PREFIX):-len(_VS_SUFFIX)]
                if index and "/" not in index and self._vs_query is not None:
                    endpoint, params = self._vs_query, {"index": index}
            if endpoint is not None:
                scope = {**scope, "path_params": params, "app": self.app}
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
