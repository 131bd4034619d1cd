"""An app's declared resources, as its service principal's grants (app authorization).

Each resource is granted to the app's own service principal *by the app's creator*, through the same calls
(and checks) as the REST routes: a creator who may not manage an endpoint, a table or a secret scope cannot
give it to an app. The service principal is made for the app alone, so taking the grants back is removing
every grant and access-control entry that names it."""

from __future__ import annotations

from typing import Any

from ..catalog import Principal
from ..core.errors import InvalidParameterValue

#: removes the entries naming a principal from each workspace-object access-control table, and its UC grants
PURGE = ("DELETE FROM endpoint_acl WHERE principal = ?", "DELETE FROM secret_acl WHERE principal = ?",
         "DELETE FROM ml_experiment_acl WHERE principal = ?", "DELETE FROM workspace_acl WHERE principal = ?",
         "DELETE FROM job_acl WHERE principal = ?", "DELETE FROM app_acl WHERE principal = ?",
         "DELETE FROM grants WHERE principal = ?")
UC_KIND = {"TABLE": "table", "VOLUME": "volume", "FUNCTION": "function", "CONNECTION": "connection"}


def grant(ws: Any, p: Principal, sp_name: str, resource: dict[str, Any]) -> None:
    """Give ``sp_name`` what ``resource`` declares, acting as ``p`` (the app's creator or updater)."""
    kind = next(k for k in resource if k not in ("name", "description"))
    body = resource[kind]
    level = body["permission"]
    who = {"service_principal_name": sp_name, "permission_level": level}
    if kind == "serving_endpoint":
        endpoint = ws.serving.get(p, body["name"])
        ws.serving.set_acl(p, endpoint["id"], [who], replace=False)
    elif kind == "secret":
        ws.secrets.set_acl(p, body["scope"], sp_name, level)
    elif kind == "job":
        ws.jobs.set_permissions(p, body["id"], [who], replace=False)
    elif kind == "experiment":
        ws.tracking.set_permissions(p, body["experiment_id"], [who], replace=False)
    elif kind == "uc_securable":
        full = body["securable_full_name"]
        securable = UC_KIND.get(body["securable_type"].upper())
        if securable is None:
            raise InvalidParameterValue(f"resource {resource['name']!r}: securable type {body['securable_type']} "
                                        "is not one Brickyard grants")
        parts = full.split(".")
        if securable != "connection":
            if len(parts) != 3:
                raise InvalidParameterValue(f"resource {resource['name']!r}: {full!r} is not a three-part name")
            ws.catalog.update_grants(p, "catalog", parts[0], [{"principal": sp_name, "add": ["USE_CATALOG"]}])
            ws.catalog.update_grants(p, "schema", ".".join(parts[:2]),
                                     [{"principal": sp_name, "add": ["USE_SCHEMA"]}])
        ws.catalog.update_grants(p, securable, full, [{"principal": sp_name, "add": [level]}])
    # sql_warehouse: every principal may run SQL on Brickyard's one engine; the grant is the data's


def value(ws: Any, sp: Principal, resource: dict[str, Any]) -> str:
    """What ``valueFrom: <resource>`` puts in the app's environment: the object's name or id; for a secret its
    value, read as the app's service principal (so only with READ)."""
    kind = next(k for k in resource if k not in ("name", "description"))
    body = resource[kind]
    if kind == "secret":
        return str(ws.secrets.get(sp, body["scope"], body["key"]))
    field = {"serving_endpoint": "name", "sql_warehouse": "id", "job": "id", "experiment": "experiment_id",
             "uc_securable": "securable_full_name"}[kind]
    return str(body[field])


def purge(tx: Any, sp_name: str) -> None:
    """Remove every access-control entry naming the app's service principal (its UC grants go with it when
    the principal is deleted)."""
    for sql in PURGE:
        tx.execute(sql, (sp_name,))
