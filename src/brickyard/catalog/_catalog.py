"""The metastore: securables, ownership, grants, lineage and the audit log.

Every public method takes the calling :class:`Principal` first, checks what it may do, and records
the change (or the denial) in the audit log inside the same transaction as the change.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ..core.errors import AlreadyExists, InvalidParameterValue, InvalidState, NotFound, PermissionDenied
from ..core.ids import new_id, new_uuid, now_ms
from ..core.names import FullName, parse_name
from ._db import Database, Row, Tx
from ._grants import Grants
from ._identity import ACCOUNT_USERS, ADMINS, Identity, Principal
from ._privileges import Decision, Node, decide, normalize_privilege, outside_scope
from ._securable import (
    CREATE_PRIVILEGE,
    DEFAULT_PAGE,
    DEFAULT_SCHEMA_GRANTS,
    KINDS,
    METASTORE,
    Securable,
    _check_comment,
    _check_props,
    _namespace,
    securable_kind,
)
from ._versions import ModelVersions


class Catalog(Grants, ModelVersions):
    """Unity-Catalog-style metastore operations, each checked against the caller's privileges."""

    def __init__(self, db: Database, identity: Identity, *, clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.identity = identity
        self.clock = clock
        #: (principal, groups, scope, privilege, kind, name) -> (when, securable): recent allowed decisions
        self._allowed: dict[tuple[Any, ...], tuple[float, Securable]] = {}
        self._refreshing: set[tuple[Any, ...]] = set()  # decisions being re-checked now
        #: whether a principal may see a serving endpoint (set by the workspace; serving owns endpoint ACLs)
        self.endpoint_visible: Callable[[Principal, str], bool] | None = None

    # -- bootstrap -----------------------------------------------------------------------------
    def bootstrap(self) -> dict[str, str]:
        """Create the metastore root, the ``admins`` group and the ``system`` catalog once."""
        with self._tx() as tx:
            info = {r["key"]: r["value"] for r in tx.all("SELECT key, value FROM metastore_info")}
            if "metastore_id" in info:
                return info
            info = {"metastore_id": new_uuid(), "workspace_id": str(1_000_000_000_000 + int(new_id()[-12:], 16) % 9_000_000_000_000)}
            for k, v in info.items():
                tx.execute("INSERT INTO metastore_info (key, value) VALUES (?, ?)", (k, v))
            self.identity.create("group", ADMINS, tx=tx)
            now = self.clock()
            root = new_id()
            tx.execute(
                "INSERT INTO securables (id, kind, namespace, full_name, parent_id, owner, created_at, created_by,"
                " updated_at, updated_by) VALUES (?, 'metastore', 'metastore', ?, NULL, ?, ?, 'system', ?, 'system')",
                (root, METASTORE, ADMINS, now, now),
            )
            system = self._insert(tx, "catalog", "system", root, ADMINS, "system", now,
                                  comment="System tables maintained by Brickyard", spec={"system": True})
            self._insert(tx, "schema", "system.access", system, ADMINS, "system", now,
                         comment="System tables maintained by Brickyard", spec={"system": True})
            # As in a new Databricks workspace: a ``main`` catalog owned by the admins, which every user may
            # use, and its ``default`` schema, where every user may create tables, volumes, models and functions.
            main = self._insert(tx, "catalog", "main", root, ADMINS, "system", now,
                                comment="The workspace's default catalog")
            default = self._insert(tx, "schema", "main.default", main, ADMINS, "system", now,
                                   comment="Default schema (auto-created)")
            for sid, privileges in ((main, ("USE_CATALOG",)), (default, DEFAULT_SCHEMA_GRANTS)):
                for privilege in privileges:
                    tx.execute("INSERT INTO grants (securable_id, principal, privilege, granted_by, granted_at)"
                               " VALUES (?, ?, ?, 'system', ?)", (sid, ACCOUNT_USERS, privilege, now))
            return info

    @staticmethod
    def _insert(tx: Tx, kind: str, full_name: str, parent_id: str, owner: str, by: str, now: int, *,
                comment: str | None = None, properties: dict[str, str] | None = None,
                spec: dict[str, Any] | None = None, sid: str | None = None) -> str:
        sid = sid or new_id()
        tx.execute(
            "INSERT INTO securables (id, kind, namespace, full_name, parent_id, owner, comment, properties,"
            " spec, created_at, created_by, updated_at, updated_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, kind, _namespace(kind), full_name, parent_id, owner, comment, json.dumps(properties or {}),
             json.dumps(spec or {}), now, by, now, by),
        )
        return sid

    def info(self) -> dict[str, str]:
        with self._tx(write=False) as tx:
            return {r["key"]: r["value"] for r in tx.all("SELECT key, value FROM metastore_info")}

    # -- loading -------------------------------------------------------------------------------
    def _load(self, tx: Tx, kind: str, full_name: str) -> Securable | None:
        row = tx.one("SELECT * FROM securables WHERE namespace = ? AND full_name = ?", (_namespace(kind), full_name))
        if row is None:
            return None
        return Securable.from_row(row, self._chain(tx, row))

    def _chain(self, tx: Tx, row: Row) -> tuple[Node, ...]:
        nodes = [Node(row["id"], row["kind"], row["full_name"], row["owner"])]
        parent = row["parent_id"]
        while parent is not None:
            prow = tx.one("SELECT id, kind, full_name, owner, parent_id FROM securables WHERE id = ?", (parent,))
            if prow is None:
                break
            nodes.append(Node(prow["id"], prow["kind"], prow["full_name"], prow["owner"]))
            parent = prow["parent_id"]
        return tuple(nodes)

    def _grants_on(self, tx: Tx, ids: Iterable[str]) -> list[tuple[str, str, str]]:
        ids = list(ids)
        marks = ",".join("?" * len(ids))
        rows = tx.all(f"SELECT securable_id, principal, privilege FROM grants WHERE securable_id IN ({marks})", ids)  # noqa: S608 - only placeholders
        return [(r["securable_id"], r["principal"], r["privilege"]) for r in rows]

    def _decide(self, tx: Tx, p: Principal, privilege: str, obj: Securable) -> Decision:
        if p.scope is not None:
            refused = outside_scope(p.scope, privilege, obj.kind, obj.full_name)
            if refused:
                return Decision(False, refused)
        chain = obj.chain or self._chain(tx, {"id": obj.id, "kind": obj.kind, "full_name": obj.full_name,
                                                "owner": obj.owner, "parent_id": obj.parent_id})
        # The metastore root is not a data container: its grants do not flow down to catalogs.
        data_chain = [n for n in chain if n.kind != "metastore"] or list(chain)
        return decide(p, privilege, data_chain, self._grants_on(tx, [n.id for n in data_chain]))

    def _parse(self, kind: str, full_name: str) -> FullName:
        levels, _ = KINDS[kind]
        return parse_name(full_name, levels, what=f"{kind.replace('_', ' ')} name")

    def _resolve(self, tx: Tx, p: Principal, kind: str, full_name: str, *, action: str) -> Securable:
        """Load an object the caller may at least see; 404 if missing, 403 (with the reason) if hidden.

        Containers are checked first, so whether a child exists is never revealed to someone who
        cannot use its catalog and schema.
        """
        fn = self._parse(kind, full_name)
        for depth, ckind in ((1, "catalog"), (2, "schema")):
            if len(fn.parts) > depth and kind != "connection":
                container = self._load(tx, ckind, ".".join(fn.parts[:depth]))
                if container is None:
                    raise NotFound(f"{ckind.capitalize()} '{'.'.join(fn.parts[:depth])}' does not exist.")
                usage = "USE_CATALOG" if ckind == "catalog" else "USE_SCHEMA"
                d = self._decide(tx, p, usage, container)
                if not d.allowed:
                    self._deny(p, action, kind, str(fn), d.reason)
        obj = self._load(tx, kind, str(fn))
        if obj is None:
            raise NotFound(f"{kind.replace('_', ' ').capitalize()} '{fn}' does not exist.")
        d = self._decide(tx, p, "BROWSE", obj)
        if not d.allowed and not self._sees_descendant(tx, p, obj):
            self._deny(p, action, kind, str(fn), d.reason)
        return obj

    def _sees_descendant(self, tx: Tx, p: Principal, obj: Securable) -> bool:
        if obj.kind not in ("catalog", "schema", "metastore"):
            return False
        names = list(p.names)
        marks = ",".join("?" * len(names))
        prefix = obj.full_name + "."
        row = tx.one(
            f"SELECT s.id FROM securables s WHERE substr(s.full_name, 1, ?) = ? AND s.namespace <> 'catalog'"  # noqa: S608
            f" AND (s.owner IN ({marks}) OR EXISTS (SELECT 1 FROM grants g WHERE g.securable_id = s.id"
            f" AND g.principal IN ({marks}))) LIMIT 1",
            [len(prefix), prefix, *names, *names],
        )
        return row is not None

    def _deny(self, p: Principal, action: str, kind: str, full_name: str, reason: str) -> None:
        # The denial is written to the audit log by _tx once the surrounding transaction has rolled back.
        raise PermissionDenied(reason, audit=(p, action, kind, full_name))

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[Tx]:
        try:
            with self.db.tx(write=write) as tx:
                yield tx
            if write:
                self._allowed.clear()  # this process's changes apply to cached decisions at once
        except PermissionDenied as exc:
            pending = exc.details.pop("audit", None)
            if pending is not None:
                who, action, kind, full_name = pending
                self.audit_event(who, action, kind, full_name, allowed=False, reason=exc.message)
            raise

    def _require(self, tx: Tx, p: Principal, privilege: str, obj: Securable, action: str,
                 target: tuple[str, str] | None = None) -> None:
        d = self._decide(tx, p, privilege, obj)
        if not d.allowed:
            kind, name = target or (obj.kind, obj.full_name)
            self._deny(p, action, kind, name, d.reason)

    # -- audit ---------------------------------------------------------------------------------
    def _audit(self, tx: Tx, p: Principal | str, action: str, kind: str | None, full_name: str | None,
               *, allowed: bool = True, reason: str | None = None, params: dict[str, Any] | None = None) -> None:
        who = p if isinstance(p, str) else p.name
        tx.execute(
            "INSERT INTO audit (id, event_time, principal, action, securable_type, full_name, allowed, reason,"
            " request_params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (new_id(), self.clock(), who, action, kind, full_name, int(allowed), reason,
             json.dumps(params or {}, default=str, sort_keys=True)),
        )

    def audit_event(self, p: Principal | str, action: str, kind: str | None, full_name: str | None, *,
                    allowed: bool = True, reason: str | None = None, params: dict[str, Any] | None = None) -> None:
        """Record one event in its own transaction (used for denials, which roll back everything else)."""
        with self.db.tx() as tx:
            self._audit(tx, p, action, kind, full_name, allowed=allowed, reason=reason, params=params)

    def audit_rows(self, *, since_ms: int | None = None, limit: int | None = None) -> list[Row]:
        with self._tx(write=False) as tx:
            sql = "SELECT * FROM audit"
            params: list[Any] = []
            if since_ms is not None:
                sql += " WHERE event_time >= ?"
                params.append(since_ms)
            sql += " ORDER BY id"
            if limit is not None:
                sql += " LIMIT ?"
                params.append(int(limit))
            return tx.all(sql, params)

    # -- checks --------------------------------------------------------------------------------
    def check(self, p: Principal, privilege: str, securable: Securable | tuple[str, str]) -> Decision:
        """Whether ``p`` holds ``privilege`` on ``securable`` (an object or ``(kind, full_name)``), and why."""
        privilege = privilege if privilege in ("OWNERSHIP",) else normalize_privilege(privilege)
        with self._tx(write=False) as tx:
            obj = securable if isinstance(securable, Securable) else self._load(
                tx, securable_kind(securable[0]), securable[1])
            if obj is None:
                return Decision(False, f"{securable[1]} does not exist")  # type: ignore[index]
            return self._decide(tx, p, privilege, obj)

    DECISION_SECONDS = 0.5

    def require_cached(self, p: Principal, privilege: str, kind: str, full_name: str, *, action: str) -> Securable:
        """:meth:`require` for hot read paths: an allowed decision is remembered for DECISION_SECONDS.
        This process's catalog writes clear it at once; other processes' apply within twice that bound
        (1 s, as for authentication). When a decision expires, the one caller that re-checks it holds a
        refresh mark; others keep the old answer for up to one more DECISION_SECONDS meanwhile, so a busy
        index is not re-checked by every request in flight at once. Denials are never cached (each one
        is audited) and a refresh that is denied drops the decision."""
        key = (p.name, p.groups, p.scope, privilege, kind, full_name)
        if self._decided(key):
            return self._allowed[key][1]
        self._refreshing.add(key)
        try:
            obj = self.require(p, privilege, kind, full_name, action=action)
        except BaseException:
            self._allowed.pop(key, None)
            raise
        finally:
            self._refreshing.discard(key)
        if len(self._allowed) > 10_000:
            self._allowed.clear()
        self._allowed[key] = (time.monotonic(), obj)
        return obj

    def is_cached(self, p: Principal, privilege: str, kind: str, full_name: str) -> bool:
        """Whether :meth:`require_cached` would answer without reading the metastore."""
        return self._decided((p.name, p.groups, p.scope, privilege, kind, full_name))

    def _decided(self, key: tuple[Any, ...]) -> bool:
        hit = self._allowed.get(key)
        if hit is None:
            return False
        age = time.monotonic() - hit[0]
        return age < self.DECISION_SECONDS or (age < 2 * self.DECISION_SECONDS and key in self._refreshing)

    def require(self, p: Principal, privilege: str, kind: str, full_name: str, *, action: str) -> Securable:
        """Load ``kind full_name`` and insist that ``p`` holds ``privilege`` on it (else 403, audited)."""
        kind = securable_kind(kind)
        with self._tx(write=False) as tx:
            obj = self._resolve(tx, p, kind, full_name, action=action)
            self._require(tx, p, normalize_privilege(privilege), obj, action)
            return obj

    # -- create / get / list / update / delete ---------------------------------------------------
    def create(self, p: Principal, kind: str, full_name: str, *, comment: str | None = None,
               properties: dict[str, Any] | None = None, spec: dict[str, Any] | None = None,
               owner: str | None = None, prepare: Callable[[Securable | None, str], dict[str, Any]] | None = None
               ) -> Securable:
        """Create a securable. ``prepare(parent, id)`` may return extra spec fields (e.g. a storage path)."""
        kind = securable_kind(kind)
        if kind == "metastore":
            raise InvalidParameterValue("the metastore already exists")
        fn = self._parse(kind, full_name)
        comment = _check_comment(comment)
        props = _check_props(properties)
        action = f"create{kind.title().replace('_', '')}"
        sid = new_id()
        with self._tx() as tx:
            levels, parent_kind = KINDS[kind]
            if parent_kind == "metastore":
                parent = self._load(tx, "metastore", METASTORE)
            else:
                parent = self._resolve(tx, p, parent_kind or "", ".".join(fn.parts[:-1]), action=action)
            assert parent is not None
            if parent.spec.get("system") and not p.is_admin:
                self._deny(p, action, kind, str(fn), f"{parent.full_name} is a system {parent.kind}; it is read-only")
            if kind == "catalog" and fn.name == "system":
                raise InvalidParameterValue("the 'system' catalog is reserved")
            if parent.kind == "schema":
                self._require(tx, p, "USE_SCHEMA", parent, action, (kind, str(fn)))
            if parent.kind == "catalog":
                self._require(tx, p, "USE_CATALOG", parent, action, (kind, str(fn)))
            self._require(tx, p, CREATE_PRIVILEGE[kind], parent, action, (kind, str(fn)))
            if self._load(tx, kind, str(fn)) is not None:
                raise AlreadyExists(f"{kind.replace('_', ' ').capitalize()} '{fn}' already exists")
            new_owner = owner or p.name
            if owner is not None and not self.identity.exists(owner, tx):
                raise InvalidParameterValue(f"owner {owner!r} is not a known user, group or service principal")
            full_spec = dict(spec or {})
            if prepare is not None:
                full_spec.update(prepare(parent, sid))
            now = self.clock()
            try:
                self._insert(tx, kind, str(fn), parent.id, new_owner, p.name, now, comment=comment,
                             properties=props, spec=full_spec, sid=sid)
                if kind == "catalog":  # every new catalog comes with a ``default`` schema, as on Databricks
                    self._insert(tx, "schema", f"{fn}.default", sid, new_owner, p.name, now,
                                 comment="Default schema (auto-created)")
            except self.db.integrity_errors() as exc:
                raise AlreadyExists(f"{kind.replace('_', ' ').capitalize()} '{fn}' already exists") from exc
            self._audit(tx, p, action, kind, str(fn), params={"comment": comment, "owner": new_owner})
            obj = self._load(tx, kind, str(fn))
        assert obj is not None
        return obj

    def get(self, p: Principal, kind: str, full_name: str) -> Securable:
        kind = securable_kind(kind)
        with self._tx(write=False) as tx:
            if kind == "metastore":
                obj = self._load(tx, "metastore", METASTORE)
                assert obj is not None
                return obj
            return self._resolve(tx, p, kind, full_name, action=f"get{kind.title().replace('_', '')}")

    def name_of(self, kind: str, sid: str) -> str | None:
        """The full name of the ``kind`` securable whose id is ``sid`` (None if there is none). Says nothing of
        who may see it: resolve the name with a check before reading the object."""
        with self._tx(write=False) as tx:
            row = tx.one("SELECT full_name FROM securables WHERE id = ? AND kind = ?", (str(sid), securable_kind(kind)))
        return None if row is None else str(row["full_name"])

    def exists(self, kind: str, full_name: str) -> bool:
        with self._tx(write=False) as tx:
            return self._load(tx, securable_kind(kind), full_name) is not None

    def lookup(self, kind: str, full_name: str) -> Securable | None:
        """The object, with no check of anyone's rights: for what the platform itself applies on a reader's
        behalf (a table's row filter and masks run whoever reads it). Never hand it to a caller as is."""
        with self._tx(write=False) as tx:
            return self._load(tx, securable_kind(kind), full_name)

    def list(self, p: Principal, kind: str, parent: str | None = None, *, page_token: str | None = None,
             max_results: int | None = None, where: Callable[[Securable], bool] | None = None
             ) -> tuple[list[Securable], str | None]:
        """Children of ``parent`` the caller can see, ordered by name, one page at a time."""
        kind = securable_kind(kind)
        size = DEFAULT_PAGE if not max_results or max_results <= 0 else min(int(max_results), DEFAULT_PAGE)
        if page_token is not None and (not isinstance(page_token, str) or len(page_token) > 1000):
            raise InvalidParameterValue("page_token is not valid; pass back the next_page_token you were given")
        out: list[Securable] = []
        with self._tx(write=False) as tx:
            _levels, parent_kind = KINDS[kind]
            if parent_kind == "metastore":
                parent_obj = self._load(tx, "metastore", METASTORE)
            else:
                if not parent:
                    raise InvalidParameterValue(f"listing {kind}s needs the name of the {parent_kind} to list")
                parent_obj = self._resolve(tx, p, parent_kind or "", parent, action=f"list{kind.title()}s")
                if parent_obj.kind in ("catalog", "schema"):
                    self._require(tx, p, "USE_CATALOG" if parent_obj.kind == "catalog" else "USE_SCHEMA",
                                  parent_obj, f"list{kind.title()}s")
            assert parent_obj is not None
            cursor = page_token or ""
            while len(out) < size:
                rows = tx.all(
                    "SELECT * FROM securables WHERE parent_id = ? AND kind = ? AND full_name > ?"
                    " ORDER BY full_name LIMIT ?",
                    (parent_obj.id, kind, cursor, size * 2),
                )
                if not rows:
                    cursor = ""
                    break
                for row in rows:
                    cursor = row["full_name"]
                    obj = Securable.from_row(row, self._chain(tx, row))
                    if where is not None and not where(obj):
                        continue
                    if self._decide(tx, p, "BROWSE", obj).allowed or self._sees_descendant(tx, p, obj):
                        out.append(obj)
                        if len(out) >= size:
                            break
                else:
                    if len(rows) < size * 2:
                        cursor = ""
                        break
            if len(out) >= size and cursor:
                more = tx.one(
                    "SELECT id FROM securables WHERE parent_id = ? AND kind = ? AND full_name > ? LIMIT 1",
                    (parent_obj.id, kind, cursor),
                )
                if more is None:
                    cursor = ""
            else:
                cursor = ""
        return out, (cursor or None)

    def update(self, p: Principal, kind: str, full_name: str, *, new_name: str | None = None,
               owner: str | None = None, comment: str | None = None, properties: dict[str, Any] | None = None,
               spec: dict[str, Any] | None = None) -> Securable:
        kind = securable_kind(kind)
        action = f"update{kind.title().replace('_', '')}"
        comment = _check_comment(comment)
        with self._tx() as tx:
            obj = self._resolve(tx, p, kind, full_name, action=action)
            if obj.spec.get("system") and not p.is_admin:
                self._deny(p, action, kind, obj.full_name, f"{obj.full_name} is a system object; it is read-only")
            changes: dict[str, Any] = {}
            if owner is not None and owner != obj.owner:
                d = self._decide(tx, p, "OWNERSHIP", obj)
                if not d.allowed:
                    d = self._decide(tx, p, "MANAGE", obj)
                if not d.allowed:
                    self._deny(p, action, kind, obj.full_name, d.reason)
                if not self.identity.exists(owner, tx):
                    raise InvalidParameterValue(f"new owner {owner!r} is not a known user, group or service principal")
                changes["owner"] = owner
            if comment is not None or properties is not None or spec is not None or new_name is not None:
                self._require(tx, p, "MANAGE", obj, action)
            if comment is not None:
                changes["comment"] = comment
            if properties is not None:
                merged = dict(obj.properties)
                merged.update(_check_props(properties))
                changes["properties"] = json.dumps(merged)
            if spec is not None:
                merged_spec = dict(obj.spec)
                merged_spec.update(spec)
                changes["spec"] = json.dumps(merged_spec)
            if new_name is not None:
                fn = self._parse(kind, obj.full_name)
                renamed = ".".join([*fn.parts[:-1], self._parse(kind, ".".join([*fn.parts[:-1], new_name])).name])
                if renamed != obj.full_name:
                    if self._load(tx, kind, renamed) is not None:
                        raise AlreadyExists(f"{kind.replace('_', ' ').capitalize()} '{renamed}' already exists")
                    self._rename_tree(tx, obj, renamed)
                    changes["full_name"] = renamed
            if changes:
                changes["updated_at"] = self.clock()
                changes["updated_by"] = p.name
                cols = ", ".join(f"{c} = ?" for c in changes)
                tx.execute(f"UPDATE securables SET {cols} WHERE id = ?", [*changes.values(), obj.id])  # noqa: S608 - fixed column names
                self._audit(tx, p, action, kind, obj.full_name,
                            params={k: v for k, v in changes.items() if k not in ("updated_at", "updated_by")})
            result = self._load(tx, kind, changes.get("full_name", obj.full_name))
        assert result is not None
        return result

    def _rename_tree(self, tx: Tx, obj: Securable, new_full: str) -> None:
        old_prefix = obj.full_name + "."
        stack = [obj.id]
        while stack:
            pid = stack.pop()
            for child in tx.all("SELECT id, full_name FROM securables WHERE parent_id = ?", (pid,)):
                if child["full_name"].startswith(old_prefix):
                    tx.execute("UPDATE securables SET full_name = ? WHERE id = ?",
                               (new_full + "." + child["full_name"][len(old_prefix):], child["id"]))
                stack.append(child["id"])

    def delete(self, p: Principal, kind: str, full_name: str, *, force: bool = False,
               on_deleted: Callable[[list[Securable]], None] | None = None) -> Securable:
        """Drop an object. Containers must be empty unless ``force``. ``on_deleted`` gets every dropped object
        (after the metastore commit) so storage can be cleaned up."""
        kind = securable_kind(kind)
        action = f"delete{kind.title().replace('_', '')}"
        with self._tx() as tx:
            obj = self._resolve(tx, p, kind, full_name, action=action)
            if obj.spec.get("system"):
                raise InvalidParameterValue(f"{obj.full_name} is a system object and cannot be dropped")
            d = self._decide(tx, p, "MANAGE", obj)
            if not d.allowed:
                self._deny(p, action, kind, obj.full_name, d.reason)
            dropped = self._descendants(tx, obj)
            auto = [d for d in dropped[1:] if obj.kind == "catalog" and d.full_name == f"{obj.full_name}.default"]
            if len(dropped) > 1 + len(auto) and not force:  # an empty auto-created default schema does not count
                raise InvalidState(
                    f"{kind.capitalize()} '{obj.full_name}' is not empty ({len(dropped) - 1} objects inside); "
                    "drop them first or pass force=true"
                )
            tx.execute("DELETE FROM securables WHERE id = ?", (obj.id,))
            self._audit(tx, p, action, kind, obj.full_name, params={"force": force})
        if on_deleted is not None:
            on_deleted(dropped)
        return obj

    def _descendants(self, tx: Tx, obj: Securable) -> list[Securable]:
        out = [obj]
        stack = [obj.id]
        while stack:
            pid = stack.pop()
            for row in tx.all("SELECT * FROM securables WHERE parent_id = ?", (pid,)):
                out.append(Securable.from_row(row))
                stack.append(row["id"])
        return out

    def storage_in_use(self, path: str) -> bool:
        """Whether any live securable's spec points at ``path`` as its storage location."""
        with self._tx(write=False) as tx:
            rows = tx.all("SELECT spec FROM securables WHERE kind IN ('table', 'volume')")
        return any(json.loads(r["spec"]).get("storage_location") == path for r in rows)

__all__ = ["ACCOUNT_USERS", "ADMINS", "Catalog", "Securable", "securable_kind"]
