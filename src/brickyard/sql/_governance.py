"""Views, row filters and column masks: what each principal reads of a table, on every read path.

* A **view** is a stored query. Reading it needs SELECT on the view only: its query is expanded in place and the
  tables it reads are checked as the view's *owner* (so a view can expose part of a table the reader may not
  read). ``current_user()``, ``is_account_group_member(g)`` and ``is_member(g)`` answer for the *reader*, which is
  how a dynamic view shows each reader their own rows.
* A **row filter** (``ALTER TABLE t SET ROW FILTER f ON (cols)``) and **column masks** (``ALTER TABLE t ALTER
  COLUMN c SET MASK f [USING COLUMNS (...)]``) are SQL functions applied to every read of the table, by anyone:
  the table's rows are computed as ``SELECT * REPLACE (mask(c, ...) AS c) FROM rows WHERE filter(cols)`` on their
  own, before the statement that reads them runs, so no predicate of the reader's is ever evaluated on a row the
  filter hides (a leaky predicate -- ``1/(CASE WHEN secret = 'x' THEN 0 ELSE 1 END)`` -- reveals nothing). The
  functions run with their owner's rights (the reader needs no EXECUTE on them) and see the reader in
  ``current_user()``.

Expansion happens while a statement is planned, before its tables are checked and registered. Reads outside SQL
(``Tables.read``, the change feed, Delta Sync sources) go through :meth:`SqlEngine.govern`, which applies the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..catalog import Principal, Securable
from ..core.errors import BadRequest, InvalidParameterValue, InvalidState, PermissionDenied
from ._text import shown

if TYPE_CHECKING:
    from ._context import Ctx

AS = "brickyard_as"  # table.meta: the principal a reference is checked as (a view's or a function's owner)
POLICY = "brickyard_policy"  # table.meta: a table with a row filter or masks, read through them
ROWS = "brickyard_rows"  # table.meta: rows given by the caller (SqlEngine.govern) instead of a catalog table
GOVERNED = "brickyard_governed"  # call.meta: a row filter or mask: no EXECUTE check, body tables as its owner
MAX_VIEW_DEPTH = 32


def is_view(obj: Securable) -> bool:
    return str(obj.spec.get("table_type") or "").upper() == "VIEW"


def is_governed(obj: Securable) -> bool:
    """Whether reading ``obj`` means more than reading its files: a view, a row filter, a column mask."""
    return is_view(obj) or bool(obj.spec.get("row_filter")) or bool(obj.spec.get("column_masks"))


def owner_of(ctx: Ctx, obj: Securable) -> Principal:
    found = ctx.engine.catalog.identity.by_name(obj.owner)
    if found is None:
        raise PermissionDenied(f"the owner of {obj.full_name} ({obj.owner}) no longer exists; reassign it")
    return found


def expand(ctx: Ctx, tree: Any, stack: tuple[str, ...] = ()) -> Any:
    """Every reference in ``tree`` to a view expanded, and to a table with a row filter or masks wrapped."""
    from ._context import names_a_visible_cte

    exp = ctx.exp
    for table in list(tree.find_all(exp.Table)):
        if table.meta.get(ROWS) or not isinstance(table.this, exp.Identifier):
            continue
        if names_a_visible_cte(table):
            continue
        full = ctx.table_name(table)
        if full in ctx.engine.system_tables:
            continue
        who = table.meta.get(AS) or ctx.p
        obj = ctx.engine.catalog.require(who, "SELECT", "table", full, action="readTable")
        alias = table.args.get("alias")
        if is_view(obj):
            if full in stack or len(stack) >= MAX_VIEW_DEPTH:
                raise InvalidParameterValue(f"[RECURSIVE_VIEW] {full} refers to itself (through "
                                            f"{' -> '.join((*stack, full))})")
            if table.args.get("version") is not None:
                raise BadRequest(f"{full} is a view; VERSION AS OF reads tables")
            body = view_query(ctx, obj)
            owner = owner_of(ctx, obj)
            for inner in body.find_all(exp.Table):
                inner.meta.setdefault(AS, owner)
            body = expand(ctx, body, (*stack, full))
            names = [c["name"] for c in obj.spec.get("columns") or []]
            new_alias = alias.copy() if alias else exp.TableAlias(this=exp.to_identifier(table.name))
            if names and obj.spec.get("column_names_given"):
                new_alias.set("columns", [exp.to_identifier(n) for n in names])
            table.replace(exp.Subquery(this=body, alias=new_alias))
            continue
        if obj.spec.get("row_filter") or obj.spec.get("column_masks"):
            table.meta[POLICY] = obj  # read through its filter and masks when registered (Ctx.connect)
    return tree


def view_query(ctx: Ctx, obj: Securable) -> Any:
    import sqlglot

    try:
        return sqlglot.parse_one(str(obj.spec.get("view_definition") or ""), read="databricks")
    except sqlglot.errors.ParseError as exc:
        raise InvalidState(f"the query of view {obj.full_name} does not parse: {str(exc).splitlines()[0][:200]}") \
            from None


def governed_select(ctx: Ctx, obj: Securable, source: Any) -> Any:
    """``SELECT * REPLACE (masks) FROM source WHERE filter`` for ``obj``'s row filter and column masks."""
    exp = ctx.exp
    replace = []
    for column, mask in (obj.spec.get("column_masks") or {}).items():
        args = [exp.column(column, quoted=True), *(exp.column(c, quoted=True) for c in mask.get("using_column_names")
                                                     or [])]
        replace.append(exp.alias_(_call(exp, mask["function_name"], args), column, quoted=True))
    star = exp.Star(**({"replace": replace} if replace else {}))
    select = exp.select(star).from_(source)
    row_filter = obj.spec.get("row_filter")
    if row_filter:
        args = [exp.column(c, quoted=True) for c in row_filter.get("input_column_names") or []]
        select = select.where(exp.EQ(this=_call(exp, row_filter["function_name"], args), expression=exp.true()))
    return select


def _call(exp: Any, function: str, args: list[Any]) -> Any:
    catalog, schema, name = function.split(".")
    fn = exp.Anonymous(this=exp.to_identifier(name, quoted=True), expressions=args)
    call = exp.Dot(this=exp.Dot(this=exp.to_identifier(catalog, quoted=True),
                                expression=exp.to_identifier(schema, quoted=True)), expression=fn)
    call.meta[GOVERNED] = True
    return call


def dynamic(ctx: Ctx, tree: Any) -> Any:
    """``current_user()``, ``is_account_group_member('g')`` and ``is_member('g')`` answered for the reader."""
    exp = ctx.exp

    def sub(node: Any) -> Any:
        if isinstance(node, exp.CurrentUser):
            return exp.Literal.string(ctx.p.name)
        if isinstance(node, exp.Anonymous) and str(node.this).lower() in ("is_account_group_member", "is_member"):
            args = node.expressions
            if len(args) != 1 or not (isinstance(args[0], exp.Literal) and args[0].is_string):
                raise InvalidParameterValue(f"{node.this} takes one group name, a string literal; got {shown(node)}")
            return exp.Boolean(this=args[0].this in ctx.p.names)
        return node

    return tree.transform(sub)


# -- statements -----------------------------------------------------------------------------------------------
def create_view(ctx: Ctx, tree: Any) -> None:
    """CREATE [OR REPLACE] VIEW [IF NOT EXISTS] v [(col [COMMENT ...], ...)] [COMMENT ...] AS query."""
    exp = ctx.exp
    node = tree.this
    schema_node = node if isinstance(node, exp.Schema) else None
    table_node = schema_node.this if schema_node is not None else node
    full = ctx.table_name(table_node)
    cat = ctx.engine.catalog
    exists = cat.exists("table", full)
    if exists and tree.args.get("exists"):
        return
    query = tree.expression
    if not isinstance(query, exp.Query):
        raise BadRequest("CREATE VIEW needs AS SELECT ...")
    definition, columns, sources = _define(ctx, query, full, schema_node)
    from ._ddl import comment_of

    spec = {"table_type": "VIEW", "view_definition": definition, "columns": columns,
            "column_names_given": schema_node is not None, "data_source_format": None}
    if exists:
        current = cat.get(ctx.p, "table", full)
        if not tree.args.get("replace"):
            raise InvalidParameterValue(f"[TABLE_OR_VIEW_ALREADY_EXISTS] {full} already exists; use CREATE OR REPLACE VIEW")
        if not is_view(current):
            raise InvalidParameterValue(f"[EXPECT_VIEW_NOT_TABLE] {full} is a table; CREATE OR REPLACE VIEW replaces views")
        cat.update(ctx.p, "table", full, comment=comment_of(tree), spec=spec)
    else:
        obj = cat.create(ctx.p, "table", full, comment=comment_of(tree), spec=spec)
        full = obj.full_name
    for name in sources:
        if name != full:
            cat.add_lineage(ctx.p, ("table", name), ("table", full), kind="VIEW")


def alter_view(ctx: Ctx, tree: Any) -> None:
    """ALTER VIEW v AS query; ALTER VIEW v RENAME TO w."""
    exp = ctx.exp
    full = ctx.table_name(tree.this)
    obj = ctx.engine.catalog.get(ctx.p, "table", full)
    if not is_view(obj):
        raise InvalidParameterValue(f"[EXPECT_VIEW_NOT_TABLE] {full} is a table; use ALTER TABLE")
    actions = tree.args.get("actions") or []
    if len(actions) != 1:
        raise BadRequest("ALTER VIEW takes one action: AS query, or RENAME TO name")
    action = actions[0]
    if isinstance(action, exp.Query):
        definition, columns, _ = _define(ctx, action, full, None)
        ctx.engine.catalog.update(ctx.p, "table", full, spec={"view_definition": definition, "columns": columns,
                                                             "column_names_given": False})
    elif isinstance(action, exp.AlterRename):
        new = ctx.table_name(action.this)
        if new.rsplit(".", 1)[0] != full.rsplit(".", 1)[0]:
            raise InvalidParameterValue("ALTER VIEW ... RENAME TO keeps the view in its schema")
        ctx.engine.catalog.update(ctx.p, "table", full, new_name=new.rsplit(".", 1)[1])
    else:
        raise BadRequest(f"ALTER VIEW {shown(action, 40)} is not supported; AS query and RENAME TO are")


def _define(ctx: Ctx, query: Any, full: str, schema_node: Any) -> tuple[str, list[dict[str, Any]], list[str]]:
    """(the stored definition, its columns, the tables it reads) of a view's query, checked by running it with
    no rows as the creator. Names are completed with the creator's defaults, so the view reads the same tables
    whoever reads it."""
    from ._context import friendly, names_a_visible_cte

    exp = ctx.exp
    query = query.copy()
    for table in query.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier) and not names_a_visible_cte(table):
            catalog, schema, name = ctx.table_name(table).split(".")
            table.set("catalog", exp.to_identifier(catalog, quoted=True))
            table.set("db", exp.to_identifier(schema, quoted=True))
            table.set("this", exp.to_identifier(name, quoted=True))
    definition = query.sql(dialect="databricks")
    probe = exp.select("*").from_(exp.Subquery(this=query.copy(), alias=exp.TableAlias(
        this=exp.to_identifier("v")))).limit(0)
    probe = ctx.plan(probe, views=(full,))  # a view that reads itself, directly or through others, is refused
    con, sources = ctx.connect(probe)
    try:
        schema = friendly(ctx.run(con, probe)).schema
    finally:
        con.close()
    from ..tables import schema_to_columns

    columns = schema_to_columns(schema)
    if schema_node is not None:
        given = [c for c in schema_node.expressions]
        if len(given) != len(columns):
            raise InvalidParameterValue(f"the view names {len(given)} columns but its query gives {len(columns)}")
        for col, node in zip(columns, given, strict=True):
            col["name"] = node.name
            comment = next((c.kind.this.name for c in node.args.get("constraints") or []
                            if isinstance(c.kind, exp.CommentColumnConstraint)), None) \
                if isinstance(node, exp.ColumnDef) else None
            if comment:
                col["comment"] = comment
    return definition, columns, sorted(sources)


def set_row_filter(ctx: Ctx, table: str, function: str, columns: list[str]) -> None:
    obj, fn = _policy_objects(ctx, table, function)
    names = _columns_of(ctx, obj)
    for c in columns:
        if c not in names:
            raise InvalidParameterValue(f"[UNRESOLVED_COLUMN] {obj.full_name} has no column {c!r}")
    params = (fn.spec.get("input_params") or {}).get("parameters") or []
    if len(params) != len(columns):
        raise InvalidParameterValue(f"the row filter {fn.full_name} takes {len(params)} arguments; ON gives "
                                    f"{len(columns)} columns")
    if str(fn.spec.get("data_type") or "").upper() != "BOOLEAN":
        raise InvalidParameterValue(f"a row filter must return BOOLEAN; {fn.full_name} returns "
                                    f"{fn.spec.get('data_type')}")
    ctx.engine.catalog.update(ctx.p, "table", obj.full_name, spec={"row_filter": {
        "function_name": fn.full_name, "input_column_names": columns}})


def drop_row_filter(ctx: Ctx, table: str) -> None:
    obj = ctx.engine.catalog.get(ctx.p, "table", ctx.resolve_name(table))
    ctx.engine.catalog.update(ctx.p, "table", obj.full_name, spec={"row_filter": None})


def set_mask(ctx: Ctx, table: str, column: str, function: str, using: list[str]) -> None:
    obj, fn = _policy_objects(ctx, table, function)
    names = _columns_of(ctx, obj)
    for c in [column, *using]:
        if c not in names:
            raise InvalidParameterValue(f"[UNRESOLVED_COLUMN] {obj.full_name} has no column {c!r}")
    params = (fn.spec.get("input_params") or {}).get("parameters") or []
    if len(params) != 1 + len(using):
        raise InvalidParameterValue(f"the mask {fn.full_name} takes {len(params)} arguments; it is given the column "
                                    f"and {len(using)} more")
    masks = dict(obj.spec.get("column_masks") or {})
    masks[column] = {"function_name": fn.full_name, "using_column_names": using}
    ctx.engine.catalog.update(ctx.p, "table", obj.full_name, spec={"column_masks": masks})


def drop_mask(ctx: Ctx, table: str, column: str) -> None:
    obj = ctx.engine.catalog.get(ctx.p, "table", ctx.resolve_name(table))
    masks = dict(obj.spec.get("column_masks") or {})
    if masks.pop(column, None) is None:
        raise InvalidParameterValue(f"column {column!r} of {obj.full_name} has no mask")
    ctx.engine.catalog.update(ctx.p, "table", obj.full_name, spec={"column_masks": masks})


def _policy_objects(ctx: Ctx, table: str, function: str) -> tuple[Securable, Securable]:
    """The table (whose owner sets its policies: MANAGE, checked by the update) and the function, which the
    setter must be able to run (EXECUTE) and which must be a SQL function."""
    obj = ctx.engine.catalog.get(ctx.p, "table", ctx.resolve_name(table))
    if is_view(obj):
        raise InvalidParameterValue(f"[EXPECT_TABLE_NOT_VIEW] {obj.full_name} is a view; put the filter in its query")
    fn = ctx.engine.catalog.require(ctx.p, "EXECUTE", "function", ctx.resolve_name(function),
                                    action="setTablePolicy")
    if fn.spec.get("routine_body") != "SQL":
        raise InvalidParameterValue(f"{fn.full_name} is a Python function; row filters and masks are SQL functions")
    return obj, fn


def _columns_of(ctx: Ctx, obj: Securable) -> list[str]:
    return list(ctx.engine.tables.schema(obj).names)
