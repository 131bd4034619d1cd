"""Apps in the browser (``/compute/apps``): the apps the user may use with their state and link, and an app's
page with its resources, scopes, deployments and (for managers) its last log lines, Stop/Start and Deploy
again; refreshed while a deployment is in progress. The apps themselves are at ``/apps/<name>/``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from .._http import Req
from ._pages import Pages, redirect
from ._render import render


def register(pages: Pages, ws: Any) -> None:
    apps = ws.apps

    @pages.get("/compute/apps", "apps")
    def app_list(req: Req, ctx: dict[str, Any]) -> Response:
        return render("apps.html", **ctx, title="Apps", apps=apps.list(req.user, page_size=200)["apps"])

    @pages.get("/compute/apps/{name}", "apps")
    def app_page(req: Req, ctx: dict[str, Any]) -> Response:
        found = apps.get(req.user, req.path["name"])
        deployments = apps.deployments(req.user, found["name"], page_size=20)["app_deployments"]
        manager = apps.can_manage(req.user, found["name"])
        logs = apps.logs(req.user, found["name"], lines=200) if manager else None
        busy = "pending_deployment" in found or found["app_status"]["state"] == "DEPLOYING"
        return render("app.html", **{**ctx, "crumbs": [("/compute/apps", "Apps")]}, title=found["name"], app=found,
                      deployments=deployments, logs=logs, manager=manager, busy=busy,
                      path=f"/apps/{quote(found['name'], safe='')}/")

    @pages.post("/compute/apps/{name}/stop", "apps")
    def stop(req: Req, ctx: dict[str, Any]) -> Response:
        apps.stop_app(req.user, req.path["name"])
        return redirect(f"/compute/apps/{quote(req.path['name'], safe='')}", "stopping")

    @pages.post("/compute/apps/{name}/start", "apps")
    def start(req: Req, ctx: dict[str, Any]) -> Response:
        apps.start_app(req.user, req.path["name"])
        return redirect(f"/compute/apps/{quote(req.path['name'], safe='')}", "starting")

    @pages.post("/compute/apps/{name}/deploy", "apps")
    def deploy(req: Req, ctx: dict[str, Any]) -> Response:
        apps.deploy(req.user, req.path["name"], {})  # the source of the active deployment, as it is now
        return redirect(f"/compute/apps/{quote(req.path['name'], safe='')}", "deploying")
