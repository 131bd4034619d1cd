"""The workspace in a browser, served by ``brickyard serve`` at ``/`` on the API's own origin.

Server-rendered pages (Jinja2 templates in ``templates/``, one stylesheet and one small script of our own in
``static/``), signed in with the session cookie of ``/login`` and checked with the signed-in user's grants by
the same library calls the REST API makes. The URLs the Databricks UI and its clients use resolve here
(``/explore/data/...``, ``/ml/experiments/{id}/runs/{id}``, ``/ml/endpoints/{name}``).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from .._http import Api, Req
from . import _apps, _catalog, _experiments, _jobs, _serving, _sql
from ._pages import Pages
from ._render import render, static_file


def register(api: Api, ws: Any) -> None:
    pages = Pages(api, ws)

    @api.route("GET", "/static/{name}", policy="public")
    def static(req: Req) -> Response:
        return static_file(req.path["name"])

    @pages.get("/", "home")
    def home(req: Req, ctx: dict[str, Any]) -> Response:
        catalogs, _ = ws.catalog.list(req.user, "catalog", None, max_results=50)
        return render("home.html", **ctx, title="Workspace", catalogs=catalogs,
                      endpoints=[e["name"] for e in ws.serving.list(req.user)][:50])

    for module in (_catalog, _sql, _serving, _experiments, _jobs, _apps):
        module.register(pages, ws)
