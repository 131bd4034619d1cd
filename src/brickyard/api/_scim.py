"""SCIM 2.0 users, groups and service principals (what ``w.users``, ``w.groups`` and
``w.service_principals`` call). Anyone signed in can read; only admins can change."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from ..core.errors import InvalidParameterValue, NotFound, PermissionDenied
from ._http import Api, Req

SCIM = "/api/2.0/preview/scim/v2"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
SP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
_FILTER = re.compile(r'^\s*(\w+)\s+(eq|ne|co|sw)\s+"((?:[^"\\]|\\.)*)"\s*$', re.I)
_MEMBER_PATH = re.compile(r'^members\[value eq "([^"]+)"\]$', re.I)
KIND_OF = {"Users": "user", "Groups": "group", "ServicePrincipals": "service_principal"}
ATTR = {"username": "name", "displayname": "display_name", "applicationid": "application_id", "id": "id",
        "externalid": "external_id"}


def _filter(expr: str | None) -> list[tuple[str, str, str]]:
    if not expr:
        return []
    if len(expr) > 1000:
        raise InvalidParameterValue("filter is too long")
    out = []
    for part in re.split(r"\s+and\s+", expr, flags=re.I):
        m = _FILTER.match(part)
        if not m or m.group(1).lower() not in ATTR:
            raise InvalidParameterValue(
                f"unsupported filter {part[:80]!r}: use attr eq|ne|co|sw \"value\" with userName, displayName, "
                "applicationId, id or externalId, joined by 'and'")
        out.append((ATTR[m.group(1).lower()], m.group(2).lower(), m.group(3)))
    return out


def _match(row: dict[str, Any], conds: list[tuple[str, str, str]]) -> bool:
    for col, op, value in conds:
        have = str(row.get(col) or "")
        ok = {"eq": have.lower() == value.lower(), "ne": have.lower() != value.lower(),
              "co": value.lower() in have.lower(), "sw": have.lower().startswith(value.lower())}[op]
        if not ok:
            return False
    return True


def register(api: Api, ws: Any) -> None:
    ident = ws.identity

    def groups_of(pid: str) -> list[dict[str, Any]]:
        return [{"value": g["id"], "display": g["name"], "$ref": f"Groups/{g['id']}", "type": "direct"}
                for g in ident.direct_groups(pid)]

    def shape(row: dict[str, Any]) -> dict[str, Any]:
        pid = row["id"]
        if row["kind"] == "user":
            return {"schemas": [USER_SCHEMA], "id": pid, "userName": row["name"],
                    "displayName": row["display_name"], "active": bool(row["active"]),
                    "emails": [{"value": row["name"], "primary": True, "type": "work"}] if "@" in row["name"] else [],
                    "externalId": row.get("external_id"), "groups": groups_of(pid), "entitlements": []}
        if row["kind"] == "group":
            members = [{"value": m["id"], "display": m["display_name"] or m["name"],
                        "$ref": f"{_ref(m['kind'])}/{m['id']}"} for m in ident.members(pid)]
            return {"schemas": [GROUP_SCHEMA], "id": pid, "displayName": row["name"], "members": members,
                    "externalId": row.get("external_id"), "groups": groups_of(pid), "entitlements": []}
        return {"schemas": [SP_SCHEMA], "id": pid, "applicationId": row["application_id"],
                "displayName": row["display_name"], "active": bool(row["active"]),
                "externalId": row.get("external_id"), "groups": groups_of(pid), "entitlements": []}

    def admin(req: Req) -> None:
        if not req.user.is_admin:
            raise PermissionDenied(f"{req.user.name} is not a workspace admin; only admins manage identities")

    def get_row(kind: str, pid: str) -> dict[str, Any]:
        row = ident.row(pid)
        if row["kind"] != kind:
            raise NotFound(f"{kind.replace('_', ' ')} {pid!r} does not exist")
        return row

    @api.route("GET", f"{SCIM}/Me", policy="authenticated")
    def me(req: Req) -> Response:
        from ._http import JSON

        body = shape(ident.row(req.user.id))
        return JSON(body, headers={"X-Databricks-Org-Id": ws.workspace_id})

    for collection, kind in KIND_OF.items():
        _register_collection(api, ws, collection, kind, shape, admin, get_row)


def _ref(kind: str) -> str:
    return {"user": "Users", "group": "Groups", "service_principal": "ServicePrincipals"}[kind]


def _register_collection(api: Api, ws: Any, collection: str, kind: str, shape: Any, admin: Any, get_row: Any) -> None:
    ident = ws.identity
    base = f"{SCIM}/{collection}"

    def name_from(body: dict[str, Any]) -> str:
        key = {"user": "userName", "group": "displayName", "service_principal": "applicationId"}[kind]
        value = body.get(key)
        if kind == "service_principal":
            return value or ""
        if not isinstance(value, str) or not value:
            raise InvalidParameterValue(f"{key} is required")
        return value

    def member_ids(body: dict[str, Any]) -> list[str]:
        members = body.get("members") or []
        if not isinstance(members, list) or not all(isinstance(m, dict) and m.get("value") for m in members):
            raise InvalidParameterValue("members must be a list of {\"value\": <principal id>}")
        return [str(m["value"]) for m in members]

    def list_(req: Req) -> dict[str, Any]:
        conds = _filter(req.query.get("filter"))
        start = max(1, req.int_arg("startIndex", 1) or 1)
        count = req.int_arg("count", 10000) or 10000
        rows = [r for r in ident.list(kind) if _match(r, conds)]
        page = rows[start - 1: start - 1 + max(0, count)]
        return {"schemas": [LIST_SCHEMA], "totalResults": len(rows), "startIndex": start,
                "itemsPerPage": len(page), "Resources": [shape(r) for r in page]}

    def create(req: Req) -> dict[str, Any]:
        admin(req)
        body = req.body or {}
        created = ident.create(kind, name_from(body), display_name=body.get("displayName"),
                               external_id=body.get("externalId"), active=body.get("active", True) is not False,
                               actor=req.user.name)
        if kind == "group":
            for mid in member_ids(body):
                ident.add_member(created.id, mid, actor=req.user.name)
        return shape(ident.row(created.id))

    def get(req: Req) -> dict[str, Any]:
        return shape(get_row(kind, req.path["id"]))

    def put(req: Req) -> Response:
        admin(req)
        pid = req.path["id"]
        get_row(kind, pid)
        body = req.body or {}
        ident.update(pid, display_name=body.get("displayName"),
                     active=None if "active" not in body else body.get("active") is not False,
                     name=body.get("userName") if kind == "user" else body.get("displayName") if kind == "group" else None,
                     actor=req.user.name)
        if kind == "group" and "members" in body:
            ident.set_members(pid, member_ids(body), actor=req.user.name)
        return Response(status_code=204)

    def patch(req: Req) -> Response:
        admin(req)
        pid = req.path["id"]
        get_row(kind, pid)
        who = req.user.name
        ops = (req.body or {}).get("Operations") or (req.body or {}).get("operations")
        if not isinstance(ops, list) or not ops:
            raise InvalidParameterValue("PATCH needs Operations: [{op, path, value}]")
        for op in ops:
            if not isinstance(op, dict):
                raise InvalidParameterValue("each operation must be an object")
            verb = str(op.get("op", "")).lower()
            path = str(op.get("path") or "")
            value = op.get("value")
            if path.lower() == "members" and kind == "group":
                ids = member_ids({"members": value if isinstance(value, list) else [value]})
                if verb == "add":
                    for mid in ids:
                        ident.add_member(pid, mid, actor=who)
                elif verb == "remove":
                    for mid in ids:
                        ident.remove_member(pid, mid, actor=who)
                elif verb == "replace":
                    ident.set_members(pid, ids, actor=who)
                else:
                    raise InvalidParameterValue(f"unsupported op {verb!r}")
            elif _MEMBER_PATH.match(path) and verb == "remove" and kind == "group":
                ident.remove_member(pid, _MEMBER_PATH.match(path).group(1), actor=who)  # type: ignore[union-attr]
            elif path.lower() in ("active", "displayname") and verb in ("replace", "add"):
                if path.lower() == "active":
                    ident.update(pid, active=value is not False and str(value).lower() != "false", actor=who)
                else:
                    ident.update(pid, display_name=str(value), actor=who)
            elif not path and verb == "replace" and isinstance(value, dict):
                if "active" in value:
                    ident.update(pid, active=value["active"] is not False, actor=who)
                if "displayName" in value:
                    ident.update(pid, display_name=str(value["displayName"]), actor=who)
            else:
                raise InvalidParameterValue(f"unsupported PATCH operation {verb!r} on path {path[:60]!r}")
        return Response(status_code=204)

    def delete(req: Req) -> Response:
        admin(req)
        get_row(kind, req.path["id"])
        ident.delete(req.path["id"], actor=req.user.name)
        return Response(status_code=204)

    for fn in (list_, create, get, put, patch, delete):
        fn.__name__ = f"{fn.__name__.strip('_')}_{kind}"
    api.route("GET", base, policy="authenticated")(list_)
    api.route("POST", base, policy="authenticated")(create)
    api.route("GET", base + "/{id}", policy="authenticated")(get)
    api.route("PUT", base + "/{id}", policy="authenticated")(put)
    api.route("PATCH", base + "/{id}", policy="authenticated")(patch)
    api.route("DELETE", base + "/{id}", policy="authenticated")(delete)
