"""Principals (users, groups, service principals), group membership, tokens and OAuth secrets.

Tokens and secrets are random 128-bit+ values; only their SHA-256 is stored, so a copy of the
metastore does not let anyone log in. Membership in the built-in group ``admins`` (directly or through
nested groups) makes a principal a metastore and workspace admin. Every principal is implicitly in
``account users``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.errors import AlreadyExists, InvalidParameterValue, NotFound, Unauthenticated
from ..core.ids import new_id, now_ms
from ._db import Database, Row, Tx

ADMINS = "admins"
ACCOUNT_USERS = "account users"
KINDS = ("user", "group", "service_principal")
_MAX_NAME = 255


@dataclass(frozen=True)
class Principal:
    """An authenticated caller (or any principal) with the transitive closure of its groups."""

    id: str
    kind: str
    name: str
    display_name: str | None = None
    application_id: str | None = None
    active: bool = True
    groups: frozenset[str] = field(default_factory=frozenset)
    #: when set, the only objects this principal may reach (``kind:full_name`` keys such as
    #: ``table:main.rag.docs_index`` or ``serving_endpoint:chat``), on top of its own grants: the credential
    #: of a served model with a system auth policy (its declared resources)
    scope: frozenset[str] | None = None
    #: when set, the API families this credential may call (Databricks OAuth scopes such as ``sql`` or
    #: ``serving.serving-endpoints``): the token an app gets to act for its signed-in user (user authorization)
    api_scopes: frozenset[str] | None = None

    @property
    def limited(self) -> bool:
        """A credential narrower than its principal (a served model's, an app's for its user, an app's browser
        session): it may not sign in to the workspace's pages, open a Spark session or call apps."""
        return self.scope is not None or self.api_scopes is not None

    @property
    def is_admin(self) -> bool:
        return ADMINS in self.groups or (self.kind == "group" and self.name == ADMINS)

    @property
    def names(self) -> frozenset[str]:
        """Every name a grant to this principal may be addressed to."""
        return self.groups | {self.name, ACCOUNT_USERS}


def _title(kind: str) -> str:
    return kind.title().replace("_", "")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterValue(f"{what} is required")
    if len(value) > _MAX_NAME or any(ord(c) < 32 for c in value):
        raise InvalidParameterValue(f"{what} must be at most {_MAX_NAME} printable characters")
    if value.strip() != value:
        raise InvalidParameterValue(f"{what} must not start or end with spaces")
    return value


MAX_TOKEN_LIFETIME_SECONDS = 100 * 365 * 24 * 3600


class Identity:
    """Principals and credentials stored in the metastore.

    Every change is written to the audit log in the same transaction, naming the ``actor`` (the signed-in
    principal for REST calls, ``local`` for the CLI and library).
    """

    #: how long an authenticated token is remembered; revocation in another process takes effect within it
    CACHE_MS = 1000

    def __init__(self, db: Database, *, clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.clock = clock
        self._cache: dict[str, tuple[int, int | None, Principal]] = {}
        self._delegations: dict[str, Callable[[], Principal | None]] = {}  # token hash -> whom it acts for now

    def forget(self) -> None:
        """Drop remembered authentications (after any change to principals, groups or tokens)."""
        self._cache.clear()

    def _audit(self, t: Tx, actor: str, action: str, kind: str, target: str, **params: Any) -> None:
        import json

        self.forget()  # every change to identities goes through here
        t.execute(
            "INSERT INTO audit (id, event_time, principal, action, securable_type, full_name, allowed, reason,"
            " request_params) VALUES (?, ?, ?, ?, ?, ?, 1, NULL, ?)",
            (new_id(), self.clock(), actor, action, kind, target, json.dumps(params, sort_keys=True, default=str)),
        )

    # -- principals ----------------------------------------------------------------------------
    def create(
        self,
        kind: str,
        name: str,
        *,
        display_name: str | None = None,
        external_id: str | None = None,
        active: bool = True,
        tx: Tx | None = None,
        actor: str = "local",
    ) -> Principal:
        if kind not in KINDS:
            raise InvalidParameterValue(f"principal kind must be one of {', '.join(KINDS)}")
        if kind == "service_principal":
            application_id = name or new_id()
            name = application_id
        else:
            application_id = None
        _check_name(name, {"user": "userName", "group": "displayName"}.get(kind, "applicationId"))
        if name == ACCOUNT_USERS:
            raise InvalidParameterValue(f"{ACCOUNT_USERS!r} is a built-in group name")
        pid = new_id()
        row = (pid, kind, name, display_name or name, application_id, external_id, int(active), self.clock())

        def insert(t: Tx) -> None:
            if t.one("SELECT id FROM principals WHERE name = ?", (name,)):
                raise AlreadyExists(f"a principal named {name!r} already exists")
            t.execute(
                "INSERT INTO principals (id, kind, name, display_name, application_id, external_id, active,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            self._audit(t, actor, f"create{_title(kind)}", kind, name)

        if tx is not None:
            insert(tx)
        else:
            try:
                with self.db.tx() as t:
                    insert(t)
            except self.db.integrity_errors() as exc:
                raise AlreadyExists(f"a principal named {name!r} already exists") from exc
        return self.get(pid, tx=tx)

    def _row(self, tx: Tx, *, pid: str | None = None, name: str | None = None) -> Row | None:
        if pid is not None:
            return tx.one("SELECT * FROM principals WHERE id = ?", (pid,))
        return tx.one("SELECT * FROM principals WHERE name = ?", (name,))

    def _principal(self, tx: Tx, row: Row) -> Principal:
        groups = tx.all(
            """WITH RECURSIVE up(gid) AS (
                   SELECT group_id FROM group_members WHERE member_id = ?
                   UNION SELECT gm.group_id FROM group_members gm JOIN up ON gm.member_id = up.gid)
               SELECT p.name FROM up JOIN principals p ON p.id = up.gid""",
            (row["id"],),
        )
        return Principal(
            id=row["id"],
            kind=row["kind"],
            name=row["name"],
            display_name=row["display_name"],
            application_id=row["application_id"],
            active=bool(row["active"]),
            groups=frozenset(g["name"] for g in groups),
        )

    def get(self, pid: str, *, kind: str | None = None, tx: Tx | None = None) -> Principal:
        def run(t: Tx) -> Principal:
            row = self._row(t, pid=pid)
            if row is None or (kind and row["kind"] != kind):
                raise NotFound(f"{(kind or 'principal').replace('_', ' ')} {pid!r} does not exist")
            return self._principal(t, row)

        if tx is not None:
            return run(tx)
        with self.db.tx(write=False) as t:
            return run(t)

    def by_name(self, name: str, *, tx: Tx | None = None) -> Principal | None:
        def run(t: Tx) -> Principal | None:
            row = self._row(t, name=name)
            return None if row is None else self._principal(t, row)

        if tx is not None:
            return run(tx)
        with self.db.tx(write=False) as t:
            return run(t)

    def exists(self, name: str, tx: Tx) -> bool:
        return name == ACCOUNT_USERS or tx.one("SELECT id FROM principals WHERE name = ?", (name,)) is not None

    def list(self, kind: str) -> list[Row]:
        with self.db.tx(write=False) as t:
            return t.all("SELECT * FROM principals WHERE kind = ? ORDER BY name", (kind,))

    def row(self, pid: str) -> Row:
        with self.db.tx(write=False) as t:
            row = self._row(t, pid=pid)
        if row is None:
            raise NotFound(f"principal {pid!r} does not exist")
        return row

    def update(self, pid: str, *, display_name: str | None = None, active: bool | None = None,
               name: str | None = None, actor: str = "local") -> None:
        with self.db.tx() as t:
            row = self._row(t, pid=pid)
            if row is None:
                raise NotFound(f"principal {pid!r} does not exist")
            self._audit(t, actor, f"update{_title(row['kind'])}", row["kind"], row["name"],
                        display_name=display_name, active=active, name=name)
            if display_name is not None:
                t.execute("UPDATE principals SET display_name = ? WHERE id = ?", (display_name, pid))
            if active is not None:
                t.execute("UPDATE principals SET active = ? WHERE id = ?", (int(active), pid))
            if name is not None and name != row["name"]:
                _check_name(name, "name")
                if row["kind"] == "service_principal":
                    raise InvalidParameterValue("the applicationId of a service principal cannot change")
                if t.one("SELECT id FROM principals WHERE name = ?", (name,)):
                    raise AlreadyExists(f"a principal named {name!r} already exists")
                t.execute("UPDATE principals SET name = ? WHERE id = ?", (name, pid))

    def delete(self, pid: str, *, actor: str = "local") -> str:
        with self.db.tx() as t:
            row = self._row(t, pid=pid)
            if row is None:
                raise NotFound(f"principal {pid!r} does not exist")
            if row["kind"] == "group" and row["name"] == ADMINS:
                raise InvalidParameterValue("the built-in 'admins' group cannot be deleted")
            # A later principal with the same name must not inherit anything: drop its grants and hand
            # what it owned to the admins.
            t.execute("DELETE FROM grants WHERE principal = ?", (row["name"],))
            t.execute("UPDATE securables SET owner = ? WHERE owner = ?", (ADMINS, row["name"]))
            t.execute("DELETE FROM principals WHERE id = ?", (pid,))
            self._audit(t, actor, f"delete{_title(row['kind'])}", row["kind"], row["name"])
            return str(row["name"])

    # -- membership ----------------------------------------------------------------------------
    def members(self, group_id: str) -> list[Row]:
        with self.db.tx(write=False) as t:
            return t.all(
                "SELECT p.id, p.kind, p.name, p.display_name FROM group_members gm "
                "JOIN principals p ON p.id = gm.member_id WHERE gm.group_id = ? ORDER BY p.name",
                (group_id,),
            )

    def direct_groups(self, pid: str) -> list[Row]:
        with self.db.tx(write=False) as t:
            return t.all(
                "SELECT p.id, p.name FROM group_members gm JOIN principals p ON p.id = gm.group_id "
                "WHERE gm.member_id = ? ORDER BY p.name",
                (pid,),
            )

    def add_member(self, group_id: str, member_id: str, *, tx: Tx | None = None, actor: str = "local") -> None:
        def run(t: Tx) -> None:
            group = self._row(t, pid=group_id)
            if group is None or group["kind"] != "group":
                raise NotFound(f"group {group_id!r} does not exist")
            if self._row(t, pid=member_id) is None:
                raise NotFound(f"principal {member_id!r} does not exist")
            if member_id == group_id:
                raise InvalidParameterValue("a group cannot be a member of itself")
            # Refuse cycles: the group must not already be (transitively) inside the new member.
            cyc = t.one(
                """WITH RECURSIVE down(mid) AS (
                       SELECT member_id FROM group_members WHERE group_id = ?
                       UNION SELECT gm.member_id FROM group_members gm JOIN down ON gm.group_id = down.mid)
                   SELECT mid FROM down WHERE mid = ?""",
                (member_id, group_id),
            )
            if cyc:
                raise InvalidParameterValue("adding this member would make a cycle of nested groups")
            if not t.one(
                "SELECT group_id FROM group_members WHERE group_id = ? AND member_id = ?", (group_id, member_id)
            ):
                t.execute("INSERT INTO group_members (group_id, member_id) VALUES (?, ?)", (group_id, member_id))
                self._audit(t, actor, "addGroupMember", "group", group["name"], member_id=member_id)

        if tx is not None:
            run(tx)
        else:
            with self.db.tx() as t:
                run(t)

    def remove_member(self, group_id: str, member_id: str, *, actor: str = "local") -> None:
        with self.db.tx() as t:
            group = self._row(t, pid=group_id)
            if group is None or group["kind"] != "group":
                raise NotFound(f"group {group_id!r} does not exist")
            t.execute("DELETE FROM group_members WHERE group_id = ? AND member_id = ?", (group_id, member_id))
            self._audit(t, actor, "removeGroupMember", "group", group["name"], member_id=member_id)

    def set_members(self, group_id: str, member_ids: list[str], *, actor: str = "local") -> None:
        self.forget()
        with self.db.tx() as t:
            t.execute("DELETE FROM group_members WHERE group_id = ?", (group_id,))
            for mid in member_ids:
                self.add_member(group_id, mid, tx=t, actor=actor)

    # -- personal access tokens ----------------------------------------------------------------
    def create_token(
        self, pid: str, *, lifetime_seconds: int | None = None, comment: str | None = None, kind: str = "pat",
        actor: str = "local", api_scopes: list[str] | None = None,
    ) -> tuple[str, Row]:
        """Create a token for principal ``pid``. Returns (the token, its stored info). The token is shown once."""
        if lifetime_seconds is not None and (isinstance(lifetime_seconds, bool) or not isinstance(lifetime_seconds, int)
                                             or not 0 < lifetime_seconds <= MAX_TOKEN_LIFETIME_SECONDS):
            raise InvalidParameterValue(
                f"lifetime_seconds must be a whole number of seconds from 1 to {MAX_TOKEN_LIFETIME_SECONDS} "
                "(100 years); leave it out for a token that does not expire")
        prefix = "dapi" if kind == "pat" else "byo"
        token = prefix + secrets.token_hex(20)
        now = self.clock()
        info = {
            "id": new_id(),
            "principal_id": pid,
            "token_hash": _hash(token),
            "kind": kind,
            "comment": comment,
            "created_at": now,
            "expires_at": None if lifetime_seconds is None else now + lifetime_seconds * 1000,
            "revoked_at": None,
            "scopes": None if api_scopes is None else json.dumps(sorted(set(api_scopes))),
        }
        with self.db.tx() as t:
            owner = self._row(t, pid=pid)
            if owner is None:
                raise NotFound(f"principal {pid!r} does not exist")
            if kind == "pat":
                self._audit(t, actor, "createToken", "token", owner["name"], token_id=info["id"],
                            expires_at=info["expires_at"])
            t.execute(
                "INSERT INTO tokens (id, principal_id, token_hash, kind, comment, created_at, expires_at, revoked_at,"
                " scopes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                tuple(info.values()),
            )
        return token, info

    def list_tokens(self, pid: str | None = None) -> list[Row]:
        with self.db.tx(write=False) as t:
            rows = t.all(
                "SELECT t.id, t.principal_id, p.name AS principal, t.kind, t.comment, t.created_at, t.expires_at,"
                " t.revoked_at FROM tokens t JOIN principals p ON p.id = t.principal_id WHERE t.kind = 'pat'"
                " ORDER BY t.created_at"
            )
        return [r for r in rows if pid is None or r["principal_id"] == pid]

    def revoke_token(self, token_id: str, *, pid: str | None = None, actor: str = "local") -> None:
        with self.db.tx() as t:
            row = t.one("SELECT principal_id, revoked_at FROM tokens WHERE id = ?", (token_id,))
            if row is None or (pid is not None and row["principal_id"] != pid):
                raise NotFound(f"token {token_id!r} does not exist")
            if row["revoked_at"] is None:
                t.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (self.clock(), token_id))
                self._audit(t, actor, "revokeToken", "token", row["principal_id"], token_id=token_id)

    def revoke_secret_token(self, token: str) -> None:
        """Revoke a token by its value (a browser's sign-out): it stops working at once in this process."""
        digest = _hash(token)
        with self.db.tx() as t:
            t.execute("UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                      (self.clock(), digest))
        self._cache.pop(digest, None)

    # -- delegated tokens -----------------------------------------------------------------------------
    def delegate(self, acts_for: Callable[[], Principal | None]) -> str:
        """A token, held only in this process's memory, that authenticates as whoever ``acts_for()`` names at
        the moment it is used, and fails when it names no one. Model-serving workers get one: it is their
        caller while they answer a request, and nobody otherwise."""
        token = "dkd" + secrets.token_urlsafe(32)
        self._delegations[_hash(token)] = acts_for
        return token

    def undelegate(self, token: str) -> None:
        self._delegations.pop(_hash(token), None)

    def authenticate(self, token: str) -> Principal:
        """The principal a bearer token belongs to, or :class:`Unauthenticated` saying why not.

        A successful answer is remembered for ``CACHE_MS``: changes made in this process are seen at
        once (they call :meth:`forget`), changes from other processes within that bound."""
        if not token or len(token) > 512:
            raise Unauthenticated("invalid access token")
        digest = _hash(token)
        delegated = self._delegations.get(digest)
        if delegated is not None:
            who = delegated()
            if who is None:
                raise Unauthenticated("this delegated token acts for no one right now (it works only while its "
                                      "worker answers a request)")
            return who
        now = self.clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now and (hit[1] is None or hit[1] > now):
            return hit[2]
        principal, expires = self._authenticate(digest)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self.CACHE_MS, expires, principal)
        return principal

    def cached(self, token: str) -> Principal | None:
        """The remembered principal of ``token`` if it is fresh; None means: call :meth:`authenticate`."""
        if not token or len(token) > 512:
            return None
        digest = _hash(token)  # once: this runs on every request
        if digest in self._delegations:
            return None  # decided at each use
        hit = self._cache.get(digest)
        now = self.clock()
        if hit is not None and hit[0] > now and (hit[1] is None or hit[1] > now):
            return hit[2]
        return None

    def _authenticate(self, digest: str) -> tuple[Principal, int | None]:
        with self.db.tx(write=False) as t:
            row = t.one("SELECT * FROM tokens WHERE token_hash = ?", (digest,))
            if row is None:
                raise Unauthenticated("invalid access token")
            if row["revoked_at"] is not None:
                raise Unauthenticated("the access token has been revoked")
            if row["expires_at"] is not None and row["expires_at"] <= self.clock():
                raise Unauthenticated("the access token has expired; create a new one")
            prow = self._row(t, pid=row["principal_id"])
            if prow is None or not prow["active"]:
                raise Unauthenticated("the principal of this token is disabled")
            principal = self._principal(t, prow)
            if row["scopes"] is not None:
                principal = replace(principal, api_scopes=frozenset(json.loads(row["scopes"])))
            return principal, row["expires_at"]

    # -- OAuth machine-to-machine -------------------------------------------------------------
    def create_secret(self, pid: str, *, lifetime_seconds: int | None = None, actor: str = "local"
                      ) -> tuple[str, Row]:
        secret = "dose" + secrets.token_hex(24)
        now = self.clock()
        info = {
            "id": new_id(),
            "principal_id": pid,
            "secret_hash": _hash(secret),
            "created_at": now,
            "expires_at": None if not lifetime_seconds else now + lifetime_seconds * 1000,
        }
        with self.db.tx() as t:
            row = self._row(t, pid=pid)
            if row is None or row["kind"] != "service_principal":
                raise NotFound(f"service principal {pid!r} does not exist")
            t.execute(
                "INSERT INTO sp_secrets (id, principal_id, secret_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                tuple(info.values()),
            )
            self._audit(t, actor, "createServicePrincipalSecret", "service_principal", row["name"],
                        secret_id=info["id"])
        return secret, info

    def client_credentials(self, client_id: str, client_secret: str, *, ttl_seconds: int) -> tuple[str, int]:
        """Exchange a service principal's id and secret for a short-lived access token."""
        with self.db.tx(write=False) as t:
            prow = t.one(
                "SELECT * FROM principals WHERE application_id = ? AND kind = 'service_principal'", (client_id,)
            )
            ok = False
            if prow is not None and prow["active"]:
                for s in t.all("SELECT * FROM sp_secrets WHERE principal_id = ?", (prow["id"],)):
                    fresh = s["expires_at"] is None or s["expires_at"] > self.clock()
                    if fresh and hmac.compare_digest(s["secret_hash"], _hash(client_secret)):
                        ok = True
        if not ok or prow is None:
            raise Unauthenticated("invalid client id or client secret")
        token, _ = self.create_token(prow["id"], lifetime_seconds=ttl_seconds, kind="oauth")
        return token, ttl_seconds
