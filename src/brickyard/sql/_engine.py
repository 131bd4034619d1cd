"""SQL over the workspace's Delta tables: DuckDB computes, delta-rs commits, the catalog decides.

A statement is parsed with sqlglot (Databricks dialect). Every table it names is resolved to a
three-level name, checked (SELECT to read, MODIFY to write) and registered in a fresh, sandboxed
DuckDB connection (no file system, no extensions, configuration locked) under a private alias.
Reads run in DuckDB. Writes run in DuckDB to compute the rows, then commit through delta-rs:
INSERT appends (or overwrites), DELETE/UPDATE become delta-rs operations with the predicate
translated to DataFusion SQL, MERGE computes its source in DuckDB and merges it with delta-rs.
Catalog statements (SHOW, DESCRIBE, GRANT, REVOKE, CREATE/DROP) map to the catalog.

The parts: :mod:`._context` (one statement's caller, parameters and DuckDB connection), :mod:`._dml`
(writes), :mod:`._ddl` (catalog statements); this module parses and dispatches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ..catalog import Catalog, Principal, Securable
from ..core.errors import BadRequest, InvalidParameterValue
from ..core.ids import new_id
from ..core.names import validate_part
from ..tables import Tables, Volumes, type_text
from . import _ddl, _dml
from ._ai import Models
from ._context import Ctx, Result, bind_parameters, first_line, friendly, sqlglot_modules
from ._files import ParseDocuments
from ._functions import RunPython, Temporary, identifiers, is_create_function
from ._governance import ROWS, governed_select, is_view
from ._limits import Limits, guard_sizes
from ._search import Search
from ._search import rename_calls as rename_search

MAX_STATEMENT = 1_000_000


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
        #: runs Python UC functions in their sandbox, a batch of rows at a time: given by the workspace
        self.run_python: RunPython | None = None
        #: volumes, for read_files(); and the parsing sandbox, for ai_parse_document: given by the workspace
        self.volumes: Volumes | None = None
        self.parse_documents: ParseDocuments | None = None
        #: TEMPORARY functions: (principal, lower-case name) -> the function; they live as long as this process
        self.temporary: dict[tuple[str, str], Temporary] = {}

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
        ctx = Ctx(self, p, default_catalog, default_schema, bind_parameters(parameters), on_connection)
        ctx.statement_id = statement_id or new_id()
        ctx.cancelled = cancelled
        ctx.progress = progress
        text = statement.strip().rstrip(";").strip()
        if not is_create_function(text):  # a Python body is not SQL to rewrite
            text = identifiers(text, ctx.params)
        handled = _ddl.command(ctx, text)
        if handled is not None:
            return handled
        sqlglot, exp = sqlglot_modules()
        try:
            trees = [t for t in sqlglot.parse(rename_search(text), read="databricks") if t is not None]
        except sqlglot.errors.ParseError as exc:
            raise BadRequest(f"[PARSE_SYNTAX_ERROR] {first_line(exc)}", error_code="PARSE_SYNTAX_ERROR") from None
        except RecursionError:
            raise BadRequest("statement is nested too deeply") from None
        if len(trees) != 1:
            raise InvalidParameterValue("send one statement at a time")
        tree = guard_sizes(ctx.plan_statement(ctx.bind(trees[0])), self.limits)
        if isinstance(tree, exp.Query):
            return Result(ctx.query(tree))
        if isinstance(tree, exp.Insert):
            return _dml.insert(ctx, tree)
        if isinstance(tree, exp.Delete):
            return _dml.delete(ctx, tree)
        if isinstance(tree, exp.Update):
            return _dml.update(ctx, tree)
        if isinstance(tree, exp.Merge):
            return _dml.merge(ctx, tree)
        if isinstance(tree, exp.Create):
            return _ddl.create(ctx, tree)
        if isinstance(tree, exp.Drop):
            return _ddl.drop(ctx, tree)
        if isinstance(tree, exp.Describe):
            return _ddl.describe(ctx, tree)
        if isinstance(tree, exp.Alter):
            return _ddl.alter(ctx, tree)
        if isinstance(tree, exp.Grant) or type(tree).__name__ in ("Revoke", "Command"):
            raise BadRequest(f"this statement is not supported: {text[:80]!r}; see docs/sql.md")
        raise BadRequest(f"statements of type {type(tree).__name__.upper()} are not supported; see docs/sql.md")

    def is_query(self, statement: str) -> bool:
        """Whether ``statement`` only reads (SELECT, WITH, VALUES, set operations): a client may run it later,
        or a part of it. False for anything else, and for text that does not parse (running it says why)."""
        sqlglot, exp = sqlglot_modules()
        text = statement.strip().rstrip(";") if isinstance(statement, str) else ""
        if not text or len(text) > MAX_STATEMENT or is_create_function(text):
            return False
        try:
            trees = [t for t in sqlglot.parse(rename_search(text), read="databricks") if t is not None]
        except (sqlglot.errors.ParseError, RecursionError):
            return False
        return len(trees) == 1 and isinstance(trees[0], exp.Query)

    def govern(self, p: Principal, obj: Securable, rows: pa.Table | None, *, within: tuple[str, ...] = ()
               ) -> pa.Table:
        """What ``p`` reads of ``obj``: a view's rows, or ``rows`` of the table under its row filter and column
        masks. Statements use it for every policy-bound table they read, and so do ``Tables.read``, the change
        feed and Delta Sync sources. ``within``: the tables whose policies are being applied around this one."""
        if obj.full_name in within:
            raise InvalidParameterValue(f"the row filter or a mask of {obj.full_name} reads {obj.full_name} itself; "
                                        "a policy cannot read the table it guards")
        ctx = Ctx(self, p, "main", "default", {}, None)
        ctx.statement_id = new_id()
        ctx.governing = (*within, obj.full_name)
        exp = ctx.exp
        if is_view(obj):
            tree: Any = exp.select("*").from_(exp.Table(this=exp.to_identifier(obj.parts[2], quoted=True),
                                                        db=exp.to_identifier(obj.parts[1], quoted=True),
                                                        catalog=exp.to_identifier(obj.parts[0], quoted=True)))
        else:
            source = exp.Table(this=exp.to_identifier("rows"))
            source.meta[ROWS] = rows
            tree = governed_select(ctx, obj, source)
        tree = ctx.plan(tree)
        con, _ = ctx.connect(tree)
        try:
            return friendly(ctx.run(con, tree))
        finally:
            con.close()


__all__ = ["Result", "SqlEngine", "type_text"]
