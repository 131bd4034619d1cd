"""Secret scopes and secrets (the Databricks Secrets API), referenced from configs as
``{{secrets/<scope>/<key>}}``. Values are never returned by listing routes and never logged.

Permissions per scope: ``READ`` < ``WRITE`` < ``MANAGE``. The creator of a scope manages it; admins
manage every scope.

The system scope ``__brickyard`` holds the provider keys that serving endpoint configs gave in plaintext.
It exists from the workspace's creation, belongs to no principal (its owner is the empty name, which no
principal can have) and no route reaches it: creating, deleting, listing, reading, writing or granting
on it is refused for everyone, admins included. Only the server itself resolves references into it.
:meth:`Secrets.bootstrap` creates it and, in a workspace where someone took the name first, repairs it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ..core.errors import AlreadyExists, InvalidParameterValue, NotFound, PermissionDenied
from ..core.ids import now_ms
from ..core.names import validate_part
from ._crypto import SecretBox
from ._db import Database
from ._identity import Principal

log = logging.getLogger(__name__)
LEVELS = {"READ": 1, "WRITE": 2, "MANAGE": 3}
SYSTEM_SCOPE = "__brickyard"
SYSTEM_OWNER = ""  # no principal has an empty name
REFERENCE = re.compile(r"^\{\{\s*secrets/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)\s*\}\}$")
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


def _key(key: Any) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise InvalidParameterValue("a secret key is 1-128 characters of letters, digits, '_', '-' and '.'")
    return key


def is_reserved(scope: str) -> bool:
    """Scope names kept for Brickyard itself: ``__brickyard`` and anything that starts like it, in any case."""
    return scope.lower().startswith(SYSTEM_SCOPE)


def _scope(scope: Any) -> str:
    """A scope name a request may use: valid, and not the reserved system scope."""
    if not isinstance(scope, str) or not _KEY.match(scope):
        raise InvalidParameterValue("a scope name is 1-128 characters of letters, digits, '_', '-' and '.'")
    if is_reserved(scope):
        raise PermissionDenied(f"the secret scope {scope!r} is reserved for Brickyard's own keys; no user, admins "
                               "included, may create, read, change or grant on it")
    return scope


class Secrets:
    def __init__(self, db: Database, box: SecretBox | None = None) -> None:
        self.db = db
        self.box = box

    def _seal(self, value: str) -> str:
        return self.box.seal(value) if self.box else value

    def _open(self, stored: str) -> str:
        return self.box.open(stored) if self.box else stored

    def bootstrap(self) -> bool:
        """Make sure the system scope exists, owned by no principal and granted to nobody. A workspace in
        which a user created a scope of that name first (possible before this check existed) is repaired:
        the scope is taken back and every grant on it dropped. True if something had to be repaired."""
        with self.db.tx() as tx:
            return self._ensure_system_scope(tx)

    @staticmethod
    def _ensure_system_scope(tx: Any) -> bool:
        row = tx.one("SELECT owner FROM secret_scopes WHERE name = ?", (SYSTEM_SCOPE,))
        if row is None:  # two processes opening one new PostgreSQL metastore may race here
            tx.execute("INSERT INTO secret_scopes (name, owner, created_at) VALUES (?, ?, ?)"
                       " ON CONFLICT (name) DO NOTHING", (SYSTEM_SCOPE, SYSTEM_OWNER, now_ms()))
            return False
        repaired = row["owner"] != SYSTEM_OWNER
        if repaired:
            tx.execute("UPDATE secret_scopes SET owner = ? WHERE name = ?", (SYSTEM_OWNER, SYSTEM_SCOPE))
        if tx.one("SELECT scope FROM secret_acl WHERE scope = ?", (SYSTEM_SCOPE,)):
            tx.execute("DELETE FROM secret_acl WHERE scope = ?", (SYSTEM_SCOPE,))
            repaired = True
        if repaired:
            log.warning("the secret scope %s had been taken by %r; it now belongs to Brickyard again and every "
                        "grant on it was removed", SYSTEM_SCOPE, row["owner"])
        return repaired

    def store_system(self, value: str) -> str:
        """Keep a plaintext key given in a config as a secret of the system scope; returns its reference."""
        import uuid

        key = uuid.uuid4().hex
        with self.db.tx() as tx:
            self._ensure_system_scope(tx)
            tx.execute("INSERT INTO secrets (scope, key, value, updated_at) VALUES (?, ?, ?, ?)",
                       (SYSTEM_SCOPE, key, self._seal(value), now_ms()))
        return "{{secrets/" + SYSTEM_SCOPE + "/" + key + "}}"

    def _level(self, tx: Any, p: Principal, scope: str) -> int:
        if is_reserved(scope):
            return 0
        row = tx.one("SELECT owner FROM secret_scopes WHERE name = ?", (scope,))
        if row is None:
            raise NotFound(f"secret scope {scope!r} does not exist")
        if p.is_admin or row["owner"] in p.names:
            return LEVELS["MANAGE"]
        best = 0
        for r in tx.all("SELECT principal, permission FROM secret_acl WHERE scope = ?", (scope,)):
            if r["principal"] in p.names:
                best = max(best, LEVELS[r["permission"]])
        return best

    def _need(self, tx: Any, p: Principal, scope: str, level: str) -> None:
        if self._level(tx, p, scope) < LEVELS[level]:
            raise PermissionDenied(f"{p.name} lacks {level} on secret scope {scope!r}")

    def create_scope(self, p: Principal, scope: str) -> None:
        scope = _scope(scope)
        with self.db.tx() as tx:
            if tx.one("SELECT name FROM secret_scopes WHERE name = ?", (scope,)):
                raise AlreadyExists(f"secret scope {scope!r} already exists")
            tx.execute("INSERT INTO secret_scopes (name, owner, created_at) VALUES (?, ?, ?)", (scope, p.name, now_ms()))

    def delete_scope(self, p: Principal, scope: str) -> None:
        with self.db.tx() as tx:
            self._need(tx, p, _scope(scope), "MANAGE")
            tx.execute("DELETE FROM secret_scopes WHERE name = ?", (scope,))

    def list_scopes(self, p: Principal) -> list[str]:
        with self.db.tx(write=False) as tx:
            names = [r["name"] for r in tx.all("SELECT name FROM secret_scopes ORDER BY name")]
            return [n for n in names if not is_reserved(n) and self._level(tx, p, n) > 0]

    def put(self, p: Principal, scope: str, key: str, value: str) -> None:
        if not isinstance(value, str) or len(value) > 128 * 1024:
            raise InvalidParameterValue("a secret value is a string of at most 128 KiB")
        with self.db.tx() as tx:
            self._need(tx, p, _scope(scope), "WRITE")
            tx.execute("DELETE FROM secrets WHERE scope = ? AND key = ?", (scope, _key(key)))
            tx.execute("INSERT INTO secrets (scope, key, value, updated_at) VALUES (?, ?, ?, ?)",
                       (scope, key, self._seal(value), now_ms()))

    def delete(self, p: Principal, scope: str, key: str) -> None:
        with self.db.tx() as tx:
            self._need(tx, p, _scope(scope), "WRITE")
            if not tx.one("SELECT key FROM secrets WHERE scope = ? AND key = ?", (scope, _key(key))):
                raise NotFound(f"secret {key!r} does not exist in scope {scope!r}")
            tx.execute("DELETE FROM secrets WHERE scope = ? AND key = ?", (scope, key))

    def list(self, p: Principal, scope: str) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as tx:
            self._need(tx, p, _scope(scope), "READ")
            return [{"key": r["key"], "last_updated_timestamp": r["updated_at"]}
                    for r in tx.all("SELECT key, updated_at FROM secrets WHERE scope = ? ORDER BY key", (scope,))]

    def get(self, p: Principal, scope: str, key: str) -> str:
        with self.db.tx(write=False) as tx:
            self._need(tx, p, _scope(scope), "READ")
            row = tx.one("SELECT value FROM secrets WHERE scope = ? AND key = ?", (scope, _key(key)))
        if row is None:
            raise NotFound(f"secret {key!r} does not exist in scope {scope!r}")
        return self._open(str(row["value"]))

    def set_acl(self, p: Principal, scope: str, principal: Any, permission: str | None) -> None:
        if not isinstance(principal, str) or not principal or len(principal) > 255:
            raise InvalidParameterValue("principal must be the name of a user, group or service principal")
        with self.db.tx() as tx:
            self._need(tx, p, _scope(scope), "MANAGE")
            tx.execute("DELETE FROM secret_acl WHERE scope = ? AND principal = ?", (scope, principal))
            if permission is not None:
                if permission not in LEVELS:
                    raise InvalidParameterValue("permission must be READ, WRITE or MANAGE")
                tx.execute("INSERT INTO secret_acl (scope, principal, permission) VALUES (?, ?, ?)",
                           (scope, principal, permission))

    def check_reference(self, p: Principal, value: str) -> None:
        """A config may reference a secret only if its author can read it."""
        m = REFERENCE.match(value)
        if not m:
            raise InvalidParameterValue("secret references look like {{secrets/<scope>/<key>}}")
        self.get(p, m.group(1), m.group(2))

    def resolve(self, value: str) -> str:
        """The value behind ``{{secrets/scope/key}}`` (server side, after the author was checked)."""
        m = REFERENCE.match(value)
        if not m:
            return value
        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT value FROM secrets WHERE scope = ? AND key = ?", (m.group(1), m.group(2)))
        if row is None:
            raise NotFound(f"secret {m.group(2)!r} in scope {m.group(1)!r} no longer exists")
        return self._open(str(row["value"]))


    def all_values(self) -> frozenset[str]:
        """Every stored secret value (for masking them out of logged payloads); server side only."""
        with self.db.tx(write=False) as tx:
            values = [self._open(str(r["value"])) for r in tx.all("SELECT value FROM secrets")]
        return frozenset(v for v in values if len(v) >= 8)


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and REFERENCE.match(value) is not None


__all__ = ["SYSTEM_SCOPE", "Secrets", "is_reference", "is_reserved", "validate_part"]
