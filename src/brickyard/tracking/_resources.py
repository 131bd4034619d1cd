"""What a logged model declares it needs (``resources``) and how it authenticates (``auth_policy``), read from
its MLmodel file, and what that means when it is served.

Three ways a served model version reaches the workspace, as on Databricks:

* **system** (``resources=[...]``, or ``auth_policy.system_auth_policy``): the model gets a short-lived
  credential of its own, *scoped to exactly its declared resources*: it may query the declared indexes, call
  the declared functions and endpoints, read the declared tables -- nothing else, and no more than the
  endpoint's creator may. The worker finds it where the Databricks SDK's model-serving authentication
  looks (``$SERVING_CREDENTIALS_DIR/model-dependencies-oauth-token``), so ``WorkspaceClient()`` and the
  clients built on it use it unchanged.
* **user** (``auth_policy.user_auth_policy``): additionally, the caller's identity, for the duration of each
  request, where ``ModelServingUserCredentials`` reads it (the main thread's ``invokers_token``).
* **caller** (nothing declared): Brickyard's default for a model that declares nothing -- its default
  credential acts as the caller of each request (on-behalf-of-user), as the local loop has always done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.errors import InvalidParameterValue

#: MLmodel resource type -> (Brickyard kind of the securable or object, the privilege it needs)
KINDS = {
    "vector_search_index": ("table", "SELECT"),
    "table": ("table", "SELECT"),
    "function": ("function", "EXECUTE"),
    "uc_connection": ("connection", "USE_CONNECTION"),
    "serving_endpoint": ("serving_endpoint", "CAN_QUERY"),
    "sql_warehouse": ("sql_warehouse", "CAN_USE"),
}
UNSUPPORTED = ("genie_space", "app", "lakebase", "uc_model_service")


@dataclass(frozen=True)
class Declared:
    policy: str  # "caller", "system" or "user"
    #: (MLmodel resource type, name) the system credential may reach
    resources: tuple[tuple[str, str], ...] = ()
    api_scopes: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)  # {"resources": ..., "auth_policy": ...} as logged

    @property
    def scope(self) -> frozenset[str]:
        """The keys ``kind:name`` a scoped principal may reach (see :class:`~brickyard.catalog.Principal`)."""
        return frozenset(f"{KINDS[t][0]}:{name}" for t, name in self.resources)


def declared(meta: dict[str, Any]) -> Declared:
    """The declaration in a parsed MLmodel file (refused with a reason when Brickyard cannot honour it)."""
    resources, policy = meta.get("resources"), meta.get("auth_policy")
    raw = {k: v for k, v in (("resources", resources), ("auth_policy", policy)) if v}
    if isinstance(policy, dict) and (policy.get("system_auth_policy") or policy.get("user_auth_policy")):
        system = (policy.get("system_auth_policy") or {}).get("resources") or {}
        user = policy.get("user_auth_policy") or {}
        scopes = tuple(str(s) for s in user.get("api_scopes") or [])
        return Declared("user" if user else "system", _entries(system), scopes, raw)
    if isinstance(resources, dict) and resources.get("databricks"):
        return Declared("system", _entries(resources), (), raw)
    return Declared("caller", (), (), raw)


def _entries(resources: Any) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    groups = (resources or {}).get("databricks") or {} if isinstance(resources, dict) else {}
    for kind, items in groups.items():
        if kind in UNSUPPORTED:
            raise InvalidParameterValue(f"the model declares a {kind} resource; Brickyard has no {kind}s, so it "
                                        "cannot give the model access to one")
        if kind not in KINDS:
            raise InvalidParameterValue(f"the model declares an unknown resource type {str(kind)[:40]!r}")
        for item in items or []:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not name:
                raise InvalidParameterValue(f"a declared {kind} resource has no name")
            if not item.get("on_behalf_of_user"):  # those are reached with the caller's identity instead
                found.append((kind, name))
    return tuple(sorted(set(found)))
