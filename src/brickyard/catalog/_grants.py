"""Grants and lineage: methods of :class:`~brickyard.catalog.Catalog` (mixed in there; they use its
transactions, name resolution, decisions and audit log)."""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidParameterValue, NotFound
from ..core.ids import new_id
from ._db import Tx
from ._identity import Principal
from ._privileges import APPLICABLE, Node, normalize_privilege
from ._securable import METASTORE, Securable, securable_kind


class Grants:
    # -- grants --------------------------------------------------------------------------------
    def grants(self, p: Principal, kind: str, full_name: str, *, principal: str | None = None) -> list[dict[str, Any]]:
        kind = securable_kind(kind)
        with self._tx(write=False) as tx:
            obj = self._metastore_or_resolve(tx, p, kind, full_name, "getPermissions")
            return self._assignments(tx, obj.id, principal)

    def _metastore_or_resolve(self, tx: Tx, p: Principal, kind: str, full_name: str, action: str) -> Securable:
        if kind == "metastore":
            obj = self._load(tx, "metastore", METASTORE)
            assert obj is not None
            return obj
        return self._resolve(tx, p, kind, full_name, action=action)

    def _assignments(self, tx: Tx, sid: str, principal: str | None = None) -> list[dict[str, Any]]:
        by: dict[str, list[str]] = {}
        for row in tx.all("SELECT principal, privilege FROM grants WHERE securable_id = ? ORDER BY principal, privilege",
                          (sid,)):
            if principal is None or row["principal"] == principal:
                by.setdefault(row["principal"], []).append(row["privilege"])
        return [{"principal": k, "privileges": v} for k, v in by.items()]

    def update_grants(self, p: Principal, kind: str, full_name: str, changes: list[dict[str, Any]]
                      ) -> list[dict[str, Any]]:
        """Apply ``[{"principal", "add": [...], "remove": [...]}]``; only managers of the object may."""
        kind = securable_kind(kind)
        if not isinstance(changes, list) or not changes:
            raise InvalidParameterValue("changes must be a non-empty list of {principal, add, remove}")
        with self._tx() as tx:
            obj = self._metastore_or_resolve(tx, p, kind, full_name, "updatePermissions")
            if obj.kind == "metastore":
                if not p.is_admin:
                    self._deny(p, "updatePermissions", kind, METASTORE, f"{p.name} is not a metastore admin")
            else:
                d = self._decide(tx, p, "MANAGE", obj)
                if not d.allowed:
                    self._deny(p, "updatePermissions", kind, obj.full_name, d.reason)
            applicable = APPLICABLE[obj.kind]
            now = self.clock()
            for change in changes:
                if not isinstance(change, dict):
                    raise InvalidParameterValue("each change must be an object with principal, add and remove")
                grantee = change.get("principal")
                if not isinstance(grantee, str) or not grantee:
                    raise InvalidParameterValue("each change needs a principal")
                if not self.identity.exists(grantee, tx):
                    raise InvalidParameterValue(f"principal {grantee[:80]!r} does not exist")
                add = [normalize_privilege(x) for x in change.get("add") or []]
                remove = [normalize_privilege(x) for x in change.get("remove") or []]
                for priv in add + remove:
                    if priv not in applicable:
                        raise InvalidParameterValue(
                            f"privilege {priv} does not apply to a {obj.kind.replace('_', ' ')}; "
                            f"applicable: {', '.join(sorted(applicable))}"
                        )
                for priv in remove:
                    tx.execute("DELETE FROM grants WHERE securable_id = ? AND principal = ? AND privilege = ?",
                               (obj.id, grantee, priv))
                for priv in add:
                    if not tx.one("SELECT 1 AS x FROM grants WHERE securable_id = ? AND principal = ? AND privilege = ?",
                                  (obj.id, grantee, priv)):
                        tx.execute(
                            "INSERT INTO grants (securable_id, principal, privilege, granted_by, granted_at)"
                            " VALUES (?, ?, ?, ?, ?)",
                            (obj.id, grantee, priv, p.name, now),
                        )
                self._audit(tx, p, "updatePermissions", obj.kind, obj.full_name,
                            params={"principal": grantee, "add": add, "remove": remove})
            return self._assignments(tx, obj.id)

    def effective_grants(self, p: Principal, kind: str, full_name: str, *, principal: str | None = None
                         ) -> list[dict[str, Any]]:
        """Privileges in force on the object, with where each comes from (the object or a container)."""
        kind = securable_kind(kind)
        with self._tx(write=False) as tx:
            obj = self._metastore_or_resolve(tx, p, kind, full_name, "getEffectivePermissions")
            chain = [n for n in (obj.chain or (Node(obj.id, obj.kind, obj.full_name, obj.owner),))]
            grantees: set[str] | None = None
            if principal is not None:
                who = self.identity.by_name(principal, tx=tx)
                grantees = set(who.names) if who is not None else {principal}
            result: dict[str, list[dict[str, Any]]] = {}
            for node in chain:
                for row in tx.all("SELECT principal, privilege FROM grants WHERE securable_id = ? ORDER BY privilege",
                                  (node.id,)):
                    if grantees is not None and row["principal"] not in grantees:
                        continue
                    if node.id != obj.id and row["privilege"] not in APPLICABLE[obj.kind] | {"ALL_PRIVILEGES"}:
                        if row["privilege"] not in ("USE_CATALOG", "USE_SCHEMA"):
                            continue
                    entry: dict[str, Any] = {"privilege": row["privilege"]}
                    if node.id != obj.id:
                        entry["inherited_from_type"] = node.kind.upper()
                        entry["inherited_from_name"] = node.full_name
                    result.setdefault(principal or row["principal"], []).append(entry)
            return [{"principal": k, "privileges": v} for k, v in result.items()]

    # -- lineage -------------------------------------------------------------------------------
    def add_lineage(self, p: Principal, source: tuple[str, str], target: tuple[str, str], *, kind: str) -> None:
        """Record that ``target`` is derived from ``source`` (e.g. table -> vector index)."""
        with self._tx() as tx:
            src = self._load(tx, securable_kind(source[0]), source[1])
            dst = self._load(tx, securable_kind(target[0]), target[1])
            if src is None or dst is None:
                raise NotFound(f"lineage needs both ends to exist: {source[1]} -> {target[1]}")
            if not tx.one("SELECT id FROM lineage WHERE source_id = ? AND target_id = ? AND kind = ?",
                          (src.id, dst.id, kind)):
                tx.execute(
                    "INSERT INTO lineage (id, source_id, target_id, kind, created_at, created_by)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (new_id(), src.id, dst.id, kind, self.clock(), p.name),
                )

    def add_endpoint_lineage(self, p: Principal, securable: tuple[str, str], endpoint: str, *, direction: str,
                             edge: str, detail: str = "") -> None:
        """Record an edge between a securable and a serving endpoint: ``down`` (the endpoint serves it) or
        ``up`` (it uses the endpoint, e.g. a model that declares it). A missing securable records nothing."""
        with self._tx() as tx:
            obj = self._load(tx, securable_kind(securable[0]), securable[1])
            if obj is None:
                return
            tx.execute("DELETE FROM endpoint_lineage WHERE securable_id = ? AND endpoint_name = ? AND direction = ?"
                       " AND edge = ? AND detail = ?", (obj.id, endpoint, direction, edge, detail))
            tx.execute("INSERT INTO endpoint_lineage (securable_id, endpoint_name, direction, edge, detail,"
                       " created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (obj.id, endpoint, direction, edge, detail, self.clock(), p.name))

    def forget_endpoint_lineage(self, endpoint: str) -> None:
        with self._tx() as tx:
            tx.execute("DELETE FROM endpoint_lineage WHERE endpoint_name = ?", (endpoint,))

    def endpoint_lineage(self, p: Principal, endpoint: str) -> dict[str, list[dict[str, Any]]]:
        """The securables upstream (served by, or declaring) and downstream of a serving endpoint that the
        caller can see (the caller's right to see the endpoint is checked by serving)."""
        out: dict[str, list[dict[str, Any]]] = {"upstreams": [], "downstreams": []}
        with self._tx(write=False) as tx:
            rows = tx.all("SELECT l.direction, l.edge, l.detail, l.created_at AS linked_at, s.* FROM endpoint_lineage l"
                          " JOIN securables s ON s.id = l.securable_id WHERE l.endpoint_name = ?"
                          " ORDER BY s.full_name, l.detail", (endpoint,))
            for row in rows:
                other = Securable.from_row(row, self._chain(tx, row))
                if self._decide(tx, p, "BROWSE", other).allowed:
                    side = "upstreams" if row["direction"] == "down" else "downstreams"
                    out[side].append({"kind": other.kind, "full_name": other.full_name, "edge": row["edge"],
                                      "detail": row["detail"], "created_at": row["linked_at"]})
        return out

    def lineage(self, p: Principal, kind: str, full_name: str) -> dict[str, list[dict[str, Any]]]:
        """Upstream and downstream neighbours of an object that the caller can see."""
        kind = securable_kind(kind)
        with self._tx(write=False) as tx:
            obj = self._resolve(tx, p, kind, full_name, action="getLineage")
            out: dict[str, list[dict[str, Any]]] = {"upstreams": [], "downstreams": []}
            for direction, mine, theirs in (("upstreams", "target_id", "source_id"),
                                            ("downstreams", "source_id", "target_id")):
                rows = tx.all(
                    f"SELECT l.kind AS edge, l.created_at, s.* FROM lineage l JOIN securables s ON s.id = l.{theirs}"  # noqa: S608
                    f" WHERE l.{mine} = ? ORDER BY s.full_name",
                    (obj.id,),
                )
                for row in rows:
                    other = Securable.from_row(row, self._chain(tx, row))
                    if self._decide(tx, p, "BROWSE", other).allowed:
                        out[direction].append({"kind": other.kind, "full_name": other.full_name,
                                               "edge": row["edge"], "created_at": row["created_at"]})
            visible = self.endpoint_visible
            for row in tx.all("SELECT * FROM endpoint_lineage WHERE securable_id = ? ORDER BY endpoint_name, detail",
                              (obj.id,)):
                if visible is not None and visible(p, row["endpoint_name"]):
                    side = "downstreams" if row["direction"] == "down" else "upstreams"
                    out[side].append({"kind": "serving_endpoint", "full_name": row["endpoint_name"],
                                      "edge": row["edge"], "detail": row["detail"], "created_at": row["created_at"]})
            return out
