"""Unity Catalog functions in SQL: ``CREATE FUNCTION`` parsed into the catalog's function definition, and calls of
functions planned before a statement runs.

* A **SQL function** is inlined where it is called: its ``RETURN`` expression (or query) with each parameter
  replaced by its argument cast to the parameter's type, the whole cast to the return type. Tables and
  functions its body names without a catalog and schema are the function's own schema's. A table function
  (``RETURNS TABLE``) called in ``FROM`` becomes a subquery. Inlining happens before the statement's tables are
  checked, so a body reads only what the caller may read.
* A **Python function** becomes a DuckDB function of the statement that sends its rows, a chunk at a time, to
  the sandbox UC Python functions run in (see :mod:`brickyard.functions`).

EXECUTE on the function is checked for every call site, before any row runs.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..catalog import uc_type_name
from ..core.errors import BadRequest, InvalidParameterValue
from ..core.names import quote_part, split_name
from ._typed import arrow_of, ddl, to_arrow

MAX_DEPTH = 16  # functions calling functions: deeper than this is taken for recursion

_CREATE = re.compile(r"(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?FUNCTION\b")
_DOLLAR_BODY = re.compile(r"(?is)\bAS\s*\$\$")
_DATA_ACCESS = {("CONTAINS", "SQL"): "CONTAINS_SQL", ("READS", "SQL"): "READS_SQL_DATA",
                ("MODIFIES", "SQL"): "MODIFIES_SQL_DATA", ("NO", "SQL"): "NO_SQL"}


@dataclass
class Definition:
    """A parsed ``CREATE FUNCTION``."""

    name: str
    replace: bool = False
    temporary: bool = False
    if_not_exists: bool = False
    params: list[dict[str, Any]] = field(default_factory=list)
    returns: str | None = None  # a scalar function's type; None for a table function
    columns: list[dict[str, Any]] = field(default_factory=list)  # a table function's columns
    language: str = "SQL"
    body: str = ""
    comment: str | None = None
    deterministic: bool = True
    data_access: str = "CONTAINS_SQL"

    def info(self, catalog: str, schema: str, name: str) -> dict[str, Any]:
        """The ``function_info`` the catalog stores (the same shape the REST API takes)."""
        table = self.returns is None
        full_type = ("TABLE(" + ", ".join(f"{c['name']} {c['type_text']}" for c in self.columns) + ")") if table \
            else str(self.returns)
        info: dict[str, Any] = {
            "name": name, "catalog_name": catalog, "schema_name": schema,
            "input_params": {"parameters": self.params},
            "data_type": "TABLE_TYPE" if table else uc_type_name(str(self.returns)),
            "full_data_type": full_type,
            "routine_body": "SQL" if self.language == "SQL" else "EXTERNAL",
            "routine_definition": self.body,
            "is_deterministic": self.deterministic, "sql_data_access": self.data_access,
            "parameter_style": "S", "is_null_call": False, "security_type": "DEFINER", "specific_name": name,
            "comment": self.comment,
        }
        if self.language == "PYTHON":
            info["external_language"] = "PYTHON"
        if table:
            info["return_params"] = {"parameters": self.columns}
        return info


@dataclass
class Temporary:
    """A TEMPORARY function: its caller's only, for the life of the server process."""

    full_name: str
    spec: dict[str, Any]
    comment: str | None
    owner: str


def is_create_function(text: str) -> bool:
    return _CREATE.match(text) is not None


class _Tokens:
    def __init__(self, text: str) -> None:
        import sqlglot

        self.text = text
        try:
            self.items = sqlglot.tokenize(text, read="databricks")
        except sqlglot.errors.TokenError as exc:
            raise BadRequest(f"[PARSE_SYNTAX_ERROR] {str(exc).splitlines()[0][:300]}",
                             error_code="PARSE_SYNTAX_ERROR") from None
        self.i = 0

    def peek(self, ahead: int = 0) -> Any:
        j = self.i + ahead
        return self.items[j] if j < len(self.items) else None

    def word(self, ahead: int = 0) -> str:
        tok = self.peek(ahead)
        return tok.text.upper() if tok is not None and tok.token_type.name != "STRING" else ""

    def take(self, *words: str) -> bool:
        """Consume ``words`` if the next tokens are exactly they."""
        if all(self.word(k) == w for k, w in enumerate(words)):
            self.i += len(words)
            return True
        return False

    def expect(self, word: str, where: str) -> None:
        if not self.take(word):
            got = self.peek()
            raise BadRequest(f"[PARSE_SYNTAX_ERROR] CREATE FUNCTION: expected {word} {where}, got "
                             f"{got.text[:40] if got is not None else 'the end'!r}", error_code="PARSE_SYNTAX_ERROR")

    def string(self, what: str) -> str:
        tok = self.peek()
        if tok is None or tok.token_type.name != "STRING":
            raise BadRequest(f"[PARSE_SYNTAX_ERROR] CREATE FUNCTION: {what} must be a string literal",
                             error_code="PARSE_SYNTAX_ERROR")
        self.i += 1
        return str(tok.text)

    def until(self, stops: tuple[str, ...]) -> str:
        """The source text from here to the next of ``stops`` (``,`` ``)`` or a keyword) outside brackets."""
        start = self.peek()
        depth = 0
        while self.peek() is not None:
            tok = self.peek()
            kind = tok.token_type.name
            if depth == 0 and (tok.text.upper() in stops or kind in ("COMMA", "R_PAREN") and tok.text in stops):
                break
            if kind in ("L_PAREN", "LT", "L_BRACKET"):
                depth += 1
            elif kind in ("R_PAREN", "GT", "R_BRACKET"):
                if depth == 0:
                    break
                depth -= 1
            self.i += 1
        if start is None or self.peek() is start:
            return ""
        end = self.items[self.i - 1]
        return self.text[start.start:end.end + 1].strip()


def _type(text: str, what: str) -> str:
    """``text`` checked as a Databricks type, in the lower-case form Unity Catalog returns."""
    if not text:
        raise BadRequest(f"[PARSE_SYNTAX_ERROR] CREATE FUNCTION: {what} needs a type", error_code="PARSE_SYNTAX_ERROR")
    try:
        return str(ddl(text, what).sql(dialect="databricks")).lower()
    except InvalidParameterValue:
        raise InvalidParameterValue(f"[UNSUPPORTED_DATATYPE] {what}: {text[:60]!r} is not a type") from None


def _columns(tokens: _Tokens, what: str, *, defaults: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    tokens.expect("(", f"before the {what}")
    while not tokens.take(")"):
        if out:
            tokens.expect(",", f"between {what}")
        tok = tokens.peek()
        if tok is None:
            raise BadRequest(f"[PARSE_SYNTAX_ERROR] CREATE FUNCTION: the {what} are not closed",
                             error_code="PARSE_SYNTAX_ERROR")
        name = str(tok.text)
        tokens.i += 1
        type_text = _type(tokens.until((",", ")", "DEFAULT", "COMMENT")), f"{name!r}")
        entry: dict[str, Any] = {"name": name, "type_text": type_text, "type_name": uc_type_name(type_text),
                                 "position": len(out)}
        while True:  # DEFAULT and COMMENT, in either order
            if defaults and "parameter_default" not in entry and tokens.take("DEFAULT"):
                entry["parameter_default"] = tokens.until((",", ")", "COMMENT"))
            elif "comment" not in entry and tokens.take("COMMENT"):
                entry["comment"] = tokens.string(f"the comment of {name!r}")
            else:
                break
        if any(c["name"].lower() == name.lower() for c in out):
            raise InvalidParameterValue(f"CREATE FUNCTION: {what} name {name!r} is repeated")
        out.append(entry)
    return out


def parse_create(text: str) -> Definition | None:
    """The ``CREATE FUNCTION`` statement ``text`` as a :class:`Definition`; None for any other statement."""
    if not _CREATE.match(text):
        return None
    body_match = _DOLLAR_BODY.search(text)
    header, dollar_body = (text[:body_match.start()], text[body_match.end():]) if body_match else (text, None)
    if dollar_body is not None:
        end = dollar_body.rfind("$$")
        if end < 0 or dollar_body[end + 2:].strip():
            raise BadRequest("[PARSE_SYNTAX_ERROR] CREATE FUNCTION: the body opened with AS $$ must end with $$",
                             error_code="PARSE_SYNTAX_ERROR")
        dollar_body = dollar_body[:end]
    tokens = _Tokens(header)
    d = Definition(name="")
    tokens.expect("CREATE", "")
    d.replace = tokens.take("OR", "REPLACE")
    d.temporary = tokens.take("TEMPORARY") or tokens.take("TEMP")
    tokens.expect("FUNCTION", "")
    d.if_not_exists = tokens.take("IF", "NOT", "EXISTS")
    start = tokens.peek()
    while tokens.peek() is not None and tokens.word() != "(":
        tokens.i += 1
    if start is None or tokens.peek() is start or tokens.peek() is None:
        raise BadRequest("[PARSE_SYNTAX_ERROR] CREATE FUNCTION needs a name and a parameter list",
                         error_code="PARSE_SYNTAX_ERROR")
    d.name = header[start.start:tokens.items[tokens.i - 1].end + 1].strip()
    if d.replace and d.if_not_exists:
        raise BadRequest("CREATE FUNCTION: OR REPLACE and IF NOT EXISTS cannot be used together")
    d.params = _columns(tokens, "parameters", defaults=True)
    tokens.expect("RETURNS", "after the parameters")
    if tokens.take("TABLE"):
        d.columns = _columns(tokens, "columns", defaults=False) if tokens.word() == "(" else []
        if not d.columns:
            raise BadRequest("CREATE FUNCTION: RETURNS TABLE needs its columns, e.g. RETURNS TABLE (id INT, name STRING)")
    else:
        d.returns = _type(tokens.until(("LANGUAGE", "COMMENT", "RETURN", "NOT", "DETERMINISTIC", "CONTAINS",
                                        "READS", "MODIFIES", "NO", "SQL", "ENVIRONMENT", "HANDLER")), "the result")
    body_start = None
    while tokens.peek() is not None:
        if tokens.take("LANGUAGE"):
            lang = tokens.word()
            if lang not in ("SQL", "PYTHON"):
                raise InvalidParameterValue(f"CREATE FUNCTION: LANGUAGE {lang[:20]} is not supported; use SQL or PYTHON")
            d.language = lang
            tokens.i += 1
        elif tokens.take("COMMENT"):
            d.comment = tokens.string("COMMENT")
        elif tokens.take("NOT", "DETERMINISTIC"):
            d.deterministic = False
        elif tokens.take("DETERMINISTIC"):
            d.deterministic = True
        elif (tokens.word(), tokens.word(1)) in _DATA_ACCESS:
            d.data_access = _DATA_ACCESS[(tokens.word(), tokens.word(1))]
            tokens.i += 2
            tokens.take("DATA")
        elif tokens.take("SQL", "SECURITY"):
            if not (tokens.take("DEFINER") or tokens.take("INVOKER")):
                raise BadRequest("CREATE FUNCTION: SQL SECURITY takes DEFINER or INVOKER")
        elif tokens.take("ENVIRONMENT"):  # dependencies / environment_version: the sandbox has its own Python
            tokens.expect("(", "after ENVIRONMENT")
            tokens.until((")",))
            tokens.expect(")", "to close ENVIRONMENT")
        elif tokens.take("HANDLER"):
            raise InvalidParameterValue("CREATE FUNCTION: HANDLER (Python table functions) is not supported; "
                                        "write the table function in SQL")
        elif tokens.word() == "RETURN":
            body_start = tokens.peek()
            break
        else:
            got = tokens.peek()
            raise BadRequest(f"[PARSE_SYNTAX_ERROR] CREATE FUNCTION: unexpected {got.text[:40]!r}",
                             error_code="PARSE_SYNTAX_ERROR")
    if body_start is not None:
        if dollar_body is not None:
            raise BadRequest("CREATE FUNCTION: give the body once, as RETURN ... or as AS $$ ... $$")
        d.body = header[body_start.end + 1:].strip()
        if d.language != "SQL":
            raise BadRequest("CREATE FUNCTION: RETURN gives a SQL body; a Python body is written AS $$ ... $$")
    elif dollar_body is not None:
        d.body = dollar_body.strip("\n").rstrip()
    if not d.body.strip():
        raise BadRequest("CREATE FUNCTION needs a body: RETURN <expression or query> or AS $$ <Python> $$")
    if d.language == "PYTHON" and d.returns is None:
        raise InvalidParameterValue("CREATE FUNCTION: Python table functions are not supported; write the table "
                                    "function in SQL (LANGUAGE SQL ... RETURN SELECT ...)")
    if d.language == "SQL":
        _check_sql_body(d)
    if d.temporary and len(split_name(d.name)) != 1:
        raise InvalidParameterValue("[INVALID_TEMP_OBJ_QUALIFIER] a TEMPORARY function has a one-part name")
    return d


def _check_sql_body(d: Definition) -> None:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(d.body, read="databricks")
    except sqlglot.errors.ParseError as exc:
        raise BadRequest(f"[PARSE_SYNTAX_ERROR] the body of {d.name}: {str(exc).splitlines()[0][:300]}",
                         error_code="PARSE_SYNTAX_ERROR") from None
    if d.returns is None and not isinstance(tree, exp.Query):
        raise InvalidParameterValue(f"the body of the table function {d.name} must be a query (RETURN SELECT ...)")


# -- calls ----------------------------------------------------------------------------------------------------
def scalar_call(exp: Any, node: Any) -> tuple[list[str], list[Any]] | None:
    """(name parts, arguments) when ``node`` calls a function that sqlglot does not know: ``f(..)``,
    ``s.f(..)`` or ``c.s.f(..)``; None for anything else (builtins included)."""
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Anonymous):
        left: list[str] = []
        part = node.this
        while isinstance(part, exp.Dot):
            if not isinstance(part.expression, exp.Identifier):
                return None
            left.insert(0, part.expression.name)
            part = part.this
        if not isinstance(part, exp.Identifier | exp.Column):
            return None
        left.insert(0, part.name)
        return [*left, _fname(node.expression)], list(node.expression.expressions)
    if isinstance(node, exp.Anonymous) and not isinstance(node.parent, exp.Dot | exp.Table):
        return [_fname(node)], list(node.expressions)
    return None


def table_call(exp: Any, table: Any) -> tuple[list[str], list[Any]] | None:
    """(name parts, arguments) of a table function called in FROM: ``FROM c.s.f(..)``."""
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Anonymous):
        return None
    parts = [x for x in (table.catalog, table.db) if x]
    return [*parts, _fname(table.this)], list(table.this.expressions)


def _fname(node: Any) -> str:
    this = node.this
    return str(this.name if hasattr(this, "name") and not isinstance(this, str) else this)


def bind(exp: Any, full: str, spec: dict[str, Any], args: list[Any]) -> list[tuple[dict[str, Any], Any]]:
    """Each parameter of the function with the expression it gets: positional arguments, then named ones
    (``name => value``), then defaults; wrong counts and names are errors."""
    import sqlglot

    params = sorted((spec.get("input_params") or {}).get("parameters") or [], key=lambda x: x.get("position", 0))
    by_name = {prm["name"].lower(): prm for prm in params}
    given: dict[str, Any] = {}
    positional = 0
    named = False
    for arg in args:
        if isinstance(arg, exp.Kwarg):
            named = True
            key = arg.this.name.lower()
            if key not in by_name:
                raise InvalidParameterValue(f"[UNRECOGNIZED_PARAMETER_NAME] {full} has no parameter {arg.this.name!r}; "
                                            f"it takes {', '.join(p['name'] for p in params) or 'none'}")
            if key in given:
                raise InvalidParameterValue(f"[DUPLICATE_ROUTINE_PARAMETER_ASSIGNMENT] {full}: {key!r} is given twice")
            given[key] = arg.expression
        else:
            if named:
                raise InvalidParameterValue(f"[UNEXPECTED_POSITIONAL_ARGUMENT] {full}: positional arguments must "
                                            "come before named ones")
            if positional >= len(params):
                raise InvalidParameterValue(f"[WRONG_NUM_ARGS] {full} takes {len(params)} arguments, got {len(args)}")
            given[params[positional]["name"].lower()] = arg
            positional += 1
    out = []
    for prm in params:
        value = given.get(prm["name"].lower())
        if value is None:
            default = prm.get("parameter_default")
            if default is None:
                raise InvalidParameterValue(f"[REQUIRED_PARAMETER_NOT_FOUND] {full} needs argument {prm['name']!r}")
            value = sqlglot.parse_one(str(default), read="databricks")
        out.append((prm, value))
    return out


def cast(exp: Any, node: Any, type_text: str) -> Any:
    return exp.Cast(this=exp.Paren(this=node.copy()), to=exp.DataType.build(type_text, dialect="databricks"))


def inline(exp: Any, full: str, spec: dict[str, Any], bound: list[tuple[dict[str, Any], Any]], *,
           table: bool, home: tuple[str, str]) -> Any:
    """The body of a SQL function with its parameters replaced: an expression cast to the return type, or (for
    ``table``) a query. Unqualified tables in the body are the function's schema's."""
    import sqlglot

    from ._context import names_a_visible_cte

    body = str(spec.get("routine_definition") or "").strip().rstrip(";")
    if body[:7].upper() == "RETURN " or body[:7].upper() == "RETURN\n":
        body = body[7:].strip()
    try:
        tree = sqlglot.parse_one(body, read="databricks")
    except sqlglot.errors.ParseError as exc:
        raise BadRequest(f"the body of {full} is not valid SQL: {str(exc).splitlines()[0][:200]}") from None
    catalog, schema = home
    name = split_name(full)[-1]
    values = {prm["name"].lower(): cast(exp, value, prm.get("type_text") or "STRING") for prm, value in bound}

    def sub(node: Any) -> Any:
        if isinstance(node, exp.Column) and node.name.lower() in values and (
                not node.table or node.table.lower() == name.lower()) and not node.args.get("db"):
            return values[node.name.lower()].copy()
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier | exp.Anonymous) and not node.catalog:
            if isinstance(node.this, exp.Identifier) and not node.db and names_a_visible_cte(node):
                return node
            if isinstance(node.this, exp.Anonymous) and not node.db:
                return node  # range(n), or a table function of this schema: planning resolves it from the home
            node.set("catalog", exp.to_identifier(catalog))
            if not node.db:
                node.set("db", exp.to_identifier(schema))
        return node

    tree = tree.transform(sub)
    if table:
        if not isinstance(tree, exp.Query):
            raise BadRequest(f"the body of the table function {full} is not a query")
        return tree
    if isinstance(tree, exp.Query):
        tree = exp.Subquery(this=tree)
    return cast(exp, tree, str(spec.get("full_data_type") or spec.get("data_type") or "STRING"))


def qualify_calls(exp: Any, tree: Any, catalog: str, schema: str, known: Callable[[str], bool]) -> Any:
    """Function calls in an inlined body that name a function of its own schema by one or two parts get that
    schema, so they resolve where the body was written rather than in the caller's defaults."""
    def sub(node: Any) -> Any:
        call = scalar_call(exp, node)
        if call is None or len(call[0]) == 3:
            return node
        parts = [catalog, schema][: 3 - len(call[0])] + call[0]
        full = ".".join(quote_part(x) for x in parts)
        if len(call[0]) == 1 and not known(full):
            return node  # a builtin DuckDB knows, or the caller's temporary function
        fn = exp.Anonymous(this=exp.to_identifier(parts[2], quoted=True), expressions=[a.copy() for a in call[1]])
        return exp.Dot(this=exp.Dot(this=exp.to_identifier(parts[0], quoted=True),
                                    expression=exp.to_identifier(parts[1], quoted=True)), expression=fn)

    return tree.transform(sub)


@dataclass
class PythonSite:
    """One planned call of a Python function: the DuckDB function standing for it and what it runs."""

    name: str
    label: str
    code: str
    params: list[str]
    param_types: list[str]  # DuckDB types
    returns: str  # DuckDB type


#: (label, code, parameter names, rows of arguments) -> one result per row; given by the workspace
RunPython = Callable[[str, str, list[str], list[dict[str, Any]]], list[Any]]


def register_python(con: Any, site: PythonSite, run: RunPython) -> None:
    """Make ``site.name(...)`` a DuckDB function that runs the Python function on each chunk of rows in the
    sandbox, one process per chunk."""
    import duckdb

    target = arrow_of(site.returns)
    names = site.params

    def udf(*arrays: Any) -> Any:
        columns = [a.to_pylist() for a in arrays]
        rows = [dict(zip(names, values, strict=False)) for values in zip(*columns, strict=True)] if names else \
            [{} for _ in columns[0]]
        return to_arrow(site.label, run(site.label, site.code, names, rows), target)

    types = [duckdb.sqltype(t) for t in site.param_types] or [duckdb.sqltype("INTEGER")]
    # DuckDB counts the parameters of the Python callable: give it one per argument
    udf.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(f"a{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(types))])
    con.create_function(site.name, udf, types, duckdb.sqltype(site.returns), type="arrow",
                        null_handling="special", side_effects=True)


def identifiers(text: str, params: dict[str, tuple[Any, str]]) -> str:
    """``IDENTIFIER(:name)`` and ``IDENTIFIER('a.b.c')`` replaced by the quoted name they give, before parsing
    (the name of a table or function may come from a statement parameter)."""
    if "identifier" not in text.lower():
        return text
    import sqlglot

    try:
        tokens = sqlglot.tokenize(text, read="databricks")
    except sqlglot.errors.TokenError:
        return text  # the parser reports it
    out, last = [], 0
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.text.upper() == "IDENTIFIER" and i + 3 < len(tokens) and tokens[i + 1].token_type.name == "L_PAREN":
            inner = tokens[i + 2]
            close = i + 3
            if inner.token_type.name == "COLON" and i + 4 < len(tokens):
                key = tokens[i + 3].text
                if key not in params:
                    raise InvalidParameterValue(f"no value given for parameter :{key}")
                value = params[key][0]
                close = i + 4
            elif inner.token_type.name == "STRING":
                value = inner.text
            else:
                i += 1
                continue
            if tokens[close].token_type.name != "R_PAREN":
                raise BadRequest("IDENTIFIER takes one string: a parameter (:name) or a literal")
            if not isinstance(value, str) or not value.strip():
                raise InvalidParameterValue("[INVALID_SQL_SYNTAX] IDENTIFIER needs a non-empty name")
            out.append(text[last:tok.start])
            out.append(".".join("`" + x.replace("`", "``") + "`" for x in split_name(value)))
            last = tokens[close].end + 1
            i = close + 1
            continue
        i += 1
    out.append(text[last:])
    return "".join(out)


def describe_rows(full: str, spec: dict[str, Any], comment: str | None, owner: str | None, *,
                  extended: bool) -> list[str]:
    params = sorted((spec.get("input_params") or {}).get("parameters") or [], key=lambda x: x.get("position", 0))
    table = str(spec.get("data_type") or "").upper() == "TABLE_TYPE"
    rows = [f"Function:    {full}", f"Type:        {'TABLE' if table else 'SCALAR'}"]
    for i, prm in enumerate(params):
        text = f"{prm['name']} {str(prm.get('type_text') or '').upper()}"
        if prm.get("parameter_default") is not None:
            text += f" DEFAULT {prm['parameter_default']}"
        if prm.get("comment"):
            text += f" '{prm['comment']}'"
        rows.append(("Input:       " if i == 0 else "             ") + text)
    if not params:
        rows.append("Input:       ()")
    if table:
        columns = (spec.get("return_params") or {}).get("parameters") or []
        for i, col in enumerate(columns):
            rows.append(("Returns:     " if i == 0 else "             ") + f"{col['name']} "
                        f"{str(col.get('type_text') or '').upper()}")
    else:
        rows.append(f"Returns:     {str(spec.get('full_data_type') or spec.get('data_type') or '').upper()}")
    if comment:
        rows.append(f"Comment:     {comment}")
    if extended:
        language = "SQL" if spec.get("routine_body") == "SQL" else str(spec.get("external_language") or "PYTHON")
        rows += [f"Deterministic: {str(bool(spec.get('is_deterministic', True))).lower()}",
                 f"Data Access: {str(spec.get('sql_data_access') or 'CONTAINS_SQL').replace('_', ' ')}",
                 f"Language:    {language.upper()}", f"Owner:       {owner or ''}", "Body:        " +
                 str(spec.get("routine_definition") or "")]
    return rows
