"""Statement Execution API (``/api/2.0/sql/statements``)."""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidParameterValue
from ._http import Api, Req
from ._permissions import level_list, permission_routes

BASE = "/api/2.0/sql/statements"


def register(api: Api, ws: Any) -> None:
    store = ws.statements

    @api.route("POST", BASE, policy="authenticated")
    @api.route("POST", BASE + "/", policy="authenticated")
    def execute(req: Req) -> dict[str, Any]:
        body = req.body or {}
        return store.submit(
            req.user, body.get("statement"), parameters=body.get("parameters"), catalog=body.get("catalog"),
            schema=body.get("schema"), wait_timeout=body.get("wait_timeout"),
            on_wait_timeout=body.get("on_wait_timeout"), row_limit=body.get("row_limit"),
            disposition=body.get("disposition"), format=body.get("format"),
        )

    @api.route("GET", BASE + "/{statement_id}", policy="authenticated")
    def get_statement(req: Req) -> dict[str, Any]:
        return store.get(req.user, req.path["statement_id"])

    @api.route("GET", BASE + "/{statement_id}/result/chunks/{chunk_index}", policy="authenticated")
    def get_chunk(req: Req) -> dict[str, Any]:
        try:
            index = int(req.path["chunk_index"])
        except ValueError:
            raise InvalidParameterValue("chunk_index must be an integer") from None
        return store.chunk(req.user, req.path["statement_id"], index)

    @api.route("POST", BASE + "/{statement_id}/cancel", policy="authenticated")
    def cancel(req: Req) -> dict[str, Any]:
        store.cancel(req.user, req.path["statement_id"])
        return {}

    queries = ws.queries
    QUERIES = "/api/2.0/sql/queries"

    @api.route("POST", QUERIES, policy="authenticated")
    def create_query(req: Req) -> dict[str, Any]:
        return queries.create(req.user, req.body or {})  # type: ignore[no-any-return]

    @api.route("GET", QUERIES, policy="authenticated")
    def list_queries(req: Req) -> dict[str, Any]:
        return queries.list(req.user, page_token=req.query.get("page_token"),  # type: ignore[no-any-return]
                            page_size=req.int_arg("page_size") or 100)

    @api.route("GET", QUERIES + "/{id}", policy="authenticated")
    def get_query(req: Req) -> dict[str, Any]:
        return queries.get(req.user, req.path["id"])  # type: ignore[no-any-return]

    @api.route("PATCH", QUERIES + "/{id}", policy="authenticated")
    def update_query(req: Req) -> dict[str, Any]:
        return queries.update(req.user, req.path["id"], req.body or {})  # type: ignore[no-any-return]

    @api.route("DELETE", QUERIES + "/{id}", policy="authenticated")
    def delete_query(req: Req) -> dict[str, Any]:
        queries.delete(req.user, req.path["id"])
        return {}

    def query_levels(p: Any, query_id: Any) -> dict[str, Any]:
        queries.permissions(p, query_id)  # 404 unless the caller may see it
        return level_list(*((name, "") for name in ("CAN_VIEW", "CAN_RUN", "CAN_EDIT", "CAN_MANAGE")))

    permission_routes(api, "queries", "id", get=queries.permissions, set_=queries.set_permissions,
                      levels=query_levels)
