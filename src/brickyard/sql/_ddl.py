"""Catalog statements: CREATE/DROP of catalogs, schemas and tables, DESCRIBE, SHOW, GRANT and REVOKE, and DESCRIBE
HISTORY. sqlglot reads several of them as opaque commands, so those are matched by hand first (``command``)."""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from ..catalog import normalize_privilege
from ..catalog._objects import function_spec
from ..core.errors import AlreadyExists, BadRequest, InvalidParameterValue, InvalidState, NotFound
from ..core.names import parse_name, quote_part
from ..tables import schema_to_columns
from ._context import Ctx, Result, friendly
from ._functions import Definition, Temporary, describe_rows, parse_create
from ._governance import (
    alter_view,
    create_view,
    drop_mask,
    drop_row_filter,
    is_view,
    set_mask,
    set_row_filter,
)
from ._text import shown

SHOW = re.compile(r"(?is)^SHOW\s+(CATALOGS|SCHEMAS|DATABASES|TABLES|VOLUMES|(?:(?:USER|SYSTEM|ALL)\s+)?FUNCTIONS)"
                   r"(?:\s+(?:IN|FROM)\s+(\S+))?(?:\s+LIKE\s+'([^']*)')?$")
SHOW_GRANTS = re.compile(r"(?is)^SHOW\s+GRANTS(?:\s+(`[^`]+`|\S+))?\s+ON\s+(CATALOG|SCHEMA|DATABASE|TABLE|"
                          r"VOLUME|FUNCTION|MODEL|CONNECTION|METASTORE)(?:\s+(\S+))?$")
HISTORY = re.compile(r"(?is)^DESC(?:RIBE)?\s+HISTORY\s+(\S+)$")
GRANT = re.compile(r"(?is)^(GRANT|REVOKE)\s+(.+?)\s+ON\s+(CATALOG|SCHEMA|DATABASE|TABLE|VIEW|VOLUME|FUNCTION|"
                    r"MODEL|CONNECTION)\s+(\S+)\s+(TO|FROM)\s+(`(?:[^`]|``)+`|[^\s`]+)$")
DROP_CATALOG = re.compile(r"(?is)^DROP\s+CATALOG\s+(IF\s+EXISTS\s+)?(\S+?)(?:\s+(CASCADE|RESTRICT))?$")
ROW_FILTER = re.compile(r"(?is)^ALTER\s+TABLE\s+(\S+)\s+(?:SET\s+ROW\s+FILTER\s+(\S+)\s+ON\s*\(([^)]*)\)|"
                        r"(DROP)\s+ROW\s+FILTER)$")
MASK = re.compile(r"(?is)^ALTER\s+TABLE\s+(\S+)\s+ALTER\s+COLUMN\s+(`[^`]+`|\S+)\s+(?:SET\s+MASK\s+(\S+)"
                  r"(?:\s+USING\s+COLUMNS\s*\(([^)]*)\))?|(DROP)\s+MASK)$")
CREATE_CATALOG = re.compile(r"(?is)^CREATE\s+CATALOG\s+(IF\s+NOT\s+EXISTS\s+)?(\S+)"
                             r"(?:\s+COMMENT\s+'((?:[^']|'')*)')?$")

def command(ctx: Ctx, text: str) -> Result | None:
    definition = parse_create(text)
    if definition is not None:
        return create_function(ctx, definition)
    m = ROW_FILTER.match(text)
    if m:
        if m.group(4):
            drop_row_filter(ctx, m.group(1))
        else:
            set_row_filter(ctx, m.group(1), m.group(2), _names(m.group(3)))
        return Result(pa.table({}))
    m = MASK.match(text)
    if m:
        column = _names(m.group(2))[0]
        if m.group(5):
            drop_mask(ctx, m.group(1), column)
        else:
            set_mask(ctx, m.group(1), column, m.group(3), _names(m.group(4) or ""))
        return Result(pa.table({}))
    m = SHOW.match(text)
    if m:
        return show(ctx, " ".join(m.group(1).upper().split()), m.group(2), m.group(3))
    m = SHOW_GRANTS.match(text)
    if m:
        return show_grants(ctx, m.group(1), m.group(2).upper(), m.group(3))
    m = HISTORY.match(text)
    if m:
        name = ctx.resolve_name(m.group(1))
        rows = ctx.engine.tables.history(ctx.p, name)
        return Result(pa.table({
            "version": pa.array([r.get("version") for r in rows], pa.int64()),
            "timestamp": pa.array([r.get("timestamp") for r in rows], pa.int64()),
            "operation": pa.array([r.get("operation") for r in rows], pa.string()),
            "operationParameters": pa.array([json.dumps(r.get("operationParameters", {})) for r in rows]),
        }))
    m = GRANT.match(text)
    if m:
        verb, privs, kind, name, prep, who = m.groups()
        if (verb.upper() == "GRANT") != (prep.upper() == "TO"):
            raise BadRequest("write GRANT ... TO principal or REVOKE ... FROM principal")
        return grant_revoke(ctx, kind.upper(), name, [x.strip() for x in privs.split(",")],
                                who[1:-1].replace("``", "`") if who.startswith("`") else who,
                                revoke=verb.upper() == "REVOKE")
    m = DROP_CATALOG.match(text)
    if m:  # sqlglot reads DROP CATALOG as an opaque command
        return drop_named(ctx, "CATALOG", m.group(2), exists=bool(m.group(1)),
                              cascade=(m.group(3) or "").upper() == "CASCADE")
    m = CREATE_CATALOG.match(text)
    if m:
        name = str(parse_name(m.group(2), 1))
        if not (m.group(1) and ctx.engine.catalog.exists("catalog", name)):
            comment = m.group(3).replace("''", "'") if m.group(3) is not None else None
            ctx.engine.catalog.create(ctx.p, "catalog", name, comment=comment)
        return Result(pa.table({}))
    if re.match(r"(?is)^USE\s", text):
        raise BadRequest("USE is not supported by the Statement Execution API; pass catalog and schema "
                         "with the request or write three-level names")
    return None


def create(ctx: Ctx, tree: Any) -> Result:
    exp = ctx.exp
    kind = str(tree.args.get("kind") or "").upper()
    exists_ok = bool(tree.args.get("exists"))
    cat = ctx.engine.catalog
    if kind in ("SCHEMA", "DATABASE", "CATALOG"):
        levels = 1 if kind == "CATALOG" else 2
        node = tree.this
        name = ctx.resolve_name(".".join(x for x in [node.catalog, node.db, node.name] if x), levels)
        ckind = "catalog" if levels == 1 else "schema"
        if exists_ok and cat.exists(ckind, name):
            return Result(pa.table({}))
        cat.create(ctx.p, ckind, name, comment=comment_of(tree))
        return Result(pa.table({}))
    if kind == "VIEW":
        create_view(ctx, tree)
        return Result(pa.table({}))
    if kind != "TABLE":
        raise BadRequest(f"CREATE {kind or '?'} is not supported; tables, views, functions, schemas and catalogs are")
    if tree.args.get("replace"):
        raise BadRequest("CREATE OR REPLACE TABLE is not supported yet; DROP TABLE then CREATE TABLE")
    node = tree.this
    schema_node = node if isinstance(node, exp.Schema) else None
    table_node = schema_node.this if schema_node is not None else node
    full = ctx.table_name(table_node)
    if exists_ok and cat.exists("table", full):
        return Result(pa.table({}))
    query = tree.expression
    if schema_node is not None and query is None:
        columns = []
        for i, col in enumerate(schema_node.expressions):
            if not isinstance(col, exp.ColumnDef):
                continue
            spark_type = col.args["kind"].sql(dialect="databricks").lower()
            nullable = not any(isinstance(c.kind, exp.NotNullColumnConstraint) for c in col.constraints)
            comment = next((c.kind.this.name for c in col.constraints
                            if isinstance(c.kind, exp.CommentColumnConstraint)), None)
            columns.append({"name": col.name, "type_text": spark_type, "position": i, "nullable": nullable,
                            "comment": comment})
        ctx.engine.tables.create(ctx.p, full, columns=columns, comment=comment_of(tree))
        return Result(pa.table({}))
    if query is None:
        raise BadRequest("CREATE TABLE needs a column list or AS SELECT")
    con, sources = ctx.connect(query)
    try:
        rows = friendly(ctx.run(con, query))
    finally:
        con.close()
    obj = ctx.engine.tables.create(ctx.p, full, schema=rows.schema, comment=comment_of(tree))
    res = ctx.engine.tables.write_authorized(obj, rows, mode="append")
    ctx.lineage(sources, obj, "CREATE_TABLE_AS_SELECT")
    return Result(pa.table({"num_affected_rows": [res.rows], "num_inserted_rows": [res.rows]}))

def drop(ctx: Ctx, tree: Any) -> Result:
    kind = str(tree.args.get("kind") or "").upper()
    nodes = tree.args.get("tables") or [tree.this]
    if len(nodes) != 1 or nodes[0] is None:
        raise BadRequest("DROP one object at a time")
    node = nodes[0]
    raw = ".".join(x for x in [node.catalog, node.db, node.name] if x)
    if kind == "FUNCTION" and tree.args.get("temporary"):
        if ctx.engine.temporary.pop((ctx.p.name, raw.lower()), None) is None and not tree.args.get("exists"):
            raise NotFound(f"[ROUTINE_NOT_FOUND] the temporary function {raw[:80]} does not exist")
        return Result(pa.table({}))
    return drop_named(ctx, kind, raw, exists=bool(tree.args.get("exists")), cascade=bool(tree.args.get("cascade")))

def _names(text: str) -> list[str]:
    """Column names written in a list (``a, `b c`, d``)."""
    from ..core.names import split_name

    return [split_name(part.strip())[0] for part in text.split(",") if part.strip()]


def drop_named(ctx: Ctx, kind: str, raw: str, *, exists: bool, cascade: bool) -> Result:
    """DROP <kind> [IF EXISTS] raw [CASCADE]: the caller needs MANAGE (owner, container owner, admin);
    a container with objects in it needs CASCADE, which drops them and retires their storage."""
    levels = {"TABLE": 3, "VIEW": 3, "SCHEMA": 2, "DATABASE": 2, "CATALOG": 1, "VOLUME": 3, "FUNCTION": 3}.get(kind)
    if levels is None:
        raise BadRequest(f"DROP {kind} is not supported")
    name = ctx.resolve_name(raw, levels)
    ckind = {"TABLE": "table", "VIEW": "table", "SCHEMA": "schema", "DATABASE": "schema",
             "CATALOG": "catalog", "VOLUME": "volume", "FUNCTION": "function"}[kind]
    if exists and not ctx.engine.catalog.exists(ckind, name):
        return Result(pa.table({}))
    if kind in ("TABLE", "VIEW"):
        view = is_view(ctx.engine.catalog.get(ctx.p, "table", name))
        if view != (kind == "VIEW"):
            raise InvalidParameterValue(f"[WRONG_COMMAND_FOR_OBJECT_TYPE] {name} is a {'view' if view else 'table'}; "
                                        f"use DROP {'VIEW' if view else 'TABLE'}")
    try:
        ctx.engine.catalog.delete(ctx.p, ckind, name, force=cascade,
                                   on_deleted=ctx.engine.tables.retire_storage)
    except InvalidState as exc:
        if "not empty" in exc.message:
            raise InvalidState(exc.message.replace("or pass force=true", f"or use DROP {kind} ... CASCADE")) \
                from None
        raise
    return Result(pa.table({}))

def describe(ctx: Ctx, tree: Any) -> Result:
    node = tree.this
    if str(tree.args.get("kind") or "").upper() == "FUNCTION":
        return describe_function(ctx, node, extended=str(tree.args.get("style") or "").upper() == "EXTENDED")
    full = ctx.table_name(node)
    obj = ctx.engine.catalog.get(ctx.p, "table", full)
    cols = (obj.spec.get("columns") or []) if is_view(obj) else schema_to_columns(ctx.engine.tables.schema(obj))
    return Result(pa.table({"col_name": [c["name"] for c in cols], "data_type": [c["type_text"] for c in cols],
                            "comment": pa.array([c.get("comment") for c in cols], pa.string())}))

def grant_revoke(ctx: Ctx, kind: str, raw: str, privileges: list[str], who: str, *, revoke: bool) -> Result:
    ckind = {"CATALOG": "catalog", "SCHEMA": "schema", "DATABASE": "schema", "TABLE": "table",
             "VIEW": "table", "VOLUME": "volume", "FUNCTION": "function", "MODEL": "registered_model",
             "CONNECTION": "connection"}[kind]
    levels = {"catalog": 1, "schema": 2, "connection": 1}.get(ckind, 3)
    name = ctx.resolve_name(raw, levels)
    privs = [normalize_privilege(p) for p in privileges if p]
    if not privs:
        raise BadRequest("name at least one privilege")
    ctx.engine.catalog.update_grants(ctx.p, ckind, name, [{"principal": who, ("remove" if revoke else "add"): privs}])
    return Result(pa.table({}))

def show(ctx: Ctx, what: str, where: str | None, like: str | None) -> Result:
    cat = ctx.engine.catalog
    if what == "CATALOGS":
        items, _ = cat.list(ctx.p, "catalog")
        names = [o.full_name for o in items]
        col = "catalog"
    elif what in ("SCHEMAS", "DATABASES"):
        parent = ctx.resolve_name(where, 1) if where else ctx.catalog_name
        items, _ = cat.list(ctx.p, "schema", parent)
        names = [o.name for o in items]
        col = "databaseName"
    elif what.endswith("FUNCTIONS"):
        names = [] if what == "SYSTEM FUNCTIONS" else _functions_in(ctx, where)
        col = "function"
    else:
        kind = {"TABLES": "table", "VOLUMES": "volume"}[what]
        parent = ctx.resolve_name(where, 2) if where else f"{ctx.catalog_name}.{ctx.schema_name}"
        items, _ = cat.list(ctx.p, kind, parent)
        names = [o.name for o in items]
        col = {"table": "tableName", "volume": "volume_name", "function": "function"}[kind]
    if like:
        rx = re.compile("^" + ".*".join(re.escape(x) for x in like.replace("%", "*").split("*")) + "$", re.I)
        names = [n for n in names if rx.match(n)]
    return Result(pa.table({col: pa.array(names, pa.string())}))

def show_grants(ctx: Ctx, principal: str | None, kind: str, name: str | None) -> Result:
    ckind = {"CATALOG": "catalog", "SCHEMA": "schema", "DATABASE": "schema", "TABLE": "table",
             "VOLUME": "volume", "FUNCTION": "function", "MODEL": "registered_model",
             "CONNECTION": "connection", "METASTORE": "metastore"}[kind]
    levels = {"catalog": 1, "schema": 2, "connection": 1, "metastore": 1}.get(ckind, 3)
    full = "metastore" if ckind == "metastore" else ctx.resolve_name(name or "", levels)
    who = principal.strip("`") if principal else None
    rows = ctx.engine.catalog.grants(ctx.p, ckind, full, principal=who)
    flat = [(r["principal"], priv) for r in rows for priv in r["privileges"]]
    return Result(pa.table({"Principal": pa.array([f[0] for f in flat], pa.string()),
                            "ActionType": pa.array([f[1].replace("_", " ") for f in flat], pa.string()),
                            "ObjectType": pa.array([kind] * len(flat), pa.string()),
                            "ObjectKey": pa.array([full] * len(flat), pa.string())}))


def comment_of(tree: Any) -> str | None:
    from sqlglot import exp

    props = tree.args.get("properties")
    if props is None:
        return None
    for prop in props.expressions:
        if isinstance(prop, exp.SchemaCommentProperty):
            return prop.this.name
    return None


# -- functions ------------------------------------------------------------------------------------------------
def create_function(ctx: Ctx, d: Definition) -> Result:
    """CREATE [OR REPLACE] [TEMPORARY] FUNCTION: stored in the catalog (CREATE FUNCTION on the schema; MANAGE on
    the function to replace it), or kept for the caller's session when temporary."""
    cat = ctx.engine.catalog
    if d.temporary:
        key = (ctx.p.name, d.name.lower())
        if key in ctx.engine.temporary and not d.replace:
            if d.if_not_exists:
                return Result(pa.table({}))
            raise AlreadyExists(f"[ROUTINE_ALREADY_EXISTS] the temporary function {d.name} already exists")
        name = str(parse_name(d.name, 1, what="function name"))
        ctx.engine.temporary[key] = Temporary(name, function_spec(d.info("", "", name)), d.comment, ctx.p.name)
        return Result(pa.table({}))
    full = ctx.resolve_name(d.name, 3)
    catalog, schema, name = full.split(".")
    spec = function_spec(d.info(catalog, schema, name))
    if cat.exists("function", full):
        if d.if_not_exists:
            return Result(pa.table({}))
        if not d.replace:
            raise AlreadyExists(f"[ROUTINE_ALREADY_EXISTS] the function {full} already exists; use CREATE OR REPLACE")
        cat.update(ctx.p, "function", full, comment=d.comment,
                   spec={"input_params": None, "return_params": None, "external_language": None, **spec})
        return Result(pa.table({}))
    cat.create(ctx.p, "function", full, comment=d.comment, spec=spec)
    return Result(pa.table({}))


def describe_function(ctx: Ctx, node: Any, *, extended: bool) -> Result:
    parts = [x for x in (node.catalog, node.db, node.name) if x]
    temp = ctx.engine.temporary.get((ctx.p.name, parts[0].lower())) if len(parts) == 1 else None
    if temp is not None:
        full, spec, comment, owner = temp.full_name, temp.spec, temp.comment, temp.owner
    else:
        obj = ctx.engine.catalog.get(ctx.p, "function", ctx.resolve_name(".".join(quote_part(x) for x in parts), 3))
        full, spec, comment, owner = obj.full_name, obj.spec, obj.comment, obj.owner
    rows = describe_rows(full, spec, comment, owner, extended=extended)
    return Result(pa.table({"function_desc": pa.array(rows, pa.string())}))


def _functions_in(ctx: Ctx, where: str | None) -> list[str]:
    parent = ctx.resolve_name(where, 2) if where else f"{ctx.catalog_name}.{ctx.schema_name}"
    names: list[str] = []
    token = None
    while True:
        items, token = ctx.engine.catalog.list(ctx.p, "function", parent, page_token=token)
        names += [o.full_name for o in items]
        if not token:
            break
    return names + sorted(t.full_name for (who, _), t in ctx.engine.temporary.items() if who == ctx.p.name)


def alter(ctx: Ctx, tree: Any) -> Result:
    """ALTER VIEW (AS query, RENAME TO); ALTER TABLE ADD / DROP / RENAME COLUMN (see _columns)."""
    kind = str(tree.args.get("kind") or "").upper()
    if kind == "VIEW":
        alter_view(ctx, tree)
        return Result(pa.table({}))
    if kind == "TABLE":
        return alter_table(ctx, tree)
    raise BadRequest(f"ALTER {kind or '?'} is not supported; ALTER TABLE and ALTER VIEW are")


def alter_table(ctx: Ctx, tree: Any) -> Result:
    """ALTER TABLE t ADD COLUMN[S] (c type [COMMENT ...], ...) | DROP COLUMN c | RENAME COLUMN a TO b, by the
    table's owner (MANAGE). Added columns are nullable and cost nothing; dropping or renaming rewrites the table in
    one commit. A row filter or mask on a dropped or renamed column must be dropped first."""
    exp = ctx.exp
    full = ctx.table_name(tree.this)
    obj = ctx.engine.catalog.require(ctx.p, "MANAGE", "table", full, action="alterTable")
    if is_view(obj):
        raise InvalidParameterValue(f"[EXPECT_TABLE_NOT_VIEW] {full} is a view; use ALTER VIEW")
    actions = tree.args.get("actions") or []
    added: list[dict[str, Any]] = []
    for action in actions:
        defs = action.expressions if isinstance(action, exp.Schema) else [action]
        if all(isinstance(d, exp.ColumnDef) for d in defs) and defs:
            for d in defs:
                if d.args.get("kind") is None:
                    raise BadRequest(f"ALTER TABLE ADD COLUMN {d.name}: give its type")
                comment = next((c.kind.this.name for c in d.constraints
                                if isinstance(c.kind, exp.CommentColumnConstraint)), None)
                added.append({"name": d.name, "type_text": d.args["kind"].sql(dialect="databricks").lower(),
                              "comment": comment})
            continue
        if len(actions) != 1:
            raise BadRequest("ALTER TABLE takes one DROP COLUMN or RENAME COLUMN at a time")
        if isinstance(action, exp.Drop) and str(action.args.get("kind") or "").upper() == "COLUMN":
            columns = action.args.get("tables") or []
            if len(columns) != 1:
                raise BadRequest("ALTER TABLE DROP COLUMN drops one column at a time")
            _unused_by_policies(obj, columns[0].name)
            ctx.engine.tables.rewrite_columns(obj, drop=columns[0].name)
            return Result(pa.table({}))
        if isinstance(action, exp.RenameColumn):
            old, new = action.this.name, action.args["to"].name
            _unused_by_policies(obj, old)
            ctx.engine.tables.rewrite_columns(obj, rename=(old, new))
            return Result(pa.table({}))
        raise BadRequest(f"ALTER TABLE {shown(action, 60)} is not supported; ADD COLUMN(S), DROP COLUMN, RENAME "
                         "COLUMN, SET/DROP ROW FILTER and ALTER COLUMN ... SET/DROP MASK are")
    if added:
        ctx.engine.tables.add_columns(obj, added)
    return Result(pa.table({}))


def _unused_by_policies(obj: Any, column: str) -> None:
    row_filter = obj.spec.get("row_filter") or {}
    masks = obj.spec.get("column_masks") or {}
    used = column in (row_filter.get("input_column_names") or []) or column in masks or any(
        column in (m.get("using_column_names") or []) for m in masks.values())
    if used:
        raise InvalidParameterValue(f"column {column!r} of {obj.full_name} is used by its row filter or a column mask; "
                                    "drop that policy first")
