"""Issue 17, point 10: a table name is a CTE reference only where that CTE is in scope. A CTE of another
query with the same name must not hide a table (or one of DuckDB's built-in views) from the grant check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from brickyard.core.errors import BadRequest, NotFound, PermissionDenied
from brickyard.core.settings import Settings
from brickyard.sql._context import names_a_visible_cte as _names_a_visible_cte
from brickyard.workspace import Workspace


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = Workspace(Settings(home=tmp_path / "home"))
    admin = w.ensure_user("admin@example.com", admin=True)
    w.ensure_user("bob@example.com")
    w.tables.create(admin, "main.default.secret", columns=[{"name": "x", "type_text": "string"}])
    w.tables.write(admin, "main.default.secret", [{"x": "classified"}])
    yield w
    w.close()


@pytest.mark.parametrize("statement", [
    "SELECT * FROM (WITH sqlite_master AS (SELECT 1) SELECT 1) q, sqlite_master",
    "SELECT * FROM (WITH secret AS (SELECT 1) SELECT 1) q, secret",
    "WITH secret AS (SELECT * FROM secret) SELECT * FROM secret",
    "WITH b AS (SELECT * FROM secret), secret AS (SELECT 1) SELECT * FROM b",
    "WITH RECURSIVE sqlite_master AS (SELECT * FROM sqlite_master) SELECT * FROM sqlite_master",
    "WITH RECURSIVE secret AS (SELECT * FROM secret) SELECT * FROM secret",
])
def test_a_cte_out_of_scope_does_not_skip_the_grant_check(ws: Workspace, statement: str) -> None:
    bob = ws.principal("bob@example.com")
    with pytest.raises((PermissionDenied, NotFound, BadRequest)) as refused:
        ws.sql.execute(bob, statement, catalog="main", schema="default")
    assert "classified" not in refused.value.message and "__t" not in refused.value.message


def test_ctes_in_scope_still_work(ws: Workspace) -> None:
    admin = ws.principal("admin@example.com")
    for statement, expected in [
        ("WITH a AS (SELECT 1 AS v) SELECT v FROM a", [1]),
        ("WITH a AS (SELECT 1 AS v), b AS (SELECT v + 1 AS v FROM a) SELECT v FROM b", [2]),
        ("WITH RECURSIVE r AS (SELECT 1 AS v UNION ALL SELECT v + 1 FROM r WHERE v < 3) SELECT v FROM r ORDER BY v",
         [1, 2, 3]),
        ("WITH secret AS (SELECT 'shadow' AS x) SELECT x FROM secret", ["shadow"]),
        ("SELECT x FROM secret", ["classified"]),
    ]:
        table = ws.sql.execute(admin, statement, catalog="main", schema="default").table
        assert table.column(0).to_pylist() == expected, statement


NAMES = st.sampled_from(["a", "b", "t"])


@st.composite
def queries(draw: st.DrawFn, depth: int = 0) -> str:
    """Random nested SELECTs with WITH clauses, derived tables and references to names that may or may not
    be CTEs in scope."""
    ctes = []
    for name in draw(st.lists(NAMES, max_size=2, unique=True)):
        body = draw(queries(depth + 1)) if depth < 2 and draw(st.booleans()) else f"SELECT * FROM {draw(NAMES)}"  # noqa: S608
        ctes.append(f"{name} AS ({body})")
    source = f"({draw(queries(depth + 1))}) q" if depth < 2 and draw(st.booleans()) else draw(NAMES)
    extra = f", {draw(NAMES)}" if draw(st.booleans()) else ""
    with_ = f"WITH {', '.join(ctes)} " if ctes else ""
    return f"{with_}SELECT * FROM {source}{extra}"  # noqa: S608


@given(queries())
def test_scopes_agree_with_the_sql_parsers_own(statement: str) -> None:
    """Differential: for queries without RECURSIVE, our decision equals sqlglot's scope analysis."""
    tree = sqlglot.parse_one(statement, read="databricks")
    oracle: dict[int, bool] = {}
    for scope in traverse_scope(tree):
        for table in scope.tables:
            source = scope.sources.get(table.alias_or_name)
            oracle[id(table)] = source is not None and not isinstance(source, exp.Table)
    for table in tree.find_all(exp.Table):
        if id(table) in oracle:
            assert _names_a_visible_cte(table) == oracle[id(table)], (statement, table.name)
