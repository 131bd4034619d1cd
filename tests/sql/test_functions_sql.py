"""UC functions in SQL (issue 21): CREATE [OR REPLACE] [TEMPORARY] FUNCTION with SQL and Python bodies, calls with
positional, named and default arguments and IDENTIFIER(:name), table functions in FROM, DESCRIBE / SHOW / DROP,
EXECUTE checked per call, and the official unitycatalog-ai client in warehouse mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from brickyard.core.errors import (
    AlreadyExists,
    BrickyardError,
    FunctionFailed,
    InvalidParameterValue,
    PermissionDenied,
)
from brickyard.core.sandbox import landlock_abi
from brickyard.workspace import Workspace
from tests.conftest import serve
from tests.sql._shared import ADMIN, workspace
from tests.sql._shared import rows as _rows

needs_landlock = pytest.mark.skipif(landlock_abi() == 0, reason="the kernel offers no Landlock to confine Python")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = workspace(tmp_path_factory.mktemp("fn-sql") / "home")
    admin = w.principal(ADMIN)
    w.sql.execute(admin, "CREATE TABLE main.default.people (id INT, name STRING)")
    w.sql.execute(admin, "INSERT INTO main.default.people VALUES (1, 'ann'), (2, 'bob'), (3, NULL)")
    w.sql.execute(admin, "CREATE FUNCTION main.default.greet(name STRING COMMENT 'who to greet', punct STRING "
                         "DEFAULT '!' COMMENT 'the end') RETURNS STRING COMMENT 'Says hello.' RETURN concat('hi ', name, punct)")
    w.sql.execute(admin, "CREATE FUNCTION main.default.upto(n INT COMMENT 'the highest id') RETURNS TABLE (id INT, name STRING) COMMENT 'People up to an id.' "
                         "RETURN SELECT id, name FROM people WHERE id <= n")
    yield w
    w.close()


def test_sql_functions_are_called_positionally_by_name_and_with_defaults(ws: Workspace) -> None:
    assert _rows(ws, "SELECT main.default.greet('x')") == [{"main.default.greet('x')": "hi x!"}]
    assert _rows(ws, "SELECT id, greet(name, punct => '?') AS g FROM people ORDER BY id") == [
        {"id": 1, "g": "hi ann?"}, {"id": 2, "g": "hi bob?"}, {"id": 3, "g": None}]
    assert _rows(ws, "SELECT default.greet(punct => '.', name => 'z') AS g") == [{"g": "hi z."}]
    # the statement unitycatalog-ai sends: the function's name is a parameter
    got = _rows(ws, "SELECT IDENTIFIER(:function_name)(:name) AS g", params=[
        {"name": "function_name", "value": "main.default.greet"}, {"name": "name", "value": "it's"}])
    assert got == [{"g": "hi it's!"}]  # bound, never spliced
    # a function's argument may call a function, and a builtin's argument too
    assert _rows(ws, "SELECT upper(greet(greet('a'))) AS g") == [{"g": "HI HI A!!"}]


def test_table_functions_in_from(ws: Workspace) -> None:
    assert _rows(ws, "SELECT * FROM main.default.upto(2) ORDER BY id") == [{"id": 1, "name": "ann"},
                                                                          {"id": 2, "name": "bob"}]
    joined = _rows(ws, "SELECT u.name, greet(u.name) AS g FROM upto(n => 1) AS u JOIN people p ON p.id = u.id")
    assert joined == [{"name": "ann", "g": "hi ann!"}]
    with pytest.raises(InvalidParameterValue, match="NOT_A_TABLE_FUNCTION"):
        _rows(ws, "SELECT upto(1)")
    with pytest.raises(InvalidParameterValue, match="NOT_A_TABLE_FUNCTION"):
        _rows(ws, "SELECT * FROM greet('x')")


def test_table_function_bodies_call_builtin_and_sibling_table_functions(ws: Workspace) -> None:
    """A one-part table function in a body is the body's schema's when one of that name exists there, else
    a builtin (range): it is not taken for a function of the body's schema that does not exist."""
    admin = ws.principal(ADMIN)
    ws.sql.execute(admin, "CREATE OR REPLACE FUNCTION main.default.counting(n INT) RETURNS TABLE (i BIGINT) "
                          "RETURN SELECT * FROM range(n) AS t(i)")
    ws.sql.execute(admin, "CREATE OR REPLACE FUNCTION main.default.first_people(n INT) RETURNS TABLE (id INT) "
                          "RETURN SELECT id FROM upto(n)")
    assert _rows(ws, "SELECT * FROM main.default.counting(3) ORDER BY i") == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert _rows(ws, "SELECT * FROM main.default.first_people(2) ORDER BY id") == [{"id": 1}, {"id": 2}]
    assert _rows(ws, "SELECT id FROM range(2, 10, 3)") == [{"id": 2}, {"id": 5}, {"id": 8}]
    with pytest.raises(InvalidParameterValue, match="WRONG_NUM_ARGS"):
        _rows(ws, "SELECT * FROM range()")


def test_describe_show_replace_and_drop(ws: Workspace) -> None:
    desc = [r["function_desc"] for r in _rows(ws, "DESCRIBE FUNCTION EXTENDED main.default.greet")]
    assert desc[0].endswith("main.default.greet") and any("punct STRING DEFAULT '!' 'the end'" in d for d in desc)
    assert any(d.endswith("Says hello.") for d in desc) and any("concat('hi ', name, punct)" in d for d in desc)
    assert {"main.default.greet", "main.default.upto"} <= {r["function"] for r in _rows(ws, "SHOW USER FUNCTIONS")}
    admin = "admin@example.com"
    _rows(ws, "CREATE FUNCTION main.default.tmp(x INT) RETURNS INT RETURN x + 1", admin)
    with pytest.raises(AlreadyExists, match="ROUTINE_ALREADY_EXISTS"):
        _rows(ws, "CREATE FUNCTION main.default.tmp(x INT) RETURNS INT RETURN x + 2")
    _rows(ws, "CREATE FUNCTION IF NOT EXISTS main.default.tmp(x INT) RETURNS INT RETURN x + 2")
    assert _rows(ws, "SELECT tmp(1) AS v") == [{"v": 2}]
    _rows(ws, "CREATE OR REPLACE FUNCTION main.default.tmp(x INT, y INT DEFAULT 10) RETURNS BIGINT RETURN x * y")
    assert _rows(ws, "SELECT tmp(2) AS v") == [{"v": 20}]
    info = ws.catalog.get(ws.principal(admin), "function", "main.default.tmp").spec
    assert [p["name"] for p in info["input_params"]["parameters"]] == ["x", "y"] and info["data_type"] == "LONG"
    _rows(ws, "DROP FUNCTION main.default.tmp")
    _rows(ws, "DROP FUNCTION IF EXISTS main.default.tmp")
    with pytest.raises(BrickyardError, match="tmp"):
        _rows(ws, "SELECT main.default.tmp(1)")


def test_temporary_functions_belong_to_their_creator(ws: Workspace) -> None:
    _rows(ws, "CREATE TEMPORARY FUNCTION twice(x INT) RETURNS INT RETURN x * 2")
    assert _rows(ws, "SELECT twice(21) AS v") == [{"v": 42}]
    with pytest.raises(BrickyardError):
        _rows(ws, "SELECT twice(21) AS v", "bob@example.com")
    with pytest.raises(InvalidParameterValue, match="one-part"):
        _rows(ws, "CREATE TEMPORARY FUNCTION main.default.t2(x INT) RETURNS INT RETURN x")
    _rows(ws, "DROP TEMPORARY FUNCTION twice")
    with pytest.raises(BrickyardError):
        _rows(ws, "SELECT twice(1)")


def test_execute_is_checked_per_call_and_bodies_read_as_the_caller(ws: Workspace) -> None:
    admin = ws.principal("admin@example.com")
    ws.catalog.update_grants(admin, "catalog", "main", [{"principal": "bob@example.com", "add": ["USE_CATALOG"]}])
    ws.catalog.update_grants(admin, "schema", "main.default", [{"principal": "bob@example.com", "add": ["USE_SCHEMA"]}])
    with pytest.raises(PermissionDenied, match="main.default.greet"):
        _rows(ws, "SELECT main.default.greet('b')", "bob@example.com")
    ws.catalog.update_grants(admin, "function", "main.default.greet", [{"principal": "bob@example.com",
                                                                        "add": ["EXECUTE"]}])
    assert _rows(ws, "SELECT main.default.greet('b') AS g", "bob@example.com") == [{"g": "hi b!"}]
    ws.catalog.update_grants(admin, "function", "main.default.upto", [{"principal": "bob@example.com",
                                                                       "add": ["EXECUTE"]}])
    with pytest.raises(PermissionDenied, match="main.default.people"):  # EXECUTE, but not SELECT on what it reads
        _rows(ws, "SELECT * FROM main.default.upto(3)", "bob@example.com")
    with pytest.raises(PermissionDenied):  # replacing a function is its owner's (MANAGE), not an EXECUTE holder's
        _rows(ws, "CREATE OR REPLACE FUNCTION main.default.greet(name STRING) RETURNS STRING RETURN 'pwned'",
              "bob@example.com")
    assert _rows(ws, "SELECT greet('c') AS g") == [{"g": "hi c!"}]


@pytest.mark.parametrize(("sql", "error"), [
    ("SELECT greet(1, 2, 3)", "WRONG_NUM_ARGS"),
    ("SELECT greet(nope => 1)", "UNRECOGNIZED_PARAMETER_NAME"),
    ("SELECT greet(punct => '!', 'x')", "UNEXPECTED_POSITIONAL_ARGUMENT"),
    ("SELECT greet(name => 'a', name => 'b')", "DUPLICATE_ROUTINE_PARAMETER_ASSIGNMENT"),
    ("SELECT greet()", "REQUIRED_PARAMETER_NOT_FOUND"),
    ("CREATE FUNCTION main.default.bad(x NOPE) RETURNS INT RETURN x", "UNSUPPORTED_DATATYPE"),
    ("CREATE FUNCTION main.default.bad(x INT) RETURNS INT RETURN (x +", "PARSE_SYNTAX_ERROR"),
    ("CREATE FUNCTION main.default.bad(x INT) RETURNS TABLE (a INT) RETURN x + 1", "must be a query"),
    ("CREATE FUNCTION main.default.bad(x INT) RETURNS TABLE (a INT) LANGUAGE PYTHON AS $$ return x $$",
     "Python table functions"),
    ("CREATE FUNCTION main.default.bad(x INT) RETURNS INT LANGUAGE PYTHON AS $$ return x", "must end with"),
    ("CREATE FUNCTION main.default.bad(x INT, x INT) RETURNS INT RETURN 1", "repeated"),
    ("CREATE FUNCTION main.default.bad(x INT) RETURNS INT LANGUAGE COBOL AS $$ x $$", "COBOL"),
])
def test_bad_function_statements_are_clear_errors(ws: Workspace, sql: str, error: str) -> None:
    with pytest.raises(BrickyardError, match=error):
        _rows(ws, sql)
    assert not ws.catalog.exists("function", "main.default.bad")


def test_recursive_functions_are_refused(ws: Workspace) -> None:
    _rows(ws, "CREATE FUNCTION main.default.ping(x INT) RETURNS INT RETURN pong(x)")
    _rows(ws, "CREATE FUNCTION main.default.pong(x INT) RETURNS INT RETURN ping(x)")
    with pytest.raises(InvalidParameterValue, match="ROUTINE_RECURSION"):
        _rows(ws, "SELECT ping(1)")


@needs_landlock
def test_python_functions_run_in_the_sandbox_a_chunk_at_a_time(ws: Workspace) -> None:
    _rows(ws, "CREATE OR REPLACE FUNCTION main.default.shout(s STRING, times INT DEFAULT 2) RETURNS STRING "
              "LANGUAGE PYTHON COMMENT 'Shouts.' AS $$\nif s is None:\n    return None\nreturn (s.upper() + ' ') * times\n$$")
    assert _rows(ws, "SELECT id, shout(name) AS s FROM people ORDER BY id") == [
        {"id": 1, "s": "ANN ANN "}, {"id": 2, "s": "BOB BOB "}, {"id": 3, "s": None}]
    many = _rows(ws, "SELECT count(DISTINCT shout(CAST(i AS STRING), 1)) AS n FROM "
                     "(SELECT explode(sequence(1, 5000)) AS i)")
    assert many == [{"n": 5000}]  # 5000 rows, in chunks, each row its own answer
    _rows(ws, "CREATE OR REPLACE FUNCTION main.default.boom(x INT) RETURNS INT LANGUAGE PYTHON AS $$\n"
              "y = 10\nreturn y // x\n$$")
    with pytest.raises(FunctionFailed, match=r"main.default.boom raised ZeroDivisionError at line 2 of its body"):
        _rows(ws, "SELECT boom(id - 1) FROM people")
    _rows(ws, "CREATE OR REPLACE FUNCTION main.default.liar(x INT) RETURNS INT LANGUAGE PYTHON AS $$\nreturn 'x'\n$$")
    with pytest.raises(FunctionFailed, match="UDF_RETURN_TYPE_MISMATCH"):
        _rows(ws, "SELECT liar(1)")


@needs_landlock
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the toolkit's pydantic class-based config
def test_unitycatalog_ai_in_warehouse_mode_and_its_toolkit(ws: Workspace, tmp_path: Path) -> None:
    """The official client, unchanged: its statement (``generate_sql_function_body``, what
    ``create_python_function`` hands to Spark) through the Statement Execution API, then ``execute_function`` in
    warehouse mode for a scalar and a table function, and a LangChain tool from ``UCFunctionToolkit``."""
    from databricks.sdk import WorkspaceClient
    from unitycatalog.ai.core.databricks import DatabricksFunctionClient
    from unitycatalog.ai.core.utils.callable_utils import generate_sql_function_body
    from unitycatalog.ai.langchain.toolkit import UCFunctionToolkit

    def word_count(text: str, minimum: int) -> int:
        """Counts the words of a text that are at least `minimum` letters long.

        Args:
            text: the text
            minimum: the shortest word that counts
        """
        return len([w for w in text.split() if len(w) >= minimum])

    with serve(ws) as url:
        token = ws.create_token("admin@example.com", admin=True)
        w = WorkspaceClient(host=url, token=token)
        statement = generate_sql_function_body(word_count, "main", "default", replace=True)
        done = w.statement_execution.execute_statement(statement=statement, warehouse_id="local", wait_timeout="30s")
        assert done.status.state.value == "SUCCEEDED", done.status
        client = DatabricksFunctionClient(client=w, warehouse_id="local")
        info = client.get_function("main.default.word_count")
        assert [p.name for p in info.input_params.parameters] == ["text", "minimum"]
        result = client.execute_function("main.default.word_count", {"text": "a bb ccc dddd", "minimum": 3})
        assert result.error is None and str(result.value) == "2"
        table = client.execute_function("main.default.upto", {"n": 2})
        assert table.error is None and table.format == "CSV" and "ann" in table.value and "bob" in table.value
        tools = UCFunctionToolkit(function_names=["main.default.word_count", "main.default.greet"], client=client).tools
        by_name = {t.name: t for t in tools}
        assert "2" in by_name["main__default__word_count"].invoke({"text": "one three five", "minimum": 4})
        assert "hi tools!" in by_name["main__default__greet"].invoke({"name": "tools", "punct": "!"})
