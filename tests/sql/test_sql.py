"""SQL through the engine and the statement store (no HTTP)."""

from __future__ import annotations

import pytest

from brickyard.catalog import Principal
from brickyard.core.errors import BadRequest, InvalidParameterValue, PermissionDenied
from brickyard.workspace import Workspace


@pytest.fixture
def admin(ws_sqlite: Workspace) -> Principal:
    p = ws_sqlite.ensure_user("admin", admin=True)
    ws_sqlite.sql.execute(p, "CREATE TABLE main.default.t (id BIGINT NOT NULL, txt STRING COMMENT 'words', x DOUBLE)")
    ws_sqlite.sql.execute(p, "INSERT INTO t VALUES (1, 'a', 1.5), (2, 'b', NULL), (3, 'c', 3.0)")
    return p


def rows(ws: Workspace, p: Principal, sql: str, **kw: object) -> list[tuple]:
    table = ws.sql.execute(p, sql, **kw).table  # type: ignore[arg-type]
    return [tuple(r.values()) for r in table.to_pylist()]


def test_select_with_parameters_and_time_travel(ws_sqlite: Workspace, admin: Principal) -> None:
    assert rows(ws_sqlite, admin, "SELECT id FROM t WHERE txt = :t", parameters=[{"name": "t", "value": "b"}]) == [(2,)]
    assert rows(ws_sqlite, admin, "SELECT count(*) FROM t WHERE id > :n",
                parameters=[{"name": "n", "value": "1", "type": "INT"}]) == [(2,)]
    # A parameter is a value, never SQL.
    assert rows(ws_sqlite, admin, "SELECT count(*) FROM t WHERE txt = :t",
                parameters=[{"name": "t", "value": "x' OR '1'='1"}]) == [(0,)]
    ws_sqlite.sql.execute(admin, "DELETE FROM t WHERE id = 3")
    assert rows(ws_sqlite, admin, "SELECT count(*) FROM t") == [(2,)]
    assert rows(ws_sqlite, admin, "SELECT count(*) FROM t VERSION AS OF 1") == [(3,)]
    with pytest.raises(InvalidParameterValue, match="no value given"):
        ws_sqlite.sql.execute(admin, "SELECT :missing")


def test_dml_matrix(ws_sqlite: Workspace, admin: Principal) -> None:
    ws = ws_sqlite
    ws.sql.execute(admin, "UPDATE t SET txt = upper(txt), x = x * 2 WHERE id <= 2")
    ws.sql.execute(admin, "INSERT INTO t (id, txt) SELECT id + 10, txt FROM t WHERE id = 1")
    ws.sql.execute(admin, "MERGE INTO t AS tgt USING (SELECT 2 AS id, 'merged' AS txt, 0.0 AS x "
                          "UNION ALL SELECT 20, 'new', 1.0) AS src ON tgt.id = src.id "
                          "WHEN MATCHED AND src.txt = 'merged' THEN UPDATE SET txt = src.txt "
                          "WHEN NOT MATCHED THEN INSERT (id, txt, x) VALUES (src.id, src.txt, src.x)")
    ws.sql.execute(admin, "MERGE INTO t USING (SELECT 3 AS id) AS s ON t.id = s.id WHEN MATCHED THEN DELETE")
    assert rows(ws, admin, "SELECT id, txt, x FROM t ORDER BY id") == [
        (1, "A", 3.0), (2, "merged", None), (11, "A", None), (20, "new", 1.0)]
    ws.sql.execute(admin, "INSERT OVERWRITE t SELECT * FROM t WHERE id < 10")
    assert rows(ws, admin, "SELECT count(*) FROM t") == [(2,)]
    ws.sql.execute(admin, "CREATE TABLE main.default.copy AS SELECT id, txt FROM t")
    assert rows(ws, admin, "SELECT count(*) FROM main.default.copy") == [(2,)]
    up = ws.catalog.lineage(admin, "table", "main.default.copy")["upstreams"]
    assert [u["full_name"] for u in up] == ["main.default.t"]


def test_catalog_statements(ws_sqlite: Workspace, admin: Principal) -> None:
    ws = ws_sqlite
    ws.ensure_user("bob")
    assert rows(ws, admin, "SHOW TABLES IN main.default") == [("t",)]
    assert ("main",) in rows(ws, admin, "SHOW CATALOGS")
    desc = rows(ws, admin, "DESCRIBE TABLE t")
    assert desc[1] == ("txt", "string", "words")
    ws.sql.execute(admin, "GRANT USE CATALOG ON CATALOG main TO `bob`")
    ws.sql.execute(admin, "GRANT USE SCHEMA, SELECT ON SCHEMA main.default TO `bob`")
    assert ("bob", "SELECT", "SCHEMA", "main.default") in rows(ws, admin, "SHOW GRANTS ON SCHEMA main.default")
    bob = ws.principal("bob")
    assert rows(ws, bob, "SELECT count(*) FROM t") == [(3,)]
    with pytest.raises(PermissionDenied, match="MODIFY"):
        ws.sql.execute(bob, "DELETE FROM t")
    with pytest.raises(PermissionDenied):
        ws.sql.execute(bob, "GRANT MODIFY ON TABLE main.default.t TO `bob`")
    ws.sql.execute(admin, "REVOKE SELECT ON SCHEMA main.default FROM `bob`")
    with pytest.raises(PermissionDenied):
        ws.sql.execute(bob, "SELECT * FROM t")
    assert rows(ws, admin, "SELECT count(*) FROM system.access.audit WHERE response.status_code = 403")[0][0] >= 2
    ws.sql.execute(admin, "DROP TABLE IF EXISTS main.default.nope")
    ws.sql.execute(admin, "DROP TABLE t")
    assert rows(ws, admin, "SHOW TABLES") == []


@pytest.mark.parametrize("statement, fragment", [
    ("SELECT * FROM read_csv('/etc/passwd')", "table functions"),
    ("SELECT * FROM read_parquet('x.parquet')", "table functions"),
    ("SELECT 1; DROP TABLE t", "one statement"),
    ("SELEC 1", "PARSE_SYNTAX_ERROR"),
    ("COPY t TO '/tmp/x.csv'", "not supported|PARSE_SYNTAX_ERROR"),
    ("ATTACH '/tmp/x.db'", "not supported|PARSE_SYNTAX_ERROR"),
    ("SELECT * FROM main.default.`t; DROP TABLE t`", "not a valid name"),
    ("SELECT * FROM \"../../etc\".x.y", "not a valid name"),
    ("USE CATALOG main", "USE is not supported"),
])
def test_hostile_or_unsupported_statements(ws_sqlite: Workspace, admin: Principal, statement: str, fragment: str) -> None:
    from brickyard.core.errors import BrickyardError

    with pytest.raises(BrickyardError, match=fragment):
        ws_sqlite.sql.execute(admin, statement)
    assert rows(ws_sqlite, admin, "SELECT count(*) FROM t") == [(3,)]


def test_statement_store_chunks_and_states(ws_sqlite: Workspace, admin: Principal) -> None:
    store = ws_sqlite.statements
    store.chunk_rows = 2
    r = store.submit(admin, "SELECT id, txt FROM t ORDER BY id", wait_timeout="10s")
    assert r["status"]["state"] == "SUCCEEDED"
    assert r["manifest"]["total_row_count"] == 3 and r["manifest"]["total_chunk_count"] == 2
    assert r["result"]["data_array"] == [["1", "a"], ["2", "b"]] and r["result"]["next_chunk_index"] == 1
    assert store.chunk(admin, r["statement_id"], 1)["data_array"] == [["3", "c"]]
    failed = store.submit(admin, "SELECT * FROM nope", wait_timeout="10s")
    assert failed["status"]["state"] == "FAILED" and "does not exist" in failed["status"]["error"]["message"]
    other = ws_sqlite.ensure_user("other")
    with pytest.raises(Exception, match="does not exist"):
        store.get(other, r["statement_id"])
    with pytest.raises(InvalidParameterValue, match="wait_timeout"):
        store.submit(admin, "SELECT 1", wait_timeout="3s")
    async_r = store.submit(admin, "SELECT 42", wait_timeout="0s")
    import time

    for _ in range(200):
        if store.get(admin, async_r["statement_id"])["status"]["state"] == "SUCCEEDED":
            break
        time.sleep(0.01)
    assert store.get(admin, async_r["statement_id"])["result"]["data_array"] == [["42"]]


def test_bad_request_errors_are_clear(ws_sqlite: Workspace, admin: Principal) -> None:
    with pytest.raises(BadRequest, match="subqueries"):
        ws_sqlite.sql.execute(admin, "DELETE FROM t WHERE id IN (SELECT id FROM t)")
    with pytest.raises(InvalidParameterValue, match="gives 1 values per row but 2"):
        ws_sqlite.sql.execute(admin, "INSERT INTO t (id, txt) SELECT 1")


def test_drop_catalog_with_ownership_checks_and_cascade(ws_sqlite: Workspace, admin: Principal) -> None:
    """Issue 17 point 12: DROP CATALOG [IF EXISTS] x [CASCADE], as docs/sql.md says."""
    from brickyard.core.errors import InvalidState

    ws = ws_sqlite
    bob = ws.ensure_user("bob")
    ws.sql.execute(admin, "CREATE CATALOG other")
    ws.sql.execute(admin, "GRANT USE_CATALOG ON CATALOG main TO bob")
    with pytest.raises(PermissionDenied):
        ws.sql.execute(bob, "DROP CATALOG main CASCADE")
    with pytest.raises(InvalidState, match="CASCADE"):
        ws.sql.execute(admin, "DROP CATALOG main")
    storage = ws.catalog.get(admin, "table", "main.default.t").spec["storage_location"]
    ws.sql.execute(admin, "DROP CATALOG main CASCADE")
    assert not ws.catalog.exists("catalog", "main") and not ws.catalog.exists("table", "main.default.t")
    from pathlib import Path

    assert not Path(storage).exists()
    ws.sql.execute(admin, "DROP CATALOG IF EXISTS main")
    ws.sql.execute(admin, "drop catalog `other` restrict;")
    assert not ws.catalog.exists("catalog", "other")
    with pytest.raises(Exception, match="system"):
        ws.sql.execute(admin, "DROP CATALOG system CASCADE")
    ws.sql.execute(admin, "CREATE CATALOG bobs")
    ws.catalog.update(admin, "catalog", "bobs", owner="bob")
    ws.sql.execute(bob, "DROP CATALOG bobs")  # the owner may
    assert not ws.catalog.exists("catalog", "bobs")
