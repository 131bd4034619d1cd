"""What an app is made of, checked before anything runs: its name, its declared resources, its user API scopes
and the ``app.yaml`` of a deployment (command and environment)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from ..core.errors import InvalidParameterValue

NAME = re.compile(r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$")

#: resource kind -> (the field naming the object, the permissions it may ask for); the value an app's
#: environment gets through ``valueFrom`` is the object's name (a secret: its value)
RESOURCES: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "serving_endpoint": (("name",), frozenset({"CAN_VIEW", "CAN_QUERY", "CAN_MANAGE"})),
    "sql_warehouse": (("id",), frozenset({"CAN_USE", "CAN_MANAGE", "IS_OWNER"})),
    "secret": (("scope", "key"), frozenset({"READ", "WRITE", "MANAGE"})),
    "uc_securable": (("securable_full_name", "securable_type"),
                     frozenset({"SELECT", "MODIFY", "EXECUTE", "READ_VOLUME", "WRITE_VOLUME", "USE_CONNECTION"})),
    "job": (("id",), frozenset({"CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER"})),
    "experiment": (("experiment_id",), frozenset({"CAN_READ", "CAN_EDIT", "CAN_MANAGE"})),
}
#: what a Unity Catalog securable of each type may be granted through an app resource
UC_TYPES = {"TABLE": {"SELECT", "MODIFY"}, "VOLUME": {"READ_VOLUME", "WRITE_VOLUME"}, "FUNCTION": {"EXECUTE"},
            "CONNECTION": {"USE_CONNECTION"}, "MODEL_SERVICE": {"EXECUTE"}}

#: the Databricks OAuth scopes an app with user authorization may ask for, and the routes each opens to the
#: token it gets for its signed-in user: (method or "*", path prefix). Two are always granted, as on Databricks.
SCOPES: dict[str, tuple[tuple[str, str], ...]] = {
    "sql": (("*", "/api/2.0/sql/"),),
    "serving.serving-endpoints": (("*", "/serving-endpoints/"), ("GET", "/api/2.0/serving-endpoints")),
    "vectorsearch.vector-search-indexes": (("*", "/api/2.0/vector-search/indexes"),),
    "vectorsearch.vector-search-endpoints": (("GET", "/api/2.0/vector-search/endpoints"),),
    "catalog.catalogs:read": (("GET", "/api/2.1/unity-catalog/catalogs"),),
    "catalog.schemas:read": (("GET", "/api/2.1/unity-catalog/schemas"),),
    "catalog.tables:read": (("GET", "/api/2.1/unity-catalog/tables"),),
    "files.files": (("*", "/api/2.0/fs/"),),
    "mcp.functions": (("*", "/api/2.0/mcp/functions/"),),
    "mcp.vectorsearch": (("*", "/api/2.0/mcp/vector-search/"),),
    "mcp.external": (("*", "/api/2.0/mcp/external/"),),
    "iam.current-user:read": (("GET", "/api/2.0/preview/scim/v2/Me"),),
    "iam.access-control:read": (("GET", "/api/2.0/permissions/"),),
}
DEFAULT_SCOPES = ("iam.current-user:read", "iam.access-control:read")


def scope_allows(scopes: frozenset[str], method: str, path: str) -> bool:
    """Whether a token limited to ``scopes`` may call ``method path`` (the data plane and REST routes alike)."""
    for scope in scopes:
        for m, prefix in SCOPES.get(scope, ()):
            if (m == "*" or m == method or (m == "GET" and method == "HEAD")) and path.startswith(prefix):
                return True
    return False


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidParameterValue("an app name is 2 to 30 characters: lowercase letters, digits and dashes, "
                                    "starting with a letter and not ending with a dash")
    return name


def check_resources(value: Any) -> list[dict[str, Any]]:
    """The declared resources, each ``{name, description?, <kind>: {...}}`` with one kind."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > 50:
        raise InvalidParameterValue("resources must be a list of at most 50 {name, <kind>: {...}}")
    out, names = [], set()
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise InvalidParameterValue("each resource needs a name (how app.yaml's valueFrom refers to it)")
        name = item["name"]
        if name in names:
            raise InvalidParameterValue(f"two resources are called {name!r}")
        names.add(name)
        kinds = [k for k in item if k not in ("name", "description")]
        if len(kinds) != 1 or kinds[0] not in RESOURCES:
            raise InvalidParameterValue(f"resource {name!r} must have exactly one of {', '.join(sorted(RESOURCES))} "
                                        f"(got {', '.join(sorted(kinds)) or 'none'}); Genie spaces and databases are "
                                        "not part of Brickyard")
        kind = kinds[0]
        body = item[kind]
        fields, permissions = RESOURCES[kind]
        if not isinstance(body, dict) or any(not isinstance(body.get(f), str | int) or body.get(f) in ("", None)
                                             for f in fields):
            raise InvalidParameterValue(f"resource {name!r}: {kind} needs {', '.join(fields)} and permission")
        permission = body.get("permission")
        if permission not in permissions:
            raise InvalidParameterValue(f"resource {name!r}: {kind} permission must be one of "
                                        f"{', '.join(sorted(permissions))}")
        if kind == "uc_securable":
            kind_of = str(body["securable_type"]).upper()
            if kind_of not in UC_TYPES or permission not in UC_TYPES[kind_of]:
                raise InvalidParameterValue(
                    f"resource {name!r}: a {kind_of.lower()} may be given "
                    f"{', '.join(sorted(UC_TYPES.get(kind_of, set()))) or 'nothing (unknown securable type)'}")
        clean = {"name": name, kind: {k: (str(v) if k != "permission" else v) for k, v in body.items()}}
        if isinstance(item.get("description"), str):
            clean["description"] = item["description"]
        out.append(clean)
    return out


def check_scopes(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise InvalidParameterValue("user_api_scopes must be a list of scope names")
    unknown = sorted(set(value) - set(SCOPES))
    if unknown:
        raise InvalidParameterValue(f"unknown user API scope(s) {', '.join(unknown)}; Brickyard has "
                                    f"{', '.join(sorted(SCOPES))}")
    return sorted(set(value))


@dataclass(frozen=True)
class AppConfig:
    """The ``app.yaml`` of a deployment: how to start the app and what its environment holds."""

    command: list[str]
    env: list[dict[str, str]]


def parse_app_yaml(text: str | None, resources: list[dict[str, Any]]) -> AppConfig:
    """``command`` (a list, or a string split like a shell would) and ``env`` (``[{name, value | valueFrom}]``);
    without an app.yaml the app runs ``python app.py``. Errors name the key."""
    if text is None:
        return AppConfig(["python", "app.py"], [])
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidParameterValue(f"app.yaml is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise InvalidParameterValue("app.yaml must be a mapping with command and env")
    unknown = sorted(set(data) - {"command", "env"})
    if unknown:
        raise InvalidParameterValue(f"app.yaml: unknown key(s) {', '.join(map(str, unknown))}; it has command and env")
    command = data.get("command", ["python", "app.py"])
    if isinstance(command, str):
        command = shlex.split(command)
    if not isinstance(command, list) or not command or not all(isinstance(c, str | int | float) for c in command):
        raise InvalidParameterValue("app.yaml: command must be a non-empty list of strings, such as "
                                    "['python', 'app.py']")
    env = data.get("env") or []
    if not isinstance(env, list):
        raise InvalidParameterValue("app.yaml: env must be a list of {name, value} or {name, valueFrom}")
    declared = {r["name"] for r in resources}
    out = []
    for item in env:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"] \
                or ("value" in item) == ("valueFrom" in item):
            raise InvalidParameterValue("app.yaml: each env entry needs a name and exactly one of value or valueFrom")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", item["name"]):
            raise InvalidParameterValue(f"app.yaml: {item['name'][:60]!r} is not an environment variable name")
        if "valueFrom" in item:
            if item["valueFrom"] not in declared:
                raise InvalidParameterValue(f"app.yaml: env {item['name']} takes valueFrom {item['valueFrom']!r}, "
                                            f"which is not a resource of the app (it has: "
                                            f"{', '.join(sorted(declared)) or 'none'})")
            out.append({"name": item["name"], "value_from": str(item["valueFrom"])})
        else:
            out.append({"name": item["name"], "value": str(item["value"])})
    return AppConfig([str(c) for c in command], out)
