"""Saved queries (``/api/2.0/sql/queries``, ``w.queries``): SQL text with a name and an owner, which a job's
``sql_task.query`` runs. Deleting one moves it to the trash (it can still be read, not run or listed).

Who may do what: ``CAN_VIEW`` reads it, ``CAN_RUN`` also runs it (from a job), ``CAN_EDIT`` changes it,
``CAN_MANAGE`` (the owner, admins) deletes and grants it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..catalog import Principal
from ..catalog._acl import access_entries, acl_level, require_level
from ..core.errors import InvalidParameterValue
from ..core.ids import new_uuid, now_ms

LEVELS = {"CAN_VIEW": 1, "CAN_RUN": 2, "CAN_EDIT": 3, "CAN_MANAGE": 4}
FIELDS = {"display_name": str, "query_text": str, "description": str, "warehouse_id": str, "catalog": str,
          "schema": str, "parent_path": str, "tags": list, "apply_auto_limit": bool, "run_as_mode": str,
          "parameters": list}
MAX_TEXT = 1 << 20


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _fields(query: Any, allowed: set[str] | None = None) -> dict[str, Any]:
    if not isinstance(query, dict):
        raise InvalidParameterValue("query must be an object with display_name and query_text")
    out = {}
    for key, value in query.items():
        if allowed is not None and key not in allowed:
            continue
        kind = FIELDS.get(key)
        if kind is None:
            if key in ("id", "owner_user_name", "create_time", "update_time", "lifecycle_state",
                       "last_modifier_user_name"):
                continue  # read-only fields a client may echo back
            raise InvalidParameterValue(f"unknown query field {key!r}; a query has {', '.join(sorted(FIELDS))}")
        if value is not None and not isinstance(value, kind):
            raise InvalidParameterValue(f"query field {key} must be a {kind.__name__}")
        out[key] = value
    if len(out.get("query_text") or "") > MAX_TEXT:
        raise InvalidParameterValue(f"query_text is larger than {MAX_TEXT} bytes")
    if out.get("run_as_mode") not in (None, "OWNER", "VIEWER"):
        raise InvalidParameterValue("run_as_mode must be OWNER or VIEWER")
    return out


class SavedQueries:
    def __init__(self, db: Any, clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.clock = clock

    def _row(self, tx: Any, p: Principal, query_id: Any, need: str = "CAN_VIEW") -> Any:
        row = tx.one("SELECT * FROM sql_queries WHERE id = ?", (query_id,)) if isinstance(query_id, str) else None
        require_level(self._level(tx, p, row) if row else 0, need, LEVELS, f"query {str(query_id)[:60]!r}", p.name)
        return row

    @staticmethod
    def _level(tx: Any, p: Principal, row: Any) -> int:
        return acl_level(p, row["owner"], tx.all("SELECT principal, level FROM sql_query_acl WHERE query_id = ?",
                                                 (row["id"],)), LEVELS)

    @staticmethod
    def _shape(row: Any) -> dict[str, Any]:
        body = json.loads(row["body"])
        return {**body, "id": row["id"], "owner_user_name": row["owner"], "last_modifier_user_name": row["modifier"],
                "lifecycle_state": row["state"], "create_time": _iso(row["created_at"]),
                "update_time": _iso(row["updated_at"])}

    def create(self, p: Principal, body: Any) -> dict[str, Any]:
        query = _fields((body or {}).get("query") if isinstance(body, dict) else None)
        if not query.get("display_name") or not query.get("query_text"):
            raise InvalidParameterValue("a query needs display_name and query_text")
        now = self.clock()
        query_id = new_uuid()
        with self.db.tx() as tx:
            tx.execute("INSERT INTO sql_queries (id, owner, modifier, body, state, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (query_id, p.name, p.name, json.dumps(query), "ACTIVE", now, now))
            return self._shape(self._row(tx, p, query_id))

    def get(self, p: Principal, query_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            return self._shape(self._row(tx, p, query_id))

    def list(self, p: Principal, *, page_token: str | None = None, page_size: int = 100) -> dict[str, Any]:
        size = max(1, min(int(page_size or 100), 1000))
        with self.db.tx(write=False) as tx:
            rows = [r for r in tx.all("SELECT * FROM sql_queries WHERE state = 'ACTIVE' AND id > ? ORDER BY id",
                                      (page_token or "",)) if self._level(tx, p, r) > 0]
        out: dict[str, Any] = {"results": [self._shape(r) for r in rows[:size]]}
        if len(rows) > size:
            out["next_page_token"] = rows[size - 1]["id"]
        return out

    def update(self, p: Principal, query_id: Any, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("update_mask"), str) or not body["update_mask"]:
            raise InvalidParameterValue("update_mask is required: the fields to change, such as query_text")
        mask = {f.strip() for f in body["update_mask"].split(",") if f.strip()}
        unknown = mask - set(FIELDS)
        if unknown and mask != {"*"}:
            raise InvalidParameterValue(f"update_mask names unknown field(s) {', '.join(sorted(unknown))}")
        change = _fields(body.get("query") or {}, None if mask == {"*"} else mask)
        with self.db.tx() as tx:
            row = self._row(tx, p, query_id, "CAN_EDIT")
            if row["state"] != "ACTIVE":
                raise InvalidParameterValue(f"query {row['id']} is in the trash")
            merged = {**json.loads(row["body"]), **change}
            if not merged.get("display_name") or not merged.get("query_text"):
                raise InvalidParameterValue("a query needs display_name and query_text")
            tx.execute("UPDATE sql_queries SET body = ?, modifier = ?, updated_at = ? WHERE id = ?",
                       (json.dumps(merged), p.name, self.clock(), row["id"]))
            return self._shape(self._row(tx, p, row["id"]))

    def delete(self, p: Principal, query_id: Any) -> None:
        with self.db.tx() as tx:
            row = self._row(tx, p, query_id, "CAN_MANAGE")
            tx.execute("UPDATE sql_queries SET state = 'TRASHED', updated_at = ? WHERE id = ?", (self.clock(), row["id"]))

    def text_to_run(self, p: Principal, query_id: Any) -> str:
        """The SQL of a query ``p`` may run (CAN_RUN), for a job's ``sql_task.query``."""
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, query_id, "CAN_RUN")
        if row["state"] != "ACTIVE":
            raise InvalidParameterValue(f"query {row['id']} is in the trash")
        return str(json.loads(row["body"])["query_text"])

    def permissions(self, p: Principal, query_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._row(tx, p, query_id)
            acl = tx.all("SELECT principal, level FROM sql_query_acl WHERE query_id = ? ORDER BY principal", (row["id"],))
        entries = [{"user_name": row["owner"], "all_permissions": [{"permission_level": "IS_OWNER", "inherited": False}]}]
        entries += [{"user_name": a["principal"], "all_permissions": [{"permission_level": a["level"], "inherited": False}]}
                    for a in acl]
        return {"object_id": f"queries/{row['id']}", "object_type": "query", "access_control_list": entries}

    def set_permissions(self, p: Principal, query_id: Any, acl: Any, *, replace: bool) -> dict[str, Any]:
        entries = access_entries(acl, LEVELS)
        with self.db.tx() as tx:
            row = self._row(tx, p, query_id, "CAN_MANAGE")
            if replace:
                tx.execute("DELETE FROM sql_query_acl WHERE query_id = ?", (row["id"],))
            for who, level in entries:
                tx.execute("DELETE FROM sql_query_acl WHERE query_id = ? AND principal = ?", (row["id"], who))
                tx.execute("INSERT INTO sql_query_acl (query_id, principal, level) VALUES (?, ?, ?)",
                           (row["id"], who, level))
        return self.permissions(p, query_id)
