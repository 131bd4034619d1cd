"""Spark/Databricks SQL type text <-> Arrow types (what ``columns[].type_text`` means)."""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from ..core.errors import InvalidParameterValue

_SIMPLE: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "byte": pa.int8(),
    "tinyint": pa.int8(),
    "short": pa.int16(),
    "smallint": pa.int16(),
    "int": pa.int32(),
    "integer": pa.int32(),
    "long": pa.int64(),
    "bigint": pa.int64(),
    "float": pa.float32(),
    "real": pa.float32(),
    "double": pa.float64(),
    "string": pa.string(),
    "varchar": pa.string(),
    "char": pa.string(),
    "binary": pa.binary(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "timestamp_ntz": pa.timestamp("us"),
}
_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*|`(?:[^`]|``)+`|[<>(),:]|\d+)")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if not m:
                raise InvalidParameterValue(f"cannot parse type {text[:80]!r} near {text[pos:pos + 10]!r}")
            self.tokens.append(m.group(1))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expected is not None and tok.lower() != expected):
            raise InvalidParameterValue(f"cannot parse type {self.text[:80]!r}: expected {expected or 'a type'}")
        self.i += 1
        return tok

    def parse(self) -> pa.DataType:
        name = self.take().lower()
        if name == "array":
            self.take("<")
            inner = self.parse()
            self.take(">")
            return pa.list_(inner)
        if name == "map":
            self.take("<")
            key = self.parse()
            self.take(",")
            value = self.parse()
            self.take(">")
            return pa.map_(key, value)
        if name == "struct":
            self.take("<")
            fields = []
            while True:
                fname = self.take().strip("`")
                self.take(":")
                fields.append(pa.field(fname, self.parse()))
                if self.peek() == ",":
                    self.take(",")
                    continue
                break
            self.take(">")
            return pa.struct(fields)
        if name in ("decimal", "dec", "numeric"):
            precision, scale = 10, 0
            if self.peek() == "(":
                self.take("(")
                precision = int(self.take())
                if self.peek() == ",":
                    self.take(",")
                    scale = int(self.take())
                self.take(")")
            if not (1 <= precision <= 38 and 0 <= scale <= precision):
                raise InvalidParameterValue(f"decimal({precision},{scale}) is out of range (precision 1-38)")
            return pa.decimal128(precision, scale)
        if name in ("varchar", "char") and self.peek() == "(":
            self.take("(")
            self.take()
            self.take(")")
        if name in _SIMPLE:
            return _SIMPLE[name]
        raise InvalidParameterValue(
            f"unsupported column type {name!r}; use one of {', '.join(sorted(_SIMPLE))}, decimal(p,s), "
            "array<...>, map<...>, struct<...>"
        )


def parse_type(text: str) -> pa.DataType:
    if not isinstance(text, str) or not text.strip():
        raise InvalidParameterValue("a column type is required, such as 'string' or 'bigint'")
    if len(text) > 4096:
        raise InvalidParameterValue("column type text is too long")
    parser = _Parser(text)
    result = parser.parse()
    if parser.peek() is not None:
        raise InvalidParameterValue(f"unexpected {parser.peek()!r} in type {text[:80]!r}")
    return result


def type_text(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    for name, arrow in (("tinyint", pa.int8()), ("smallint", pa.int16()), ("int", pa.int32()),
                        ("bigint", pa.int64()), ("float", pa.float32()), ("double", pa.float64())):
        if t == arrow:
            return name
    if pa.types.is_unsigned_integer(t):
        return "bigint"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "binary"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp" if t.tz else "timestamp_ntz"
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_list_view(t):
        return f"array<{type_text(t.value_type)}>"
    if pa.types.is_map(t):
        return f"map<{type_text(t.key_type)},{type_text(t.item_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{type_text(f.type)}" for f in t) + ">"
    if pa.types.is_null(t):
        return "void"
    return str(t)


_TYPE_NAME = {
    "boolean": "BOOLEAN", "tinyint": "BYTE", "smallint": "SHORT", "int": "INT", "bigint": "LONG",
    "float": "FLOAT", "double": "DOUBLE", "string": "STRING", "binary": "BINARY", "date": "DATE",
    "timestamp": "TIMESTAMP", "timestamp_ntz": "TIMESTAMP_NTZ", "void": "NULL",
}


def type_name(text: str) -> str:
    base = text.split("<", 1)[0].split("(", 1)[0]
    return {"array": "ARRAY", "map": "MAP", "struct": "STRUCT", "decimal": "DECIMAL"}.get(base, _TYPE_NAME.get(base, "STRING"))


def columns_to_schema(columns: Any) -> pa.Schema:
    """Turn SDK ``columns`` (``[{name, type_text|type_name, nullable, comment, position}]``) into an Arrow schema."""
    if not isinstance(columns, list) or not columns:
        raise InvalidParameterValue("a table needs at least one column: columns=[{name, type_text}]")
    if len(columns) > 4096:
        raise InvalidParameterValue("a table can have at most 4096 columns")
    ordered = sorted(enumerate(columns), key=lambda ic: (ic[1].get("position", ic[0]) if isinstance(ic[1], dict) else ic[0]))
    fields, seen = [], set()
    for _, col in ordered:
        if not isinstance(col, dict):
            raise InvalidParameterValue("each column must be an object with name and type_text")
        name = col.get("name")
        if not isinstance(name, str) or not name or len(name) > 255 or any(ord(c) < 32 for c in name):
            raise InvalidParameterValue("each column needs a name of 1-255 printable characters")
        if name.lower() in seen:
            raise InvalidParameterValue(f"column {name!r} appears twice")
        seen.add(name.lower())
        text = col.get("type_text") or (col.get("type_name") or "").lower()
        if text == "long":
            text = "bigint"
        arrow = parse_type(text)
        meta = {"comment": col["comment"]} if col.get("comment") else None
        fields.append(pa.field(name, arrow, nullable=col.get("nullable", True) is not False, metadata=meta))
    return pa.schema(fields)


def schema_to_columns(schema: pa.Schema) -> list[dict[str, Any]]:
    out = []
    for i, f in enumerate(schema):
        text = type_text(f.type)
        comment = (f.metadata or {}).get(b"comment")
        col = {
            "name": f.name,
            "type_text": text,
            "type_name": type_name(text),
            "type_json": json.dumps({"name": f.name, "type": text, "nullable": f.nullable, "metadata": {}}),
            "position": i,
            "nullable": f.nullable,
        }
        if comment:
            col["comment"] = comment.decode()
        out.append(col)
    return out
