"""Build the ASGI application for a workspace: every route comes from the registry, with its policy."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import _core_routes, _files, _ingest, _scim, _serving, _sql, _uc, _vectorsearch
from ._http import Api, make_endpoint

ROUTERS = (_core_routes, _scim, _uc, _files, _sql, _serving, _vectorsearch, _ingest)
DATA_PLANE = "/serving-endpoints/"


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
        return JSONResponse({"error_code": "ENDPOINT_NOT_FOUND",
                             "message": f"No API found for '{request.method} {request.url.path}'"}, status_code=404)

    async def not_allowed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error_code": "BAD_REQUEST",
                             "message": f"method {request.method} is not allowed on {request.url.path}"},
                            status_code=405)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await workspace.serving.aclose()  # upstream sessions belong to this event loop

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed}, lifespan=lifespan)
    app.state.workspace = workspace
    app.state.api = api
    return app
