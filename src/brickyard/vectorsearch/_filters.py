"""Metadata filters of vector-search queries, compiled to a predicate over an index's columns.

Two spellings, as Databricks accepts them:

* ``filters_json``: a dict (or its JSON text). ``{"col": v}`` equality, ``{"col": [a, b]}`` IN,
  ``{"col NOT": v}`` (or a list: NOT IN), ``{"col <": v}``, ``<=``, ``>``, ``>=``, ``{"col LIKE": "w"}``
  (the word ``w`` occurs in the text, case-insensitively), ``{"a OR b": [va, vb]}`` (a = va OR b = vb).
  Keys are ANDed.
* ``filter_string``: a SQL boolean expression over the columns: comparisons, ``IN``, ``NOT IN``,
  ``LIKE`` (with ``%``/``_``), ``IS [NOT] NULL``, ``AND``, ``OR``, ``NOT``, parentheses. Parsed with
  sqlglot; anything else (functions, subqueries, column arithmetic) is refused.

A compiled filter is a function from the index's column table to a boolean mask, so it runs over all
rows at once (numpy), and the mask goes into the ANN search itself.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.errors import InvalidParameterValue
from ..sql._text import shown

Columns = Callable[[str], np.ndarray]  # column name -> values of every row (object or numeric array)
Mask = Callable[[Columns, int], np.ndarray]

_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def compile_filters(filters_json: Any = None, filter_string: Any = None, *, columns: set[str]) -> Mask | None:
    """A mask function for the given filter (at most one spelling), or None when there is no filter."""
    if filters_json not in (None, "", {}) and filter_string not in (None, ""):
        raise InvalidParameterValue("give filters_json or filter_string, not both")
    if filter_string not in (None, ""):
        if not isinstance(filter_string, str) or len(filter_string) > 10_000:
            raise InvalidParameterValue("filter_string must be a SQL expression of at most 10000 characters")
        return _compile_sql(filter_string, columns)
    if filters_json in (None, "", {}):
        return None
    if isinstance(filters_json, str):
        try:
            filters_json = json.loads(filters_json)
        except ValueError:
            raise InvalidParameterValue("filters_json is not valid JSON") from None
    if not isinstance(filters_json, dict):
        raise InvalidParameterValue('filters_json must be a JSON object such as {"category": "news"}')
    parts = [_compile_item(str(key), value, columns) for key, value in filters_json.items()]

    def mask(cols: Columns, n: int) -> np.ndarray:
        out = np.ones(n, dtype=bool)
        for part in parts:
            out &= part(cols, n)
        return out

    return mask


def compile_keyed(filters_json: Any, filter_string: Any, *, columns: frozenset[str]) -> tuple[str, Mask] | None:
    """:func:`compile_filters` for the query path: (the filter's text, its mask function), or None. Compiled
    filters are remembered by their text, and the text keys the rows an index found for it (a
    ``filter_string`` goes through a SQL parser, which costs more than the search it narrows)."""
    if filters_json in (None, "", {}) and filter_string in (None, ""):
        return None
    if filter_string not in (None, "") and filters_json in (None, "", {}) and isinstance(filter_string, str):
        key = "s:" + filter_string
    elif isinstance(filters_json, str) and filter_string in (None, ""):
        key = "j:" + filters_json
    elif isinstance(filters_json, dict) and filter_string in (None, ""):
        try:
            key = "j:" + json.dumps(filters_json, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            raise InvalidParameterValue("filters_json holds values that are not JSON") from None
    else:  # both spellings, or a wrong type: let compile_filters say what is wrong
        mask = compile_filters(filters_json, filter_string, columns=set(columns))
        return None if mask is None else (repr((filters_json, filter_string)), mask)
    if len(key) > 10_002:  # not worth remembering; compile_filters bounds filter_string itself
        mask = compile_filters(filters_json, filter_string, columns=set(columns))
        return None if mask is None else (key, mask)
    return key, _compiled(key, columns)


@functools.lru_cache(maxsize=256)
def _compiled(key: str, columns: frozenset[str]) -> Mask:
    text = key[2:]
    mask = compile_filters(text if key[0] == "j" else None, text if key[0] == "s" else None, columns=set(columns))
    if mask is None:  # "{}" given as text: no filter at all
        return lambda _cols, n: np.ones(n, dtype=bool)
    return mask


def _column(name: str, columns: set[str]) -> str:
    if name not in columns:
        raise InvalidParameterValue(f"filter on unknown column {name!r}; the index has: {', '.join(sorted(columns))}")
    return name


def _compile_item(key: str, value: Any, columns: set[str]) -> Mask:
    key = key.strip()
    if " OR " in key:
        names = [k.strip() for k in key.split(" OR ")]
        values = value if isinstance(value, list) else [value]
        if len(values) != len(names):
            raise InvalidParameterValue(f"filter {key!r} needs one value per column, got {len(values)}")
        parts = [_compile_item(n, v, columns) for n, v in zip(names, values, strict=True)]

        def any_of(cols: Columns, n: int) -> np.ndarray:
            out = np.zeros(n, dtype=bool)
            for part in parts:
                out |= part(cols, n)
            return out

        return any_of
    name, _, op = key.partition(" ")
    op = op.strip().upper()
    col = _column(name, columns)
    _scalar_check(value, key)
    if op == "":
        if isinstance(value, list):
            return _in(col, value)
        return _eq(col, value)
    if op == "NOT":
        inner = _in(col, value) if isinstance(value, list) else _eq(col, value)
        return lambda cols, n: ~inner(cols, n) & _not_null(cols(col))
    if op in _OPS:
        if isinstance(value, list):
            raise InvalidParameterValue(f"filter {key!r} compares with one value, not a list")
        return _compare(col, op, value)
    if op == "LIKE":
        if not isinstance(value, str):
            raise InvalidParameterValue(f"filter {key!r} needs a string")
        word = value.lower()

        def like(cols: Columns, n: int) -> np.ndarray:
            pattern = re.compile(r"(?<!\w)" + re.escape(word) + r"(?!\w)")
            return np.fromiter((isinstance(v, str) and pattern.search(v.lower()) is not None for v in cols(col)),
                               dtype=bool, count=n)

        return like
    raise InvalidParameterValue(f"unknown filter operator in {key!r}: use NOT, <, <=, >, >=, LIKE or 'a OR b'")


def _scalar_check(value: Any, key: str) -> None:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not (v is None or isinstance(v, str | int | float | bool)):
            raise InvalidParameterValue(f"filter {key!r} takes strings, numbers or booleans")


def _not_null(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    if values.dtype.kind == "f":
        return ~np.isnan(values)
    return np.ones(len(values), dtype=bool)


def _eq(col: str, value: Any) -> Mask:
    def eq(cols: Columns, n: int) -> np.ndarray:
        values = cols(col)
        if value is None:
            return ~_not_null(values)
        if values.dtype != object:
            if isinstance(value, str):
                return np.zeros(n, dtype=bool)
            return values == value
        return np.fromiter((v == value and v is not None for v in values), dtype=bool, count=n)

    return eq


def _in(col: str, options: list[Any]) -> Mask:
    wanted = set(options)

    def isin(cols: Columns, n: int) -> np.ndarray:
        values = cols(col)
        if values.dtype != object:
            numeric = [v for v in wanted if isinstance(v, int | float) and not isinstance(v, bool)
                       or isinstance(v, bool)]
            return np.isin(values, np.array(numeric, dtype=values.dtype)) if numeric else np.zeros(n, dtype=bool)
        return np.fromiter((v in wanted for v in values), dtype=bool, count=n)

    return isin


def _compare(col: str, op: str, value: Any) -> Mask:
    fn = _OPS[op]

    def compare(cols: Columns, n: int) -> np.ndarray:
        values = cols(col)
        if values.dtype != object:
            if isinstance(value, str) or value is None:
                raise InvalidParameterValue(f"column {col!r} is numeric; compare it with a number")
            with np.errstate(invalid="ignore"):
                return fn(values, value)
        out = np.zeros(n, dtype=bool)
        for i, v in enumerate(values):
            if v is not None and type(v) is type(value) or (isinstance(v, int | float) and isinstance(value, int | float)):
                try:
                    out[i] = bool(fn(v, value))
                except TypeError:
                    out[i] = False
        return out

    return compare


# -- filter_string: a SQL subset --------------------------------------------------------------------
def _compile_sql(text: str, columns: set[str]) -> Mask:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(text, read="databricks", into=exp.Condition)
    except Exception:  # noqa: BLE001 - sqlglot raises several error types
        try:
            tree = sqlglot.parse_one(text, read="databricks")
        except Exception as exc:  # noqa: BLE001
            raise InvalidParameterValue(f"filter_string is not a valid SQL expression: {str(exc)[:200]}") from None

    def literal(node: exp.Expression) -> Any:
        if isinstance(node, exp.Paren):
            return literal(node.this)
        if isinstance(node, exp.Neg):
            value = literal(node.this)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParameterValue(f"filter_string: only a number can be negated, got {shown(node)!r}")
            return -value
        if isinstance(node, exp.Boolean):
            return node.this
        if isinstance(node, exp.Null):
            return None
        if isinstance(node, exp.Literal):
            if node.is_string:
                return node.this
            number = node.this
            try:
                return float(number) if any(c in number for c in ".eE") else int(number)
            except ValueError:
                raise InvalidParameterValue(f"filter_string: {number[:40]!r} is not a number") from None
        raise InvalidParameterValue(f"filter_string: expected a literal value, got {shown(node)!r}")

    def column(node: exp.Expression) -> str:
        if isinstance(node, exp.Column) and not node.table:
            return _column(node.name, columns)
        raise InvalidParameterValue(f"filter_string: expected a column name, got {shown(node)!r}")

    def build(node: exp.Expression) -> Mask:
        if isinstance(node, exp.Paren):
            return build(node.this)
        if isinstance(node, exp.And | exp.Or):
            left, right = build(node.left), build(node.right)
            if isinstance(node, exp.And):
                return lambda cols, n: left(cols, n) & right(cols, n)
            return lambda cols, n: left(cols, n) | right(cols, n)
        if isinstance(node, exp.Not):
            inner = build(node.this)
            return lambda cols, n: ~inner(cols, n)
        if isinstance(node, exp.Is):
            col = column(node.this)
            if not isinstance(node.expression, exp.Null):
                raise InvalidParameterValue("filter_string: IS takes NULL or NOT NULL")
            return lambda cols, n: ~_not_null(cols(col))
        if isinstance(node, exp.In):
            if node.args.get("query") is not None:
                raise InvalidParameterValue("filter_string: subqueries are not allowed")
            return _in(column(node.this), [literal(e) for e in node.expressions])
        if isinstance(node, exp.Like):
            col = column(node.this)
            pattern = literal(node.expression)
            if not isinstance(pattern, str):
                raise InvalidParameterValue("filter_string: LIKE needs a string pattern")
            regex = re.compile("^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c)
                                             for c in pattern) + "$", re.DOTALL)

            def like(cols: Columns, n: int) -> np.ndarray:
                return np.fromiter((isinstance(v, str) and regex.match(v) is not None for v in cols(col)),
                                   dtype=bool, count=n)

            return like
        ops = {exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
        for cls, op in ops.items():
            if isinstance(node, cls):
                left, right = node.left, node.right
                if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
                    left, right = right, left
                    op = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
                col, value = column(left), literal(right)
                if op == "=":
                    return _eq(col, value)
                if op == "!=":
                    eq = _eq(col, value)
                    return lambda cols, n: ~eq(cols, n) & _not_null(cols(col))
                return _compare(col, op, value)
        raise InvalidParameterValue(f"filter_string: {type(node).__name__.upper()} is not supported; use comparisons, "
                                    "IN, LIKE, IS NULL, AND, OR and NOT")

    return build(tree)
