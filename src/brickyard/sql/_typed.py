"""Typed answers of the AI and Python functions: Databricks types as DuckDB and Arrow types, JSON schemas from
DDL struct types, a check of a model's reply against a JSON schema, and conversion of Python values to Arrow.
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

import pyarrow as pa

from ..core.errors import InvalidParameterValue

_lock = threading.Lock()
_JSON_OF = {"STRING": "string", "VARCHAR": "string", "TEXT": "string", "CHAR": "string", "INT": "integer",
            "BIGINT": "integer", "SMALLINT": "integer", "TINYINT": "integer", "DOUBLE": "number", "FLOAT": "number",
            "DECIMAL": "number", "BOOLEAN": "boolean", "DATE": "string", "TIMESTAMP": "string"}
_SCALARS = ("string", "integer", "number", "boolean", "null", "object", "array")


def ddl(type_text: str, what: str) -> Any:
    """``type_text`` read as a Databricks type (sqlglot's DataType), or a clear error naming ``what``."""
    from sqlglot import exp

    text = str(type_text)
    bad = InvalidParameterValue(f"[INVALID_RETURN_TYPE] {what}: {text[:80]!r} is not a type")
    if text.count("<") != text.count(">") or text.count("(") != text.count(")"):
        raise bad  # sqlglot reads an unclosed STRUCT<a INT as if it were closed
    try:
        built = exp.DataType.build(text, dialect="databricks")
    except Exception:  # noqa: BLE001 - sqlglot raises several kinds for a bad type
        raise bad from None
    if not isinstance(built, exp.DataType):
        raise bad  # several statements (a ';' in the text), or not a type at all
    for node in built.walk():
        if not isinstance(node, exp.DataType):
            continue
        if node.this is None or node.this == exp.DataType.Type.USERDEFINED:
            raise bad  # an unknown name
        if node.this == exp.DataType.Type.STRUCT and (not node.expressions or not all(
                isinstance(f, exp.ColumnDef) and isinstance(f.args.get("kind"), exp.DataType) for f in node.expressions)):
            raise bad  # a struct whose fields sqlglot could not read as name: type
        if node.this in (exp.DataType.Type.ARRAY, exp.DataType.Type.MAP) and not all(
                isinstance(e, exp.DataType) for e in node.expressions):
            raise bad
    try:  # sqlglot reads some trees it cannot write back; a type is one both engines can be given
        built.sql(dialect="databricks")
        built.sql(dialect="duckdb")
    except Exception:  # noqa: BLE001 - any rendering failure means the text was not a usable type
        raise bad from None
    return built


def duck(type_text: str) -> str:
    return str(ddl(type_text, "type").sql(dialect="duckdb"))


@functools.lru_cache(maxsize=256)
def arrow_of(duck_type: str) -> pa.DataType:
    """The Arrow type DuckDB gives a column of ``duck_type``."""
    import duckdb

    with _lock:
        con = duckdb.connect()
        try:
            return con.sql(f"SELECT CAST(NULL AS {duck_type}) AS v").to_arrow_table().schema.field(0).type  # noqa: S608 - a rendered type
        finally:
            con.close()


def schema_of(type_text: str) -> dict[str, Any]:
    """A JSON schema for values of a Databricks type (``STRUCT<name: STRING, tags: ARRAY<STRING>>``)."""

    def walk(dt: Any) -> dict[str, Any]:
        kind = dt.this.name
        if kind == "STRUCT":
            fields = {f.name: walk(f.args["kind"]) for f in dt.expressions}
            return {"type": "object", "properties": fields, "required": list(fields), "additionalProperties": False}
        if kind == "ARRAY":
            return {"type": "array", "items": walk(dt.expressions[0]) if dt.expressions else {"type": "string"}}
        if kind == "MAP":
            return {"type": "object", "additionalProperties": walk(dt.expressions[1]) if len(dt.expressions) == 2
                    else {"type": "string"}}
        return {"type": _JSON_OF.get(kind, "string")}

    return walk(ddl(type_text, "responseFormat"))


def response_format(raw: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``responseFormat`` as (the OpenAI field to send, the JSON schema a reply must match or None). It is an
    OpenAI ``response_format`` (``json_schema`` / ``json_object`` / ``text``), as JSON text or a struct, or a DDL
    struct type; as on Databricks, a DDL struct with a single struct field stands for that field's type."""
    if isinstance(raw, str) and raw.strip()[:6].upper() == "STRUCT":
        dt = ddl(raw, "responseFormat")
        fields = dt.expressions
        inner = fields[0].args["kind"] if len(fields) == 1 and fields[0].args["kind"].this.name == "STRUCT" else dt
        schema = schema_of(inner.sql(dialect="databricks"))
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": True}}, schema
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidParameterValue("[INVALID_RESPONSE_FORMAT] ai_query: responseFormat must be a JSON schema, "
                                        'e.g. \'{"type": "json_schema", "json_schema": {...}}\', or a DDL type '
                                        "'STRUCT<...>'") from None
    if not isinstance(raw, dict) or raw.get("type") not in ("json_object", "json_schema", "text"):
        raise InvalidParameterValue("[INVALID_RESPONSE_FORMAT] ai_query: responseFormat needs a type: json_schema, "
                                    "json_object or text")
    if raw["type"] == "text":
        return raw, None
    if raw["type"] == "json_object":
        return raw, {"type": "object"}
    schema = (raw.get("json_schema") or {}).get("schema")
    if not isinstance(schema, dict):
        raise InvalidParameterValue("[INVALID_RESPONSE_FORMAT] ai_query: responseFormat json_schema needs "
                                    "json_schema.schema, an object")
    _check_schema(schema, "$")
    return raw, schema


def _check_schema(schema: Any, where: str) -> None:
    """A schema this module can check replies against: types, properties, required, items, enum."""
    if not isinstance(schema, dict):
        raise InvalidParameterValue(f"[INVALID_RESPONSE_FORMAT] the schema at {where} must be an object")
    kinds = schema.get("type")
    for kind in kinds if isinstance(kinds, list) else [kinds] if kinds is not None else []:
        if kind not in _SCALARS:
            raise InvalidParameterValue(f"[INVALID_RESPONSE_FORMAT] the schema at {where} has unknown type {kind!r}")
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        raise InvalidParameterValue(f"[INVALID_RESPONSE_FORMAT] properties at {where} must be an object")
    for name, sub in props.items():
        _check_schema(sub, f"{where}.{name}")
    if "items" in schema:
        _check_schema(schema["items"], f"{where}[]")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise InvalidParameterValue(f"[INVALID_RESPONSE_FORMAT] required at {where} must be a list of names")


def mismatch(value: Any, schema: dict[str, Any], where: str = "$") -> str | None:
    """Why ``value`` does not match ``schema`` (None when it does)."""
    kinds = schema.get("type")
    allowed = kinds if isinstance(kinds, list) else [kinds] if kinds is not None else None
    kind = _kind(value)
    if allowed is not None and kind not in allowed and not (kind == "integer" and "number" in allowed):
        return f"{where} is {kind}, not {' or '.join(map(str, allowed))}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} is {str(value)[:40]!r}, not one of {schema['enum']}"
    if kind == "object":
        for name in schema.get("required", []):
            if name not in value:
                return f"{where}.{name} is missing"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in props:
                problem = mismatch(item, props[name], f"{where}.{name}")
            elif extra is False:
                problem = f"{where}.{name} is not in the schema"
            elif isinstance(extra, dict):
                problem = mismatch(item, extra, f"{where}.{name}")
            else:
                problem = None
            if problem:
                return problem
    if kind == "array" and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = mismatch(item, schema["items"], f"{where}[{i}]")
            if problem:
                return problem
    return None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def conform(value: Any, target: pa.DataType, what: str) -> Any:
    """``value`` if it converts to ``target`` (maps given as objects become key/value pairs), else an error."""
    value = _mapped(value, target)
    try:
        pa.array([value], type=target)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):  # any Arrow conversion failure
        raise InvalidParameterValue(f"[DATATYPE_MISMATCH] {what}: {json.dumps(value, default=str)[:80]} is not a "
                                    f"{target}") from None
    return value


def _mapped(value: Any, target: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_map(target) and isinstance(value, dict):
        return [(k, _mapped(v, target.item_type)) for k, v in value.items()]
    if pa.types.is_struct(target) and isinstance(value, dict):
        return {f.name: _mapped(value.get(f.name), f.type) for f in target}
    if (pa.types.is_list(target) or pa.types.is_large_list(target)) and isinstance(value, list):
        return [_mapped(v, target.value_type) for v in value]
    return value


def to_arrow(label: str, values: list[Any], target: pa.DataType) -> pa.Array:
    """Python results as an Arrow array of their declared type (strings are lenient: a number or an object
    where a string is declared becomes its text); a value that does not convert fails with ``label``."""
    from ..core.errors import FunctionFailed

    if pa.types.is_string(target) or pa.types.is_large_string(target):
        values = [v if v is None or isinstance(v, str) else json.dumps(v) if isinstance(v, list | dict) else str(v)
                  for v in values]
    else:
        values = [_mapped(v, target) for v in values]
    try:
        return pa.array(values, type=target)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        pass
    try:
        return pa.array(values).cast(target)
    except (pa.ArrowException, TypeError, ValueError):
        bad = next((v for v in values if v is not None), None)
        raise FunctionFailed(f"[UDF_RETURN_TYPE_MISMATCH] {label} returned {str(bad)[:60]!r}, which is not a "
                             f"{target}") from None
