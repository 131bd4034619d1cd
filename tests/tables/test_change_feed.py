"""The change data feed is exact for every write mode: replaying it on the previous snapshot gives the
next one. Vector Search's incremental sync will rely on this (T06, kernel part)."""

from __future__ import annotations

from typing import Any

import pytest

from brickyard.catalog import Principal
from brickyard.workspace import Workspace


def replay(before: dict[int, Any], changes: list[dict[str, Any]]) -> dict[int, Any]:
    state = dict(before)
    for version in sorted({c["_commit_version"] for c in changes}):
        for c in (c for c in changes if c["_commit_version"] == version):
            if c["_change_type"] == "delete":
                state.pop(c["id"], None)
        for c in (c for c in changes if c["_commit_version"] == version):
            if c["_change_type"] in ("insert", "update_postimage"):
                state[c["id"]] = c["v"]
    return state


def snapshot(ws: Workspace, p: Principal, version: int | None = None) -> dict[int, Any]:
    return {r["id"]: r["v"] for r in ws.tables.read(p, "main.s.t", version=version).to_pylist()}


WRITES = {
    "append": lambda ws, p: ws.tables.write(p, "main.s.t", [{"id": 100, "v": "new"}]),
    "overwrite": lambda ws, p: ws.tables.write(p, "main.s.t", [{"id": 1, "v": "only"}], mode="overwrite"),
    "merge": lambda ws, p: ws.tables.write(p, "main.s.t", [{"id": 2, "v": "m"}, {"id": 50, "v": "n"}], mode="merge",
                                           keys=["id"]),
    "sql delete": lambda ws, p: ws.sql.execute(p, "DELETE FROM main.s.t WHERE id % 3 = 0"),
    "sql update": lambda ws, p: ws.sql.execute(p, "UPDATE main.s.t SET v = concat(v, '!') WHERE id < 5"),
    "sql merge with delete": lambda ws, p: ws.sql.execute(
        p, "MERGE INTO main.s.t AS t USING (SELECT 4 AS id, 'x' AS v UNION ALL SELECT 7, 'y') AS s ON t.id = s.id "
           "WHEN MATCHED AND s.id = 4 THEN DELETE WHEN MATCHED THEN UPDATE SET v = s.v"),
    "sql insert select": lambda ws, p: ws.sql.execute(p, "INSERT INTO main.s.t SELECT id + 1000, v FROM main.s.t"),
}


@pytest.mark.parametrize("mode", list(WRITES))
def test_change_feed_replays_to_the_next_snapshot(ws_sqlite: Workspace, mode: str) -> None:
    ws = ws_sqlite
    p = ws.ensure_user("root", admin=True)
    ws.catalog.create(p, "schema", "main.s")
    ws.tables.create(p, "main.s.t", columns=[{"name": "id", "type_text": "bigint"}, {"name": "v", "type_text": "string"}])
    ws.tables.write(p, "main.s.t", [{"id": i, "v": f"r{i}"} for i in range(10)])
    before_version = ws.tables.history(p, "main.s.t")[0]["version"]
    before = snapshot(ws, p)
    WRITES[mode](ws, p)
    changes = ws.tables.changes(p, "main.s.t", start=before_version + 1).to_pylist()
    assert changes, "the write produced no change rows"
    assert replay(before, changes) == snapshot(ws, p)
    assert snapshot(ws, p, version=before_version) == before
