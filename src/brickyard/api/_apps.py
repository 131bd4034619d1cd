"""Apps API (``/api/2.0/apps``) and app permissions, as ``w.apps`` calls them. The apps themselves are reached
through :mod:`._apps_proxy` at ``/apps/<name>/``."""

from __future__ import annotations

from typing import Any

from starlette.responses import PlainTextResponse

from ._http import Api, Req
from ._permissions import level_list, permission_routes


def register(api: Api, ws: Any) -> None:
    apps = ws.apps
    base = "/api/2.0/apps"

    @api.route("POST", base, policy="authenticated")
    def create_app(req: Req) -> dict[str, Any]:
        no_compute = str(req.query.get("no_compute", "")).lower() == "true"
        return apps.create(req.user, req.body or {}, no_compute=no_compute)  # type: ignore[no-any-return]

    @api.route("GET", base, policy="authenticated")
    def list_apps(req: Req) -> dict[str, Any]:
        return apps.list(req.user, page_token=req.query.get("page_token"),  # type: ignore[no-any-return]
                         page_size=req.int_arg("page_size") or 50)

    @api.route("GET", base + "/{name}", policy="authenticated")
    def get_app(req: Req) -> dict[str, Any]:
        return apps.get(req.user, req.path["name"])  # type: ignore[no-any-return]

    @api.route("PATCH", base + "/{name}", policy="authenticated")
    def update_app(req: Req) -> dict[str, Any]:
        return apps.update(req.user, req.path["name"], req.body or {})  # type: ignore[no-any-return]

    @api.route("DELETE", base + "/{name}", policy="authenticated")
    def delete_app(req: Req) -> dict[str, Any]:
        return apps.delete(req.user, req.path["name"])  # type: ignore[no-any-return]

    @api.route("POST", base + "/{name}/start", policy="authenticated")
    def start_app(req: Req) -> dict[str, Any]:
        return apps.start_app(req.user, req.path["name"])  # type: ignore[no-any-return]

    @api.route("POST", base + "/{name}/stop", policy="authenticated")
    def stop_app(req: Req) -> dict[str, Any]:
        return apps.stop_app(req.user, req.path["name"])  # type: ignore[no-any-return]

    @api.route("POST", base + "/{name}/deployments", policy="authenticated")
    def deploy_app(req: Req) -> dict[str, Any]:
        return apps.deploy(req.user, req.path["name"], req.body or {})  # type: ignore[no-any-return]

    @api.route("GET", base + "/{name}/deployments", policy="authenticated")
    def list_app_deployments(req: Req) -> dict[str, Any]:
        return apps.deployments(req.user, req.path["name"],  # type: ignore[no-any-return]
                                page_token=req.query.get("page_token"), page_size=req.int_arg("page_size") or 50)

    @api.route("GET", base + "/{name}/deployments/{deployment_id}", policy="authenticated")
    def get_app_deployment(req: Req) -> dict[str, Any]:
        return apps.deployment(req.user, req.path["name"], req.path["deployment_id"])  # type: ignore[no-any-return]

    @api.route("GET", base + "/{name}/logs", policy="authenticated")
    def app_logs(req: Req) -> PlainTextResponse:
        """Brickyard's own: the last lines the app printed (Databricks shows them on the app's /logz page)."""
        return PlainTextResponse(apps.logs(req.user, req.path["name"], lines=req.int_arg("lines") or 200))

    def app_levels(p: Any, name: Any) -> dict[str, Any]:
        apps.permissions(p, name)  # 404 unless the caller may see the app
        return level_list(("CAN_USE", "Can use the app"), ("CAN_MANAGE", "Can manage the app"))

    permission_routes(api, "apps", "name", get=apps.permissions, set_=apps.set_permissions, levels=app_levels)
