"""What one SQL statement may cost: DuckDB's memory limit, the size of a result, and guards on the
functions that make a value far larger than their input.

DuckDB's ``memory_limit`` governs its buffer manager (joins, aggregates, sorts), but not the heap a single
string or list value is built on: ``repeat('x', 2000000000)`` allocated 2 GB (7.7 GB peak) under a 1 GB
limit. So calls that size their output from an argument (``repeat``, ``lpad``/``rpad``, ``range``,
``generate_series``, ``list_resize``, ``bar``, and format widths in ``printf``/``format``) are rewritten
to raise a clear error, before allocating, when the value they would build is larger than the result
limit. Results are read from DuckDB batch by batch and refused once they pass that limit, so an
oversized result is never held whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..core.errors import BadRequest

__all__ = ["Limits", "guard_sizes"]

_WIDTH = re.compile(r"\d{7,}")  # a format width of a million characters or more


@dataclass(frozen=True)
class Limits:
    result_bytes: int = 25 << 20  # Databricks' INLINE disposition limit
    memory_bytes: int = 2 << 30

    def too_big(self, what: str) -> str:
        return (f"{what} would be larger than {self.result_bytes >> 20} MiB, the statement result limit "
                "(BRICKYARD_STATEMENT_RESULT_BYTES); aggregate, filter or add a LIMIT")

    def connection_settings(self) -> list[str]:
        return [f"SET memory_limit = '{int(self.memory_bytes) >> 20}MB'",
                "SET temp_directory = ''"]  # no spilling into the server's working directory


def guard_sizes(tree: Any, limits: Limits) -> Any:
    """``tree`` with every size-amplifying call wrapped in a check of the size it would build."""
    import sqlglot
    from sqlglot import exp

    cap = limits.result_bytes

    def sql(node: Any) -> str:
        return f"({node.sql(dialect='duckdb')})" if node is not None else "NULL"

    def guarded(node: Any, arg: Any, condition: str, what: str) -> Any:
        """``node`` with its size argument ``arg`` replaced by CASE WHEN <too big> THEN error(...) ELSE arg. The
        check sits inside the argument so that DuckDB, which folds constant calls while planning, raises the
        error at once instead of first building the value."""
        check = sqlglot.parse_one(condition, read="duckdb")
        error = exp.Anonymous(this="error", expressions=[exp.Literal.string(limits.too_big(what))])
        arg.replace(exp.Case(ifs=[exp.If(this=check, true=error)], default=arg.copy()))
        return node

    def visit(node: Any) -> Any:
        if isinstance(node, exp.Repeat):
            count, value = node.args.get("times"), node.this
            return guarded(node, count, f"TRY_CAST({sql(count)} AS DOUBLE) * GREATEST(COALESCE(LENGTH(TRY_CAST("
                                        f"{sql(value)} AS VARCHAR)), 1), 1) > {cap}", "repeat()")
        if isinstance(node, exp.Pad) and node.expression is not None:
            return guarded(node, node.expression, f"TRY_CAST({sql(node.expression)} AS DOUBLE) > {cap}",
                           "lpad()/rpad()")
        name = (node.name if isinstance(node, exp.Anonymous) else type(node).__name__).lower()
        if isinstance(node, exp.Anonymous):
            args = list(node.expressions)
        elif isinstance(node, exp.GenerateSeries):
            name = "generate_series"
            args = [a for a in (node.args.get("start"), node.args.get("end"), node.args.get("step")) if a is not None]
        else:
            args = [a for a in (node.this, node.args.get("expression")) if a is not None]
        if name in ("range", "generate_series") and args:
            count = sql(args[0]) if len(args) == 1 else (
                f"(TRY_CAST({sql(args[1])} AS DOUBLE) - TRY_CAST({sql(args[0])} AS DOUBLE))"
                + (f" / NULLIF(TRY_CAST({sql(args[2])} AS DOUBLE), 0)" if len(args) > 2 else ""))
            return guarded(node, args[0], f"ABS(TRY_CAST({count} AS DOUBLE)) * 8 > {cap}", f"{name}()")
        if name in ("list_resize", "array_resize") and len(args) >= 2:
            return guarded(node, args[1], f"TRY_CAST({sql(args[1])} AS DOUBLE) * 8 > {cap}", f"{name}()")
        if name == "bar" and len(args) >= 4:
            return guarded(node, args[3], f"TRY_CAST({sql(args[3])} AS DOUBLE) > 10000", "bar()")
        if name in ("printf", "format"):
            fmt = args[0] if args else node.this
            if isinstance(fmt, exp.Literal) and fmt.is_string and _WIDTH.search(fmt.this):
                raise BadRequest(limits.too_big(f"{name}() with the width in {fmt.this[:40]!r}"))
        return node

    return tree.transform(visit)
