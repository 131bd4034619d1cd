"""Access control lists as the permissions APIs take them (``/api/2.0/permissions/...``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..core.errors import InvalidParameterValue, NotFound, PermissionDenied


def access_entries(acl: Any, levels: Iterable[str], note: str = "") -> list[tuple[str, str]]:
    """``[{user_name | group_name | service_principal_name, permission_level}]`` as (principal, level) pairs; a
    clear 400 for anything else, naming the ``levels`` allowed (and ``note``)."""
    allowed = list(levels)
    entries = []
    for item in acl if isinstance(acl, list) else [None]:
        if not isinstance(item, dict):
            raise InvalidParameterValue("access_control_list must be a list of {user_name|group_name|"
                                        "service_principal_name, permission_level}")
        who = item.get("user_name") or item.get("group_name") or item.get("service_principal_name")
        level = item.get("permission_level")
        if not isinstance(who, str) or not who or level not in allowed:
            raise InvalidParameterValue(f"each entry needs a principal and permission_level {', '.join(allowed)}"
                                        + (f" ({note})" if note else ""))
        entries.append((who, level))
    return entries


def acl_level(p: Any, owner: str, entries: Iterable[Any], levels: dict[str, int]) -> int:
    """What ``p`` may do with a workspace object: everything (the highest level) for admins and its owner, else
    the highest level of the entries (``{principal, level}`` rows) naming ``p`` or one of its groups; 0 for none."""
    if p.is_admin or p.name == owner:
        return max(levels.values())
    return max((levels.get(e["level"], 0) for e in entries if e["principal"] in p.names), default=0)


def require_level(level: int, need: str, levels: dict[str, int], what: str, who: str) -> None:
    """404 for an object the caller cannot see at all (level 0, or none), 403 when it may see it but not ``need``."""
    if level == 0:
        raise NotFound(f"{what} does not exist", error_code="RESOURCE_DOES_NOT_EXIST")
    if level < levels[need]:
        raise PermissionDenied(f"{who} needs {need} on {what}")
