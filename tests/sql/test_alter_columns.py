"""ALTER TABLE ADD / DROP / RENAME COLUMN with Delta schema evolution (issue 21), and a Delta Sync index following
the source's added and dropped columns: an added column reaches the index through the change feed, a dropped one
leaves it at the next sync (a rebuild), and a column the index needs cannot silently go."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from brickyard.core.errors import BrickyardError, InvalidParameterValue, PermissionDenied
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.sql._shared import synced_index


@pytest.fixture
def ws(tmp_path: Any) -> Iterator[Workspace]:
    w = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1, access_log="off", monitor_interval_seconds=0))
    w.ensure_user("admin@example.com", admin=True)
    w.ensure_user("bob@example.com")
    yield w
    w.close()


def _rows(ws: Workspace, sql: str, user: str = "admin@example.com") -> list[dict[str, Any]]:
    return ws.sql.execute(ws.principal(user), sql).table.to_pylist()


def test_columns_are_added_dropped_and_renamed(ws: Workspace) -> None:
    _rows(ws, "CREATE TABLE main.default.t (id INT, a STRING)")
    _rows(ws, "INSERT INTO main.default.t VALUES (1, 'x')")
    _rows(ws, "ALTER TABLE main.default.t ADD COLUMN b DOUBLE COMMENT 'new'")
    _rows(ws, "ALTER TABLE main.default.t ADD COLUMNS (c ARRAY<STRING>, d BOOLEAN)")
    _rows(ws, "INSERT INTO main.default.t VALUES (2, 'y', 2.5, ARRAY('p'), true)")
    assert _rows(ws, "SELECT * FROM main.default.t ORDER BY id") == [
        {"id": 1, "a": "x", "b": None, "c": None, "d": None}, {"id": 2, "a": "y", "b": 2.5, "c": ["p"], "d": True}]
    _rows(ws, "ALTER TABLE main.default.t RENAME COLUMN a TO name")
    _rows(ws, "ALTER TABLE main.default.t DROP COLUMN c")
    assert _rows(ws, "SELECT * FROM main.default.t ORDER BY id") == [
        {"id": 1, "name": "x", "b": None, "d": None}, {"id": 2, "name": "y", "b": 2.5, "d": True}]
    before = _rows(ws, "SELECT * FROM main.default.t VERSION AS OF 1")  # history keeps the old shape
    assert before == [{"id": 1, "a": "x"}]
    for sql, why in [("ALTER TABLE main.default.t ADD COLUMN b INT", "FIELDS_ALREADY_EXISTS"),
                     ("ALTER TABLE main.default.t DROP COLUMN nope", "UNRESOLVED_COLUMN"),
                     ("ALTER TABLE main.default.t RENAME COLUMN name TO b", "FIELDS_ALREADY_EXISTS"),
                     ("ALTER TABLE main.default.t ADD COLUMN e NOTATYPE", "")]:
        with pytest.raises(BrickyardError, match=why or None):
            _rows(ws, sql)
    _rows(ws, "GRANT MODIFY ON TABLE main.default.t TO `bob@example.com`")
    with pytest.raises(PermissionDenied):  # changing a table's schema is its owner's
        _rows(ws, "ALTER TABLE main.default.t ADD COLUMN z INT", "bob@example.com")


def test_a_delta_sync_index_follows_added_and_dropped_columns(ws: Workspace) -> None:
    admin = ws.principal("admin@example.com")
    _rows(ws, "CREATE TABLE main.default.docs (id BIGINT, text STRING, extra STRING)")
    _rows(ws, "INSERT INTO main.default.docs VALUES (1, 'rate limits', 'e1'), (2, 'usage tracking', 'e2')")
    synced_index(ws, admin, "main.default.docs_idx", "main.default.docs", "text")

    def columns() -> set[str]:
        return set(ws.vectorsearch.columns(admin, "main.default.docs_idx"))

    def hit(column: str) -> Any:
        out = ws.vectorsearch.query(admin, "main.default.docs_idx", {"query_text": "rate", "columns": ["id", column],
                                                                     "num_results": 1})
        return out["result"]["data_array"][0][1]

    assert {"id", "text", "extra"} <= columns()
    _rows(ws, "ALTER TABLE main.default.docs ADD COLUMN source STRING")
    _rows(ws, "UPDATE main.default.docs SET source = 'manual' WHERE id = 1")
    result = ws.vectorsearch.sync_now("main.default.docs_idx")
    assert result["mode"] == "incremental" and "source" in columns()
    assert hit("source") == "manual"
    _rows(ws, "ALTER TABLE main.default.docs DROP COLUMN extra")
    result = ws.vectorsearch.sync_now("main.default.docs_idx")
    assert result["mode"] == "full" and "extra" not in columns()
    with pytest.raises(InvalidParameterValue):  # the column it embeds cannot quietly disappear from the index
        hit("extra")
    _rows(ws, "ALTER TABLE main.default.docs DROP COLUMN text")
    with pytest.raises(BrickyardError, match="no longer has column"):
        ws.vectorsearch.sync_now("main.default.docs_idx")
    assert hit("source") == "manual"  # the index keeps serving what it has
