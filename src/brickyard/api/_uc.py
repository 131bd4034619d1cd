"""Unity Catalog REST routes (``/api/2.1/unity-catalog/...``): thin translations to ``Catalog`` calls."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..catalog import Securable, securable_kind
from ..catalog._objects import connection_spec, function_spec
from ..core.errors import InvalidParameterValue, NotFound, PermissionDenied
from ..core.names import parse_name, quote_part, validate_part
from ._http import Api, Req

UC = "/api/2.1/unity-catalog"


def _common(obj: Securable, ws: Any) -> dict[str, Any]:
    return {
        "full_name": obj.full_name,
        "owner": obj.owner,
        "comment": obj.comment,
        "properties": obj.properties,
        "created_at": obj.created_at,
        "created_by": obj.created_by,
        "updated_at": obj.updated_at,
        "updated_by": obj.updated_by,
        "metastore_id": ws.info["metastore_id"],
    }


def _join(*parts: str) -> str:
    return ".".join(quote_part(p) for p in parts)


def _name(req: Req, *keys: str) -> str:
    """Build a full name from body/query fields (catalog_name, schema_name, name)."""
    values = []
    for key in keys:
        value = req.arg(key)
        if not isinstance(value, str) or not value:
            raise InvalidParameterValue(f"{key} is required")
        values.append(validate_part(value, key))
    return _join(*values)


def register(api: Api, ws: Any) -> None:
    cat = ws.catalog

    # -- serializers ------------------------------------------------------------------------------
    def catalog_info(obj: Securable) -> dict[str, Any]:
        return {**_common(obj, ws), "name": obj.name, "id": obj.id, "catalog_type": "MANAGED_CATALOG",
                "securable_type": "CATALOG", "isolation_mode": "OPEN", "browse_only": False,
                "storage_root": str(ws.tables.root / obj.name)}

    def schema_info(obj: Securable) -> dict[str, Any]:
        c, s = obj.parts
        return {**_common(obj, ws), "name": s, "catalog_name": c, "schema_id": obj.id,
                "catalog_type": "MANAGED_CATALOG", "securable_type": "SCHEMA"}

    def table_info(obj: Securable) -> dict[str, Any]:
        c, s, n = obj.parts
        info = {**_common(obj, ws), "name": n, "catalog_name": c, "schema_name": s, "table_id": obj.id,
                "table_type": obj.spec.get("table_type", "MANAGED"),
                "data_source_format": obj.spec.get("data_source_format", "DELTA"), "securable_type": "TABLE"}
        location = obj.spec.get("storage_location")
        if location:
            info["storage_location"] = "file://" + location
        info["columns"], properties = ws.tables.describe(obj)
        if info["data_source_format"] == "DELTA" and location:
            info["properties"] = properties
            info["delta_runtime_properties_kvpairs"] = {"delta_runtime_properties": {}}
        if str(info["table_type"]).upper() == "VIEW":
            info["view_definition"] = obj.spec.get("view_definition")
            info.pop("data_source_format", None)
        if obj.spec.get("row_filter"):
            info["row_filter"] = obj.spec["row_filter"]
        return info

    def volume_info(obj: Securable) -> dict[str, Any]:
        c, s, n = obj.parts
        return {**_common(obj, ws), "name": n, "catalog_name": c, "schema_name": s, "volume_id": obj.id,
                "volume_type": "MANAGED", "storage_location": "file://" + obj.spec.get("storage_location", ""),
                "securable_type": "VOLUME"}

    def function_info(obj: Securable) -> dict[str, Any]:
        c, s, n = obj.parts
        spec = {k: v for k, v in obj.spec.items() if v is not None}
        return {**_common(obj, ws), **spec, "name": n, "catalog_name": c, "schema_name": s, "function_id": obj.id,
                "securable_type": "FUNCTION"}

    def model_info(obj: Securable) -> dict[str, Any]:
        c, s, n = obj.parts
        return {**_common(obj, ws), "name": n, "catalog_name": c, "schema_name": s, "id": obj.id,
                "aliases": cat.aliases(obj), "storage_location": "file://" + str(ws.home / "models" / obj.id),
                "securable_type": "REGISTERED_MODEL"}

    def version_info(row: dict[str, Any]) -> dict[str, Any]:
        model: Securable = row["model"]
        c, s, n = model.parts
        return {"model_name": n, "catalog_name": c, "schema_name": s, "version": row["version"],
                "source": row["source"], "run_id": row["run_id"], "status": row["status"],
                "comment": row["comment"], "storage_location": row["storage_location"],
                "created_at": row["created_at"], "created_by": row["created_by"], "updated_at": row["updated_at"],
                "updated_by": row["updated_by"], "id": f"{model.id}-{row['version']}",
                "metastore_id": ws.info["metastore_id"],
                "aliases": [{"alias_name": a, "version_num": row["version"]} for a in row["aliases"]],
                **_declared(row["spec"])}

    def connection_info(obj: Securable) -> dict[str, Any]:
        return {**_common(obj, ws), "name": obj.name, "connection_id": obj.id,
                "connection_type": obj.spec.get("connection_type"), "options": obj.spec.get("options", {}),
                "read_only": obj.spec.get("read_only", False), "securable_type": "CONNECTION",
                "credential_type": "USERNAME_PASSWORD"}

    SHAPES = {"catalog": catalog_info, "schema": schema_info, "table": table_info, "volume": volume_info,
              "function": function_info, "registered_model": model_info, "connection": connection_info}
    LIST_KEY = {"catalog": "catalogs", "schema": "schemas", "table": "tables", "volume": "volumes",
                "function": "functions", "registered_model": "registered_models", "connection": "connections"}

    def listing(req: Req, kind: str, parent: str | None) -> dict[str, Any]:
        items, token = cat.list(req.user, kind, parent, page_token=req.query.get("page_token") or None,
                                max_results=req.int_arg("max_results"))
        out: dict[str, Any] = {LIST_KEY[kind]: [SHAPES[kind](o) for o in items]}
        if token:
            out["next_page_token"] = token
        return out

    def update(req: Req, kind: str, full: str) -> dict[str, Any]:
        body = req.body or {}
        obj = cat.update(req.user, kind, full, new_name=body.get("new_name") or None, owner=body.get("owner"),
                         comment=body.get("comment"), properties=body.get("properties"))
        return SHAPES[kind](obj)

    # -- read, update, delete and list: the same for every kind ------------------------------------
    def standard(kind: str, collection: str, key: str, parents: tuple[str, ...] | None, *, patch: bool = True) -> None:
        base = f"{UC}/{collection}"
        item = base + "/{" + key + "}"
        label = collection.rstrip("s")

        def get_(req: Req) -> dict[str, Any]:
            return SHAPES[kind](cat.get(req.user, kind, req.path[key]))

        def update_(req: Req) -> dict[str, Any]:
            return update(req, kind, req.path[key])

        def delete_(req: Req) -> dict[str, Any]:
            cat.delete(req.user, kind, req.path[key], force=req.bool_arg("force") or kind == "registered_model",
                       on_deleted=ws.tables.retire_storage)
            return {}

        def list_(req: Req) -> dict[str, Any]:
            return listing(req, kind, _name(req, *parents) if parents else None)

        for fn, verb in ((get_, "get"), (update_, "update"), (delete_, "delete"), (list_, "list")):
            fn.__name__ = f"{verb}_{label}"
        api.route("GET", item, policy="authenticated")(get_)
        if patch:
            api.route("PATCH", item, policy="authenticated")(update_)
        api.route("DELETE", item, policy="authenticated")(delete_)
        if parents is not None:
            api.route("GET", base, policy="authenticated")(list_)

    standard("catalog", "catalogs", "name", ())
    standard("schema", "schemas", "full_name", ("catalog_name",))
    standard("table", "tables", "full_name", ("catalog_name", "schema_name"))
    standard("volume", "volumes", "name", ("catalog_name", "schema_name"))
    standard("function", "functions", "name", ("catalog_name", "schema_name"))
    standard("registered_model", "models", "full_name", None)
    standard("connection", "connections", "name", (), patch=False)

    # -- metastore --------------------------------------------------------------------------------
    @api.route("GET", f"{UC}/current-metastore-assignment", policy="authenticated")
    def metastore_assignment(req: Req) -> dict[str, Any]:
        return {"metastore_id": ws.info["metastore_id"], "workspace_id": int(ws.workspace_id),
                "default_catalog_name": "main"}

    @api.route("GET", f"{UC}/metastore_summary", policy="authenticated")
    def metastore_summary(req: Req) -> dict[str, Any]:
        root = cat.get(req.user, "metastore", "metastore")
        out = {"metastore_id": ws.info["metastore_id"], "name": "brickyard", "owner": root.owner,
               "region": "local", "cloud": "local", "privilege_model_version": "1.0", "created_at": root.created_at,
               "created_by": root.created_by}
        if req.user.is_admin:  # the home's path says where on this machine the workspace lives: admins only
            out["storage_root"] = "file://" + str(ws.home)
        return out

    # -- catalogs ---------------------------------------------------------------------------------
    @api.route("POST", f"{UC}/catalogs", policy="authenticated")
    def create_catalog(req: Req) -> dict[str, Any]:
        if req.arg("storage_root") or req.arg("provider_name") or req.arg("connection_name"):
            raise InvalidParameterValue("only managed catalogs are supported: leave storage_root, provider_name "
                                        "and connection_name empty")
        obj = cat.create(req.user, "catalog", _name(req, "name"), comment=req.arg("comment"),
                         properties=req.arg("properties"))
        return catalog_info(obj)





    # -- schemas ----------------------------------------------------------------------------------
    @api.route("POST", f"{UC}/schemas", policy="authenticated")
    def create_schema(req: Req) -> dict[str, Any]:
        if req.arg("storage_root"):
            raise InvalidParameterValue("only managed schemas are supported: leave storage_root empty")
        obj = cat.create(req.user, "schema", _name(req, "catalog_name", "name"), comment=req.arg("comment"),
                         properties=req.arg("properties"))
        return schema_info(obj)





    # -- tables -----------------------------------------------------------------------------------
    @api.route("POST", f"{UC}/tables", policy="authenticated")
    def create_table(req: Req) -> dict[str, Any]:
        fmt = str(req.arg("data_source_format") or "DELTA").upper()
        if fmt != "DELTA":
            raise InvalidParameterValue(f"data_source_format {fmt} is not supported; Brickyard tables are DELTA")
        obj = ws.tables.create(req.user, _name(req, "catalog_name", "schema_name", "name"),
                               columns=req.arg("columns"), comment=req.arg("comment"),
                               properties=req.arg("properties"), table_type=req.arg("table_type") or "MANAGED")
        return table_info(obj)


    @api.route("GET", f"{UC}/table-summaries", policy="authenticated")
    def table_summaries(req: Req) -> dict[str, Any]:
        catalog = _name(req, "catalog_name")
        schemas, _ = cat.list(req.user, "schema", catalog)
        out = []
        for schema in schemas:
            try:
                tables, _ = cat.list(req.user, "table", schema.full_name)
            except PermissionDenied:
                continue
            out += [{"full_name": t.full_name, "table_type": t.spec.get("table_type", "MANAGED")} for t in tables]
        return {"tables": out}


    @api.route("GET", f"{UC}/tables/{{full_name}}/exists", policy="authenticated")
    def table_exists(req: Req) -> dict[str, Any]:
        try:
            cat.get(req.user, "table", req.path["full_name"])
        except NotFound:
            return {"table_exists": False}
        return {"table_exists": True}



    # -- volumes ----------------------------------------------------------------------------------
    @api.route("POST", f"{UC}/volumes", policy="authenticated")
    def create_volume(req: Req) -> dict[str, Any]:
        obj = ws.volumes.create(req.user, _name(req, "catalog_name", "schema_name", "name"),
                                comment=req.arg("comment"), volume_type=req.arg("volume_type") or "MANAGED",
                                storage_location=req.arg("storage_location"))
        return volume_info(obj)





    # -- functions --------------------------------------------------------------------------------
    @api.route("POST", f"{UC}/functions", policy="authenticated")
    def create_function(req: Req) -> dict[str, Any]:
        info = (req.body or {}).get("function_info")
        if not isinstance(info, dict):
            raise InvalidParameterValue("the request body must be {\"function_info\": {...}}")
        full = _join(validate_part(info.get("catalog_name") or "", "catalog_name"),
                     validate_part(info.get("schema_name") or "", "schema_name"),
                     validate_part(info.get("name") or "", "name"))
        obj = cat.create(req.user, "function", full, comment=info.get("comment"),
                         properties=info.get("properties") if isinstance(info.get("properties"), dict) else None,
                         spec=function_spec(info))
        return function_info(obj)





    # -- registered models, versions, aliases -----------------------------------------------------
    @api.route("POST", f"{UC}/models", policy="authenticated")
    def create_model(req: Req) -> dict[str, Any]:
        obj = cat.create(req.user, "registered_model", _name(req, "catalog_name", "schema_name", "name"),
                         comment=req.arg("comment"))
        return model_info(obj)

    @api.route("GET", f"{UC}/models", policy="authenticated")
    def list_models(req: Req) -> dict[str, Any]:
        if req.arg("catalog_name") and req.arg("schema_name"):
            return listing(req, "registered_model", _name(req, "catalog_name", "schema_name"))
        found: list[dict[str, Any]] = []
        catalogs, _ = cat.list(req.user, "catalog")
        for c in catalogs:
            if req.arg("catalog_name") and c.name != req.arg("catalog_name"):
                continue
            try:
                schemas, _ = cat.list(req.user, "schema", c.full_name)
                for s in schemas:
                    models, _ = cat.list(req.user, "registered_model", s.full_name)
                    found += [model_info(m) for m in models]
            except PermissionDenied:
                continue
        return {"registered_models": found}




    @api.route("POST", f"{UC}/models/versions", policy="authenticated")
    def create_model_version(req: Req) -> dict[str, Any]:
        model = _name(req, "catalog_name", "schema_name", "model_name")
        row = cat.create_model_version(
            req.user, model, source=req.arg("source"), run_id=req.arg("run_id"), comment=req.arg("comment"),
            storage_location=lambda m, v: "file://" + str(ws.home / "models" / m.id / "versions" / str(v)))
        return version_info(row)

    @api.route("GET", f"{UC}/models/{{full_name}}/versions", policy="authenticated")
    def list_model_versions(req: Req) -> dict[str, Any]:
        rows, token = cat.model_versions(req.user, req.path["full_name"], page_token=req.query.get("page_token"),
                                         max_results=req.int_arg("max_results"))
        out: dict[str, Any] = {"model_versions": [version_info(r) for r in rows]}
        if token:
            out["next_page_token"] = token
        return out

    @api.route("GET", f"{UC}/models/{{full_name}}/versions/{{version}}", policy="authenticated")
    def get_model_version(req: Req) -> dict[str, Any]:
        return version_info(cat.model_version(req.user, req.path["full_name"], req.path["version"]))

    @api.route("PATCH", f"{UC}/models/{{full_name}}/versions/{{version}}", policy="authenticated")
    def update_model_version(req: Req) -> dict[str, Any]:
        return version_info(cat.update_model_version(req.user, req.path["full_name"], req.path["version"],
                                                     comment=req.arg("comment")))

    @api.route("DELETE", f"{UC}/models/{{full_name}}/versions/{{version}}", policy="authenticated")
    def delete_model_version(req: Req) -> dict[str, Any]:
        cat.delete_model_version(req.user, req.path["full_name"], req.path["version"])
        return {}

    @api.route("PUT", f"{UC}/models/{{full_name}}/aliases/{{alias}}", policy="authenticated")
    def set_alias(req: Req) -> dict[str, Any]:
        return cat.set_alias(req.user, req.path["full_name"], req.path["alias"], req.require("version_num"))

    @api.route("DELETE", f"{UC}/models/{{full_name}}/aliases/{{alias}}", policy="authenticated")
    def delete_alias(req: Req) -> dict[str, Any]:
        cat.delete_alias(req.user, req.path["full_name"], req.path["alias"])
        return {}

    @api.route("GET", f"{UC}/models/{{full_name}}/aliases/{{alias}}", policy="authenticated")
    def get_by_alias(req: Req) -> dict[str, Any]:
        return version_info(cat.version_by_alias(req.user, req.path["full_name"], req.path["alias"]))

    # -- connections ------------------------------------------------------------------------------
    @api.route("POST", f"{UC}/connections", policy="authenticated")
    def create_connection(req: Req) -> dict[str, Any]:
        spec, secret = connection_spec(req.body or {})
        if secret:
            spec["secret_option_names"] = sorted(secret)
        obj = cat.create(req.user, "connection", _name(req, "name"), comment=req.arg("comment"),
                         properties=req.arg("properties"), spec=spec)
        if secret:
            ws.connection_secrets.put(obj.id, secret)
        return connection_info(obj)



    @api.route("PATCH", f"{UC}/connections/{{name}}", policy="authenticated")
    def update_connection(req: Req) -> dict[str, Any]:
        body = req.body or {}
        obj = cat.get(req.user, "connection", req.path["name"])
        spec = None
        if "options" in body:
            spec, secret = connection_spec({"connection_type": obj.spec.get("connection_type"), **body})
            spec["secret_option_names"] = sorted(secret)
        obj = cat.update(req.user, "connection", req.path["name"], new_name=body.get("new_name") or None,
                         owner=body.get("owner"), spec=spec)
        if spec is not None:
            ws.connection_secrets.put(obj.id, secret)
        return connection_info(obj)


    # -- grants -----------------------------------------------------------------------------------
    @api.route("GET", f"{UC}/permissions/{{securable_type}}/{{full_name}}", policy="authenticated")
    def get_permissions(req: Req) -> dict[str, Any]:
        kind = securable_kind(req.path["securable_type"])
        return {"privilege_assignments": cat.grants(req.user, kind, req.path["full_name"],
                                                    principal=req.query.get("principal"))}

    @api.route("PATCH", f"{UC}/permissions/{{securable_type}}/{{full_name}}", policy="authenticated")
    def update_permissions(req: Req) -> dict[str, Any]:
        kind = securable_kind(req.path["securable_type"])
        changes = (req.body or {}).get("changes")
        return {"privilege_assignments": cat.update_grants(req.user, kind, req.path["full_name"], changes)}

    @api.route("GET", f"{UC}/effective-permissions/{{securable_type}}/{{full_name}}", policy="authenticated")
    def effective_permissions(req: Req) -> dict[str, Any]:
        kind = securable_kind(req.path["securable_type"])
        return {"privilege_assignments": cat.effective_grants(req.user, kind, req.path["full_name"],
                                                              principal=req.query.get("principal"))}

    # -- lineage ----------------------------------------------------------------------------------
    @api.route("GET", "/api/2.0/lineage-tracking/table-lineage", policy="authenticated")
    def table_lineage(req: Req) -> dict[str, Any]:
        name = str(parse_name(str(req.require("table_name")), 3))
        edges = cat.lineage(req.user, "table", name)

        def entry(e: dict[str, Any]) -> dict[str, Any]:
            c, s, n = (e["full_name"].split(".") + ["", "", ""])[:3]
            return {"tableInfo": {"name": n, "catalog_name": c, "schema_name": s, "table_type": "TABLE",
                                  "securable_kind": e["kind"].upper(), "lineage_timestamp": e["created_at"]}}

        return {"upstreams": [entry(e) for e in edges["upstreams"]],
                "downstreams": [entry(e) for e in edges["downstreams"]]}

    @api.route("GET", "/api/brickyard/lineage/{securable_type}/{full_name}", policy="authenticated")
    def lineage(req: Req) -> dict[str, Any]:
        if req.path["securable_type"].lower() in ("serving_endpoint", "serving-endpoint"):
            ws.serving.get(req.user, req.path["full_name"])  # 404 / 403 unless the caller may see it
            return cat.endpoint_lineage(req.user, req.path["full_name"])
        return cat.lineage(req.user, securable_kind(req.path["securable_type"]), req.path["full_name"])


def _declared(spec: dict[str, Any]) -> dict[str, Any]:
    """A model version's declared resources, as ``model_version_dependencies`` (the SDK's DependencyList: tables
    and indexes, functions, connections) plus the ``resources`` and ``auth_policy`` logged with it."""
    shapes = {"table": lambda n: {"table": {"table_full_name": n}},
              "vector_search_index": lambda n: {"table": {"table_full_name": n}},
              "function": lambda n: {"function": {"function_full_name": n}},
              "uc_connection": lambda n: {"connection": {"connection_name": n}}}
    out: dict[str, Any] = {k: spec[k] for k in ("resources", "auth_policy") if spec.get(k)}
    deps = [shapes[kind](name) for kind, name in spec.get("declared") or [] if kind in shapes]
    if deps:
        out["model_version_dependencies"] = {"dependencies": deps}
    return out


def no_content() -> Response:
    return Response(status_code=204)
