"""How a workspace page is registered: signed-in users only (the session cookie; ``/login`` otherwise), CSRF
checked on every form post, and errors shown as a page with the right status (a table the user may not read
is a 403 page, not an empty one). Handlers get the request and the context every template needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from starlette.responses import PlainTextResponse, Response

from ...core.errors import BrickyardError
from .._http import SESSION_COOKIE, Api, Req
from ._render import HEADERS, check_csrf, csrf_token, error_page

Handler = Callable[[Req, dict[str, Any]], Response]


class Pages:
    def __init__(self, api: Api, ws: Any) -> None:
        self.api = api
        self.ws = ws

    def context(self, req: Req, section: str) -> dict[str, Any]:
        session = req.request.cookies.get(SESSION_COOKIE) or ""
        return {"user": req.user.name, "csrf": csrf_token(session), "section": section, "crumbs": [],
                "notice": req.query.get("notice") or "", "error": ""}

    def _wrap(self, fn: Handler, section: str, *, post: bool) -> Callable[[Req], Response]:
        def handler(req: Req) -> Response:
            ctx = self.context(req, section)
            try:
                if post:
                    check_csrf(req.request.cookies.get(SESSION_COOKIE) or "", form(req, "csrf"))
                return fn(req, ctx)
            except BrickyardError as exc:
                return error_page(exc, **{**ctx, "crumbs": []})
        handler.__name__ = f"ui_{fn.__name__}"
        return handler

    def get(self, path: str, section: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.api.route("GET", path, policy="browser")(self._wrap(fn, section, post=False))
            return fn
        return register

    def post(self, path: str, section: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.api.route("POST", path, policy="browser", body="form")(self._wrap(fn, section, post=True))
            return fn
        return register


    def upload(self, path: str, section: str) -> Callable[[Handler], Handler]:
        """A route the page's script posts raw bytes to (a file from disk): CSRF token in ``X-CSRF-Token``,
        errors as plain text for the script to show."""
        def register(fn: Handler) -> Handler:
            def handler(req: Req) -> Response:
                try:
                    check_csrf(req.request.cookies.get(SESSION_COOKIE) or "",
                               req.request.headers.get("x-csrf-token", ""))
                    return fn(req, self.context(req, section))
                except BrickyardError as exc:
                    return PlainTextResponse(f"{exc.error_code}: {exc.message}", status_code=exc.http_status,
                                             headers=HEADERS)
            handler.__name__ = f"ui_{fn.__name__}"
            self.api.route("POST", path, policy="browser", body="file")(handler)
            return fn
        return register


def form(req: Req, name: str, default: str = "") -> str:
    values = (req.body or {}).get(name) or [default]
    return str(values[0])


def redirect(path: str, notice: str = "") -> Response:
    target = path + (("&" if "?" in path else "?") + "notice=" + quote(notice) if notice else "")
    return Response(status_code=303, headers={"Location": target, **HEADERS})


def page_arg(req: Req, name: str = "page") -> int:
    try:
        return max(0, int(req.query.get(name) or 0))
    except ValueError:
        return 0
