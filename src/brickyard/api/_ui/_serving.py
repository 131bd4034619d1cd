"""Serving, the Playground and Vector Search pages.

Serving: endpoints with their state, config and AI Gateway settings, and their traffic from the usage table
drawn over time (requests, errors, rate-limit refusals, tokens, latency p50/p99). The Playground: a chat with
any endpoint the user can query, a system prompt and parameters, streamed when the page's script runs, each
answer recorded as a trace and linked; two endpoints side by side on the same prompt. Vector Search:
endpoints and indexes with sync state and row counts, and a query box.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup
from starlette.responses import Response, StreamingResponse

from ...core.errors import BrickyardError, InvalidParameterValue
from .._http import Req
from ._pages import Pages, form
from ._render import HEADERS, render, svg_chart

MAX_TURNS = 40
MAX_MESSAGE = 20_000


def register(pages: Pages, ws: Any) -> None:
    serving, evaluations, vs = ws.serving, ws.evaluations, ws.vectorsearch

    # -- serving -------------------------------------------------------------------------------------------------
    @pages.get("/ml/endpoints", "serving")
    def endpoints(req: Req, ctx: dict[str, Any]) -> Response:
        return render("endpoints.html", **ctx, title="Serving endpoints", items=serving.list(req.user))

    @pages.get("/ml/endpoints/{name}", "serving")
    def endpoint(req: Req, ctx: dict[str, Any]) -> Response:
        ep = serving.get(req.user, req.path["name"])
        try:
            hours = int(req.query.get("hours") or 24)
        except ValueError:
            hours = 24
        metrics = ws.endpoint_metrics(req.user, ep["name"], hours=hours)
        labels = [datetime.fromtimestamp(b["bucket"] / 1000, UTC).strftime("%H:%M") for b in metrics["buckets"]]
        b = metrics["buckets"]
        charts = []
        if b:
            charts = [(title, Markup(svg_chart(kind, labels, series, title=title))) for title, kind, series in (
                ("Requests", "bar", {"requests": [x["requests"] for x in b], "errors": [x["errors"] for x in b],
                                     "rate limited (429)": [x["rate_limited"] for x in b]}),
                ("Latency (ms)", "line", {"p50": [x["p50_ms"] for x in b], "p99": [x["p99_ms"] for x in b]}),
                ("Tokens", "bar", {"input": [x["tokens_in"] for x in b], "output": [x["tokens_out"] for x in b]}))]
        return render("endpoint.html", **{**ctx, "crumbs": [("/ml/endpoints", "Serving")]}, title=ep["name"], ep=ep,
                      config=json.dumps(ep.get("config") or {}, indent=2, default=str),
                      gateway=json.dumps(ep.get("ai_gateway") or {}, indent=2, default=str), totals=metrics["totals"],
                      charts=charts, hours=hours, tracked=metrics["tracked"])

    # -- playground ------------------------------------------------------------------------------------------------
    def queryable(req: Req) -> list[str]:
        return [e["name"] for e in serving.list(req.user)
                if e.get("permission_level") in ("CAN_QUERY", "CAN_MANAGE") and
                (str(e.get("task") or "").startswith(("llm/v1/chat", "agent/")) or not e.get("task"))]

    def conversation(req: Req) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The turns so far (carried by the form), the new message appended, and the parameters."""
        try:
            turns = json.loads(form(req, "history") or "[]")
        except ValueError:
            turns = []
        if not isinstance(turns, list) or not all(isinstance(t, dict) and t.get("role") in ("user", "assistant")
                                                  and isinstance(t.get("content"), str) for t in turns):
            turns = []
        message = form(req, "message").strip()
        if not message or len(message) > MAX_MESSAGE:
            raise InvalidParameterValue(f"write a message of at most {MAX_MESSAGE} characters")
        turns = [*turns[-MAX_TURNS:], {"role": "user", "content": message}]
        params: dict[str, Any] = {}
        for name, cast in (("temperature", float), ("max_tokens", int)):
            raw = form(req, name).strip()
            if raw:
                try:
                    params[name] = cast(raw)
                except ValueError:
                    raise InvalidParameterValue(f"{name} must be a number") from None
        return turns, params

    def with_system(req: Req, turns: list[dict[str, str]]) -> list[dict[str, str]]:
        system = form(req, "system").strip()
        return ([{"role": "system", "content": system}] if system else []) + turns

    def tool_servers(req: Req) -> list[str]:
        """The managed MCP servers the user may offer the model: each visible schema's functions and indexes."""
        out = []
        catalogs, _ = ws.catalog.list(req.user, "catalog", None, max_results=20)
        for c in catalogs:
            schemas, _ = ws.catalog.list(req.user, "schema", c.full_name, max_results=20)
            for s in schemas:
                out += [f"functions/{c.name}/{s.name}", f"vector-search/{c.name}/{s.name}"]
        connections, _ = ws.catalog.list(req.user, "connection", None, max_results=50)
        out += [f"external/{c.name}" for c in connections if c.spec.get("connection_type") == "HTTP"
                and str((c.spec.get("options") or {}).get("is_mcp_connection", "")).lower() == "true"
                and ws.catalog.check(req.user, "USE_CONNECTION", c).allowed]
        return out[:200]

    def playground_page(req: Req, ctx: dict[str, Any], status: int = 200, **view: Any) -> Response:
        defaults = {"endpoint": "", "compare": "", "system": "", "temperature": "", "max_tokens": "", "turns": [],
                    "answers": [], "history": "[]", "tools": []}
        return render("playground.html", status, **ctx, title="Playground", endpoints=queryable(req),
                      servers=tool_servers(req), **{**defaults, **view})

    @pages.get("/ml/playground", "playground")
    def playground(req: Req, ctx: dict[str, Any]) -> Response:
        return playground_page(req, ctx, endpoint=req.query.get("endpoint") or "")

    @pages.post("/ml/playground", "playground")
    def playground_send(req: Req, ctx: dict[str, Any]) -> Response:
        chosen, other = form(req, "endpoint"), form(req, "compare")
        tools = [t for t in (req.body or {}).get("tools") or [] if t]
        kept = {"endpoint": chosen, "compare": other, "system": form(req, "system"), "tools": tools,
                "temperature": form(req, "temperature"), "max_tokens": form(req, "max_tokens")}
        try:
            turns, params = conversation(req)
            if chosen not in queryable(req):
                raise InvalidParameterValue("choose an endpoint you can query")
            answers = [evaluations.converse(req.user, name, with_system(req, turns), params=params, tools=tools)
                       for name in ([chosen, other] if other and other != chosen else [chosen])]
        except BrickyardError as exc:
            return playground_page(req, {**ctx, "error": f"{exc.error_code}: {exc.message}"}, exc.http_status, **kept)
        first = answers[0]
        history = turns + ([{"role": "assistant", "content": first["answer"]}] if first["answer"] else [])
        return playground_page(req, ctx, **kept, turns=history, answers=answers, history=json.dumps(history))

    @pages.post("/ml/playground/stream", "playground")
    def playground_stream(req: Req, ctx: dict[str, Any]) -> Response:
        """The answer as plain text while it is written; the last line names its trace (the page links it)."""
        chosen = form(req, "endpoint")
        turns, params = conversation(req)
        if chosen not in queryable(req):
            raise InvalidParameterValue("choose an endpoint you can query")
        pieces = evaluations.converse_stream(req.user, chosen, with_system(req, turns), params=params)

        def body() -> Any:
            for piece in pieces:
                if isinstance(piece, dict):
                    if piece.get("error"):
                        yield f"\n[{piece['error']}]"
                    yield f"\n\x1etrace:/ml/experiments/{piece['experiment_id']}/traces/{piece['trace_id']}"
                else:
                    yield piece

        return StreamingResponse(body(), media_type="text/plain; charset=utf-8", headers=HEADERS)

    # -- vector search ----------------------------------------------------------------------------------------------
    @pages.get("/compute/vector-search", "vs")
    def vector_search(req: Req, ctx: dict[str, Any]) -> Response:
        items = []
        for ep in vs.list_endpoints(req.user):
            items.append({"endpoint": ep, "indexes": vs.list_indexes(req.user, ep["name"])})
        return render("vector_search.html", **ctx, title="Vector Search", items=items)

    @pages.get("/compute/vector-search/indexes/{index}", "vs")
    def index(req: Req, ctx: dict[str, Any]) -> Response:
        info = vs.get_index(req.user, req.path["index"])
        view: dict[str, Any] = {"info": info, "query": req.query.get("q") or "", "hits": None,
                                "query_type": (req.query.get("query_type") or "ANN").upper(),
                                "filters": req.query.get("filters") or "", "k": req.query.get("k") or "5",
                                "rerank": req.query.get("rerank") == "on"}
        if view["query"]:
            try:
                k = max(1, min(100, int(view["k"])))
            except ValueError:
                raise InvalidParameterValue("results must be a whole number") from None
            columns = [c for c in _columns(info) if c]
            body: dict[str, Any] = {"query_text": view["query"], "num_results": k, "columns": columns,
                                    "query_type": view["query_type"]}
            if view["filters"]:
                body["filters_json"] = view["filters"]
            if view["rerank"]:
                body["reranker"] = {"model": "databricks_reranker",
                                    "parameters": {"columns_to_rerank": [c for c in columns if c][:1]}}
            result = vs.query(req.user, info["name"], body)
            names = [c["name"] for c in result["manifest"]["columns"]]
            view["hits"] = {"columns": names, "rows": [[str(v) if v is not None else "NULL" for v in row]
                                                       for row in result["result"].get("data_array") or []]}
        return render("vs_index.html", **{**ctx, "crumbs": [("/compute/vector-search", "Vector Search")]},
                      title=info["name"], **view, info_json=json.dumps(info, indent=2, default=str))


def _columns(info: dict[str, Any]) -> list[str]:
    spec = info.get("delta_sync_index_spec") or info.get("direct_access_index_spec") or {}
    out = [info.get("primary_key") or ""]
    for e in spec.get("embedding_source_columns") or []:
        out.append(e.get("name") or "")
    for c in spec.get("columns_to_sync") or []:
        if c not in out:
            out.append(c)
    return out
