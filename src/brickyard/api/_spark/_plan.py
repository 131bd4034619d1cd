"""Spark Connect plans run on the SQL engine: what ``spark.sql(...)``, ``spark.table(...)`` and the
DataFrame calls that follow them (``collect``, ``toPandas``, ``count``, ``limit``, ``show``, ``select`` of
columns, ``toDF``) send.

A plan's leaves are SQL: ``spark.sql`` text with its arguments, or a table by name (``SELECT *``); they run
as the caller through :class:`brickyard.sql.SqlEngine`, so grants, row filters and column masks apply as
they do on every other path. What sits above a leaf works on the leaf's rows here, in Arrow; anything
else is refused with the name of what is missing (``INVALID_ARGUMENT``): Brickyard runs SQL, not
Spark's DataFrame planner.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from ...core.errors import InvalidParameterValue, NotSupported

MAX_SHOW_ROWS = 10_000
MAX_RANGE = 10_000_000


class Unsupported(NotSupported):
    error_code = "UNSUPPORTED_OPERATION"


# -- arguments -------------------------------------------------------------------------------------------------
def literal(lit: Any) -> tuple[str | None, str]:
    """A Spark literal as a statement parameter: (text or None, type name)."""
    if lit.HasField("string"):
        return lit.string, "STRING"
    if lit.HasField("boolean"):
        return "true" if lit.boolean else "false", "BOOLEAN"
    for name, typ in (("byte", "TINYINT"), ("short", "SMALLINT"), ("integer", "INT"), ("long", "BIGINT")):
        if lit.HasField(name):
            return str(getattr(lit, name)), typ
    for name, typ in (("float", "FLOAT"), ("double", "DOUBLE")):
        if lit.HasField(name):
            return repr(getattr(lit, name)), typ
    if lit.HasField("decimal"):
        return lit.decimal.value, "DECIMAL"
    try:
        if lit.HasField("date"):
            return (dt.date(1970, 1, 1) + dt.timedelta(days=lit.date)).isoformat(), "DATE"
        for name in ("timestamp", "timestamp_ntz"):
            if lit.HasField(name):
                moment = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=getattr(lit, name))
                return moment.isoformat(sep=" "), "TIMESTAMP"
    except OverflowError:
        raise InvalidParameterValue("a date or timestamp argument is out of range (years 1 to 9999)") from None
    if lit.HasField("binary"):
        raise Unsupported("binary arguments are not supported: pass the value as a hex string and unhex() it")
    if lit.HasField("null"):
        return None, "STRING"
    raise Unsupported("only scalar arguments (strings, numbers, booleans, dates, timestamps) are supported")


def parameters(message: Any) -> list[dict[str, Any]]:
    """The named arguments of a ``SqlCommand`` or ``SQL`` relation as Statement Execution parameters."""
    if len(message.pos_args) or len(message.pos_arguments):
        raise Unsupported("positional arguments (?) are not supported: pass args as a dict and mark them :name")
    out = []
    for entry in message.args:
        value, typ = literal(entry.value)
        out.append({"name": entry.key, "value": value, "type": typ})
    for entry in message.named_arguments:
        if not entry.value.HasField("literal"):
            raise Unsupported(f"argument {entry.key!r} must be a literal value")
        value, typ = literal(entry.value.literal)
        out.append({"name": entry.key, "value": value, "type": typ})
    return out


# -- relations -------------------------------------------------------------------------------------------------
Run = Callable[[str, list[dict[str, Any]]], pa.Table]


def evaluate(rel: Any, run: Run) -> pa.Table:
    """The rows of relation ``rel``; ``run(sql, parameters)`` runs SQL as the caller."""
    kind = _kind(rel)
    if kind == "sql":
        return run(rel.sql.query, parameters(rel.sql))
    if kind == "read":
        if not rel.read.HasField("named_table"):
            raise Unsupported("reading files through Spark is not supported: use read_files() in spark.sql()")
        return run("SELECT * FROM IDENTIFIER(:table_name)",
                   [{"name": "table_name", "value": rel.read.named_table.unparsed_identifier, "type": "STRING"}])
    if kind == "local_relation":
        return local_rows(rel.local_relation.data) if rel.local_relation.HasField("data") else pa.table({})
    if kind == "range":
        step = rel.range.step or 1
        start = rel.range.start if rel.range.HasField("start") else 0
        if len(range(start, rel.range.end, step)) > MAX_RANGE:
            raise Unsupported(f"spark.range() is limited to {MAX_RANGE} rows here")
        return pa.table({"id": pa.array(np.arange(start, rel.range.end, step, dtype=np.int64))})
    if kind == "limit":
        return evaluate(rel.limit.input, run).slice(0, max(0, rel.limit.limit))
    if kind == "offset":
        return evaluate(rel.offset.input, run).slice(max(0, rel.offset.offset))
    if kind == "to_df":
        table = evaluate(rel.to_df.input, run)
        if len(rel.to_df.column_names) != table.num_columns:
            raise InvalidParameterValue(f"toDF() got {len(rel.to_df.column_names)} names for {table.num_columns} "
                                        "columns")
        return table.rename_columns(list(rel.to_df.column_names))
    if kind == "project":
        return _project(evaluate(rel.project.input, run), rel.project.expressions)
    if kind == "aggregate":
        return _aggregate(evaluate(rel.aggregate.input, run), rel.aggregate)
    if kind == "show_string":
        show = rel.show_string
        text = show_string(evaluate(show.input, run), show.num_rows, show.truncate, show.vertical)
        return pa.table({"show_string": [text]})
    raise Unsupported(f"the DataFrame operation {kind!r} is not supported: express it in spark.sql()")


def _kind(rel: Any) -> str:
    for name in ("sql", "read", "local_relation", "range", "limit", "offset", "to_df", "project", "aggregate",
                 "show_string", "filter", "sort"):
        if rel.HasField(name):
            return name
    from google.protobuf.unknown_fields import UnknownFieldSet

    fields = [f.name for f, _ in rel.ListFields() if f.name != "common"]
    unknown = sorted({f.field_number for f in UnknownFieldSet(rel)})
    return fields[0] if fields else (f"relation type {unknown[0]}" if unknown else "an empty relation")


def local_rows(data: bytes) -> pa.Table:
    try:
        with pa.ipc.open_stream(data) as reader:
            table = reader.read_all()
        table.validate(full=True)  # the client's bytes: offsets and lengths checked before any row is read
    except (pa.ArrowException, OSError, ValueError) as exc:  # OSError: pyarrow's IO errors
        raise InvalidParameterValue(f"the local relation is not an Arrow stream: {exc}") from None
    for f in table.schema:
        if not _readable(f.type):
            raise InvalidParameterValue(f"column {f.name!r} of the local relation has a type Spark does not have: "
                                        f"{f.type}")
    return table


def _readable(t: pa.DataType) -> bool:
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _readable(t.value_type)
    if pa.types.is_struct(t):
        return all(_readable(f.type) for f in t)
    if pa.types.is_map(t):
        return _readable(t.key_type) and _readable(t.item_type)
    return any(test(t) for test in (
        pa.types.is_boolean, pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal128, pa.types.is_string,
        pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary, pa.types.is_date32,
        pa.types.is_timestamp, pa.types.is_null))


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    bare = name.strip("`")
    names = table.column_names
    hits = [i for i, c in enumerate(names) if c == bare] or [i for i, c in enumerate(names) if c.lower() == bare.lower()]
    if len(hits) > 1:
        raise InvalidParameterValue(f"[AMBIGUOUS_REFERENCE] column {name!r} names {len(hits)} columns",
                                    error_code="AMBIGUOUS_REFERENCE")
    if not hits:
        raise InvalidParameterValue(f"[UNRESOLVED_COLUMN] column {name!r} is not one of {names}",
                                    error_code="UNRESOLVED_COLUMN")
    return table.column(hits[0])


def _project(table: pa.Table, expressions: Any) -> pa.Table:
    names: list[str] = []
    columns: list[Any] = []
    for expr in expressions:
        alias = None
        if expr.HasField("alias"):
            alias = ".".join(expr.alias.name)
            expr = expr.alias.expr
        if expr.HasField("unresolved_star"):
            names.extend(table.column_names)
            columns.extend(table.columns)
            continue
        if expr.HasField("unresolved_attribute"):
            name = expr.unresolved_attribute.unparsed_identifier
            columns.append(_column(table, name))
            names.append(alias or name.strip("`"))
            continue
        if expr.HasField("literal"):
            value, _ = literal(expr.literal)
            columns.append(pa.array([value] * table.num_rows))
            names.append(alias or str(value))
            continue
        raise Unsupported("select() takes column names here: compute expressions in spark.sql()")
    return pa.Table.from_arrays(columns, names=names) if columns else pa.table({})


def _aggregate(table: pa.Table, agg: Any) -> pa.Table:
    if len(agg.grouping_expressions):
        raise Unsupported("groupBy() is not supported: use GROUP BY in spark.sql()")
    names, values = [], []
    for expr in agg.aggregate_expressions:
        alias = ".".join(expr.alias.name) if expr.HasField("alias") else None
        inner = expr.alias.expr if expr.HasField("alias") else expr
        fn = inner.unresolved_function if inner.HasField("unresolved_function") else None
        if fn is None or fn.function_name.lower() != "count" or fn.is_distinct or len(fn.arguments) != 1:
            raise Unsupported("only count() is supported on a DataFrame here: aggregate in spark.sql()")
        arg = fn.arguments[0]
        if arg.HasField("literal") or arg.HasField("unresolved_star"):
            values.append(table.num_rows)
            label = "1" if arg.HasField("literal") else "*"
        elif arg.HasField("unresolved_attribute"):
            column = _column(table, arg.unresolved_attribute.unparsed_identifier)
            values.append(len(column) - column.null_count)
            label = arg.unresolved_attribute.unparsed_identifier
        else:
            raise Unsupported("count() takes a column, * or 1 here")
        names.append(alias or f"count({label})")
    return pa.table({n: pa.array([v], pa.int64()) for n, v in zip(names, values, strict=True)})


def show_string(table: pa.Table, num_rows: int, truncate: int, vertical: bool) -> str:
    """``DataFrame.show()``'s text: a grid of the first rows, cells cut to ``truncate`` characters."""
    n = max(0, min(num_rows, MAX_SHOW_ROWS))
    shown = table.slice(0, n)
    rows = list(zip(*(column.to_pylist() for column in shown.columns), strict=True)) if shown.num_columns else []
    names = table.column_names

    def cell(value: Any) -> str:
        text = "NULL" if value is None else ("true" if value is True else "false" if value is False else
                                             str(value) if not isinstance(value, Decimal) else format(value, "f"))
        if truncate > 0 and len(text) > truncate:
            text = text[: max(0, truncate - 3)] + "..." if truncate >= 4 else text[:truncate]
        return text

    cells = [[cell(value) for value in row] for row in rows]
    if vertical:
        width = max((len(c) for c in names), default=0)
        blocks = []
        for i, row in enumerate(cells):
            blocks.append(f"-RECORD {i}" + "-" * 10)
            blocks.extend(f" {name.ljust(width)} | {value}" for name, value in zip(names, row, strict=True))
        text = "\n".join(blocks) + "\n" if blocks else "(0 rows)\n"
    else:
        widths = [max([3, len(name), *(len(r[i]) for r in cells)]) for i, name in enumerate(names)]
        rule = "+" + "+".join("-" * w for w in widths) + "+"

        def line(values: list[str]) -> str:
            return "|" + "|".join(v.rjust(w) if truncate > 0 else v.ljust(w)
                                  for v, w in zip(values, widths, strict=True)) + "|"

        text = "\n".join([rule, line(names), rule, *(line(r) for r in cells), rule]) + "\n"
    if table.num_rows > n:
        text += f"only showing top {n} row{'s' if n != 1 else ''}\n"
    return text


# -- types -----------------------------------------------------------------------------------------------------
def spark_compatible(table: pa.Table) -> pa.Table:
    """Arrow types Spark's client reads: unsigned integers widened, large and dictionary types made plain,
    times of day, intervals and other types Spark lacks as text."""
    fields = [_field(f) for f in table.schema]
    if pa.schema(fields).equals(table.schema):
        return table
    columns = []
    for column, f in zip(table.columns, fields, strict=True):
        try:
            columns.append(column.cast(f.type))
        except pa.ArrowException:  # no Arrow cast: the values' text
            columns.append(pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string()))
            f = pa.field(f.name, pa.string(), True)
    return pa.Table.from_arrays(columns, schema=pa.schema(
        [pa.field(f.name, c.type, f.nullable) for f, c in zip(fields, columns, strict=True)]))


def _field(f: pa.Field) -> pa.Field:
    t = _compatible(f.type)
    return pa.field(f.name, t, f.nullable or pa.types.is_null(t))


def _compatible(t: pa.DataType) -> pa.DataType:
    widen = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(), pa.uint64(): pa.decimal128(20, 0),
             pa.float16(): pa.float32(), pa.large_string(): pa.string(), pa.large_binary(): pa.binary()}
    if t in widen:
        return widen[t]
    if pa.types.is_dictionary(t):
        return _compatible(t.value_type)
    if pa.types.is_time(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.list_(_field(t.value_field))
    if pa.types.is_struct(t):
        return pa.struct([_field(f) for f in t])
    if pa.types.is_map(t):
        return pa.map_(_compatible(t.key_type), _compatible(t.item_type))
    if pa.types.is_timestamp(t) and t.unit != "us":
        return pa.timestamp("us", t.tz)
    return t if _readable(t) else pa.string()


def spark_type(t: pa.DataType, out: Any) -> None:
    """Fill ``out`` (a DataType message) with the Spark type of Arrow type ``t`` (after spark_compatible)."""
    simple = [(pa.types.is_boolean, "boolean"), (pa.types.is_int8, "byte"), (pa.types.is_int16, "short"),
              (pa.types.is_int32, "integer"), (pa.types.is_int64, "long"), (pa.types.is_float32, "float"),
              (pa.types.is_float64, "double"), (pa.types.is_string, "string"), (pa.types.is_binary, "binary"),
              (pa.types.is_date32, "date"), (pa.types.is_null, "null")]
    for test, name in simple:
        if test(t):
            getattr(out, name).SetInParent()
            return
    if pa.types.is_decimal(t):
        out.decimal.precision, out.decimal.scale = t.precision, t.scale
    elif pa.types.is_timestamp(t):
        (out.timestamp if t.tz else out.timestamp_ntz).SetInParent()
    elif pa.types.is_list(t):
        spark_type(t.value_type, out.array.element_type)
        out.array.contains_null = True
    elif pa.types.is_struct(t):
        for f in t:
            field = out.struct.fields.add(name=f.name, nullable=f.nullable)
            spark_type(f.type, field.data_type)
    elif pa.types.is_map(t):
        spark_type(t.key_type, out.map.key_type)
        spark_type(t.item_type, out.map.value_type)
        out.map.value_contains_null = True
    else:
        out.string.SetInParent()


def spark_schema(schema: pa.Schema, out: Any) -> None:
    out.struct.SetInParent()
    for f in schema:
        field = out.struct.fields.add(name=f.name, nullable=f.nullable)
        spark_type(f.type, field.data_type)


def arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()
