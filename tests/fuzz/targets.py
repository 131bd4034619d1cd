"""T26: atheris fuzz targets. ``python -m tests.fuzz.targets NAME [libFuzzer flags]`` fuzzes one target;
``tests/fuzz/test_fuzz.py`` runs each briefly in ``make test``, and by hand for longer::

    .venv/bin/python -m tests.fuzz.targets filters -max_total_time=600 -rss_limit_mb=1024 -timeout=5

Each target feeds bytes to one parser of untrusted input and lets through only the errors that parser
declares (a typed 4xx in the product); anything else, a hang or a blow-up of memory is a finding.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import atheris

with atheris.instrument_imports(include=["brickyard"]):
    from brickyard.agents._mcp_server import ManagedMCP
    from brickyard.api._spark._plan import evaluate, parameters, spark_compatible, spark_schema
    from brickyard.api._spark._proto import M
    from brickyard.catalog import Principal
    from brickyard.core.errors import BrickyardError
    from brickyard.core.names import parse_name
    from brickyard.ingest._chunk import Options, chunk
    from brickyard.ingest._parse import ParseError, parse
    from brickyard.models._openai import UpstreamError, sse_events
    from brickyard.sql._context import names_a_visible_cte as _names_a_visible_cte
    from brickyard.sql._functions import identifiers, parse_create
    from brickyard.sql._limits import Limits, guard_sizes
    from brickyard.sql._typed import mismatch, response_format
    from brickyard.vectorsearch._filters import compile_filters
    from brickyard.vectorsearch._rows import RowSchema

COLUMNS = {"id", "cat", "n", "price", "text", "tags"}
SCHEMA = RowSchema({"id": "long", "txt": "string", "n": "int", "x": "double", "ok": "boolean", "d": "date",
                    "tags": "array<string>", "v": "array<float>"}, "id", vector_column="v", dimension=3)


def _text(data: bytes) -> str:
    return atheris.FuzzedDataProvider(data).ConsumeUnicodeNoSurrogates(len(data))


def filters(data: bytes) -> None:
    import numpy as np

    text = _text(data)
    try:
        spec: Any = json.loads(text)
        mask = compile_filters(filters_json=spec, columns=COLUMNS)
    except ValueError:
        try:
            mask = compile_filters(filter_string=text, columns=COLUMNS)
        except BrickyardError:
            return
    except BrickyardError:
        return
    if mask is not None:
        rows = 4
        values = {"id": np.arange(rows, dtype=np.float64), "n": np.arange(rows, dtype=np.float64),
                  "price": np.ones(rows), "cat": np.array(["a", None, "b", "a"], dtype=object),
                  "text": np.array(["x y", "", None, "z"], dtype=object),
                  "tags": np.array([None] * rows, dtype=object)}
        try:
            out = mask(lambda name: values[name], rows)
        except BrickyardError:
            return
        assert out.shape == (rows,)


def names(data: bytes) -> None:
    text = _text(data)
    for levels in (1, 2, 3):
        try:
            name = parse_name(text, levels)
        except BrickyardError:
            continue
        assert len(str(name).split(".")) == levels or "`" in str(name)


def sql_scopes(data: bytes) -> None:
    import sqlglot
    from sqlglot import exp

    text = _text(data)
    try:
        trees = sqlglot.parse(text, read="databricks")
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError, RecursionError, ValueError):
        return
    for tree in trees:
        if tree is None:
            continue
        for table in tree.find_all(exp.Table):
            _names_a_visible_cte(table)
        try:
            guard_sizes(tree, Limits())
        except BrickyardError:
            pass


def documents(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    name = fdp.PickValueInList(["a.html", "a.md", "a.txt", "a.docx", "a.pdf", "a.pptx", "document"])  # no name: sniffed
    raw = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        parsed = parse(raw, name)
    except ParseError:
        return
    options = Options(strategy="structure", size=200, overlap=20).check()
    chunk(parsed, name, options)


def streams(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    size = fdp.ConsumeIntInRange(1, 64)
    raw = fdp.ConsumeBytes(fdp.remaining_bytes())
    try:
        for event in sse_events(raw[i:i + size] for i in range(0, len(raw), size)):
            assert isinstance(event, dict)
    except UpstreamError:
        return


def rows(data: bytes) -> None:
    try:
        row = json.loads(_text(data))
    except ValueError:
        return
    why = SCHEMA.row_problem(row)
    if why is None:
        json.dumps(row).encode("utf-8")  # what passes can be stored and answered


class _NoTools:
    def get(self, p: Any, name: str) -> Any:
        raise BrickyardError("no such function")

    def list(self, p: Any, schema: str) -> list[Any]:
        return []

    def indexes_in(self, p: Any, schema: str) -> list[Any]:
        return []


MCP = ManagedMCP(_NoTools(), _NoTools())  # type: ignore[arg-type]
CALLER = Principal(id="u", kind="user", name="u", groups=frozenset())


def mcp(data: bytes) -> None:
    try:
        message = json.loads(_text(data))
    except ValueError:
        return
    for kind in ("functions", "vector-search"):
        try:
            answer = MCP.handle(CALLER, kind, "c", "s", None, message)
        except BrickyardError:
            continue
        if answer is not None:
            json.dumps(answer)


def sql_functions(data: bytes) -> None:
    """CREATE FUNCTION statements, IDENTIFIER() rewriting and responseFormat schemas: the SQL surfaces issue 21
    parses by hand. Only Brickyard's declared errors may come out."""
    text = _text(data)
    for statement in (text, "CREATE FUNCTION " + text, "CREATE OR REPLACE FUNCTION main.default.f(" + text):
        try:
            parse_create(statement)
        except BrickyardError:
            pass
    try:
        identifiers(text, {"p": ("main.default.t", "STRING"), "q": (text, "STRING")})
    except BrickyardError:
        pass
    try:
        _, schema = response_format(text)
    except BrickyardError:
        return
    if schema is not None:
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        mismatch(value, schema)


def spark_plans(data: bytes) -> None:
    """Spark Connect requests as a client could send them: decoded, their arguments bound and their relations
    run over a small table (the SQL itself is the SQL engine's, fuzzed by sql_scopes)."""
    import pyarrow as pa
    from google.protobuf.message import DecodeError

    try:
        request = M["ExecutePlanRequest"].FromString(data)
    except (DecodeError, RecursionError):
        return

    def run(sql: str, params: list[dict[str, Any]]) -> pa.Table:
        return pa.table({"id": [1, 2, None], "name": ["a", None, "c" * 40]})

    try:
        if request.plan.HasField("command"):
            cmd = request.plan.command.sql_command
            parameters(cmd.input.sql if cmd.HasField("input") else cmd)
        table = spark_compatible(evaluate(request.plan.root, run))
        spark_schema(table.schema, M["DataType"]())
    except BrickyardError:
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {"filters": filters, "names": names, "sql_scopes": sql_scopes,
                                               "documents": documents, "streams": streams, "rows": rows,
                                               "mcp": mcp, "sql_functions": sql_functions, "spark_plans": spark_plans}


def main() -> None:
    name = sys.argv[1]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
