"""SQL over the workspace's Delta tables: DuckDB computes, delta-rs commits, the catalog decides.

A statement is parsed with sqlglot (Databricks dialect). Every table it names is resolved to a
three-level name, checked (SELECT to read, MODIFY to write) and registered in a fresh, sandboxed
DuckDB connection (no file system, no extensions, configuration locked) under a private alias.
Reads run in DuckDB. Writes run in DuckDB to compute the rows, then commit through delta-rs:
INSERT appends (or overwrites), DELETE/UPDATE become delta-rs operations with the predicate
translated to DataFusion SQL, MERGE computes its source in DuckDB and merges it with delta-rs.
Catalog statements (SHOW, DESCRIBE, GRANT, REVOKE, CREATE/DROP) map to the catalog.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..catalog import Catalog, Principal, Securable, normalize_privilege
from ..core.errors import BadRequest, BrickyardError, InvalidParameterValue, InvalidState, NotFound
from ..core.ids import new_id
from ..core.names import parse_name, quote_part, split_name, validate_part
from ..tables import Tables, schema_to_columns, type_text
from ._ai import EMBEDDINGS, Models, Runner, Site, mask_entities, plan, register_mask, rewrite_task, task_call
from ._ai import register as register_ai
from ._limits import Limits, guard_sizes
from ._search import Search
from ._search import arguments as search_arguments
from ._search import is_call as is_search
from ._search import rename_calls as rename_search
from ._search import run as run_search

MAX_STATEMENT = 1_000_000
_PARAM_TYPES = {
    "STRING": "VARCHAR", "INT": "INTEGER", "INTEGER": "INTEGER", "BIGINT": "BIGINT", "LONG": "BIGINT",
    "SMALLINT": "SMALLINT", "TINYINT": "TINYINT", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT", "BOOLEAN": "BOOLEAN",
    "DATE": "DATE", "TIMESTAMP": "TIMESTAMP", "DECIMAL": "DECIMAL(38,9)", "BINARY": "BLOB", "VOID": "VARCHAR",
}


@dataclass
class Result:
    """What a statement produced: a table of rows (possibly empty) and, for writes, what changed."""

    table: pa.Table
    affected: dict[str, Any] = field(default_factory=dict)


def _single(rows: dict[str, list[Any]], types: dict[str, pa.DataType] | None = None) -> pa.Table:
    if types:
        return pa.table({k: pa.array(v, type=types.get(k)) for k, v in rows.items()})
    return pa.table(rows)


def _sqlglot() -> tuple[Any, Any]:
    import sqlglot
    from sqlglot import exp

    return sqlglot, exp


class SqlEngine:
    def __init__(self, catalog: Catalog, tables: Tables, *, system_tables: dict[str, Callable[[], pa.Table]]
                 | None = None, limits: Limits | None = None, models: Models | None = None) -> None:
        self.catalog = catalog
        self.tables = tables
        self.limits = limits or Limits()
        #: serving, for the AI functions (``ai_query``): given by the workspace, which owns the AI Gateway
        self.models = models
        #: Vector Search, for ``vector_search()``: given by the workspace
        self.search: Search | None = None
        #: the chat and embedding endpoints of the AI task functions (ai_summarize, ai_classify, ...)
        self.ai_endpoints = ("databricks-meta-llama-3-3-70b-instruct", "databricks-gte-large-en")
        #: "system.access.audit" -> function returning the rows (read straight from the metastore)
        self.system_tables = system_tables or {}

    # -- entry point -------------------------------------------------------------------------------
    def execute(self, p: Principal, statement: str, *, parameters: list[dict[str, Any]] | None = None,
                catalog: str | None = None, schema: str | None = None,
                on_connection: Callable[[Any], None] | None = None, statement_id: str | None = None,
                cancelled: Callable[[], bool] = lambda: False,
                progress: Callable[[int], None] = lambda n: None) -> Result:
        """Run one statement as ``p``. ``progress(n)`` hears of every ``n`` rows the AI functions answered;
        ``cancelled()`` stops their model calls."""
        if not isinstance(statement, str) or not statement.strip():
            raise InvalidParameterValue("statement is required")
        if len(statement) > MAX_STATEMENT:
            raise InvalidParameterValue(f"statement is longer than {MAX_STATEMENT} characters")
        default_catalog = validate_part(catalog, "catalog") if catalog else "main"
        default_schema = validate_part(schema, "schema") if schema else "default"
        ctx = _Ctx(self, p, default_catalog, default_schema, _params(parameters), on_connection)
        ctx.statement_id = statement_id or new_id()
        ctx.cancelled = cancelled
        ctx.progress = progress
        text = statement.strip().rstrip(";").strip()
        handled = self._command(ctx, text)
        if handled is not None:
            return handled
        sqlglot, exp = _sqlglot()
        try:
            trees = [t for t in sqlglot.parse(rename_search(text), read="databricks") if t is not None]
        except sqlglot.errors.ParseError as exc:
            raise BadRequest(f"[PARSE_SYNTAX_ERROR] {_first_line(exc)}", error_code="PARSE_SYNTAX_ERROR") from None
        except RecursionError:
            raise BadRequest("statement is nested too deeply") from None
        if len(trees) != 1:
            raise InvalidParameterValue("send one statement at a time")
        tree = guard_sizes(ctx.bind(trees[0]), self.limits)
        if isinstance(tree, exp.Query):
            return Result(ctx.query(tree))
        if isinstance(tree, exp.Insert):
            return ctx.insert(tree)
        if isinstance(tree, exp.Delete):
            return ctx.delete(tree)
        if isinstance(tree, exp.Update):
            return ctx.update(tree)
        if isinstance(tree, exp.Merge):
            return ctx.merge(tree)
        if isinstance(tree, exp.Create):
            return ctx.create(tree)
        if isinstance(tree, exp.Drop):
            return ctx.drop(tree)
        if isinstance(tree, exp.Describe):
            return ctx.describe(tree)
        if isinstance(tree, exp.Grant) or type(tree).__name__ in ("Revoke", "Command"):
            raise BadRequest(f"this statement is not supported: {text[:80]!r}; see docs/sql.md")
        raise BadRequest(f"statements of type {type(tree).__name__.upper()} are not supported; see docs/sql.md")

    # -- SHOW and friends, parsed by hand (sqlglot treats them as opaque commands) -----------------
    _SHOW = re.compile(r"(?is)^SHOW\s+(CATALOGS|SCHEMAS|DATABASES|TABLES|VOLUMES|FUNCTIONS)"
                       r"(?:\s+(?:IN|FROM)\s+(\S+))?(?:\s+LIKE\s+'([^']*)')?$")
    _SHOW_GRANTS = re.compile(r"(?is)^SHOW\s+GRANTS(?:\s+(`[^`]+`|\S+))?\s+ON\s+(CATALOG|SCHEMA|DATABASE|TABLE|"
                              r"VOLUME|FUNCTION|MODEL|CONNECTION|METASTORE)(?:\s+(\S+))?$")
    _HISTORY = re.compile(r"(?is)^DESC(?:RIBE)?\s+HISTORY\s+(\S+)$")
    _GRANT = re.compile(r"(?is)^(GRANT|REVOKE)\s+(.+?)\s+ON\s+(CATALOG|SCHEMA|DATABASE|TABLE|VIEW|VOLUME|FUNCTION|"
                        r"MODEL|CONNECTION)\s+(\S+)\s+(TO|FROM)\s+(`(?:[^`]|``)+`|[^\s`]+)$")
    _DROP_CATALOG = re.compile(r"(?is)^DROP\s+CATALOG\s+(IF\s+EXISTS\s+)?(\S+?)(?:\s+(CASCADE|RESTRICT))?$")
    _CREATE_CATALOG = re.compile(r"(?is)^CREATE\s+CATALOG\s+(IF\s+NOT\s+EXISTS\s+)?(\S+)"
                                 r"(?:\s+COMMENT\s+'((?:[^']|'')*)')?$")

    def _command(self, ctx: _Ctx, text: str) -> Result | None:
        m = self._SHOW.match(text)
        if m:
            return ctx.show(m.group(1).upper(), m.group(2), m.group(3))
        m = self._SHOW_GRANTS.match(text)
        if m:
            return ctx.show_grants(m.group(1), m.group(2).upper(), m.group(3))
        m = self._HISTORY.match(text)
        if m:
            name = ctx.resolve_name(m.group(1))
            rows = self.tables.history(ctx.p, name)
            return Result(pa.table({
                "version": pa.array([r.get("version") for r in rows], pa.int64()),
                "timestamp": pa.array([r.get("timestamp") for r in rows], pa.int64()),
                "operation": pa.array([r.get("operation") for r in rows], pa.string()),
                "operationParameters": pa.array([json.dumps(r.get("operationParameters", {})) for r in rows]),
            }))
        m = self._GRANT.match(text)
        if m:
            verb, privs, kind, name, prep, who = m.groups()
            if (verb.upper() == "GRANT") != (prep.upper() == "TO"):
                raise BadRequest("write GRANT ... TO principal or REVOKE ... FROM principal")
            return ctx.grant_revoke(kind.upper(), name, [x.strip() for x in privs.split(",")],
                                    who[1:-1].replace("``", "`") if who.startswith("`") else who,
                                    revoke=verb.upper() == "REVOKE")
        m = self._DROP_CATALOG.match(text)
        if m:  # sqlglot reads DROP CATALOG as an opaque command
            return ctx.drop_named("CATALOG", m.group(2), exists=bool(m.group(1)),
                                  cascade=(m.group(3) or "").upper() == "CASCADE")
        m = self._CREATE_CATALOG.match(text)
        if m:
            name = str(parse_name(m.group(2), 1))
            if not (m.group(1) and self.catalog.exists("catalog", name)):
                comment = m.group(3).replace("''", "'") if m.group(3) is not None else None
                self.catalog.create(ctx.p, "catalog", name, comment=comment)
            return Result(pa.table({}))
        if re.match(r"(?is)^USE\s", text):
            raise BadRequest("USE is not supported by the Statement Execution API; pass catalog and schema "
                             "with the request or write three-level names")
        return None


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__


def _params(parameters: list[dict[str, Any]] | None) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    if parameters is None:
        return out
    if not isinstance(parameters, list):
        raise InvalidParameterValue("parameters must be a list of {name, value, type}")
    for item in parameters:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise InvalidParameterValue("each parameter needs a name")
        typ = str(item.get("type") or "STRING").upper()
        base = typ.split("(", 1)[0]
        if base not in _PARAM_TYPES:
            raise InvalidParameterValue(f"parameter {item['name']!r} has unknown type {typ!r}")
        value = item.get("value")
        if value is not None and not isinstance(value, str):
            value = str(value).lower() if isinstance(value, bool) else str(value)
        out[item["name"]] = (value, base)
    return out


class _Ctx:
    """One statement's execution: its caller, defaults, parameters and DuckDB connection."""

    def __init__(self, engine: SqlEngine, p: Principal, catalog: str, schema: str,
                 params: dict[str, tuple[Any, str]], on_connection: Callable[[Any], None] | None) -> None:
        self.engine = engine
        self.p = p
        self.catalog_name = catalog
        self.schema_name = schema
        self.params = params
        self.on_connection = on_connection
        self._sqlglot, self.exp = _sqlglot()
        self.statement_id = ""
        self.cancelled: Callable[[], bool] = lambda: False
        self.progress: Callable[[int], None] = lambda n: None
        self.ai_sites: list[tuple[str, Runner]] = []  # planned ai_query calls: (DuckDB function name, runner)
        self.masks: list[tuple[str, list[str]]] = []  # planned ai_mask calls: (DuckDB function name, entities)

    # -- names ------------------------------------------------------------------------------------
    def resolve_name(self, text: str, levels: int = 3) -> str:
        """Complete a one- or two-part name with the statement's default catalog and schema."""
        parts = split_name(text)
        if len(parts) < levels:
            parts = [self.catalog_name, self.schema_name][: levels - len(parts)] + parts
        return str(parse_name(".".join(quote_part(x) for x in parts), levels))

    def table_name(self, table: Any) -> str:
        exp = self.exp
        if not isinstance(table.this, exp.Identifier):
            raise BadRequest("table functions (read_csv, read_parquet, ...) are not allowed; query catalog tables")
        parts = [table.catalog, table.db, table.name]
        given = [x for x in parts if x]
        if len(given) == 1:
            given = [self.catalog_name, self.schema_name, *given]
        elif len(given) == 2:
            given = [self.catalog_name, *given]
        return str(parse_name(".".join(validate_part(x) for x in given), 3))

    # -- parameters -------------------------------------------------------------------------------
    def bind(self, tree: Any) -> Any:
        exp = self.exp
        used: set[str] = set()

        def sub(node: Any) -> Any:
            if isinstance(node, exp.Placeholder):
                name = node.name
                if not name or name == "?":
                    raise InvalidParameterValue("use named parameter markers such as :id, not ?")
                if name not in self.params:
                    raise InvalidParameterValue(f"no value given for parameter :{name}")
                used.add(name)
                value, typ = self.params[name]
                if value is None:
                    return exp.Null()
                lit = exp.Literal.string(value)
                if typ in ("STRING", "VOID"):
                    return lit
                return exp.Cast(this=lit, to=exp.DataType.build(_PARAM_TYPES[typ], dialect="duckdb"))
            return node

        return self._plan_ai(tree.transform(sub))

    def _plan_ai(self, tree: Any) -> Any:
        """Each ``ai_query(...)`` becomes a call of a function of its own, planned now: endpoint access and
        options are checked before any row runs."""
        exp = self.exp

        models = self.engine.models

        def add(site: Site) -> str:
            assert models is not None
            name = f"__ai_query_{len(self.ai_sites)}"
            self.ai_sites.append((name, Runner(site, self.p, models, self.statement_id, self.cancelled,
                                               self.progress)))
            return name

        def task_site(endpoint: str, task: str) -> str:  # the default endpoint of a task function, checked
            assert models is not None
            found = models.task(self.p, endpoint)
            if found != task:
                raise InvalidParameterValue(f"the AI functions' default endpoint {endpoint!r} serves {found}, not {task}; "
                                            "set BRICKYARD_AI_FUNCTIONS_CHAT_ENDPOINT / _EMBEDDING_ENDPOINT")
            return add(Site(endpoint, task))

        def embed_now(texts: list[str]) -> list[list[float]]:
            endpoint = self.engine.ai_endpoints[1]
            runner = Runner(Site(endpoint, EMBEDDINGS), self.p, models, self.statement_id, self.cancelled)
            vectors, _ = runner.batch(list(texts))
            return vectors

        def sub(node: Any) -> Any:
            is_query = isinstance(node, exp.Anonymous) and str(node.this).lower() == "ai_query"
            task = None if is_query else task_call(exp, node)
            if not is_query and task is None:
                return node
            if models is None:
                raise InvalidState("the AI functions need a workspace that serves models")
            if task is not None and task[0] == "ai_mask":  # Presidio in the server: no model endpoint
                if len(task[1]) != 2:
                    raise InvalidParameterValue(f"ai_mask takes 2 arguments (content, labels), got {len(task[1])}")
                name = f"__ai_mask_{len(self.masks)}"
                self.masks.append((name, mask_entities(exp, task[1][1])))
                return exp.Anonymous(this=name, expressions=[
                    exp.Cast(this=task[1][0], to=exp.DataType.build("VARCHAR", dialect="duckdb"))])
            if task is not None:
                chat, embedding = self.engine.ai_endpoints
                return rewrite_task(exp, task[0], task[1], task_site, embed_now, chat, embedding)
            site, request = plan(exp, node, self.p, models)
            return exp.Anonymous(this=add(site), expressions=[
                exp.Cast(this=request, to=exp.DataType.build("VARCHAR", dialect="duckdb"))])

        return tree.transform(sub)

    # -- DuckDB -----------------------------------------------------------------------------------
    def connect(self, tree: Any, *, privilege: str = "SELECT") -> tuple[Any, dict[str, Securable]]:
        """Check and register every table ``tree`` reads; rewrite references to private aliases."""
        import duckdb

        exp = self.exp
        con = duckdb.connect(":memory:")
        if self.on_connection is not None:
            self.on_connection(con)
        for name, runner in self.ai_sites:
            register_ai(con, name, runner)
        for name, entities in self.masks:
            assert self.engine.models is not None
            register_mask(con, name, self.engine.models, entities)
        registered: dict[str, str] = {}
        objects: dict[str, Securable] = {}
        for table in list(tree.find_all(exp.Table)):
            if is_search(exp, table.this):  # vector_search(...): searched now, as the caller; its rows are a table
                if self.engine.search is None:
                    raise InvalidState("vector_search() needs a workspace with Vector Search")
                alias = f"__s{len(registered)}"
                registered[alias] = alias
                con.register(alias, run_search(self.engine.search, self.p, search_arguments(exp, table.this)))
                alias_node = table.args.get("alias")
                new = exp.Table(this=exp.to_identifier(alias))
                new.set("alias", alias_node.copy() if alias_node else exp.TableAlias(this=exp.to_identifier("vs")))
                table.replace(new)
                continue
            if not isinstance(table.this, exp.Identifier):
                raise BadRequest("table functions (read_csv, read_parquet, ...) are not allowed; query catalog tables")
            if _names_a_visible_cte(table):
                continue
            full = self.table_name(table)
            version = None
            ver = table.args.get("version")
            if ver is not None:
                if str(ver.this).upper() != "VERSION":
                    raise BadRequest("only VERSION AS OF is supported for time travel")
                try:
                    version = int(ver.expression.name)
                except (TypeError, ValueError):
                    raise InvalidParameterValue("VERSION AS OF needs an integer version") from None
            key = f"{full}@{version}"
            if key not in registered:
                alias = f"__t{len(registered)}"
                registered[key] = alias
                con.register(alias, self._relation(full, version, privilege, objects))
            alias_node = table.args.get("alias")
            new = exp.Table(this=exp.to_identifier(registered[key]))
            new.set("alias", alias_node.copy() if alias_node else exp.TableAlias(this=exp.to_identifier(table.name)))
            table.replace(new)
        for setting in self.engine.limits.connection_settings():
            con.execute(setting)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con, objects

    def _relation(self, full: str, version: int | None, privilege: str, objects: dict[str, Securable]) -> Any:
        if full in self.engine.system_tables:
            self.engine.catalog.require(self.p, "SELECT", "schema", full.rsplit(".", 1)[0], action="readSystemTable")
            return self.engine.system_tables[full]()
        obj = self.engine.catalog.require(self.p, privilege, "table", full, action="readTable")
        objects[full] = obj
        return self.engine.tables.dataset(obj, version)

    def run(self, con: Any, tree: Any, *, max_bytes: int | None = None) -> pa.Table:
        """Run ``tree``; with ``max_bytes``, read the result batch by batch and refuse it once it is larger."""
        import duckdb

        sql = tree.sql(dialect="duckdb")
        try:
            rel = con.sql(sql)
            if rel is None:
                return pa.table({})
            if max_bytes is None:
                return rel.to_arrow_table()
            reader = rel.to_arrow_reader(8192)
            batches, size = [], 0
            for batch in reader:
                size += batch.nbytes
                if size > max_bytes:
                    raise BadRequest(self.engine.limits.too_big("the result"), error_code="RESULT_TOO_LARGE")
                batches.append(batch)
            return pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException:
            raise BrickyardError("the statement was cancelled", error_code="CANCELLED") from None
        except duckdb.OutOfMemoryException as exc:
            raise BadRequest(f"{_first_line(exc)} (the limit is BRICKYARD_STATEMENT_MEMORY_BYTES, "
                             f"{self.engine.limits.memory_bytes >> 20} MiB)", error_code="RESOURCE_EXHAUSTED") from None
        except duckdb.Error as exc:
            raise BadRequest(_first_line(exc)) from None

    def query(self, tree: Any) -> pa.Table:
        con, _ = self.connect(tree)
        try:
            return _friendly(self.run(con, tree, max_bytes=self.engine.limits.result_bytes))
        finally:
            con.close()

    def lineage(self, sources: dict[str, Securable], target: Securable, kind: str) -> None:
        for name in sources:
            if name != target.full_name:
                self.engine.catalog.add_lineage(self.p, ("table", name), ("table", target.full_name), kind=kind)

    # -- writes -----------------------------------------------------------------------------------
    def _target(self, table: Any, action: str) -> Securable:
        full = self.table_name(table)
        return self.engine.catalog.require(self.p, "MODIFY", "table", full, action=action)

    def insert(self, tree: Any) -> Result:
        exp = self.exp
        target_node = tree.this
        columns: list[str] | None = None
        if isinstance(target_node, exp.Schema):
            columns = [c.name for c in target_node.expressions]
            target_node = target_node.this
        obj = self._target(target_node, "insertIntoTable")
        source = tree.expression
        if source is None:
            raise BadRequest("INSERT needs VALUES or a query")
        if isinstance(source, exp.Query):
            select = source
        else:
            values = source.copy()
            values.set("alias", exp.TableAlias(this=exp.to_identifier("__v")))
            select = exp.select("*").from_(values)
        con, sources = self.connect(select)
        try:
            rows = self.run(con, select)
        finally:
            con.close()
        schema = self.engine.tables.schema(obj)
        names = columns or schema.names[: rows.num_columns]
        if rows.num_columns != len(names):
            raise InvalidParameterValue(
                f"INSERT gives {rows.num_columns} values per row but {len(names)} columns are named")  # noqa: S608
        for n in names:
            if n not in schema.names:
                raise InvalidParameterValue(f"{obj.full_name} has no column {n!r}")
        data = rows.rename_columns(names)
        mode = "overwrite" if tree.args.get("overwrite") else "append"
        res = self.engine.tables.write_authorized(obj, data, mode=mode)
        self.lineage(sources, obj, "INSERT")
        return Result(pa.table({"num_affected_rows": [res.rows], "num_inserted_rows": [res.rows]}),
                      {"version": res.version})

    def _predicate(self, node: Any, *, rename: dict[str, str] | None = None) -> str:
        """Translate an expression to DataFusion SQL for delta-rs (columns unqualified unless renamed)."""
        exp = self.exp
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

    def delete(self, tree: Any) -> Result:
        obj = self._target(tree.this, "deleteFromTable")
        where = tree.args.get("where")
        predicate = self._predicate(where.this) if where is not None else None
        metrics = self.engine.tables.delete_rows(obj, predicate)
        n = int(metrics.get("num_deleted_rows", 0) or 0)
        return Result(pa.table({"num_affected_rows": [n]}), metrics)

    def update(self, tree: Any) -> Result:
        exp = self.exp
        obj = self._target(tree.this, "updateTable")
        updates = {}
        for eq in tree.expressions:
            if not isinstance(eq, exp.EQ) or not isinstance(eq.this, exp.Column):
                raise BadRequest("UPDATE ... SET needs column = expression pairs")
            updates[_q(eq.this.name)] = self._predicate(eq.expression)
        where = tree.args.get("where")
        predicate = self._predicate(where.this) if where is not None else None
        metrics = self.engine.tables.update_rows(obj, updates, predicate)
        n = int(metrics.get("num_updated_rows", 0) or 0)
        return Result(pa.table({"num_affected_rows": [n]}), metrics)

    def merge(self, tree: Any) -> Result:
        exp = self.exp
        target = tree.this
        obj = self._target(target, "mergeIntoTable")
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
        con, _ = self.connect(source_q)
        try:
            source = self.run(con, source_q)
        finally:
            con.close()
        rename = {t_alias: "t", s_alias: "s"}
        predicate = self._predicate(tree.args["on"], rename=rename)
        clauses = []
        whens = tree.args.get("whens")
        items = whens.expressions if whens is not None else tree.expressions
        for when in items:
            matched = bool(when.args.get("matched"))
            by_source = bool(when.args.get("source"))
            cond = when.args.get("condition")
            cond_sql = self._predicate(cond, rename=rename) if cond is not None else None
            then = when.args.get("then")
            clause: dict[str, Any] = {"when": "matched" if matched else
                                      ("not_matched_by_source" if by_source else "not_matched"),
                                      "condition": cond_sql}
            if isinstance(then, exp.Update):
                if then.expressions and not isinstance(then.expressions[0], exp.Star):
                    clause["action"] = "update"
                    clause["set"] = {_q(e.this.name): self._predicate(e.expression, rename=rename)
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
                    clause["set"] = {_q(n): self._predicate(v, rename=rename) for n, v in zip(names, values, strict=True)}
            elif isinstance(then, exp.Var) and then.name.upper() == "DELETE" or str(then).upper() == "DELETE":
                clause["action"] = "delete"
            else:
                raise BadRequest(f"unsupported MERGE action {str(then)[:60]!r}")
            clauses.append(clause)
        metrics = self.engine.tables.merge_rows(obj, source, predicate=predicate, clauses=clauses)
        affected = sum(int(metrics.get(k, 0) or 0) for k in
                       ("num_target_rows_updated", "num_target_rows_deleted", "num_target_rows_inserted"))
        return Result(pa.table({"num_affected_rows": [affected],
                                "num_updated_rows": [int(metrics.get("num_target_rows_updated", 0) or 0)],
                                "num_deleted_rows": [int(metrics.get("num_target_rows_deleted", 0) or 0)],
                                "num_inserted_rows": [int(metrics.get("num_target_rows_inserted", 0) or 0)]}),
                      metrics)

    # -- DDL --------------------------------------------------------------------------------------
    def create(self, tree: Any) -> Result:
        exp = self.exp
        kind = str(tree.args.get("kind") or "").upper()
        exists_ok = bool(tree.args.get("exists"))
        cat = self.engine.catalog
        if kind in ("SCHEMA", "DATABASE", "CATALOG"):
            levels = 1 if kind == "CATALOG" else 2
            node = tree.this
            name = self.resolve_name(".".join(x for x in [node.catalog, node.db, node.name] if x), levels)
            ckind = "catalog" if levels == 1 else "schema"
            if exists_ok and cat.exists(ckind, name):
                return Result(pa.table({}))
            cat.create(self.p, ckind, name, comment=_comment(tree))
            return Result(pa.table({}))
        if kind != "TABLE":
            raise BadRequest(f"CREATE {kind or '?'} is not supported; tables, schemas and catalogs are")
        if tree.args.get("replace"):
            raise BadRequest("CREATE OR REPLACE TABLE is not supported yet; DROP TABLE then CREATE TABLE")
        node = tree.this
        schema_node = node if isinstance(node, exp.Schema) else None
        table_node = schema_node.this if schema_node is not None else node
        full = self.table_name(table_node)
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
            self.engine.tables.create(self.p, full, columns=columns, comment=_comment(tree))
            return Result(pa.table({}))
        if query is None:
            raise BadRequest("CREATE TABLE needs a column list or AS SELECT")
        con, sources = self.connect(query)
        try:
            rows = _friendly(self.run(con, query))
        finally:
            con.close()
        obj = self.engine.tables.create(self.p, full, schema=rows.schema, comment=_comment(tree))
        res = self.engine.tables.write_authorized(obj, rows, mode="append")
        self.lineage(sources, obj, "CREATE_TABLE_AS_SELECT")
        return Result(pa.table({"num_affected_rows": [res.rows], "num_inserted_rows": [res.rows]}))

    def drop(self, tree: Any) -> Result:
        kind = str(tree.args.get("kind") or "").upper()
        nodes = tree.args.get("tables") or [tree.this]
        if len(nodes) != 1 or nodes[0] is None:
            raise BadRequest("DROP one object at a time")
        node = nodes[0]
        raw = ".".join(x for x in [node.catalog, node.db, node.name] if x)
        return self.drop_named(kind, raw, exists=bool(tree.args.get("exists")), cascade=bool(tree.args.get("cascade")))

    def drop_named(self, kind: str, raw: str, *, exists: bool, cascade: bool) -> Result:
        """DROP <kind> [IF EXISTS] raw [CASCADE]: the caller needs MANAGE (owner, container owner, admin);
        a container with objects in it needs CASCADE, which drops them and retires their storage."""
        levels = {"TABLE": 3, "VIEW": 3, "SCHEMA": 2, "DATABASE": 2, "CATALOG": 1, "VOLUME": 3}.get(kind)
        if levels is None:
            raise BadRequest(f"DROP {kind} is not supported")
        name = self.resolve_name(raw, levels)
        ckind = {"TABLE": "table", "VIEW": "table", "SCHEMA": "schema", "DATABASE": "schema",
                 "CATALOG": "catalog", "VOLUME": "volume"}[kind]
        if exists and not self.engine.catalog.exists(ckind, name):
            return Result(pa.table({}))
        try:
            self.engine.catalog.delete(self.p, ckind, name, force=cascade,
                                       on_deleted=self.engine.tables.retire_storage)
        except InvalidState as exc:
            if "not empty" in exc.message:
                raise InvalidState(exc.message.replace("or pass force=true", f"or use DROP {kind} ... CASCADE")) \
                    from None
            raise
        return Result(pa.table({}))

    def describe(self, tree: Any) -> Result:
        node = tree.this
        full = self.table_name(node)
        obj = self.engine.catalog.get(self.p, "table", full)
        cols = schema_to_columns(self.engine.tables.schema(obj))
        return Result(pa.table({"col_name": [c["name"] for c in cols], "data_type": [c["type_text"] for c in cols],
                                "comment": pa.array([c.get("comment") for c in cols], pa.string())}))

    def grant_revoke(self, kind: str, raw: str, privileges: list[str], who: str, *, revoke: bool) -> Result:
        ckind = {"CATALOG": "catalog", "SCHEMA": "schema", "DATABASE": "schema", "TABLE": "table",
                 "VIEW": "table", "VOLUME": "volume", "FUNCTION": "function", "MODEL": "registered_model",
                 "CONNECTION": "connection"}[kind]
        levels = {"catalog": 1, "schema": 2, "connection": 1}.get(ckind, 3)
        name = self.resolve_name(raw, levels)
        privs = [normalize_privilege(p) for p in privileges if p]
        if not privs:
            raise BadRequest("name at least one privilege")
        self.engine.catalog.update_grants(self.p, ckind, name, [{"principal": who, ("remove" if revoke else "add"): privs}])
        return Result(pa.table({}))

    def show(self, what: str, where: str | None, like: str | None) -> Result:
        cat = self.engine.catalog
        if what == "CATALOGS":
            items, _ = cat.list(self.p, "catalog")
            names = [o.full_name for o in items]
            col = "catalog"
        elif what in ("SCHEMAS", "DATABASES"):
            parent = self.resolve_name(where, 1) if where else self.catalog_name
            items, _ = cat.list(self.p, "schema", parent)
            names = [o.name for o in items]
            col = "databaseName"
        else:
            kind = {"TABLES": "table", "VOLUMES": "volume", "FUNCTIONS": "function"}[what]
            parent = self.resolve_name(where, 2) if where else f"{self.catalog_name}.{self.schema_name}"
            items, _ = cat.list(self.p, kind, parent)
            names = [o.name for o in items]
            col = {"table": "tableName", "volume": "volume_name", "function": "function"}[kind]
        if like:
            rx = re.compile("^" + ".*".join(re.escape(x) for x in like.replace("%", "*").split("*")) + "$", re.I)
            names = [n for n in names if rx.match(n)]
        return Result(pa.table({col: pa.array(names, pa.string())}))

    def show_grants(self, principal: str | None, kind: str, name: str | None) -> Result:
        ckind = {"CATALOG": "catalog", "SCHEMA": "schema", "DATABASE": "schema", "TABLE": "table",
                 "VOLUME": "volume", "FUNCTION": "function", "MODEL": "registered_model",
                 "CONNECTION": "connection", "METASTORE": "metastore"}[kind]
        levels = {"catalog": 1, "schema": 2, "connection": 1, "metastore": 1}.get(ckind, 3)
        full = "metastore" if ckind == "metastore" else self.resolve_name(name or "", levels)
        who = principal.strip("`") if principal else None
        rows = self.engine.catalog.grants(self.p, ckind, full, principal=who)
        flat = [(r["principal"], priv) for r in rows for priv in r["privileges"]]
        return Result(pa.table({"Principal": pa.array([f[0] for f in flat], pa.string()),
                                "ActionType": pa.array([f[1].replace("_", " ") for f in flat], pa.string()),
                                "ObjectType": pa.array([kind] * len(flat), pa.string()),
                                "ObjectKey": pa.array([full] * len(flat), pa.string())}))


def _q(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def _comment(tree: Any) -> str | None:
    from sqlglot import exp

    props = tree.args.get("properties")
    if props is None:
        return None
    for prop in props.expressions:
        if isinstance(prop, exp.SchemaCommentProperty):
            return prop.this.name
    return None


def _friendly(table: pa.Table) -> pa.Table:
    """DuckDB types Delta cannot store or clients cannot read become their nearest Databricks type."""
    fields, arrays, changed = [], [], False
    for f, col in zip(table.schema, table.columns, strict=True):
        t = f.type
        new = t
        if pa.types.is_unsigned_integer(t):
            new = pa.int64()
        elif pa.types.is_decimal(t) and t.precision > 38:
            new = pa.decimal128(38, min(t.scale, 38))
        elif pa.types.is_large_string(t) or pa.types.is_string_view(t):
            new = pa.string()
        elif pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            new = pa.binary()
        elif pa.types.is_timestamp(t) and t.unit != "us":
            new = pa.timestamp("us", tz=t.tz)
        if new != t:
            changed = True
            col = col.cast(new)
        fields.append(pa.field(f.name, new))
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)) if changed else table


def not_found(name: str) -> NotFound:
    return NotFound(f"[TABLE_OR_VIEW_NOT_FOUND] {name}")


__all__ = ["Result", "SqlEngine", "type_text"]


def _names_a_visible_cte(table: Any) -> bool:
    """Whether an unqualified table reference names a CTE that is in scope where it stands: one defined by a
    WITH of an enclosing query, before the reference's own CTE (itself too for a recursive UNION). A CTE of
    another query, even of the same name, does not hide a catalog table from the grant check."""
    _, exp = _sqlglot()
    if table.db or table.catalog:
        return False
    name = table.name.lower()
    path: list[Any] = [table]  # the reference and its ancestors so far
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with")
        if with_ is not None:
            ctes = list(with_.expressions)
            # the CTE the reference stands in, if any, sees only the CTEs before it, and itself only when it
            # is a WITH RECURSIVE one whose body is a UNION (DuckDB reads any other self-reference as a table)
            inside = next((i for i, cte in enumerate(ctes) if any(cte is p for p in path)), None)
            if inside is None:
                visible = ctes
            else:
                own = ctes[inside]
                recursive = with_.args.get("recursive") and isinstance(own.this, exp.Union)
                visible = ctes[:inside + 1] if recursive else ctes[:inside]
            if any(cte.alias_or_name.lower() == name for cte in visible):
                return True
        path.append(node)
        node = node.parent
    return False
