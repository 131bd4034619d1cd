"""Rows checked against a Direct Access index's schema before anything is written.

Every value must have its column's type: integers within the range of the declared width (never a bool,
a float or a string), finite numbers, strings that are valid Unicode (no lone surrogates, which no UTF-8
store can keep), booleans, ISO dates and timestamps, arrays of the declared element type, and a vector of
exactly the index's dimension. The primary key is required and not null. A request is all or nothing:
:func:`check_rows` returns a reason for every bad row, and the caller writes nothing if there is one.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import Any

__all__ = ["RowSchema"]

_INT_BITS = {"tinyint": 8, "byte": 8, "short": 16, "smallint": 16, "int": 32, "integer": 32, "long": 64,
             "bigint": 64}
MAX_REASONS = 100
_FLOAT32_MAX = 3.4028234663852886e38


def _valid_text(value: str) -> str | None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (it holds a lone surrogate)"
    return None


def _checker(type_text: str, what: str) -> Callable[[Any], str | None]:
    """A function value -> None (fine) or the reason it does not fit ``type_text``."""
    t = type_text.lower().replace(" ", "")
    if t in _INT_BITS:
        bits = _INT_BITS[t]
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1

        def integer(v: Any) -> str | None:
            if isinstance(v, bool) or not isinstance(v, int):
                return f"must be an integer ({t}), got {type(v).__name__} {str(v)[:40]!r}"
            if not low <= v <= high:
                return f"is out of range for {t} ({low}..{high})"
            return None
        return integer
    if t in ("float", "double"):
        def number(v: Any) -> str | None:
            if isinstance(v, bool) or not isinstance(v, int | float):
                return f"must be a number ({t}), got {type(v).__name__}"
            if not math.isfinite(float(v)):
                return "must be a finite number"
            return None
        return number
    if t == "string":
        def text(v: Any) -> str | None:
            if not isinstance(v, str):
                return f"must be a string, got {type(v).__name__}"
            return _valid_text(v)
        return text
    if t == "boolean":
        return lambda v: None if isinstance(v, bool) else f"must be true or false, got {type(v).__name__}"
    if t in ("date", "timestamp"):
        parse = dt.date.fromisoformat if t == "date" else dt.datetime.fromisoformat

        def when(v: Any) -> str | None:
            if not isinstance(v, str):
                return f"must be an ISO-8601 {t} string"
            try:
                parse(v)
            except ValueError:
                return f"is not an ISO-8601 {t}: {v[:40]!r}"
            return None
        return when
    if t.startswith("array<") and t.endswith(">"):
        inner = _checker(t[6:-1], what)

        def array(v: Any) -> str | None:
            if not isinstance(v, list):
                return f"must be an array ({t}), got {type(v).__name__}"
            for i, item in enumerate(v):
                why = inner(item)
                if why:
                    return f"[{i}] {why}"
            return None
        return array
    raise ValueError(f"{what}: unsupported type {type_text!r}")


class RowSchema:
    """The columns of a Direct Access index (``schema_json``), its key and its vector column."""

    def __init__(self, columns: dict[str, str], primary_key: str, *, vector_column: str | None,
                 dimension: int) -> None:
        self.columns = columns
        self.primary_key = primary_key
        self.vector_column = vector_column
        self.dimension = dimension
        self._check = {name: _checker(typ, name) for name, typ in columns.items()}

    def key_problem(self, key: Any) -> str | None:
        """Why ``key`` cannot be a value of the primary key, or None."""
        if key is None:
            return f"the primary key {self.primary_key!r} is missing or null"
        why = self._check[self.primary_key](key)
        return f"primary key {self.primary_key!r} {why}" if why else None

    def deleted_key_problem(self, key: Any) -> str | None:
        """As :meth:`key_problem`, for delete-data, whose keys the Databricks SDK always sends as strings: an
        integer key may also come as its canonical decimal text (``"10"``, not ``"010"`` or ``"1e1"``)."""
        if isinstance(key, str) and self.columns[self.primary_key].lower() in _INT_BITS \
                and re.fullmatch(r"-?(0|[1-9][0-9]{0,19})", key):
            key = int(key)
        return self.key_problem(key)

    def row_problem(self, row: Any) -> str | None:
        """Why ``row`` cannot be stored, or None."""
        if not isinstance(row, dict):
            return f"a row must be an object, got {type(row).__name__}"
        unknown = [c for c in row if c not in self.columns]
        if unknown:
            return f"unknown column(s) {', '.join(repr(str(c)[:40]) for c in unknown[:5])}; the index has " \
                   f"{', '.join(self.columns)}"
        why = self.key_problem(row.get(self.primary_key))
        if why:
            return why
        for name, value in row.items():
            if name == self.primary_key:
                continue
            if value is None:
                if name == self.vector_column:
                    return f"{name!r} is null; every row needs its {self.dimension}-dimensional vector"
                continue
            why = self._check[name](value)
            if why:
                return f"column {name!r} {why}"
        if self.vector_column is not None:
            vector = row.get(self.vector_column)
            if vector is None:
                return f"{self.vector_column!r} is missing; every row needs its {self.dimension}-dimensional vector"
            if len(vector) != self.dimension:
                return f"{self.vector_column!r} has {len(vector)} numbers; the index has dimension {self.dimension}"
            if any(abs(x) > _FLOAT32_MAX for x in vector):
                return f"{self.vector_column!r} holds a number beyond the range of a 32-bit float"
        return None

    def problems(self, rows: list[Any], check: Callable[[Any], str | None]) -> list[dict[str, Any]]:
        """[{"row": i, "primary_key": key, "reason": ...}] for the first MAX_REASONS bad items."""
        out: list[dict[str, Any]] = []
        for i, item in enumerate(rows):
            why = check(item)
            if why:
                key = item.get(self.primary_key) if isinstance(item, dict) else item
                out.append({"row": i, "primary_key": key, "reason": why})
                if len(out) >= MAX_REASONS:
                    break
        return out
