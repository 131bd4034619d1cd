"""Review apps as ``databricks-agents`` calls them (``/api/2.0/managed-evals/review-apps/...``), and the pages a
reviewer opens in a browser: ``/login``, ``/logout``, ``/ml/review-v2/{app}/tasks/labeling/{session}`` and a review
app's chat with its deployed agents, ``/ml/review-v2/{app}/chat``."""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import quote

from starlette.responses import HTMLResponse, Response

from ..core.errors import BrickyardError, InvalidParameterValue, PermissionDenied
from ..evaluation._review_html import HEADERS, chat_page, csrf_token, item_page, login_page, session_page
from ._http import SESSION_COOKIE, Api, Req

RA = "/api/2.0/managed-evals/review-apps"
PAGE = "/ml/review-v2/{review_app_id}/tasks/labeling/{session_id}"
CHAT = "/ml/review-v2/{review_app_id}/chat"  # the review_app_url agents.deploy prints
SESSION_SECONDS = 8 * 3600


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=HEADERS)


def _form(req: Req, name: str) -> str:
    values = (req.body or {}).get(name) or [""]
    return str(values[0])


def _check_csrf(req: Req) -> None:
    token = req.request.cookies.get(SESSION_COOKIE) or ""
    if not token or not hmac.compare_digest(_form(req, "csrf"), csrf_token(token)):
        raise PermissionDenied("the form's CSRF token is missing or wrong; reload the page and try again")


def _history(raw: str) -> list[dict[str, str]]:
    """The conversation a chat form carries: a list of {role: user|assistant, content} (else a fresh start)."""
    if not raw or len(raw) > 200_000:
        return []
    try:
        turns = json.loads(raw)
    except ValueError:
        return []
    if not isinstance(turns, list) or len(turns) > 100 or not all(
            isinstance(t, dict) and t.get("role") in ("user", "assistant") and isinstance(t.get("content"), str)
            for t in turns):
        return []
    return [{"role": t["role"], "content": t["content"]} for t in turns]


def _local(path: str) -> str:
    """A redirect target that stays on this server (no scheme, no host, no //)."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else "/"


def register(api: Api, ws: Any) -> None:
    apps = ws.review_apps

    # -- REST ----------------------------------------------------------------------------------------
    @api.route("POST", RA, policy="authenticated")
    def create_review_app(req: Req) -> dict[str, Any]:
        return apps.create(req.user, req.body)  # type: ignore[no-any-return]

    @api.route("GET", RA, policy="authenticated")
    def list_review_apps(req: Req) -> dict[str, Any]:
        return apps.list(req.user, req.query.get("filter"), req.query.get("page_token"))  # type: ignore[no-any-return]

    @api.route("GET", RA + "/{review_app_id}", policy="authenticated")
    def get_review_app(req: Req) -> dict[str, Any]:
        return apps.get(req.user, req.path["review_app_id"])  # type: ignore[no-any-return]

    @api.route("PATCH", RA + "/{review_app_id}", policy="authenticated")
    def update_review_app(req: Req) -> dict[str, Any]:
        return apps.update(req.user, req.path["review_app_id"], req.body,  # type: ignore[no-any-return]
                           req.query.get("update_mask"))

    @api.route("POST", RA + "/{review_app_id}/labeling-sessions", policy="authenticated")
    def create_labeling_session(req: Req) -> dict[str, Any]:
        return apps.create_session(req.user, req.path["review_app_id"], req.body)  # type: ignore[no-any-return]

    @api.route("GET", RA + "/{review_app_id}/labeling-sessions", policy="authenticated")
    def list_labeling_sessions(req: Req) -> dict[str, Any]:
        return apps.list_sessions(req.user, req.path["review_app_id"], req.query.get("page_token"),  # type: ignore[no-any-return]
                                  req.query.get("page_size"))

    @api.route("PATCH", RA + "/{review_app_id}/labeling-sessions/{session_id}", policy="authenticated")
    def update_labeling_session(req: Req) -> dict[str, Any]:
        return apps.update_session(req.user, req.path["review_app_id"], req.path["session_id"],  # type: ignore[no-any-return]
                                   req.body, req.query.get("update_mask"))

    @api.route("DELETE", RA + "/{review_app_id}/labeling-sessions/{session_id}", policy="authenticated")
    def delete_labeling_session(req: Req) -> dict[str, Any]:
        apps.delete_session(req.user, req.path["review_app_id"], req.path["session_id"])
        return {}

    @api.route("GET", RA + "/{review_app_id}/labeling-sessions/{session_id}/items", policy="authenticated")
    def list_labeling_items(req: Req) -> dict[str, Any]:
        return apps.list_items(req.user, req.path["review_app_id"], req.path["session_id"],  # type: ignore[no-any-return]
                               req.query.get("page_token"), req.query.get("page_size"))

    @api.route("POST", RA + "/{review_app_id}/labeling-sessions/{session_id}/items:batchCreate",
               policy="authenticated")
    def create_labeling_items(req: Req) -> dict[str, Any]:
        return apps.create_items(req.user, req.path["review_app_id"], req.path["session_id"],  # type: ignore[no-any-return]
                                 req.body)

    # -- sign-in -------------------------------------------------------------------------------------
    @api.route("GET", "/login", policy="public")
    def login_form(req: Req) -> Response:
        return _html(login_page(_local(req.query.get("next") or "/")))

    @api.route("POST", "/login", policy="public", body="form")
    def login(req: Req) -> Response:
        target = _local(_form(req, "next") or "/")
        try:
            who = ws.identity.authenticate(_form(req, "token").strip())
        except BrickyardError:
            return _html(login_page(target, "That token is not valid."), 401)
        if who.limited:  # an app's or a served model's narrower credential must not become a full session
            return _html(login_page(target, "That token is limited to an app or a model; sign in with your own."),
                         401)
        session, _ = ws.identity.create_token(who.id, lifetime_seconds=SESSION_SECONDS, comment="browser session",
                                              kind="web")
        response = Response(status_code=303, headers={"Location": target, **HEADERS})
        response.set_cookie(SESSION_COOKIE, session, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                            secure=req.request.url.scheme == "https", path="/")
        return response

    @api.route("POST", "/logout", policy="browser", body="form")
    def logout(req: Req) -> Response:
        _check_csrf(req)
        ws.identity.revoke_secret_token(req.request.cookies.get(SESSION_COOKIE) or "")
        response = Response(status_code=303, headers={"Location": "/login", **HEADERS})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- review pages --------------------------------------------------------------------------------
    def base(req: Req) -> str:
        return f"/ml/review-v2/{quote(req.path['review_app_id'])}/tasks/labeling/{quote(req.path['session_id'])}"

    def csrf(req: Req) -> str:
        return csrf_token(req.request.cookies.get(SESSION_COOKIE) or "")

    def chat_agents(req: Req) -> list[dict[str, Any]]:
        return [a for a in apps.agents_of(req.path["review_app_id"])
                if ws.serving.can_view(req.user, a["endpoint"])]

    @api.route("GET", CHAT, policy="browser")
    def chat_view(req: Req) -> Response:
        return _html(chat_page(chat_agents(req), None, [], req.user.name, csrf(req), req.request.url.path))

    @api.route("POST", CHAT, policy="browser", body="form")
    def chat_send(req: Req) -> Response:
        _check_csrf(req)
        agents = chat_agents(req)
        chosen = next((a for a in agents if a["agent_name"] == _form(req, "agent")), None)
        history = _history(_form(req, "history"))
        question = _form(req, "question").strip()
        page = req.request.url.path

        def again(error: str, status: int) -> Response:
            return _html(chat_page(agents, chosen and chosen["agent_name"], history, req.user.name, csrf(req), page,
                                   error=error), status)

        if chosen is None:
            return again("Pick one of the review app's agents.", 400)
        if not question or len(question) > 20_000:
            return again("Write a message (at most 20,000 characters).", 400)
        messages = [*history, {"role": "user", "content": question}]
        try:
            answer, trace_id = ws.evaluations.ask(req.user, chosen["endpoint"], messages)
        except BrickyardError as exc:
            return again(f"{exc.error_code}: {exc.message}", exc.http_status)
        return _html(chat_page(agents, chosen["agent_name"], [*messages, {"role": "assistant", "content": answer}],
                               req.user.name, csrf(req), page, trace_id=trace_id))

    @api.route("GET", PAGE, policy="browser")
    def session_view(req: Req) -> Response:
        view = apps.page(req.user, req.path["review_app_id"], req.path["session_id"])
        return _html(session_page(view, req.user.name, csrf(req), base(req)))

    @api.route("GET", PAGE + "/items/{item_id}", policy="browser")
    def item_view(req: Req) -> Response:
        view = apps.item(req.user, req.path["review_app_id"], req.path["session_id"], req.path["item_id"])
        return _html(item_page(view, req.user.name, csrf(req), base(req)))

    @api.route("POST", PAGE + "/items/{item_id}", policy="browser", body="form")
    def item_submit(req: Req) -> Response:
        _check_csrf(req)
        form = req.body or {}
        labels = {k.removeprefix("label:"): v for k, v in form.items() if k.startswith("label:")}
        comments = {k.removeprefix("comment:"): str(v[0]) for k, v in form.items() if k.startswith("comment:")}
        app_id, session_id, item_id = req.path["review_app_id"], req.path["session_id"], req.path["item_id"]
        try:
            following = apps.submit(req.user, app_id, session_id, item_id,
                                    {k: v if len(v) > 1 else v[0] for k, v in labels.items()}, comments)
        except InvalidParameterValue as exc:
            view = apps.item(req.user, app_id, session_id, item_id)
            return _html(item_page(view, req.user.name, csrf(req), base(req), exc.message), 400)
        target = f"{base(req)}/items/{quote(following)}" if following else base(req)
        return Response(status_code=303, headers={"Location": target, **HEADERS})
