"""Views, dynamic views, row filters and column masks (issue 21), and a matrix of users x read paths proving no
path bypasses a filter or a mask: SQL reads, joins, time travel, CTAS and INSERT ... SELECT copies, MERGE
sources, views over the table, UC table functions, ai_query over the table, ``Tables.read`` (the table read CLI
and evaluation datasets), the change feed, and a Delta Sync index built from the table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from brickyard.core.errors import BrickyardError, InvalidParameterValue, PermissionDenied
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import wait_deployed

ADMIN, BOB, EVE = "admin@example.com", "bob@example.com", "eve@example.com"
ALL_IDS = [1, 2, 3, 4]
US_IDS = [1, 3]  # what bob may see: US rows only (the row filter), e-mails masked


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = Workspace(Settings(home=tmp_path_factory.mktemp("policies") / "home", enable_fake_models=1, access_log="off",
                           monitor_interval_seconds=0))
    admin = w.ensure_user(ADMIN, admin=True)
    for user in (BOB, EVE):
        w.ensure_user(user)
    w.serving.create(admin, {"name": "chat", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]}})
    wait_deployed(w, admin, "chat")
    for user in (BOB, EVE):  # both may query the model: only the table's grants and policies differ
        w.serving.set_acl(admin, w.serving.get(admin, "chat")["id"],
                          [{"user_name": user, "permission_level": "CAN_QUERY"}], replace=False)
    for sql in [
        "CREATE SCHEMA main.shop",
        "CREATE TABLE main.shop.sales (id BIGINT, region STRING, amount DOUBLE, email STRING)",
        "INSERT INTO main.shop.sales VALUES (1, 'US', 10.0, 'ann@x.com'), (2, 'EU', 20.0, 'bea@y.com'), "
        "(3, 'US', 30.0, 'cid@z.com'), (4, 'EU', 40.0, 'dan@w.com')",
        "CREATE FUNCTION main.shop.us_only(r STRING) RETURNS BOOLEAN "
        "RETURN is_account_group_member('admins') OR r = 'US'",
        "CREATE FUNCTION main.shop.hide(e STRING) RETURNS STRING "
        "RETURN CASE WHEN is_account_group_member('admins') THEN e ELSE concat('***@', split_part(e, '@', 2)) END",
        "ALTER TABLE main.shop.sales SET ROW FILTER main.shop.us_only ON (region)",
        "ALTER TABLE main.shop.sales ALTER COLUMN email SET MASK main.shop.hide",
        "GRANT USE_SCHEMA ON SCHEMA main.shop TO `bob@example.com`",
        "GRANT USE_SCHEMA ON SCHEMA main.shop TO `eve@example.com`",
        "GRANT SELECT ON TABLE main.shop.sales TO `bob@example.com`",
        "CREATE VIEW main.shop.big AS SELECT id, email FROM main.shop.sales WHERE amount >= 20",
        "GRANT SELECT ON TABLE main.shop.big TO `bob@example.com`",
        "CREATE FUNCTION main.shop.above(n DOUBLE) RETURNS TABLE (id BIGINT, email STRING) "
        "RETURN SELECT id, email FROM main.shop.sales WHERE amount > n",
        "GRANT EXECUTE ON FUNCTION main.shop.above TO `bob@example.com`",
    ]:
        w.sql.execute(admin, sql)
    yield w
    w.close()


def _rows(ws: Workspace, sql: str, user: str = ADMIN, table: str | None = None) -> list[dict[str, Any]]:
    """Run ``sql`` as ``user``; ``table`` is the parameter :t, a table's name for ``IDENTIFIER(:t)``."""
    params = [{"name": "t", "value": table}] if table else None
    return ws.sql.execute(ws.principal(user), sql, parameters=params).table.to_pylist()


def _ids(rows: list[dict[str, Any]]) -> list[int]:
    return sorted(int(r["id"]) for r in rows)


def _masked(rows: list[dict[str, Any]], column: str = "email") -> bool:
    return all(str(r[column]).startswith("***@") for r in rows if r.get(column) is not None)


def _plain(rows: list[dict[str, Any]], column: str = "email") -> bool:
    return all(not str(r[column]).startswith("***") for r in rows)


# Each read path: (name, how to read as a user -> rows with id and, where the path keeps it, email)
def _sql(ws: Workspace, user: str) -> list[dict[str, Any]]:
    return _rows(ws, "SELECT id, email FROM main.shop.sales", user)


def _join(ws: Workspace, user: str) -> list[dict[str, Any]]:
    return _rows(ws, "SELECT a.id, a.email FROM main.shop.sales a JOIN main.shop.sales b ON a.id = b.id", user)


def _time_travel(ws: Workspace, user: str) -> list[dict[str, Any]]:
    return _rows(ws, "SELECT id, email FROM main.shop.sales VERSION AS OF 1", user)


def _cte(ws: Workspace, user: str) -> list[dict[str, Any]]:
    return _rows(ws, "WITH s AS (SELECT * FROM main.shop.sales) SELECT id, email FROM s WHERE id IN "
                     "(SELECT id FROM main.shop.sales)", user)


def _copy(ws: Workspace, user: str) -> list[dict[str, Any]]:
    name = f"main.default.copy_{user.split('@')[0]}"
    _rows(ws, "DROP TABLE IF EXISTS IDENTIFIER(:t)", user, name)
    _rows(ws, "CREATE TABLE IDENTIFIER(:t) AS SELECT id, email FROM main.shop.sales", user, name)
    _rows(ws, "INSERT INTO IDENTIFIER(:t) SELECT id, email FROM main.shop.sales", user, name)
    return _rows(ws, "SELECT DISTINCT id, email FROM IDENTIFIER(:t)", user, name)


def _merge(ws: Workspace, user: str) -> list[dict[str, Any]]:
    name = f"main.default.merged_{user.split('@')[0]}"
    _rows(ws, "DROP TABLE IF EXISTS IDENTIFIER(:t)", user, name)
    _rows(ws, "CREATE TABLE IDENTIFIER(:t) (id BIGINT, email STRING)", user, name)
    _rows(ws, "MERGE INTO IDENTIFIER(:t) t USING main.shop.sales s ON t.id = s.id WHEN NOT MATCHED THEN INSERT *",
          user, name)
    return _rows(ws, "SELECT id, email FROM IDENTIFIER(:t)", user, name)


def _view(ws: Workspace, user: str) -> list[dict[str, Any]]:
    return _rows(ws, "SELECT id, email FROM main.shop.big", user)  # the view's owner is an admin: the filter still applies


def _table_function(ws: Workspace, user: str) -> list[dict[str, Any]]:
    return _rows(ws, "SELECT id, email FROM main.shop.above(0)", user)


def _ai_query(ws: Workspace, user: str) -> list[dict[str, Any]]:
    rows = _rows(ws, "SELECT id, ai_query('chat', email) AS answer FROM main.shop.sales", user)
    return [{"id": r["id"], "email": r["answer"].removeprefix("echo: ")} for r in rows]


def _tables_read(ws: Workspace, user: str) -> list[dict[str, Any]]:  # what `brickyard table read` calls
    return ws.tables.read(ws.principal(user), "main.shop.sales", columns=["id", "email"]).to_pylist()


def _change_feed(ws: Workspace, user: str) -> list[dict[str, Any]]:  # what `brickyard table changes` calls
    return ws.tables.changes(ws.principal(user), "main.shop.sales").to_pylist()


PATHS = [_sql, _join, _time_travel, _cte, _copy, _merge, _view, _table_function, _ai_query, _tables_read,
         _change_feed]


@pytest.mark.parametrize("path", PATHS, ids=[p.__name__.strip("_") for p in PATHS])
def test_every_read_path_applies_the_filter_and_the_mask(ws: Workspace, path: Any) -> None:
    ws.catalog.update_grants(ws.principal(ADMIN), "schema", "main.default",
                             [{"principal": BOB, "add": ["USE_SCHEMA", "CREATE_TABLE"]}])
    admin_rows = path(ws, ADMIN)
    expected_admin = [i for i in ALL_IDS if path is not _view or i != 1]  # the view keeps amount >= 20
    assert _ids(admin_rows) == expected_admin and _plain(admin_rows)
    bob_rows = path(ws, BOB)
    expected_bob = [i for i in US_IDS if path is not _view or i != 1]
    assert _ids(bob_rows) == expected_bob, path.__name__
    assert bob_rows and _masked(bob_rows), path.__name__
    with pytest.raises(PermissionDenied):  # eve has no SELECT: every path refuses her
        path(ws, EVE)


def test_the_index_of_a_filtered_table_holds_what_its_owner_may_see(ws: Workspace) -> None:
    admin, bob = ws.principal(ADMIN), ws.principal(BOB)
    ws.vectorsearch.create_endpoint(admin, {"name": "vs"})
    ws.catalog.update_grants(admin, "schema", "main.default", [{"principal": BOB, "add": ["USE_SCHEMA",
                                                                                        "CREATE_TABLE"]}])
    for owner, name in ((admin, "main.default.idx_admin"), (bob, "main.default.idx_bob")):
        ws.vectorsearch.create_index(owner, {
            "name": name, "endpoint_name": "vs", "primary_key": "id", "index_type": "DELTA_SYNC",
            "delta_sync_index_spec": {"source_table": "main.shop.sales", "pipeline_type": "TRIGGERED",
                                      "embedding_source_columns": [{"name": "email",
                                                                    "embedding_model_endpoint_name": "databricks-gte-large-en"}]}})
        ws.vectorsearch.sync_now(name)
    seen_admin = ws.vectorsearch.scan(admin, "main.default.idx_admin", None, 100)
    seen_bob = ws.vectorsearch.scan(bob, "main.default.idx_bob", None, 100)
    texts_bob = [str(v) for row in seen_bob["data"] for v in (x.get("value", {}).get("string_value")
                                                              for x in row["fields"]) if v and "@" in v]
    assert len(seen_admin["data"]) == 4 and len(seen_bob["data"]) == 2
    assert texts_bob and all(t.startswith("***@") for t in texts_bob)
    # vector_search() in SQL over bob's index answers only what the index holds
    hits = _rows(ws, "SELECT id FROM vector_search(index => 'main.default.idx_bob', query_text => 'mail', "
                     "num_results => 10)", BOB)
    assert _ids(hits) == US_IDS


def test_dynamic_views_answer_for_the_reader(ws: Workspace) -> None:
    _rows(ws, "CREATE OR REPLACE VIEW main.shop.mine AS SELECT id FROM main.shop.sales "
              "WHERE email LIKE concat(substr(current_user(), 1, 1), '%') OR is_member('admins')")
    _rows(ws, "GRANT SELECT ON VIEW main.shop.mine TO `bob@example.com`")
    assert _ids(_rows(ws, "SELECT * FROM main.shop.mine")) == ALL_IDS
    assert _ids(_rows(ws, "SELECT * FROM main.shop.mine", BOB)) == []  # b... rows are EU, filtered out for bob
    _rows(ws, "CREATE OR REPLACE VIEW main.shop.mine AS SELECT id, current_user() AS who FROM main.shop.sales")
    assert {r["who"] for r in _rows(ws, "SELECT who FROM main.shop.mine", BOB)} == {BOB}


def test_views_read_with_their_owners_rights(ws: Workspace) -> None:
    admin = ws.principal(ADMIN)
    _rows(ws, "CREATE TABLE main.shop.private (id INT, secret STRING)")
    _rows(ws, "INSERT INTO main.shop.private VALUES (1, 's1'), (2, 's2')")
    _rows(ws, "CREATE VIEW main.shop.counts (n COMMENT 'how many') COMMENT 'a count' AS SELECT count(*) FROM main.shop.private")
    _rows(ws, "GRANT SELECT ON VIEW main.shop.counts TO `bob@example.com`")
    assert _rows(ws, "SELECT n FROM main.shop.counts", BOB) == [{"n": 2}]  # SELECT on the view is enough
    with pytest.raises(PermissionDenied):
        _rows(ws, "SELECT * FROM main.shop.private", BOB)
    desc = _rows(ws, "DESCRIBE main.shop.counts", BOB)
    assert desc == [{"col_name": "n", "data_type": "bigint", "comment": "how many"}]
    info = ws.catalog.get(admin, "table", "main.shop.counts")
    assert info.spec["table_type"] == "VIEW" and "`main`.`shop`.`private`" in info.spec["view_definition"]
    upstreams = ws.catalog.lineage(admin, "table", "main.shop.counts")["upstreams"]
    assert [(u["full_name"], u["edge"]) for u in upstreams] == [("main.shop.private", "VIEW")]
    assert ws.catalog.lineage(ws.principal(BOB), "table", "main.shop.counts")["upstreams"] == []  # not bob's to see
    _rows(ws, "ALTER VIEW main.shop.counts AS SELECT count(*) * 10 AS n FROM main.shop.private")
    assert _rows(ws, "SELECT n FROM main.shop.counts", BOB) == [{"n": 20}]
    with pytest.raises(InvalidParameterValue, match="EXPECT_TABLE_NOT_VIEW"):
        _rows(ws, "INSERT INTO main.shop.counts VALUES (1)")
    with pytest.raises(InvalidParameterValue, match="WRONG_COMMAND_FOR_OBJECT_TYPE"):
        _rows(ws, "DROP TABLE main.shop.counts")
    _rows(ws, "CREATE VIEW main.shop.a AS SELECT 1 AS x")
    _rows(ws, "CREATE VIEW main.shop.b AS SELECT * FROM main.shop.a")
    with pytest.raises(InvalidParameterValue, match="RECURSIVE_VIEW"):
        _rows(ws, "CREATE OR REPLACE VIEW main.shop.a AS SELECT * FROM main.shop.b")
    _rows(ws, "DROP VIEW main.shop.b")


def test_policies_are_set_by_owners_and_guard_their_columns(ws: Workspace) -> None:
    with pytest.raises(PermissionDenied):
        _rows(ws, "ALTER TABLE main.shop.sales DROP ROW FILTER", BOB)
    with pytest.raises(InvalidParameterValue, match="row filter"):
        _rows(ws, "ALTER TABLE main.shop.sales DROP COLUMN region")
    with pytest.raises(InvalidParameterValue, match="BOOLEAN"):
        _rows(ws, "ALTER TABLE main.shop.sales SET ROW FILTER main.shop.hide ON (email)")
    with pytest.raises(InvalidParameterValue, match="UPDATE, DELETE or MERGE"):
        _rows(ws, "DELETE FROM main.shop.sales WHERE id = 1")
    with pytest.raises(BrickyardError, match="UNRESOLVED_COLUMN"):
        _rows(ws, "ALTER TABLE main.shop.sales ALTER COLUMN nope SET MASK main.shop.hide")


def test_a_readers_predicate_never_sees_hidden_rows(ws: Workspace) -> None:
    """A leaky predicate (an error only a hidden row would raise) reveals nothing: the filter runs first, alone."""
    leak = ("SELECT count(*) AS n FROM main.shop.sales WHERE 1 / (CASE WHEN region = 'EU' THEN 0 ELSE 1 END) = 1 "
            "AND email NOT LIKE 'bea%'")
    assert _rows(ws, leak, BOB) == [{"n": 2}]
    assert _rows(ws, "SELECT count(*) AS n FROM main.shop.sales WHERE email LIKE 'ann%'", BOB) == [{"n": 0}]  # masked


def test_a_policy_cannot_read_the_table_it_guards(ws: Workspace) -> None:
    _rows(ws, "CREATE TABLE main.shop.loop (id INT)")
    _rows(ws, "INSERT INTO main.shop.loop VALUES (1)")
    _rows(ws, "CREATE FUNCTION main.shop.seen(i INT) RETURNS BOOLEAN RETURN i IN (SELECT id FROM main.shop.loop)")
    _rows(ws, "ALTER TABLE main.shop.loop SET ROW FILTER main.shop.seen ON (id)")
    with pytest.raises(InvalidParameterValue, match="cannot read the table it guards"):
        _rows(ws, "SELECT * FROM main.shop.loop")
    _rows(ws, "ALTER TABLE main.shop.loop DROP ROW FILTER")
    assert _rows(ws, "SELECT * FROM main.shop.loop") == [{"id": 1}]
