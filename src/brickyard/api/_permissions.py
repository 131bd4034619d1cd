"""The Permissions API's shape for one kind of workspace object: ``GET`` / ``PUT`` (replace) / ``PATCH`` (add)
``/api/2.0/permissions/<kind>/{id}`` and ``GET .../permissionLevels``, over the library's own checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._http import Api, Req


def permission_routes(api: Api, kind: str, param: str, *, get: Callable[[Any, Any], dict[str, Any]],
                      set_: Callable[..., dict[str, Any]], levels: Callable[[Any, Any], dict[str, Any]]) -> None:
    """Register the four routes for ``/api/2.0/permissions/<kind>/{<param>}``; ``levels(principal, id)`` answers
    the permission levels (after checking the caller may see the object)."""
    path = f"/api/2.0/permissions/{kind}/{{{param}}}"

    def get_permissions(req: Req) -> dict[str, Any]:
        return get(req.user, req.path[param])

    def put_permissions(req: Req) -> dict[str, Any]:
        return set_(req.user, req.path[param], req.arg("access_control_list", []), replace=True)

    def patch_permissions(req: Req) -> dict[str, Any]:
        return set_(req.user, req.path[param], req.arg("access_control_list", []), replace=False)

    def permission_levels(req: Req) -> dict[str, Any]:
        return levels(req.user, req.path[param])

    name = kind.replace("-", "_")
    for fn, verb in ((get_permissions, "get"), (put_permissions, "set"), (patch_permissions, "update"),
                     (permission_levels, "levels")):
        fn.__name__ = f"{verb}_{name}_permissions"
    api.route("GET", path, policy="authenticated")(get_permissions)
    api.route("PUT", path, policy="authenticated")(put_permissions)
    api.route("PATCH", path, policy="authenticated")(patch_permissions)
    api.route("GET", path + "/permissionLevels", policy="authenticated")(permission_levels)


def level_list(*levels: tuple[str, str]) -> dict[str, Any]:
    return {"permission_levels": [{"permission_level": name, "description": text} for name, text in levels]}
