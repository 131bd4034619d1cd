"""Managed Delta tables and volumes through the library."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from brickyard.catalog import Principal
from brickyard.core.errors import AlreadyExists, InvalidParameterValue, NotFound, PermissionDenied
from brickyard.workspace import Workspace

COLS = [{"name": "id", "type_text": "bigint"}, {"name": "txt", "type_text": "string"},
        {"name": "tags", "type_text": "array<string>"}, {"name": "score", "type_text": "decimal(10,2)"}]


@pytest.fixture
def admin(ws_sqlite: Workspace) -> Principal:
    ws = ws_sqlite
    p = ws.ensure_user("admin", admin=True)
    ws.catalog.create(p, "schema", "main.s")
    return p


def test_create_write_read_time_travel_and_change_feed(ws_sqlite: Workspace, admin: Principal) -> None:
    t = ws_sqlite.tables
    t.create(admin, "main.s.t", columns=COLS, comment="docs")
    r1 = t.write(admin, "main.s.t", [{"id": 1, "txt": "a", "tags": ["x"]}, {"id": 2, "txt": "b"}])
    assert (r1.version, r1.rows) == (1, 2)
    t.write(admin, "main.s.t", [{"id": 2, "txt": "B"}, {"id": 3, "txt": "c"}], mode="merge", keys=["id"])
    now = t.read(admin, "main.s.t").sort_by("id").to_pylist()
    assert [(r["id"], r["txt"]) for r in now] == [(1, "a"), (2, "B"), (3, "c")]
    assert t.read(admin, "main.s.t", version=1).num_rows == 2
    changes = t.changes(admin, "main.s.t", start=2).to_pylist()
    assert {(c["id"], c["_change_type"]) for c in changes} == {(2, "update_preimage"), (2, "update_postimage"),
                                                              (3, "insert")}
    t.write(admin, "main.s.t", [{"id": 9, "txt": "z"}], mode="overwrite")
    assert t.read(admin, "main.s.t").column("id").to_pylist() == [9]
    assert [h["operation"] for h in t.history(admin, "main.s.t")][:2] == ["WRITE", "MERGE"]


def test_idempotent_writes_apply_once(ws_sqlite: Workspace, admin: Principal) -> None:
    t = ws_sqlite.tables
    t.create(admin, "main.s.t", columns=COLS[:2])
    for _ in range(3):
        t.write(admin, "main.s.t", [{"id": 1, "txt": "a"}], txn=("loader", 7))
    older = t.write(admin, "main.s.t", [{"id": 1, "txt": "a"}], txn=("loader", 3))
    assert older.skipped
    t.write(admin, "main.s.t", [{"id": 2, "txt": "b"}], txn=("loader", 8))
    assert t.read(admin, "main.s.t").num_rows == 2


@pytest.mark.parametrize("rows, fragment", [
    ([{"id": "not a number"}], "do not match the table schema"),
    ([{"nope": 1}], "unknown columns"),
    ([["a list"]], "JSON objects"),
])
def test_bad_rows_are_rejected_without_a_write(ws_sqlite: Workspace, admin: Principal, rows: list, fragment: str) -> None:
    t = ws_sqlite.tables
    t.create(admin, "main.s.t", columns=COLS[:2])
    with pytest.raises(InvalidParameterValue, match=fragment):
        t.write(admin, "main.s.t", rows)
    assert t.read(admin, "main.s.t").num_rows == 0
    assert len(t.history(admin, "main.s.t")) == 1


def test_merge_refuses_duplicate_keys(ws_sqlite: Workspace, admin: Principal) -> None:
    t = ws_sqlite.tables
    t.create(admin, "main.s.t", columns=COLS[:2])
    with pytest.raises(InvalidParameterValue, match="repeat a key"):
        t.write(admin, "main.s.t", [{"id": 1}, {"id": 1}], mode="merge", keys=["id"])
    with pytest.raises(InvalidParameterValue, match="needs the key"):
        t.write(admin, "main.s.t", [{"id": 1}], mode="merge")


def test_writes_need_modify_and_reads_need_select(ws_sqlite: Workspace, admin: Principal) -> None:
    ws = ws_sqlite
    ws.tables.create(admin, "main.s.t", columns=COLS[:2])
    eve = ws.ensure_user("eve")
    ws.catalog.update_grants(admin, "catalog", "main", [{"principal": "eve", "add": ["USE_CATALOG"]}])
    ws.catalog.update_grants(admin, "schema", "main.s", [{"principal": "eve", "add": ["USE_SCHEMA", "SELECT"]}])
    assert ws.tables.read(eve, "main.s.t").num_rows == 0
    with pytest.raises(PermissionDenied, match="MODIFY"):
        ws.tables.write(eve, "main.s.t", [{"id": 1}])


def test_drop_and_recreate_starts_empty(ws_sqlite: Workspace, admin: Principal) -> None:
    t = ws_sqlite.tables
    t.create(admin, "main.s.t", columns=COLS[:2])
    t.write(admin, "main.s.t", [{"id": 1}])
    old = ws_sqlite.catalog.get(admin, "table", "main.s.t").spec["storage_location"]
    t.drop(admin, "main.s.t")
    assert not Path(old).exists()
    t.create(admin, "main.s.t", columns=COLS[:2])
    assert t.read(admin, "main.s.t").num_rows == 0


def test_create_from_arrow_schema_and_unsupported_types(ws_sqlite: Workspace, admin: Principal) -> None:
    t = ws_sqlite.tables
    t.create(admin, "main.s.a", schema=pa.schema([("x", pa.int32()), ("m", pa.map_(pa.string(), pa.int64()))]))
    with pytest.raises(InvalidParameterValue, match="unsupported column type"):
        t.create(admin, "main.s.b", columns=[{"name": "g", "type_text": "geography"}])
    with pytest.raises(InvalidParameterValue, match="at least one column"):
        t.create(admin, "main.s.c", columns=[])


# -- volumes ----------------------------------------------------------------------------------------
TRAVERSAL = ["/Volumes/main/s/v/../../../../etc/passwd", "/Volumes/main/s/v/a/../../x", "/Volumes/main/s/v/./a",
             "/Volumes/main/s/v//a", "/Volumes/main/s/v/a\\..\\b", "/Volumes/main/s/v/\x00", "/etc/passwd",
             "/Volumes/main/s/../x/y", "/Volumes/main/s/v/" + "a" * 300]


@pytest.mark.parametrize("path", TRAVERSAL)
def test_volume_paths_cannot_escape(ws_sqlite: Workspace, admin: Principal, path: str) -> None:
    ws_sqlite.volumes.create(admin, "main.s.v")
    with pytest.raises((InvalidParameterValue, NotFound)):
        ws_sqlite.volumes.upload(admin, path, b"x")
    with pytest.raises((InvalidParameterValue, NotFound)):
        ws_sqlite.volumes.open(admin, path)


def test_volume_files_and_symlinks(ws_sqlite: Workspace, admin: Principal, tmp_path: Path) -> None:
    vol = ws_sqlite.volumes
    obj = vol.create(admin, "main.s.v")
    vol.upload(admin, "/Volumes/main/s/v/d/a.txt", b"one")
    with pytest.raises(AlreadyExists):
        vol.upload(admin, "/Volumes/main/s/v/d/a.txt", b"two", overwrite=False)
    vol.upload(admin, "/Volumes/main/s/v/d/a.txt", b"two")
    info, target = vol.open(admin, "/Volumes/main/s/v/d/a.txt")
    assert target.read_bytes() == b"two" and info.file_size == 3
    outside = tmp_path / "secret.txt"
    outside.write_text("canary-outside")
    os.symlink(outside, Path(obj.spec["storage_location"]) / "link.txt")
    with pytest.raises(InvalidParameterValue, match="symbolic link"):
        vol.open(admin, "/Volumes/main/s/v/link.txt")
    items, _ = vol.list(admin, "/Volumes/main/s/v/d")
    assert [i.name for i in items] == ["a.txt"]
    vol.delete(admin, "/Volumes/main/s/v/d/a.txt")
    vol.rmdir(admin, "/Volumes/main/s/v/d")
