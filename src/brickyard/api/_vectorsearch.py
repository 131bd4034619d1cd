"""Vector Search routes (``/api/2.0/vector-search/...``) as the databricks-vectorsearch / ai-search
client and the SDK send them: some GET and DELETE requests carry JSON bodies, and the SDK puts
``delete-data`` keys in the query string."""

from __future__ import annotations

from typing import Any

from ._http import Api, Req

BASE = "/api/2.0/vector-search"


def register(api: Api, ws: Any) -> None:
    vs = ws.vectorsearch

    @api.route("POST", BASE + "/endpoints", policy="authenticated")
    def create_endpoint(req: Req) -> dict[str, Any]:
        out = vs.create_endpoint(req.user, req.body or {})
        return {**out, "endpoint": out}

    @api.route("GET", BASE + "/endpoints", policy="authenticated")
    def list_endpoints(req: Req) -> dict[str, Any]:
        return {"endpoints": vs.list_endpoints(req.user), "next_page_token": None}

    @api.route("GET", BASE + "/endpoints/{name}", policy="authenticated")
    def get_endpoint(req: Req) -> dict[str, Any]:
        return vs.get_endpoint(req.user, req.path["name"])

    @api.route("DELETE", BASE + "/endpoints/{name}", policy="authenticated")
    def delete_endpoint(req: Req) -> dict[str, Any]:
        vs.delete_endpoint(req.user, req.path["name"])
        return {}

    @api.route("POST", BASE + "/endpoints/{name}/indexes", policy="authenticated")
    def create_index_on_endpoint(req: Req) -> dict[str, Any]:
        return vs.create_index(req.user, req.body or {}, endpoint=req.path["name"])

    @api.route("POST", BASE + "/indexes", policy="authenticated")
    def create_index(req: Req) -> dict[str, Any]:
        return vs.create_index(req.user, req.body or {})

    @api.route("GET", BASE + "/endpoints/{name}/indexes", policy="authenticated")
    def list_indexes_of_endpoint(req: Req) -> dict[str, Any]:
        return {"vector_indexes": vs.list_indexes(req.user, req.path["name"]), "next_page_token": None}

    @api.route("GET", BASE + "/indexes", policy="authenticated")
    def list_indexes(req: Req) -> dict[str, Any]:
        return {"vector_indexes": vs.list_indexes(req.user, req.require("endpoint_name")), "next_page_token": None}

    @api.route("GET", BASE + "/indexes/{index}", policy="authenticated")
    def get_index(req: Req) -> dict[str, Any]:
        return vs.get_index(req.user, req.path["index"])

    @api.route("GET", BASE + "/endpoints/{name}/indexes/{index}", policy="authenticated")
    def get_index_on_endpoint(req: Req) -> dict[str, Any]:
        return vs.get_index(req.user, req.path["index"])

    @api.route("DELETE", BASE + "/indexes/{index}", policy="authenticated")
    def delete_index(req: Req) -> dict[str, Any]:
        vs.delete_index(req.user, req.path["index"])
        return {}

    @api.route("DELETE", BASE + "/endpoints/{name}/indexes/{index}", policy="authenticated")
    def delete_index_on_endpoint(req: Req) -> dict[str, Any]:
        vs.delete_index(req.user, req.path["index"])
        return {}

    @api.route("POST", BASE + "/indexes/{index}/sync", policy="authenticated")
    def sync_index(req: Req) -> dict[str, Any]:
        vs.sync(req.user, req.path["index"])
        return {}

    @api.route("GET|POST", BASE + "/indexes/{index}/query", policy="authenticated", body="json64")
    async def query_index(req: Req) -> dict[str, Any]:
        import anyio

        body = req.body or {}
        if vs.can_answer_inline(req.user, req.path["index"], body):  # the hot path: no I/O, no model call
            return vs.query(req.user, req.path["index"], body)  # type: ignore[no-any-return]
        return await anyio.to_thread.run_sync(vs.query, req.user, req.path["index"], body)  # type: ignore[no-any-return]

    @api.route("GET|POST", BASE + "/indexes/{index}/query-next-page", policy="authenticated")
    def query_next_page(req: Req) -> dict[str, Any]:
        return vs.next_page(req.user, req.path["index"], req.require("page_token"))

    @api.route("POST", BASE + "/indexes/{index}/upsert-data", policy="authenticated")
    def upsert_data(req: Req) -> dict[str, Any]:
        return vs.upsert(req.user, req.path["index"], req.require("inputs_json"))

    @api.route("DELETE|POST", BASE + "/indexes/{index}/delete-data", policy="authenticated")
    def delete_data(req: Req) -> dict[str, Any]:
        keys = (req.body or {}).get("primary_keys") if isinstance(req.body, dict) else None
        if keys is None:
            keys = req.query_lists.get("primary_keys")
        return vs.delete_rows(req.user, req.path["index"], keys)

    @api.route("GET|POST", BASE + "/indexes/{index}/scan", policy="authenticated")
    def scan_index(req: Req) -> dict[str, Any]:
        return vs.scan(req.user, req.path["index"], req.arg("last_primary_key"), req.arg("num_results"))
