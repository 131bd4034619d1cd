"""Model serving: control plane (``/api/2.0/serving-endpoints``), endpoint permissions, and the data plane
(``/serving-endpoints/...``, OpenAI-compatible, with server-sent events for streams)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.responses import Response, StreamingResponse

from ..core.errors import BrickyardError, InvalidParameterValue
from ._http import JSON, Api, Req

BASE = "/api/2.0/serving-endpoints"


def _sse(chunks: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    try:
        for chunk in chunks:
            yield b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
    except BrickyardError as exc:
        yield b"data: " + json.dumps({"error": exc.to_dict()}).encode() + b"\n\n"
    except Exception:  # noqa: BLE001 - a broken stream ends with an error event, never a traceback
        yield b"data: " + json.dumps({"error": {"error_code": "INTERNAL_ERROR", "message": "the stream failed"}}).encode() \
            + b"\n\n"
    yield b"data: [DONE]\n\n"


COLD_START = "x-brickyard-cold-start"  # "true" on the answer that had to start a worker (scale from zero)
QUEUED = "x-brickyard-queue-ms"  # how long a request to a served model version waited for a free worker


def _headers(inv: Any) -> dict[str, str]:
    headers = {"served-model-name": inv.served_entity}
    if inv.cold_start:
        headers[COLD_START] = "true"
    if inv.queued is not None:
        headers[QUEUED] = f"{inv.queued * 1000:.1f}"
    return headers


def register(api: Api, ws: Any) -> None:
    serving = ws.serving

    @api.route("POST", BASE, policy="authenticated")
    def create_endpoint(req: Req) -> dict[str, Any]:
        return ws.gateway.create_endpoint(req.user, req.body or {})

    @api.route("GET", BASE, policy="authenticated")
    def list_endpoints(req: Req) -> dict[str, Any]:
        return {"endpoints": serving.list(req.user)}

    @api.route("GET", BASE + "/{name}", policy="authenticated")
    def get_endpoint(req: Req) -> dict[str, Any]:
        return serving.get(req.user, req.path["name"])

    @api.route("PUT", BASE + "/{name}/config", policy="authenticated")
    def update_config(req: Req) -> dict[str, Any]:
        return serving.update_config(req.user, req.path["name"], req.body or {})

    @api.route("DELETE", BASE + "/{name}", policy="authenticated")
    def delete_endpoint(req: Req) -> dict[str, Any]:
        serving.delete(req.user, req.path["name"])
        return {}

    @api.route("PATCH", BASE + "/{name}/tags", policy="authenticated")
    def patch_tags(req: Req) -> list[dict[str, str]]:
        body = req.body or {}
        return serving.patch_tags(req.user, req.path["name"], body.get("add_tags"), body.get("delete_tags"))

    @api.route("PUT", BASE + "/{name}/ai-gateway", policy="authenticated")
    def put_ai_gateway(req: Req) -> dict[str, Any]:
        return ws.gateway.configure(req.user, req.path["name"], req.body or {})

    @api.route("PUT", BASE + "/{name}/rate-limits", policy="authenticated")
    def put_rate_limits(req: Req) -> dict[str, Any]:
        limits = (req.body or {}).get("rate_limits") or []
        current = serving.get(req.user, req.path["name"]).get("ai_gateway") or {}
        ws.gateway.configure(req.user, req.path["name"], {**current, "rate_limits": limits})
        return {"rate_limits": limits}

    # -- permissions --------------------------------------------------------------------------------
    @api.route("GET", "/api/2.0/permissions/serving-endpoints/{endpoint_id}", policy="authenticated")
    def get_endpoint_permissions(req: Req) -> dict[str, Any]:
        return serving.acl(req.user, req.path["endpoint_id"])

    @api.route("PUT", "/api/2.0/permissions/serving-endpoints/{endpoint_id}", policy="authenticated")
    def set_endpoint_permissions(req: Req) -> dict[str, Any]:
        return serving.set_acl(req.user, req.path["endpoint_id"], req.arg("access_control_list") or [], replace=True)

    @api.route("PATCH", "/api/2.0/permissions/serving-endpoints/{endpoint_id}", policy="authenticated")
    def update_endpoint_permissions(req: Req) -> dict[str, Any]:
        return serving.set_acl(req.user, req.path["endpoint_id"], req.arg("access_control_list") or [], replace=False)

    @api.route("GET", "/api/2.0/permissions/serving-endpoints/{endpoint_id}/permissionLevels", policy="authenticated")
    def endpoint_permission_levels(req: Req) -> dict[str, Any]:
        serving.acl(req.user, req.path["endpoint_id"])
        return {"permission_levels": [{"permission_level": lvl, "description": desc} for lvl, desc in (
            ("CAN_VIEW", "See the endpoint"), ("CAN_QUERY", "Query the endpoint"),
            ("CAN_MANAGE", "Change, delete and grant the endpoint"))]}

    # -- data plane ---------------------------------------------------------------------------------
    async def run(req: Req, name: str, route: str, served: str | None = None) -> Response:
        inv = await ws.gateway.acall(req.user, name, req.body or {}, route=route, served=served)
        headers = _headers(inv)
        if inv.stream:
            return StreamingResponse(_sse(inv.result), media_type="text/event-stream", headers=headers)
        return JSON(inv.result, headers=headers)

    def model_name(req: Req) -> str:
        name = (req.body or {}).get("model")
        if not isinstance(name, str) or not name:
            raise InvalidParameterValue("model is required: the name of the serving endpoint")
        return name

    @api.route("POST", "/serving-endpoints/{name}/invocations", policy="authenticated")
    async def invocations(req: Req) -> Response:
        return await run(req, req.path["name"], "invocations")

    # -- agent deployments (databricks.agents.deploy / list_deployments / get_deployments / delete_deployment) ---
    AGENTS = "/api/2.0/agents/deployments"

    @api.route("POST", AGENTS, policy="authenticated")
    def record_deployment(req: Req) -> dict[str, Any]:
        return ws.deployments.create(req.user, req.body or {}, str(req.request.base_url).rstrip("/"))

    @api.route("GET", AGENTS, policy="authenticated")
    def list_deployments(req: Req) -> dict[str, Any]:
        return ws.deployments.list(req.user)

    @api.route("GET", AGENTS + "/{model_name}", policy="authenticated")
    def get_deployments(req: Req) -> dict[str, Any]:
        return ws.deployments.get(req.user, req.path["model_name"])

    @api.route("GET", AGENTS + "/{model_name}/versions/{version}", policy="authenticated")
    def get_version_deployments(req: Req) -> dict[str, Any]:
        return ws.deployments.get(req.user, req.path["model_name"], req.path["version"])

    @api.route("DELETE", AGENTS + "/{model_name}", policy="authenticated")
    def delete_deployments(req: Req) -> dict[str, Any]:
        ws.deployments.delete(req.user, req.path["model_name"])
        return {}

    @api.route("DELETE", AGENTS + "/{model_name}/versions/{version}", policy="authenticated")
    def delete_version_deployment(req: Req) -> dict[str, Any]:
        ws.deployments.delete(req.user, req.path["model_name"], req.path["version"])
        return {}

    @api.route("POST", "/serving-endpoints/{name}/served-models/{served}/invocations", policy="authenticated")
    async def served_model_invocations(req: Req) -> Response:
        """One served entity directly, whatever the traffic split (the query URL agents.deploy prints)."""
        return await run(req, req.path["name"], "invocations", served=req.path["served"])

    @api.route("POST", "/serving-endpoints/chat/completions", policy="authenticated")
    async def chat_completions(req: Req) -> Response:
        name = model_name(req)
        if serving.task_of(req.user, name) == "agent/v1/responses":  # a ResponsesAgent takes the chat as its input
            from ..serving._responses import agent_chat_chunks, agent_to_chat

            body = req.body or {}
            request = {k: v for k, v in body.items() if k not in ("model", "messages")}
            request["input"] = body.get("messages")
            inv = await ws.gateway.acall(req.user, name, request, route="responses")
            if inv.stream:
                return StreamingResponse(_sse(agent_chat_chunks(inv.result, name)), media_type="text/event-stream",
                                         headers=_headers(inv))
            return JSON(agent_to_chat(inv.result, name), headers=_headers(inv))
        return await run(req, name, "chat")

    @api.route("POST", "/serving-endpoints/completions", policy="authenticated")
    async def completions(req: Req) -> Response:
        return await run(req, model_name(req), "completions")

    @api.route("POST", "/serving-endpoints/responses", policy="authenticated")
    async def responses(req: Req) -> Response:
        from ..serving._responses import (
            agent_stream_events,
            dumps,
            from_agent,
            from_chat,
            stream_events,
            to_chat,
        )

        body = req.body or {}
        name = model_name(req)
        if serving.task_of(req.user, name).startswith("agent/"):  # the agent takes the Responses request itself
            request = {k: v for k, v in body.items() if k != "model"}
            if isinstance(request.get("input"), str):
                request["input"] = [{"role": "user", "content": request["input"]}]
            inv = await ws.gateway.acall(req.user, name, request, route="responses")
            headers = _headers(inv)
            if inv.stream:
                return StreamingResponse((dumps(e) for e in agent_stream_events(inv.result, name)),
                                         media_type="text/event-stream", headers=headers)
            return JSON(from_agent(inv.result, name), headers=headers)
        chat = to_chat(body)
        inv = await ws.gateway.acall(req.user, name, chat, route="chat")
        headers = _headers(inv)
        if inv.stream:
            return StreamingResponse((dumps(e) for e in stream_events(inv.result, name)),
                                     media_type="text/event-stream", headers=headers)
        return JSON(from_chat(inv.result, name), headers=headers)

    @api.route("POST", "/serving-endpoints/embeddings", policy="authenticated")
    async def embeddings(req: Req) -> Response:
        return await run(req, model_name(req), "embeddings")

    # -- secrets ------------------------------------------------------------------------------------
    secrets = ws.secrets

    @api.route("POST", "/api/2.0/secrets/scopes/create", policy="authenticated")
    def create_scope(req: Req) -> dict[str, Any]:
        secrets.create_scope(req.user, req.require("scope"))
        return {}

    @api.route("GET", "/api/2.0/secrets/scopes/list", policy="authenticated")
    def list_scopes(req: Req) -> dict[str, Any]:
        return {"scopes": [{"name": n, "backend_type": "DATABRICKS"} for n in secrets.list_scopes(req.user)]}

    @api.route("POST", "/api/2.0/secrets/scopes/delete", policy="authenticated")
    def delete_scope(req: Req) -> dict[str, Any]:
        secrets.delete_scope(req.user, req.require("scope"))
        return {}

    @api.route("POST", "/api/2.0/secrets/put", policy="authenticated")
    def put_secret(req: Req) -> dict[str, Any]:
        value = req.str_arg("string_value")
        if value is None and req.arg("bytes_value") is not None:
            import base64
            import binascii

            try:
                value = base64.b64decode(str(req.arg("bytes_value")), validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                raise InvalidParameterValue("bytes_value must be base64") from None
        secrets.put(req.user, req.require("scope"), req.require("key"), value)
        return {}

    @api.route("POST", "/api/2.0/secrets/delete", policy="authenticated")
    def delete_secret(req: Req) -> dict[str, Any]:
        secrets.delete(req.user, req.require("scope"), req.require("key"))
        return {}

    @api.route("GET", "/api/2.0/secrets/list", policy="authenticated")
    def list_secrets(req: Req) -> dict[str, Any]:
        return {"secrets": secrets.list(req.user, req.require("scope"))}

    @api.route("GET", "/api/2.0/secrets/get", policy="authenticated")
    def get_secret(req: Req) -> dict[str, Any]:
        import base64

        value = secrets.get(req.user, req.require("scope"), req.require("key"))
        return {"key": req.require("key"), "value": base64.b64encode(value.encode()).decode()}

    @api.route("POST", "/api/2.0/secrets/acls/put", policy="authenticated")
    def put_secret_acl(req: Req) -> dict[str, Any]:
        secrets.set_acl(req.user, req.require("scope"), req.require("principal"), req.require("permission"))
        return {}

    @api.route("POST", "/api/2.0/secrets/acls/delete", policy="authenticated")
    def delete_secret_acl(req: Req) -> dict[str, Any]:
        secrets.set_acl(req.user, req.require("scope"), req.require("principal"), None)
        return {}
