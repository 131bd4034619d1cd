"""One statement's context: its caller, default catalog and schema, bound parameters, planned AI calls, and
the sandboxed DuckDB connection its tables are registered in (checked against the caller's grants)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..catalog import Principal, Securable
from ..core.errors import BadRequest, BrickyardError, InvalidParameterValue, InvalidState
from ..core.names import parse_name, quote_part, split_name, validate_part
from . import _functions as fn
from ._ai import (
    EMBEDDINGS,
    Runner,
    Site,
    extract_entities,
    mask_entities,
    plan,
    register_extract,
    register_mask,
    rewrite_task,
    task_call,
)
from ._ai import register as register_ai
from ._files import check_parse_options, is_read_files, read_files, register_parse
from ._functions import PythonSite, register_python
from ._governance import AS, GOVERNED, POLICY, ROWS, dynamic, expand, is_view, owner_of
from ._search import arguments as search_arguments
from ._search import is_call as is_search
from ._search import run as run_search
from ._typed import duck as duck_type

if TYPE_CHECKING:
    from ._engine import SqlEngine

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


def sqlglot_modules() -> tuple[Any, Any]:
    import sqlglot
    from sqlglot import exp

    return sqlglot, exp


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__


def bind_parameters(parameters: list[dict[str, Any]] | None) -> dict[str, tuple[Any, str]]:
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


class Ctx:
    """One statement's execution: its caller, defaults, parameters and DuckDB connection."""

    def __init__(self, engine: SqlEngine, p: Principal, catalog: str, schema: str,
                 params: dict[str, tuple[Any, str]], on_connection: Callable[[Any], None] | None) -> None:
        self.engine = engine
        self.p = p
        self.catalog_name = catalog
        self.schema_name = schema
        self.params = params
        self.on_connection = on_connection
        self._sqlglot, self.exp = sqlglot_modules()
        self.statement_id = ""
        self.cancelled: Callable[[], bool] = lambda: False
        self.progress: Callable[[int], None] = lambda n: None
        self.ai_sites: list[tuple[str, Runner]] = []  # planned ai_query calls: (DuckDB function name, runner)
        self.masks: list[tuple[str, list[str]]] = []  # planned ai_mask calls: (DuckDB function name, entities)
        self.python_sites: list[PythonSite] = []  # planned calls of Python UC functions
        self.extracts: list[tuple[str, dict[str, list[str]]]] = []  # offline ai_extract: (name, label -> entities)
        self.governing: tuple[str, ...] = ()  # the tables whose policies this statement applies (no cycles)
        self.parses: list[str] = []  # planned ai_parse_document calls (DuckDB function names)
        self.udf_errors: list[BrickyardError] = []  # what the statement's own functions raised, to re-raise as is

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

        return tree.transform(sub)

    def plan(self, tree: Any, *, views: tuple[str, ...] = ()) -> Any:
        """A query planned: views expanded and tables' row filters and masks applied (:mod:`._governance`), UC
        functions inlined or planned, ``current_user()`` and group tests answered for the caller, AI calls
        planned. Each step checks what it needs before any row is read."""
        return self._plan_ai(dynamic(self, self.plan_functions(expand(self, tree, views))))

    def plan_statement(self, tree: Any) -> Any:
        """The parts of a statement that read rows, planned; a view's stored query is left as written."""
        exp = self.exp
        if isinstance(tree, exp.Query):
            return self.plan(tree)
        part = {exp.Insert: "expression"}.get(type(tree))  # MERGE plans its source itself (see _dml.merge)
        if isinstance(tree, exp.Create) and str(tree.args.get("kind") or "").upper() == "TABLE":
            part = "expression"
        if part and tree.args.get(part) is not None:
            tree.set(part, self.plan(tree.args[part]))
        return tree

    # -- UC functions -----------------------------------------------------------------------------------
    def function(self, parts: list[str], home: tuple[str, str] | None, *, required: bool,
                 who: Principal | None = None, governed: bool = False) -> Any:
        """The function ``parts`` names, EXECUTE checked for ``who`` (the caller, or the owner of the body it is
        called from): a temporary one of the caller's by a one-part name, else the one in ``home`` (the
        statement's default schema, or the schema of the body being inlined); None for a one-part name that is
        neither (a builtin, left to DuckDB). A table's row filter or mask (``governed``) runs for any reader."""
        cat = self.engine.catalog
        if len(parts) == 1 and not governed:
            temp = self.engine.temporary.get((self.p.name, parts[0].lower()))
            if temp is not None and home is None:
                return temp
        catalog, schema = home or (self.catalog_name, self.schema_name)
        full_parts = [catalog, schema][: 3 - len(parts)] + parts if len(parts) < 3 else parts
        if len(full_parts) != 3:
            raise InvalidParameterValue(f"[INVALID_FUNCTION_NAME] {'.'.join(parts)[:80]} has too many parts")
        full = str(parse_name(".".join(quote_part(x) for x in full_parts), 3, what="function name"))
        if not required and not cat.exists("function", full):
            return None
        if governed:
            found = cat.lookup("function", full)
            if found is None:
                raise InvalidState(f"the row filter or mask {full} no longer exists; the table cannot be read until "
                                   "its owner sets another or drops it")
            return found
        return cat.require(who or self.p, "EXECUTE", "function", full, action="executeFunction")

    def plan_functions(self, tree: Any, home: tuple[str, str] | None = None, stack: tuple[str, ...] = (),
                       who: Principal | None = None) -> Any:
        """Every call of a UC function in ``tree`` inlined (SQL) or planned (Python); see :mod:`._functions`."""
        exp = self.exp

        def named_as(call: Any, value: Any) -> Any:
            """A call standing alone in a SELECT list keeps its text as the column's name, as on Databricks."""
            if isinstance(call.parent, exp.Select) and call.arg_key == "expressions":
                return exp.Alias(this=value, alias=exp.to_identifier(call.sql(dialect="databricks")[:120]))
            return value

        def sub(node: Any) -> Any:
            in_from = isinstance(node, exp.Table)
            call = fn.table_call(exp, node) if in_from else fn.scalar_call(exp, node)
            if call is None:
                return node
            parts, args = call
            governed = bool(node.meta.get(GOVERNED))
            obj = self.function(parts, home, required=len(parts) > 1, who=who, governed=governed)
            if obj is None:
                return node  # a builtin: left as it is (the walk goes on into its arguments)
            full, spec = obj.full_name, obj.spec
            if full in stack or len(stack) >= fn.MAX_DEPTH:
                raise InvalidParameterValue(f"[ROUTINE_RECURSION] {full} calls itself (through {' -> '.join(stack)})")
            bound = [(prm, self.plan_functions(value, home, stack, who)) for prm, value in fn.bind(exp, full, spec, args)]
            is_table = str(spec.get("data_type") or "").upper() == "TABLE_TYPE"
            if in_from != is_table:
                raise InvalidParameterValue(
                    f"[NOT_A_TABLE_FUNCTION] {full} returns a table; call it in FROM" if is_table else
                    f"[NOT_A_TABLE_FUNCTION] {full} is a scalar function; it cannot be called in FROM")
            if spec.get("routine_body") != "SQL":
                return named_as(node, self._python_site(obj, bound))
            own = tuple(full.split(".")[:2]) if "." in full else (self.catalog_name, self.schema_name)
            body = fn.inline(exp, full, spec, bound, table=is_table, home=own)
            body = fn.qualify_calls(exp, body, own[0], own[1], lambda name: self.engine.catalog.exists("function", name))
            owner = owner_of(self, obj) if governed else who  # a policy runs with its owner's rights
            if owner is not None:
                for table in body.find_all(exp.Table):
                    table.meta.setdefault(AS, owner)
            body = expand(self, body)  # the tables the body reads, under their own views, filters and masks
            body = self.plan_functions(body, own, (*stack, full), owner)
            if is_table:
                alias = node.args.get("alias")
                return exp.Subquery(this=body, alias=alias.copy() if alias else exp.TableAlias(
                    this=exp.to_identifier(parts[-1])))
            return named_as(node, body)

        return tree.transform(sub)

    def _python_site(self, obj: Any, bound: list[tuple[dict[str, Any], Any]]) -> Any:
        exp = self.exp
        if self.engine.run_python is None:
            raise InvalidState("Python functions need a workspace that runs them")
        site = PythonSite(f"__uc_python_{len(self.python_sites)}", obj.full_name,
                          str(obj.spec.get("routine_definition") or ""), [prm["name"] for prm, _ in bound],
                          [duck_type(prm.get("type_text") or "STRING") for prm, _ in bound],
                          duck_type(str(obj.spec.get("full_data_type") or obj.spec.get("data_type") or "STRING")))
        self.python_sites.append(site)
        args = [fn.cast(exp, value, prm.get("type_text") or "STRING") for prm, value in bound] or [exp.Literal.number(0)]
        return exp.Anonymous(this=site.name, expressions=args)

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

        def task_site(endpoint: str, task: str, **options: Any) -> str:  # a task function's default endpoint
            assert models is not None
            found = models.task(self.p, endpoint)
            if found != task:
                raise InvalidParameterValue(f"the AI functions' default endpoint {endpoint!r} serves {found}, not {task}; "
                                            "set BRICKYARD_AI_FUNCTIONS_CHAT_ENDPOINT / _EMBEDDING_ENDPOINT")
            return add(Site(endpoint, task, **options))

        def embed_now(texts: list[str]) -> list[list[float]]:
            endpoint = self.engine.ai_endpoints[1]
            runner = Runner(Site(endpoint, EMBEDDINGS), self.p, models, self.statement_id, self.cancelled)
            vectors, _ = runner.batch(list(texts))
            return vectors

        def sub(node: Any) -> Any:
            if isinstance(node, exp.Anonymous) and str(node.this).lower() == "ai_parse_document":
                if self.engine.parse_documents is None:
                    raise InvalidState("ai_parse_document needs a workspace that parses documents")
                check_parse_options(exp, list(node.expressions))
                name = f"__ai_parse_{len(self.parses)}"
                self.parses.append(name)
                parsed = exp.Anonymous(this=name, expressions=[
                    exp.Cast(this=node.expressions[0], to=exp.DataType.build("BLOB", dialect="duckdb"))])
                return exp.Cast(this=parsed, to=exp.DataType.build("JSON", dialect="duckdb"))  # paths read into it
            if isinstance(node, exp.Cast) and isinstance(node.this, exp.JSONExtract) and node.to.is_type(
                    *exp.DataType.TEXT_TYPES):  # v:a:b::string is the text at the path, not its JSON
                return exp.JSONExtractScalar(this=node.this.this, expression=node.this.expression)
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
            if task is not None and task[0] == "ai_extract":
                if len(task[1]) != 2:
                    raise InvalidParameterValue(f"ai_extract takes 2 arguments (content, labels), got {len(task[1])}")
                found = extract_entities(exp, task[1][1])
                if found is not None:  # every label is one Presidio finds: offline, no model endpoint
                    name = f"__ai_extract_{len(self.extracts)}"
                    self.extracts.append((name, found))
                    return exp.Anonymous(this=name, expressions=[
                        exp.Cast(this=task[1][0], to=exp.DataType.build("VARCHAR", dialect="duckdb"))])
            if task is not None:
                chat, embedding = self.engine.ai_endpoints
                return rewrite_task(exp, task[0], task[1], task_site, embed_now, chat, embedding)
            site, request = plan(exp, node, self.p, models)
            return exp.Anonymous(this=add(site), expressions=[
                exp.Cast(this=request, to=exp.DataType.build("VARCHAR", dialect="duckdb"))])

        # deepest calls first, so that an AI function in another's arguments is planned too
        calls = [n for n in tree.walk(bfs=True) if n is not tree]
        for node in reversed(calls):
            new = sub(node)
            if new is not node:
                node.replace(new)
        return tree

    # -- DuckDB -----------------------------------------------------------------------------------
    def connect(self, tree: Any, *, privilege: str = "SELECT") -> tuple[Any, dict[str, Securable]]:
        """Check and register every table ``tree`` reads; rewrite references to private aliases."""
        import duckdb

        exp = self.exp
        con = duckdb.connect(":memory:")
        if self.on_connection is not None:
            self.on_connection(con)
        udfs = _Functions(con, self.udf_errors)
        for name, runner in self.ai_sites:
            register_ai(udfs, name, runner)
        for site in self.python_sites:
            assert self.engine.run_python is not None
            register_python(udfs, site, self.engine.run_python)
        for name in self.parses:
            assert self.engine.parse_documents is not None
            register_parse(udfs, name, self.engine.parse_documents)
        for name, labels in self.extracts:
            assert self.engine.models is not None
            register_extract(udfs, name, self.engine.models, labels)
        for name, entities in self.masks:
            assert self.engine.models is not None
            register_mask(udfs, name, self.engine.models, entities)
        registered: dict[str, str] = {}
        objects: dict[str, Securable] = {}
        for table in list(tree.find_all(exp.Table)):
            search, files = is_search(exp, table.this), is_read_files(exp, table.this)
            if search or files:  # vector_search(...) / read_files(...): read now, as the caller, into a table
                alias = f"__s{len(registered)}"
                registered[alias] = alias
                if search:
                    if self.engine.search is None:
                        raise InvalidState("vector_search() needs a workspace with Vector Search")
                    rows = run_search(self.engine.search, self.p, search_arguments(exp, table.this))
                else:
                    if self.engine.volumes is None:
                        raise InvalidState("read_files() needs a workspace with volumes")
                    rows = read_files(self.engine.volumes, self.p, exp, table.this,
                                      max_bytes=self.engine.limits.memory_bytes)
                con.register(alias, rows)
                alias_node = table.args.get("alias")
                new = exp.Table(this=exp.to_identifier(alias))
                new.set("alias", alias_node.copy() if alias_node else exp.TableAlias(
                    this=exp.to_identifier("vs" if search else "files")))
                table.replace(new)
                continue
            if is_range(exp, table):
                table.replace(range_rows(exp, table))
                continue
            if not isinstance(table.this, exp.Identifier):
                raise BadRequest("table functions (read_csv, read_parquet, ...) are not allowed; query catalog tables")
            if names_a_visible_cte(table):
                continue
            if table.meta.get(ROWS) is not None:  # rows given to SqlEngine.govern
                alias = f"__g{len(registered)}"
                registered[alias] = alias
                con.register(alias, table.meta[ROWS])
                alias_node = table.args.get("alias")
                new = exp.Table(this=exp.to_identifier(alias))
                new.set("alias", alias_node.copy() if alias_node else exp.TableAlias(this=exp.to_identifier("rows")))
                table.replace(new)
                continue
            full = self.table_name(table)
            who = table.meta.get(AS) or self.p
            version = None
            ver = table.args.get("version")
            if ver is not None:
                if str(ver.this).upper() != "VERSION":
                    raise BadRequest("only VERSION AS OF is supported for time travel")
                try:
                    version = int(ver.expression.name)
                except (TypeError, ValueError):
                    raise InvalidParameterValue("VERSION AS OF needs an integer version") from None
            policy = table.meta.get(POLICY)
            key = f"{full}@{version}@{'governed' if policy is not None else 'files'}"
            obj = self._check(who, full, privilege, objects)  # every reference, as whom it reads
            if key not in registered:
                alias = f"__t{len(registered)}"
                registered[key] = alias
                rows = self._relation(full, obj, version)
                if policy is not None and obj is not None:  # filtered and masked for the reader, on their own
                    rows = self.engine.govern(self.p, obj, rows.to_table(), within=self.governing)
                con.register(alias, rows)
            alias_node = table.args.get("alias")
            new = exp.Table(this=exp.to_identifier(registered[key]))
            new.set("alias", alias_node.copy() if alias_node else exp.TableAlias(this=exp.to_identifier(table.name)))
            table.replace(new)
        for setting in self.engine.limits.connection_settings():
            con.execute(setting)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con, objects

    def _check(self, who: Principal, full: str, privilege: str, objects: dict[str, Securable]) -> Securable | None:
        if full in self.engine.system_tables:
            self.engine.catalog.require(who, "SELECT", "schema", full.rsplit(".", 1)[0], action="readSystemTable")
            return None
        obj = self.engine.catalog.require(who, privilege, "table", full, action="readTable")
        if is_view(obj):  # a view reached here was not expanded: never read it as files
            raise InvalidState(f"{full} is a view and cannot be read directly here")
        objects[full] = obj
        return obj

    def _relation(self, full: str, obj: Securable | None, version: int | None) -> Any:
        if obj is None:
            return self.engine.system_tables[full]()
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
            raise BadRequest(f"{first_line(exc)} (the limit is BRICKYARD_STATEMENT_MEMORY_BYTES, "
                             f"{self.engine.limits.memory_bytes >> 20} MiB)", error_code="RESOURCE_EXHAUSTED") from None
        except duckdb.Error as exc:
            if self.udf_errors:  # one of the statement's functions failed: its own error, not DuckDB's wrapping
                raise self.udf_errors[0] from None
            raise BadRequest(first_line(exc)) from None

    def query(self, tree: Any) -> pa.Table:
        con, _ = self.connect(tree)
        try:
            return friendly(self.run(con, tree, max_bytes=self.engine.limits.result_bytes))
        finally:
            con.close()

    def lineage(self, sources: dict[str, Securable], target: Securable, kind: str) -> None:
        for name in sources:
            if name != target.full_name:
                self.engine.catalog.add_lineage(self.p, ("table", name), ("table", target.full_name), kind=kind)


class _Functions:
    """A DuckDB connection as the registering code sees it: each function it creates keeps the Brickyard error
    it raises, so the statement fails with that error (its class, code and message) rather than DuckDB's
    wrapping of it."""

    def __init__(self, con: Any, errors: list[BrickyardError]) -> None:
        self.con = con
        self.errors = errors

    def create_function(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        @functools.wraps(fn)
        def kept(*values: Any) -> Any:
            try:
                return fn(*values)
            except BrickyardError as exc:
                self.errors.append(exc)
                raise

        return self.con.create_function(name, kept, *args, **kwargs)


def friendly(table: pa.Table) -> pa.Table:
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


def is_range(exp: Any, table: Any) -> bool:
    return isinstance(table.this, exp.Anonymous) and table.this.name.lower() == "range" and not table.db


def range_rows(exp: Any, table: Any) -> Any:
    """Databricks' ``range([start,] end [, step [, numPartitions]])``: a BIGINT column ``id``, end excluded."""
    args = list(table.this.expressions)
    if not 1 <= len(args) <= 4 or any(isinstance(a, exp.Kwarg | exp.PropertyEQ) for a in args):
        raise InvalidParameterValue("[WRONG_NUM_ARGS] range() takes 1 to 4 positional arguments: "
                                    "[start,] end [, step [, numPartitions]]", error_code="WRONG_NUM_ARGS")
    bounds = [exp.Cast(this=a.copy(), to=exp.DataType.build("BIGINT")) for a in args[:3]]
    inner = exp.select(exp.alias_(exp.column("range"), "id")).from_(
        exp.Table(this=exp.Anonymous(this="range", expressions=bounds)))
    return exp.Subquery(this=inner, alias=table.args.get("alias") or exp.TableAlias(this=exp.to_identifier("range")))


def names_a_visible_cte(table: Any) -> bool:
    """Whether an unqualified table reference names a CTE that is in scope where it stands: one defined by a
    WITH of an enclosing query, before the reference's own CTE (itself too for a recursive UNION). A CTE of
    another query, even of the same name, does not hide a catalog table from the grant check."""
    _, exp = sqlglot_modules()
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
