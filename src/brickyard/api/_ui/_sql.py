"""The SQL editor: statements run through the Statement Execution API's store (the same limits, cancel and
results as ``/api/2.0/sql/statements``), a results grid paged on the server, a bar or line chart of chosen
columns, and the user's recent statements."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup
from starlette.responses import Response

from ...core.errors import InvalidParameterValue
from .._http import Req
from ._catalog import rows_view
from ._pages import Pages, form, page_arg, redirect
from ._render import render, svg_chart

PAGE_ROWS = 100
CHART_ROWS = 500
NUMERIC = ("int", "float", "double", "decimal", "long", "short", "byte", "bigint", "smallint", "tinyint")


def register(pages: Pages, ws: Any) -> None:
    store = ws.statements

    @pages.get("/sql/editor", "sql")
    def editor(req: Req, ctx: dict[str, Any]) -> Response:
        again = req.query.get("statement") or ""
        return render("sql.html", **ctx, title="SQL editor", statement=again, history=store.history(req.user))

    @pages.post("/sql/editor", "sql")
    def run(req: Req, ctx: dict[str, Any]) -> Response:
        statement = form(req, "statement")
        if not statement.strip():
            return render("sql.html", 400, **{**ctx, "error": "Write a statement first."}, title="SQL editor",
                          statement="", history=store.history(req.user))
        done = store.submit(req.user, statement, catalog=form(req, "catalog") or None,
                            schema=form(req, "schema") or None, wait_timeout="10s")
        return redirect(f"/sql/editor/statements/{quote(done['statement_id'], safe='')}")

    @pages.get("/sql/editor/statements/{statement_id}", "sql")
    def result(req: Req, ctx: dict[str, Any]) -> Response:
        sid = req.path["statement_id"]
        status = store.get(req.user, sid)
        text = next((h["statement"] for h in store.history(req.user, 10_000) if h["statement_id"] == sid), "")
        view: dict[str, Any] = {"sid": sid, "state": status["status"]["state"], "stmt": status["status"],
                                "statement": text, "columns": [], "rows": [], "chart": None, "page": 0, "pages": 0,
                                "total": 0}
        if view["state"] == "SUCCEEDED":
            manifest = status["manifest"]
            total = int(manifest["total_row_count"])
            pages_count = max(1, -(-total // PAGE_ROWS))
            page = min(page_arg(req), pages_count - 1)
            view.update(rows_view(store.rows(req.user, sid, page * PAGE_ROWS, PAGE_ROWS)), page=page,
                        pages=pages_count, total=total, truncated=manifest.get("truncated"),
                        types=[c["type_name"] for c in manifest["schema"]["columns"]])
            view["numeric"] = [c["name"] for c in manifest["schema"]["columns"]
                               if c["type_name"].lower() in NUMERIC or c["type_text"].lower().startswith(NUMERIC)]
            view["chart"] = chart(req, sid, view)
            view["query_base"] = {k: v for k, v in req.query.items() if k != "page"}
        return render("sql_result.html", **ctx, title="Statement", **view, urlencode=urlencode)

    def chart(req: Req, sid: str, view: dict[str, Any]) -> Any:
        kind, x, ys = req.query.get("chart"), req.query.get("x"), req.query_lists.get("y") or []
        if kind not in ("bar", "line") or not x or not ys:
            return None
        columns = view["columns"]
        for name in [x, *ys]:
            if name not in columns:
                raise InvalidParameterValue(f"column {name!r} is not in the result")
        rows = store.rows(req.user, sid, 0, CHART_ROWS)
        labels = rows.column(x).to_pylist()
        series = {}
        for y in ys[:6]:
            values = []
            for v in rows.column(y).to_pylist():
                try:
                    values.append(None if v is None else float(v))
                except (TypeError, ValueError):
                    raise InvalidParameterValue(f"column {y!r} is not numeric: chart a number") from None
            series[y] = values
        return Markup(svg_chart(kind, labels, series, title=f"{', '.join(ys)} by {x}"))

    @pages.post("/sql/editor/statements/{statement_id}/cancel", "sql")
    def cancel(req: Req, ctx: dict[str, Any]) -> Response:
        store.cancel(req.user, req.path["statement_id"])
        return redirect(f"/sql/editor/statements/{quote(req.path['statement_id'], safe='')}", "cancel requested")
