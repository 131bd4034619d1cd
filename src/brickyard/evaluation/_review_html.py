"""The review pages a reviewer opens in a browser: sign-in, a labeling session's items, one item with its
question, retrieved chunks, answer and tool calls, and the form of the session's label schemas.

Plain HTML forms, no script. Every value that comes from a trace, a dataset or a user is escaped
(``html.escape``), so a chunk holding ``<script>`` shows as text. The pages are sent with a Content-Security-
Policy that allows no script at all, only this module's stylesheet (by its hash) and forms posting to the
same origin.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape
from typing import Any
from urllib.parse import quote

STYLE = ("body{font-family:system-ui,sans-serif;max-width:56rem;margin:1.5rem auto;padding:0 1rem;color:#222}"
         "pre,.box{background:#f5f5f2;border:1px solid #ddd;border-radius:4px;padding:.6rem;white-space:pre-wrap;"
         "overflow-wrap:anywhere}label{display:block;font-weight:600;margin-top:1rem}.muted{color:#666}"
         "table{border-collapse:collapse}td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}"
         "textarea{width:100%;min-height:4rem}button{margin-top:1rem;padding:.4rem 1.2rem}.err{color:#a00}")
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "Cache-Control": "no-store", "X-Frame-Options": "DENY"}


def csrf_token(session_token: str) -> str:
    """The form token of a browser session: derived from its secret cookie, which a cross-site page cannot read."""
    return hashlib.sha256(("brickyard-csrf:" + session_token).encode()).hexdigest()[:40]


def _page(title: str, body: str, user: str | None = None, csrf: str = "") -> str:
    who = (f"<form method=\"post\" action=\"/logout\" class=\"muted\">Signed in as {escape(user)} "
           f"<input type=\"hidden\" name=\"csrf\" value=\"{escape(csrf)}\"><button>Sign out</button></form>"
           ) if user else ""
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{who}<h1>{escape(title)}</h1>{body}</body></html>")


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, indent=2, default=str)


def login_page(next_path: str, error: str | None = None) -> str:
    err = f"<p class=\"err\">{escape(error)}</p>" if error else ""
    body = (f"{err}<p>Sign in with a personal access token (create one with <code>brickyard token create</code>). "
            "The page keeps a session of its own for 8 hours; the token itself is not stored in the browser.</p>"
            f"<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"{escape(next_path)}\">"
            "<label for=\"token\">Personal access token</label><input id=\"token\" name=\"token\" type=\"password\" "
            "autocomplete=\"off\" size=\"50\"><button type=\"submit\">Sign in</button></form>")
    return _page("Brickyard: sign in", body)


def session_page(view: dict[str, Any], user: str, csrf: str, base: str) -> str:
    s = view["session"]
    done = sum(1 for i in view["items"] if i["state"] == "COMPLETED")
    rows = "".join(f"<tr><td>{n + 1}</td><td><a href=\"{escape(base)}/items/{quote(i['item_id'])}\">"
                   f"{escape(i['question'] or '(no question)')}</a></td><td>{escape(i['state'])}</td></tr>"
                   for n, i in enumerate(view["items"]))
    pending = next((i for i in view["items"] if i["state"] == "PENDING"), None)
    start = (f"<p><a href=\"{escape(base)}/items/{quote(pending['item_id'])}\">Label the next pending item</a></p>"
             if pending else "<p>Every item is labelled. Thank you.</p>")
    body = (f"<p class=\"muted\">{done} of {len(view['items'])} items labelled</p>{start}"
            f"<table><tr><th>#</th><th>Question</th><th>State</th></tr>{rows}</table>")
    return _page(f"Labeling session: {s['name']}", body, user, csrf)


def _field(schema: dict[str, Any], mine: Any) -> str:
    name = f"label:{schema['name']}"
    fid = "f-" + hashlib.sha1(schema["name"].encode()).hexdigest()[:10]  # noqa: S324 - an element id, not security
    label = (f"<label for=\"{fid}\">{escape(schema['title'])} <span class=\"muted\">({escape(schema['type'].lower())})"
             f"</span></label>")
    hint = f"<p class=\"muted\">{escape(schema['instruction'])}</p>" if schema.get("instruction") else ""
    if "categorical" in schema:
        opts = "".join(f"<option{' selected' if mine == o else ''} value=\"{escape(o)}\">{escape(o)}</option>"
                       for o in schema["categorical"]["options"])
        control = f"<select id=\"{fid}\" name=\"{escape(name)}\"><option value=\"\">(choose)</option>{opts}</select>"
    elif "categorical_list" in schema:
        chosen = set(mine or [])
        control = "".join(f"<div><input type=\"checkbox\" name=\"{escape(name)}\" value=\"{escape(o)}\""
                          f"{' checked' if o in chosen else ''}> {escape(o)}</div>"
                          for o in schema["categorical_list"]["options"])
    elif "numeric" in schema:
        lo, hi = schema["numeric"].get("min_value"), schema["numeric"].get("max_value")
        bounds = (f" min=\"{lo}\"" if lo is not None else "") + (f" max=\"{hi}\"" if hi is not None else "")
        value = "" if mine is None else escape(str(mine))
        control = f"<input id=\"{fid}\" type=\"number\" step=\"any\" name=\"{escape(name)}\" value=\"{value}\"{bounds}>"
    elif "text_list" in schema:
        value = "\n".join(str(v) for v in mine) if isinstance(mine, list) else ""
        control = (f"<textarea id=\"{fid}\" name=\"{escape(name)}\" placeholder=\"one per line\">{escape(value)}"
                   "</textarea>")
    else:
        control = f"<textarea id=\"{fid}\" name=\"{escape(name)}\">{escape(_text(mine))}</textarea>"
    comment = (f"<textarea name=\"{escape('comment:' + schema['name'])}\" placeholder=\"comment (optional)\">"
               "</textarea>") if schema.get("enable_comment") else ""
    return label + hint + control + comment


def item_page(view: dict[str, Any], user: str, csrf: str, base: str, error: str | None = None) -> str:
    chunks = "".join(f"<div class=\"box\"><div class=\"muted\">{escape(str(c.get('doc_uri') or ''))}</div>"
                     f"{escape(c.get('content') or '')}</div>" for c in view["chunks"]) or \
        "<p class=\"muted\">No retrieved documents in this trace.</p>"
    tools = "".join(f"<div class=\"box\"><b>{escape(str(t['name']))}</b>({escape(_text(t['inputs']))}) &rarr; "
                    f"{escape(_text(t['outputs']))}</div>" for t in view["tool_calls"])
    expected = "".join(f"<div class=\"box\"><b>{escape(k)}</b>: {escape(_text(v))}</div>"
                       for k, v in view["expectations"].items())
    fields = "".join(_field(s, view["mine"].get(s["name"])) for s in view["schemas"])
    err = f"<p class=\"err\">{escape(error)}</p>" if error else ""
    body = (f"<p><a href=\"{escape(base)}\">&larr; all items</a> &middot; state: {escape(view['state'])}</p>{err}"
            f"<h2>Question</h2><pre>{escape(_text(view['question']))}</pre>"
            f"<h2>Retrieved chunks</h2>{chunks}"
            + (f"<h2>Tool calls</h2>{tools}" if tools else "")
            + f"<h2>Answer</h2><pre>{escape(_text(view['answer']))}</pre>"
            + (f"<h2>Expectations</h2>{expected}" if expected else "")
            + f"<h2>Your labels</h2><form method=\"post\"><input type=\"hidden\" name=\"csrf\" value=\"{escape(csrf)}\">"
            f"{fields}<button type=\"submit\">Submit</button></form>")
    return _page("Review an answer", body, user, csrf)


def chat_page(agents: list[dict[str, Any]], chosen: str | None, history: list[dict[str, str]], user: str, csrf: str,
              action: str, trace_id: str | None = None, error: str | None = None) -> str:
    """A review app's chat: pick one of its agents, ask, read the answer; the conversation so far travels in a
    hidden field (escaped), so the page needs no script and the server keeps no chat state."""
    err = f"<p class=\"err\" role=\"alert\">{escape(error)}</p>" if error else ""
    turns = "".join(f"<p><strong>{'You' if m['role'] == 'user' else 'Agent'}</strong></p>"
                    f"<div class=\"box\">{escape(m['content'])}</div>" for m in history)
    trace = f"<p class=\"muted\">Trace of the last answer: {escape(trace_id)}</p>" if trace_id else ""
    options = "".join(f"<option value=\"{escape(a['agent_name'])}\"{' selected' if a['agent_name'] == chosen else ''}>"
                      f"{escape(a['agent_name'])} (endpoint {escape(a['endpoint'])})</option>"
                      for a in agents)
    if not agents:
        return _page("Review app: chat", "<p>No agent is deployed to this review app yet: deploy one with "
                     "<code>databricks.agents.deploy</code>.</p>", user, csrf)
    body = (f"{err}{turns}{trace}<form method=\"post\" action=\"{escape(action)}\">"
            f"<input type=\"hidden\" name=\"csrf\" value=\"{escape(csrf)}\">"
            f"<input type=\"hidden\" name=\"history\" value=\"{escape(json.dumps(history))}\">"
            f"<label for=\"agent\">Agent</label><select id=\"agent\" name=\"agent\">{options}</select>"
            "<label for=\"question\">Your message</label><textarea id=\"question\" name=\"question\" required>"
            "</textarea><button type=\"submit\">Send</button></form>"
            f"<form method=\"get\" action=\"{escape(action)}\"><button type=\"submit\">New conversation</button></form>")
    return _page("Review app: chat", body, user, csrf)
