"""Rendering the workspace pages: Jinja2 templates (autoescaped: every value from a table, a trace, a model or a
user is text, never markup), the page headers (a Content-Security-Policy that allows only this server's own
stylesheet and script), the static files, and the small charts drawn as SVG on the server.

The pages work without script: links, forms posting to the same origin, server-side paging. The one script
(``static/app.js``) adds what a form cannot do: streaming a chat answer, and keyboard focus niceties.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.responses import HTMLResponse, Response

from ...core.errors import BrickyardError, PermissionDenied
from ...evaluation._review_html import csrf_token

HERE = Path(__file__).parent
STATIC = HERE / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
           "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


@cache
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["q"] = lambda value: quote(str(value), safe="")  # one path segment or query value
    env.filters["qpath"] = lambda value: quote(str(value), safe="/")
    env.filters["when"] = when
    env.filters["pretty"] = pretty
    env.globals["asset"] = asset
    return env


def when(ms: Any) -> str:
    """Epoch milliseconds as UTC date and time (blank for none)."""
    if ms in (None, "", 0):
        return ""
    try:
        return datetime.fromtimestamp(float(ms) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ms)


def pretty(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


@cache
def asset(name: str) -> str:
    """The URL of a static file with its content hash, so browsers may cache it for good."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/static/{quote(name)}?v={digest}"


def static_file(name: str) -> Response:
    path = (STATIC / name).resolve()
    if path.parent != STATIC.resolve() or path.suffix not in TYPES or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    return Response(path.read_bytes(), media_type=TYPES[path.suffix],
                    headers={"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"})


def check_csrf(session_token: str, given: str) -> None:
    if not session_token or not hmac.compare_digest(given or "", csrf_token(session_token)):
        raise PermissionDenied("the form's CSRF token is missing or wrong; reload the page and try again")


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def error_page(exc: BrickyardError, **context: Any) -> HTMLResponse:
    titles = {401: "Sign in needed", 403: "Not allowed", 404: "Not found", 409: "Conflict", 429: "Too many requests"}
    title = titles.get(exc.http_status, "Something went wrong" if exc.http_status >= 500 else "That did not work")
    return render("error.html", exc.http_status, title=title, code=exc.error_code, message=exc.message, **context)


# -- charts ---------------------------------------------------------------------------------------------------
def svg_chart(kind: str, labels: Sequence[Any], series: dict[str, Sequence[float | None]], *, width: int = 640,
              height: int = 220, title: str = "") -> str:
    """A bar or line chart as an SVG document string (escaped values, no script): ``labels`` on the x axis,
    one line or bar group per series. Drawn here so the page needs no chart library."""
    from html import escape

    pad_l, pad_b, pad_t, pad_r = 56, 28, 18, 12
    values = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    top = max(values, default=1.0)
    bottom = min(0.0, min(values, default=0.0))
    span = (top - bottom) or 1.0
    n = max(1, len(labels))
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    colours = ["#2f6fb3", "#d9822b", "#3a9b5b", "#b33f6b", "#7a5cc2", "#6b6b6b"]

    def y(v: float) -> float:
        return pad_t + plot_h - (v - bottom) / span * plot_h

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title or kind + " chart")}" class="chart">']
    for i in range(5):
        v = bottom + span * i / 4
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                     f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">{_short(v)}</text>')
    step = max(1, n // 8)
    for i, label in enumerate(labels):
        if i % step == 0:
            x = pad_l + (i + 0.5) * plot_w / n
            parts.append(f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" class="tick">'
                         f'{escape(str(label)[:16])}</text>')
    names = list(series)
    for k, name in enumerate(names):
        colour = colours[k % len(colours)]
        vs = list(series[name])
        if kind == "bar":
            group = plot_w / n
            bar = group * 0.8 / max(1, len(names))
            for i, v in enumerate(vs):
                if v is None or not math.isfinite(v):
                    continue
                x = pad_l + i * group + group * 0.1 + k * bar
                parts.append(f'<rect x="{x:.1f}" y="{min(y(v), y(0)):.1f}" width="{max(bar - 1, 1):.1f}" '
                             f'height="{abs(y(0) - y(v)):.1f}" fill="{colour}"><title>{escape(name)}: '
                             f'{escape(_short(v))}</title></rect>')
        else:
            points = " ".join(f"{pad_l + (i + 0.5) * plot_w / n:.1f},{y(v):.1f}" for i, v in enumerate(vs)
                              if v is not None and math.isfinite(v))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    for k, name in enumerate(names):
        parts.append(f'<text x="{pad_l + 4 + k * 130}" y="12" class="legend" fill="{colours[k % len(colours)]}">'
                     f'&#9632; {escape(name[:18])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _short(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    return f"{v:.3g}"


Handler = Callable[..., Response]
