"""Validation of the registry objects that carry structured definitions: functions and connections."""

from __future__ import annotations

import json
from typing import Any

from ..core.errors import InvalidParameterValue

ROUTINE_BODIES = ("SQL", "EXTERNAL")
PARAMETER_MODES = ("IN",)
CONNECTION_TYPES = (
    "DATABRICKS", "HTTP", "MYSQL", "POSTGRESQL", "REDSHIFT", "SNOWFLAKE", "SQLDW", "SQLSERVER", "BIGQUERY",
    "GLUE", "HIVE_METASTORE", "ORACLE", "SALESFORCE", "TERADATA", "WORKDAY_RAAS", "UNKNOWN_CONNECTION_TYPE",
)
#: option names whose values are secrets: stored, never returned
SECRET_OPTIONS = ("password", "bearer_token", "client_secret", "token", "api_key", "secret", "private_key")


_UC_TYPE_NAMES = {"BIGINT": "LONG", "INTEGER": "INT", "SMALLINT": "SHORT", "TINYINT": "BYTE", "VARCHAR": "STRING",
                  "TEXT": "STRING", "REAL": "FLOAT", "DEC": "DECIMAL", "NUMERIC": "DECIMAL", "VOID": "NULL"}


def uc_type_name(type_text: str) -> str:
    """The ``type_name`` Unity Catalog gives a type (the SDK's ColumnTypeName: LONG for BIGINT, INT, ...)."""
    base = str(type_text or "STRING").split("<", 1)[0].split("(", 1)[0].strip().upper()
    return _UC_TYPE_NAMES.get(base, base)


_SPARK_NAMES = {"BIGINT": "long", "INT": "integer", "SMALLINT": "short", "TINYINT": "byte", "TEXT": "string",
                "VARCHAR": "string", "CHAR": "string", "DOUBLE": "double", "FLOAT": "float", "BOOLEAN": "boolean",
                "DATE": "date", "TIMESTAMP": "timestamp", "TIMESTAMPTZ": "timestamp", "TIMESTAMPNTZ": "timestamp_ntz",
                "BINARY": "binary", "VARBINARY": "binary", "VARIANT": "variant", "NULL": "void"}


def spark_type_json(type_text: str) -> Any:
    """A type as Spark writes it in JSON (``"long"``, ``{"type": "array", "elementType": ...}``): the
    ``type_json`` of a function parameter, which clients such as unitycatalog-ai read to build tool schemas."""
    from sqlglot import exp

    def convert(dt: Any) -> Any:
        kind = dt.this.name
        inner = dt.expressions
        if kind == "ARRAY":
            return {"type": "array", "elementType": convert(inner[0]) if inner else "string", "containsNull": True}
        if kind == "MAP":
            key, value = (convert(inner[0]), convert(inner[1])) if len(inner) == 2 else ("string", "string")
            return {"type": "map", "keyType": key, "valueType": value, "valueContainsNull": True}
        if kind == "STRUCT":
            return {"type": "struct", "fields": [{"name": f.name, "type": convert(f.args["kind"]), "nullable": True,
                                                  "metadata": {}} for f in inner]}
        if kind == "DECIMAL":
            precision, scale = ([int(x.this.name) for x in inner] + [10, 0])[:2] if inner else (10, 0)
            return f"decimal({precision},{scale})"
        return _SPARK_NAMES.get(kind, kind.lower())

    try:
        return convert(exp.DataType.build(type_text, dialect="databricks"))
    except Exception:  # noqa: BLE001 - a type sqlglot cannot read keeps its text
        return str(type_text).lower()


def _str(body: dict[str, Any], key: str, *, required: bool = False, limit: int = 65536) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise InvalidParameterValue(f"function_info.{key} is required")
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidParameterValue(f"function_info.{key} must be a string of at most {limit} characters")
    return value


def function_spec(info: Any) -> dict[str, Any]:
    """The stored definition of a UC function from the ``function_info`` the SDK sends."""
    if not isinstance(info, dict):
        raise InvalidParameterValue("the request body must be {\"function_info\": {...}}")
    body = (_str(info, "routine_body", required=True) or "").upper()
    if body not in ROUTINE_BODIES:
        raise InvalidParameterValue("function_info.routine_body must be SQL or EXTERNAL")
    data_type = _str(info, "data_type", required=True)
    full_data_type = _str(info, "full_data_type") or (data_type or "").lower()
    spec: dict[str, Any] = {
        "data_type": data_type,
        "full_data_type": full_data_type,
        "routine_body": body,
        "routine_definition": _str(info, "routine_definition", required=True),
        "external_language": _str(info, "external_language"),
        "parameter_style": (_str(info, "parameter_style") or "S"),
        "is_deterministic": bool(info.get("is_deterministic", True)),
        "sql_data_access": (_str(info, "sql_data_access") or "CONTAINS_SQL"),
        "is_null_call": bool(info.get("is_null_call", False)),
        "security_type": (_str(info, "security_type") or "DEFINER"),
        "specific_name": _str(info, "specific_name"),
        "external_name": _str(info, "external_name"),
        "sql_path": _str(info, "sql_path"),
        "routine_dependencies": info.get("routine_dependencies"),
    }
    if body == "EXTERNAL" and (spec["external_language"] or "").upper() not in ("PYTHON",):
        raise InvalidParameterValue("EXTERNAL functions must set external_language to PYTHON")
    for key in ("input_params", "return_params"):
        params = info.get(key)
        if params is None:
            continue
        if not isinstance(params, dict) or not isinstance(params.get("parameters", []), list):
            raise InvalidParameterValue(f"function_info.{key} must be {{\"parameters\": [...]}}")
        cleaned = []
        for i, prm in enumerate(params.get("parameters", [])):
            if not isinstance(prm, dict) or not isinstance(prm.get("name"), str) or not prm["name"]:
                raise InvalidParameterValue(f"function_info.{key}.parameters[{i}] needs a name")
            if not isinstance(prm.get("type_text") or prm.get("type_name"), str):
                raise InvalidParameterValue(f"parameter {prm['name']!r} needs type_text or type_name")
            entry = {k: prm[k] for k in ("name", "type_text", "type_name", "type_json", "type_precision",
                                         "type_scale", "type_interval_type", "position", "parameter_mode",
                                         "parameter_type", "parameter_default", "comment") if k in prm}
            entry.setdefault("position", i)
            entry.setdefault("type_name", uc_type_name(str(prm.get("type_text", "STRING"))))
            entry.setdefault("type_text", str(entry["type_name"]).lower())
            entry.setdefault("type_json", json.dumps({"name": entry["name"], "type": spark_type_json(entry["type_text"]),
                                                      "nullable": True, "metadata": {"comment": entry.get("comment")
                                                                                      or ""}}))
            cleaned.append(entry)
        names = [c["name"] for c in cleaned]
        if len(set(names)) != len(names):
            raise InvalidParameterValue(f"function_info.{key} repeats a parameter name")
        spec[key] = {"parameters": cleaned}
    return spec


def connection_spec(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(public spec, secret options) of a connection; secrets are kept apart and never echoed."""
    ctype = str(body.get("connection_type") or "").upper()
    if ctype not in CONNECTION_TYPES:
        raise InvalidParameterValue(f"connection_type must be one of {', '.join(CONNECTION_TYPES)}")
    options = body.get("options") or {}
    if not isinstance(options, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
        raise InvalidParameterValue("options must be an object of string values")
    public = {k: v for k, v in options.items() if k.lower() not in SECRET_OPTIONS}
    secret = {k: v for k, v in options.items() if k.lower() in SECRET_OPTIONS}
    return {"connection_type": ctype, "options": public, "read_only": bool(body.get("read_only", False))}, secret


class ConnectionSecrets:
    """Secret options of connections, kept out of every API response and log."""

    def __init__(self, db: Any, box: Any = None) -> None:
        self.db = db
        self.box = box

    def put(self, securable_id: str, options: dict[str, str]) -> None:
        import json

        with self.db.tx() as tx:
            tx.execute("DELETE FROM connection_secrets WHERE securable_id = ?", (securable_id,))
            if options:
                text = json.dumps(options)
                tx.execute("INSERT INTO connection_secrets (securable_id, options) VALUES (?, ?)",
                           (securable_id, self.box.seal(text) if self.box else text))

    def get(self, securable_id: str) -> dict[str, str]:
        import json

        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT options FROM connection_secrets WHERE securable_id = ?", (securable_id,))
        if row is None:
            return {}
        return dict(json.loads(self.box.open(row["options"]) if self.box else row["options"]))

    def delete(self, securable_id: str) -> None:
        with self.db.tx() as tx:
            tx.execute("DELETE FROM connection_secrets WHERE securable_id = ?", (securable_id,))
