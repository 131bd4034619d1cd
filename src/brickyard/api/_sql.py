"""Statement Execution API (``/api/2.0/sql/statements``)."""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidParameterValue
from ._http import Api, Req

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
