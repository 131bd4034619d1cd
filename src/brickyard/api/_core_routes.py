"""Discovery, OAuth (client credentials), health, OpenAPI and personal access tokens."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse

from ..core.errors import InvalidParameterValue, Unauthenticated
from ._http import Api, Req


def _base(req: Req) -> str:
    return str(req.request.base_url).rstrip("/")


def token_info(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "token_id": row["id"],
        "creation_time": row["created_at"],
        "expiry_time": row["expires_at"] if row["expires_at"] is not None else -1,
        "comment": row["comment"] or "",
        "created_by_username": row.get("principal"),
        "owner_id": row.get("principal_id"),
    }


def register(api: Api, ws: Any) -> None:
    @api.route("GET", "/health", policy="public")
    def health(req: Req) -> dict[str, Any]:
        return {"status": "ok"}

    @api.route("GET", "/.well-known/databricks-config", policy="public")
    def databricks_config(req: Req) -> dict[str, Any]:
        return {
            "oidc_endpoint": f"{_base(req)}/oidc",
            "workspace_id": ws.workspace_id,
            "cloud": "aws",
            "host_type": "workspace",
        }

    @api.route("GET", "/oidc/.well-known/oauth-authorization-server", policy="public")
    def oauth_metadata(req: Req) -> dict[str, Any]:
        base = _base(req)
        return {
            "issuer": f"{base}/oidc",
            "authorization_endpoint": f"{base}/oidc/v1/authorize",
            "token_endpoint": f"{base}/oidc/v1/token",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["all-apis"],
        }

    @api.route("POST", "/oidc/v1/token", policy="public", body="file")
    def oauth_token(req: Req) -> Any:
        raw = req.file.read(64 * 1024 + 1)
        if len(raw) > 64 * 1024:
            return _oauth_error("invalid_request", "the token request is too large", 400)
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = req.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return _oauth_error("invalid_client", "malformed Basic credentials", 401)
        if form.get("grant_type") != "client_credentials":
            return _oauth_error("unsupported_grant_type", "only grant_type=client_credentials is supported", 400)
        if not client_id or not secret:
            return _oauth_error("invalid_client", "client_id and client_secret are required", 401)
        try:
            token, ttl = ws.identity.client_credentials(client_id, secret,
                                                        ttl_seconds=ws.settings.oauth_token_ttl_seconds)
        except Unauthenticated as exc:
            return _oauth_error("invalid_client", exc.message, 401)
        return {"access_token": token, "token_type": "Bearer", "expires_in": ttl,
                "scope": form.get("scope") or "all-apis"}

    @api.route("GET", "/openapi.json", policy="public")
    def openapi(req: Req) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        seen: set[str] = set()
        for spec in api.routes:
            if spec.policy == "browser" or spec.path == "/login":  # HTML pages for a browser, not API operations
                continue
            path = spec.path.replace(":path}", "}")
            op_id = f"{spec.method.lower()}_{spec.handler.__name__}"
            while op_id in seen:  # one handler may serve several paths
                op_id += "_"
            seen.add(op_id)
            op: dict[str, Any] = {"operationId": op_id, "responses": {"200": {"description": "OK"},
                                                                       "default": {"description": "an error"}}}
            names = re.findall(r"\{([^}:]+)(?::path)?\}", spec.path)
            if names:
                op["parameters"] = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                                    for n in names]
            if spec.body in ("json", "json64") and spec.method in ("POST", "PUT", "PATCH", "DELETE"):
                op["requestBody"] = {"required": False, "content": {"application/json": {
                    "schema": {"type": "object", "additionalProperties": True}}}}
            if spec.policy != "public":
                op["security"] = [{"bearer": []}]
                op["responses"]["401"] = {"description": "missing, invalid, expired or revoked token"}
            paths.setdefault(path, {})[spec.method.lower()] = op
        return {"openapi": "3.1.0", "info": {"title": "Brickyard", "version": "0.1.0"}, "paths": paths,
                "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}

    # -- personal access tokens (the caller's own) ------------------------------------------------
    @api.route("POST", "/api/2.0/token/create", policy="authenticated")
    def create_token(req: Req) -> dict[str, Any]:
        lifetime = req.int_arg("lifetime_seconds")
        comment = req.arg("comment")
        if comment is not None and (not isinstance(comment, str) or len(comment) > 1000):
            raise InvalidParameterValue("comment must be a string of at most 1000 characters")
        token, row = ws.identity.create_token(req.user.id, lifetime_seconds=lifetime, comment=comment,
                                               actor=req.user.name)
        row["principal"] = req.user.name
        return {"token_value": token, "token_info": token_info(row)}

    @api.route("GET", "/api/2.0/token/list", policy="authenticated")
    def list_tokens(req: Req) -> dict[str, Any]:
        rows = [r for r in ws.identity.list_tokens(req.user.id) if r["revoked_at"] is None]
        return {"token_infos": [token_info(r) for r in rows]}

    @api.route("POST", "/api/2.0/token/delete", policy="authenticated")
    def delete_token(req: Req) -> dict[str, Any]:
        ws.identity.revoke_token(str(req.require("token_id")), pid=req.user.id, actor=req.user.name)
        return {}

    @api.route("GET", "/api/2.0/token-management/tokens", policy="admin")
    def admin_list_tokens(req: Req) -> dict[str, Any]:
        rows = [r for r in ws.identity.list_tokens() if r["revoked_at"] is None]
        return {"token_infos": [token_info(r) for r in rows]}

    @api.route("DELETE", "/api/2.0/token-management/tokens/{token_id}", policy="admin")
    def admin_delete_token(req: Req) -> dict[str, Any]:
        ws.identity.revoke_token(req.path["token_id"], actor=req.user.name)
        return {}

    # -- SQL warehouses: one embedded engine, visible under a stable id ----------------------------
    @api.route("GET", "/api/2.0/sql/warehouses", policy="authenticated")
    def list_warehouses(req: Req) -> dict[str, Any]:
        return {"warehouses": [_warehouse()]}

    @api.route("GET", "/api/2.0/sql/warehouses/{id}", policy="authenticated")
    def get_warehouse(req: Req) -> dict[str, Any]:
        return _warehouse()


def _warehouse() -> dict[str, Any]:
    return {"id": "brickyard", "name": "Brickyard embedded (DuckDB)", "state": "RUNNING", "cluster_size": "X-Small",
            "warehouse_type": "PRO", "enable_serverless_compute": True, "num_clusters": 1}


def _oauth_error(code: str, description: str, status: int) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": description}, status_code=status)
