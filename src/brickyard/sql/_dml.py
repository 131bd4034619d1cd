"""INSERT, DELETE, UPDATE and MERGE: DuckDB computes the rows (or the MERGE source), delta-rs commits, with
conditions translated to DataFusion SQL."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..catalog import Securable
from ..core.errors import BadRequest, InvalidParameterValue
from ._context import Ctx, Result
from ._governance import is_view


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _target(ctx: Ctx, table: Any, action: str) -> Securable:
    full = ctx.table_name(table)
    obj = ctx.engine.catalog.require(ctx.p, "MODIFY", "table", full, action=action)
    if is_view(obj):
        raise InvalidParameterValue(f"[EXPECT_TABLE_NOT_VIEW] {full} is a view; write to its tables")
    if action != "insertIntoTable" and (obj.spec.get("row_filter") or obj.spec.get("column_masks")):
        raise InvalidParameterValue(f"{full} has a row filter or column masks; Brickyard does not UPDATE, DELETE or "
                                    "MERGE such a table (INSERT works): drop the policy first, or write through the "
                                    "table's owner's pipeline")
    return obj

def insert(ctx: Ctx, tree: Any) -> Result:
    exp = ctx.exp
    target_node = tree.this
    columns: list[str] | None = None
    if isinstance(target_node, exp.Schema):
        columns = [c.name for c in target_node.expressions]
        target_node = target_node.this
    obj = _target(ctx, target_node, "insertIntoTable")
    source = tree.expression
    if source is None:
        raise BadRequest("INSERT needs VALUES or a query")
    if isinstance(source, exp.Query):
        select = source
    else:
        values = source.copy()
        values.set("alias", exp.TableAlias(this=exp.to_identifier("__v")))
        select = exp.select("*").from_(values)
    con, sources = ctx.connect(select)
    try:
        rows = ctx.run(con, select)
    finally:
        con.close()
    schema = ctx.engine.tables.schema(obj)
    names = columns or schema.names[: rows.num_columns]
    if rows.num_columns != len(names):
        raise InvalidParameterValue(
            f"INSERT gives {rows.num_columns} values per row but {len(names)} columns are named")  # noqa: S608
    for n in names:
        if n not in schema.names:
            raise InvalidParameterValue(f"{obj.full_name} has no column {n!r}")
    data = rows.rename_columns(names)
    mode = "overwrite" if tree.args.get("overwrite") else "append"
    res = ctx.engine.tables.write_authorized(obj, data, mode=mode)
    ctx.lineage(sources, obj, "INSERT")
    return Result(pa.table({"num_affected_rows": [res.rows], "num_inserted_rows": [res.rows]}),
                  {"version": res.version})

def datafusion_sql(ctx: Ctx, node: Any, *, rename: dict[str, str] | None = None) -> str:
    """Translate an expression to DataFusion SQL for delta-rs (columns unqualified unless renamed)."""
    exp = ctx.exp
    if node.find(exp.Subquery, exp.Select):
        raise BadRequest("subqueries are not supported in DELETE/UPDATE conditions; use MERGE INTO")
    node = node.copy()
    for col in list(node.find_all(exp.Column)):
        qualifier = col.table.lower() if col.table else ""
        if rename is not None and qualifier in rename:
            col.set("table", exp.to_identifier(rename[qualifier]))
        elif rename is None:
            col.set("table", None)
        col.this.set("quoted", True)
    return node.sql(dialect="postgres")

def delete(ctx: Ctx, tree: Any) -> Result:
    obj = _target(ctx, tree.this, "deleteFromTable")
    where = tree.args.get("where")
    predicate = datafusion_sql(ctx, where.this) if where is not None else None
    metrics = ctx.engine.tables.delete_rows(obj, predicate)
    n = int(metrics.get("num_deleted_rows", 0) or 0)
    return Result(pa.table({"num_affected_rows": [n]}), metrics)

def update(ctx: Ctx, tree: Any) -> Result:
    exp = ctx.exp
    obj = _target(ctx, tree.this, "updateTable")
    updates = {}
    for eq in tree.expressions:
        if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
            raise BadRequest("UPDATE ... SET needs column = expression pairs")
        updates[_q(eq.this.name)] = datafusion_sql(ctx, eq.expression)
    where = tree.args.get("where")
    predicate = datafusion_sql(ctx, where.this) if where is not None else None
    metrics = ctx.engine.tables.update_rows(obj, updates, predicate)
    n = int(metrics.get("num_updated_rows", 0) or 0)
    return Result(pa.table({"num_affected_rows": [n]}), metrics)

def merge(ctx: Ctx, tree: Any) -> Result:
    exp = ctx.exp
    target = tree.this
    obj = _target(ctx, target, "mergeIntoTable")
    t_alias = (target.alias or target.name).lower()
    using = tree.args.get("using")
    s_alias = (using.alias or (using.name if isinstance(using, exp.Table) else "")).lower()
    if not s_alias:
        raise BadRequest("give the MERGE source an alias: USING (...) AS s")
    if s_alias == t_alias:
        raise BadRequest("the MERGE source and target need different aliases")
    source_q = (exp.select("*").from_(using.copy()) if isinstance(using, exp.Table)
                else using.this.copy() if isinstance(using, exp.Subquery) else None)
    if source_q is None:
        raise BadRequest("MERGE ... USING needs a table or a subquery")
    source_q = ctx.plan(source_q)  # its tables read under their filters and masks, views expanded
    con, _ = ctx.connect(source_q)
    try:
        source = ctx.run(con, source_q)
    finally:
        con.close()
    rename = {t_alias: "t", s_alias: "s"}
    predicate = datafusion_sql(ctx, tree.args["on"], rename=rename)
    clauses = []
    whens = tree.args.get("whens")
    items = whens.expressions if whens is not None else tree.expressions
    for when in items:
        matched = bool(when.args.get("matched"))
        by_source = bool(when.args.get("source"))
        cond = when.args.get("condition")
        cond_sql = datafusion_sql(ctx, cond, rename=rename) if cond is not None else None
        then = when.args.get("then")
        clause: dict[str, Any] = {"when": "matched" if matched else
                                  ("not_matched_by_source" if by_source else "not_matched"),
                                  "condition": cond_sql}
        if isinstance(then, exp.Update):
            if then.expressions and not isinstance(then.expressions[0], exp.Star):
                clause["action"] = "update"
                clause["set"] = {_q(e.this.name): datafusion_sql(ctx, e.expression, rename=rename)
                                 for e in then.expressions}
            else:
                clause["action"] = "update_all"
        elif isinstance(then, exp.Insert):
            cols = then.this
            vals = then.expression
            if cols is None or isinstance(cols, exp.Star) or (isinstance(then.this, exp.Var)):
                clause["action"] = "insert_all"
            else:
                names = [c.name for c in cols.expressions] if hasattr(cols, "expressions") else []
                values = vals.expressions if vals is not None else []
                if len(names) != len(values):
                    raise BadRequest("INSERT (cols) VALUES (...) in MERGE needs one value per column")
                clause["action"] = "insert"
                clause["set"] = {_q(n): datafusion_sql(ctx, v, rename=rename) for n, v in zip(names, values, strict=True)}
        elif isinstance(then, exp.Var) and then.name.upper() == "DELETE" or str(then).upper() == "DELETE":
            clause["action"] = "delete"
        else:
            raise BadRequest(f"unsupported MERGE action {str(then)[:60]!r}")
        clauses.append(clause)
    metrics = ctx.engine.tables.merge_rows(obj, source, predicate=predicate, clauses=clauses)
    affected = sum(int(metrics.get(k, 0) or 0) for k in
                   ("num_target_rows_updated", "num_target_rows_deleted", "num_target_rows_inserted"))
    return Result(pa.table({"num_affected_rows": [affected],
                            "num_updated_rows": [int(metrics.get("num_target_rows_updated", 0) or 0)],
                            "num_deleted_rows": [int(metrics.get("num_target_rows_deleted", 0) or 0)],
                            "num_inserted_rows": [int(metrics.get("num_target_rows_inserted", 0) or 0)]}),
                  metrics)

