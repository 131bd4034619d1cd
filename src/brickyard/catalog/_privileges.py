"""The Unity Catalog privilege model as a pure function: ``decide(principal, privilege, chain, grants)``.

Rules (Databricks docs, "Unity Catalog privileges" and "Manage object ownership"):

* Privileges granted on a container (catalog, schema) are inherited by everything inside it.
* Reaching an object inside a catalog needs ``USE_CATALOG`` on the catalog; inside a schema also
  ``USE_SCHEMA`` on the schema (granted there or on its catalog). Owners of a container have its usage.
* The owner of an object has every privilege on that object (not on its children). ``ALL_PRIVILEGES``
  stands for every privilege applicable to the object except ``MANAGE``.
* ``MANAGE`` (granting privileges, altering, dropping) belongs to the owner, to owners of the containing
  catalog or schema, and to holders of ``MANAGE`` on the object or a container.
* Metastore admins (members of ``admins``) are allowed everything. Databricks lets them grant themselves
  any privilege; Brickyard skips that step (docs/decisions/0002-privileges.md).
* A grant to a group applies to its members, through nested groups; every principal is in
  ``account users``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..core.errors import InvalidParameterValue
from ._identity import Principal

__all__ = ["APPLICABLE", "Decision", "decide", "normalize_privilege", "outside_scope"]

USAGE = {"catalog": "USE_CATALOG", "schema": "USE_SCHEMA"}
_DATA = {
    "SELECT", "MODIFY", "EXECUTE", "READ_VOLUME", "WRITE_VOLUME", "APPLY_TAG", "MANAGE", "ALL_PRIVILEGES", "BROWSE",
}
_SCHEMA_LEVEL = _DATA | {"USE_SCHEMA", "CREATE_TABLE", "CREATE_FUNCTION", "CREATE_MODEL", "CREATE_VOLUME"}
APPLICABLE: dict[str, frozenset[str]] = {
    "metastore": frozenset({"CREATE_CATALOG", "CREATE_CONNECTION", "MANAGE_ALLOWLIST"}),
    "catalog": frozenset(_SCHEMA_LEVEL | {"USE_CATALOG", "CREATE_SCHEMA"}),
    "schema": frozenset(_SCHEMA_LEVEL),
    "table": frozenset({"SELECT", "MODIFY", "APPLY_TAG", "MANAGE", "ALL_PRIVILEGES", "BROWSE"}),
    "volume": frozenset({"READ_VOLUME", "WRITE_VOLUME", "APPLY_TAG", "MANAGE", "ALL_PRIVILEGES", "BROWSE"}),
    "function": frozenset({"EXECUTE", "APPLY_TAG", "MANAGE", "ALL_PRIVILEGES", "BROWSE"}),
    "registered_model": frozenset({"EXECUTE", "APPLY_TAG", "MANAGE", "ALL_PRIVILEGES", "BROWSE"}),
    "connection": frozenset({"USE_CONNECTION", "CREATE_FOREIGN_CATALOG", "MANAGE", "ALL_PRIVILEGES"}),
}
ALL_KNOWN = frozenset().union(*APPLICABLE.values())


def normalize_privilege(value: str) -> str:
    """``"use catalog"``, ``"USE CATALOG"`` and ``"USE_CATALOG"`` all become ``"USE_CATALOG"``."""
    if not isinstance(value, str):
        raise InvalidParameterValue("a privilege must be a string such as 'SELECT'")
    norm = "_".join(value.strip().upper().split()).replace("ALL_PRIVILEGE", "ALL_PRIVILEGES")
    norm = norm.replace("ALL_PRIVILEGESS", "ALL_PRIVILEGES")
    if norm not in ALL_KNOWN:
        raise InvalidParameterValue(f"unknown privilege {value[:60]!r}; known: {', '.join(sorted(ALL_KNOWN))}")
    return norm


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Node:
    """What the decision needs to know of one securable on the chain from the object up to its catalog."""

    id: str
    kind: str
    full_name: str
    owner: str


def _label(node: Node) -> str:
    return f"{node.kind.replace('_', ' ')} '{node.full_name}'"


def decide(
    principal: Principal,
    privilege: str,
    chain: Sequence[Node],
    grants: Iterable[tuple[str, str, str]],
) -> Decision:
    """Decide whether ``principal`` holds ``privilege`` on ``chain[0]``.

    ``chain`` is the object followed by its containers (schema, catalog); ``grants`` are
    ``(securable_id, principal_name, privilege)`` rows on those nodes (other rows are ignored).
    """
    obj = chain[0]
    who = principal.name
    if not principal.active:
        return Decision(False, f"{who} is disabled")
    if principal.is_admin:
        return Decision(True, f"{who} is a metastore admin")
    names = principal.names
    held: dict[str, set[str]] = {}
    for sid, grantee, priv in grants:
        if grantee in names:
            held.setdefault(sid, set()).add(priv)

    def granted(priv: str, nodes: Sequence[Node]) -> Node | None:
        for node in nodes:
            privs = held.get(node.id, ())
            if priv in privs or (priv != "MANAGE" and "ALL_PRIVILEGES" in privs):
                return node
        return None

    # Usage on every container above the object.
    for i, node in enumerate(chain[1:], start=1):
        usage = USAGE.get(node.kind)
        if usage is None:
            continue
        if node.owner in names:
            continue
        if granted(usage, chain[i:]) is None:
            return Decision(
                False,
                f"{who} lacks {usage} on {_label(node)}, needed to reach {_label(obj)}; "
                f"grant it with: GRANT {usage.replace('_', ' ')} ON {node.kind.upper()} {node.full_name} TO `{who}`",
            )

    if privilege == "OWNERSHIP":
        if obj.owner in names:
            return Decision(True, f"{who} owns {_label(obj)}")
        return Decision(False, f"{who} is not the owner of {_label(obj)} (owner: {obj.owner})")
    if obj.owner in names:
        return Decision(True, f"{who} owns {_label(obj)}")
    if privilege == "MANAGE":
        for node in chain[1:]:
            if node.owner in names:
                return Decision(True, f"{who} owns {_label(node)}, which contains {_label(obj)}")
        via = granted("MANAGE", chain)
        if via is not None:
            return Decision(True, f"{who} holds MANAGE on {_label(via)}")
        return Decision(
            False,
            f"{who} cannot manage {_label(obj)}: only its owner ({obj.owner}), owners of its containers, "
            "metastore admins and holders of MANAGE can",
        )
    if privilege == "BROWSE":
        # Seeing an object's metadata: ownership of it or a container, any privilege on it, or a
        # privilege inherited from a container that applies to this kind of object (USE_SCHEMA on a
        # schema does not reveal its tables; SELECT on the schema does).
        inheritable = APPLICABLE.get(obj.kind, frozenset()) | {"ALL_PRIVILEGES"}
        for node in chain:
            privs = held.get(node.id, set())
            if node.owner in names or (privs if node is obj else privs & inheritable):
                return Decision(True, f"{who} has privileges on {_label(node)}")
        return Decision(False, f"{who} has no privileges on {_label(obj)}")
    via = granted(privilege, chain)
    if via is not None:
        return Decision(True, f"{who} holds {privilege} on {_label(via)}")
    return Decision(
        False,
        f"{who} lacks {privilege} on {_label(obj)}; grant it with: "
        f"GRANT {privilege.replace('_', ' ')} ON {obj.kind.upper().replace('REGISTERED_MODEL', 'MODEL')} "
        f"{obj.full_name} TO `{who}`",
    )


#: what a scoped credential may do with a declared object of each kind (reading and calling, never changing)
SCOPED = {"table": {"SELECT", "BROWSE"}, "function": {"EXECUTE", "BROWSE"}, "connection": {"USE_CONNECTION"},
          "volume": {"READ_VOLUME", "BROWSE"}, "registered_model": {"EXECUTE", "BROWSE"}}


def outside_scope(scope: frozenset[str], privilege: str, kind: str, full_name: str) -> str | None:
    """Why a principal restricted to ``scope`` (``kind:full_name`` keys) may not use ``privilege`` on an
    object, or None when the scope allows it (its grants still decide). Containers of a scoped object may be
    used and browsed, nothing more."""
    if kind in ("metastore", "catalog", "schema"):
        prefix = full_name + "."
        inside = kind == "metastore" or any(key.split(":", 1)[1].startswith(prefix) for key in scope)
        if inside and privilege in ("USE_CATALOG", "USE_SCHEMA", "BROWSE"):
            return None
    elif f"{kind}:{full_name}" in scope and privilege in SCOPED.get(kind, ()):
        return None
    return (f"this credential is scoped to the model's declared resources; {kind.replace('_', ' ')} "
            f"'{full_name}' ({privilege}) is not one of them")
