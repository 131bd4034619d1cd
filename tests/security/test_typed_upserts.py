"""Issue 17, point 8 (and the FULL_TEXT finding of point 16): Direct Access upserts are checked against the
index schema before anything is written, a request is all or nothing with a reason per bad row, deletes
check their keys, and no bad input ever breaks reads (scan, ANN, FULL_TEXT) for anyone."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from brickyard.core.settings import Settings
from brickyard.vectorsearch._rows import RowSchema
from brickyard.workspace import Workspace
from tests.conftest import serve

SCHEMA = {"id": "long", "txt": "string", "n": "int", "score": "double", "ok": "boolean", "day": "date",
          "tags": "array<string>", "v": "array<float>"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Workspace]]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("typed") / "home"))
    admin = ws.ensure_user("a@example.com", admin=True)
    token = ws.create_token("a@example.com", admin=True)
    ws.catalog.create(admin, "catalog", "c")
    ws.catalog.create(admin, "schema", "c.s")
    ws.vectorsearch.create_endpoint(admin, {"name": "e"})
    ws.vectorsearch.create_index(admin, {
        "name": "c.s.i", "endpoint_name": "e", "primary_key": "id", "index_type": "DIRECT_ACCESS",
        "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": 3}],
                                     "schema_json": json.dumps(SCHEMA)}})
    with serve(ws) as url:
        yield url + "/api/2.0/vector-search/indexes/c.s.i", {"authorization": f"Bearer {token}"}, ws
    ws.close()


def _upsert(api: tuple[str, dict[str, str], Workspace], rows: list) -> dict:
    url, headers, _ = api
    r = httpx.post(url + "/upsert-data", headers=headers, json={"inputs_json": json.dumps(rows)}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def _reads_work(api: tuple[str, dict[str, str], Workspace], expect: int) -> None:
    url, headers, _ = api
    scan = httpx.post(url + "/scan", headers=headers, json={"num_results": 100}, timeout=30)
    assert scan.status_code == 200 and len(scan.json()["data"]) == expect, scan.text
    ann = httpx.post(url + "/query", headers=headers, timeout=30,
                     json={"query_vector": [1, 0, 0], "columns": ["id", "txt"], "num_results": 100})
    assert ann.status_code == 200 and ann.json()["result"]["row_count"] == expect, ann.text
    fts = httpx.post(url + "/query", headers=headers, timeout=30,
                     json={"query_text": "hello", "query_type": "FULL_TEXT", "columns": ["id"], "num_results": 100})
    assert fts.status_code == 200 and fts.json()["result"]["row_count"] == 5, fts.text


def test_bad_values_are_refused_whole_with_reasons_and_reads_keep_working(api) -> None:
    good = [{"id": i, "txt": f"hello world {i}", "n": i, "v": [1.0, 0.0, float(i)]} for i in range(5)]
    assert _upsert(api, good)["status"] == "SUCCESS"
    bad_rows = [
        {"id": "x", "v": [1, 1, 1]}, {"id": 1.5, "v": [1, 1, 1]}, {"id": 2**70, "v": [1, 1, 1]},
        {"id": True, "v": [1, 1, 1]}, {"id": None, "v": [1, 1, 1]}, {"v": [1, 1, 1]},
        {"id": 7, "txt": 5, "v": [1, 1, 1]}, {"id": 8, "v": [True, False, True]}, {"id": 9, "v": [1, 2]},
        {"id": 10, "txt": "\u0000\ud800", "v": [1, 2, 3]}, {"id": 11, "n": 2**31, "v": [1, 2, 3]},
        {"id": 12, "score": "high", "v": [1, 2, 3]}, {"id": 13, "ok": 1, "v": [1, 2, 3]},
        {"id": 14, "day": "yesterday", "v": [1, 2, 3]}, {"id": 15, "tags": ["a", 1], "v": [1, 2, 3]},
        {"id": 16, "nope": 1, "v": [1, 2, 3]}, {"id": 17, "v": [1e39, 0, 0]}, {"id": 18, "v": None},
        {"id": 19},
    ]
    for bad in bad_rows:
        fine = {"id": 100, "txt": "hello fine", "v": [0.0, 1.0, 0.0]}
        out = _upsert(api, [fine, bad])
        assert out["status"] == "FAILURE" and out["result"]["success_row_count"] == 0, (bad, out)
        (problem,) = out["result"]["failed_rows"]
        assert problem["row"] == 1 and problem["reason"], out
        _reads_work(api, expect=5)  # the good row of the request was not written either
    url, headers, _ = api
    r = httpx.post(url + "/delete-data", headers=headers, json={"primary_keys": [[1], {"a": 1}, None]}, timeout=30)
    out = r.json()
    assert r.status_code == 200 and out["status"] == "FAILURE" and out["result"]["success_row_count"] == 0
    assert [p["row"] for p in out["result"]["failed_rows"]] == [0, 1, 2]
    r = httpx.post(url + "/delete-data", headers=headers, json={"primary_keys": [1, "x", "02"]}, timeout=30)
    assert r.json()["status"] == "FAILURE" and r.json()["result"]["failed_primary_keys"] == ["x", "02"]
    _reads_work(api, expect=5)
    ok = {"id": 20, "txt": "nul \u0000 inside", "n": -5, "score": 2, "ok": False, "day": "2026-12-04",
          "tags": ["a", "b"], "v": [0.5, 0.5, 0.5]}
    assert _upsert(api, [ok])["status"] == "SUCCESS"
    _reads_work(api, expect=6)


def test_a_change_the_engine_cannot_apply_is_rebuilt_from_the_store(api, monkeypatch) -> None:
    """Defence in depth: if applying a committed change to the engine fails, the engine is rebuilt from the
    row store, so full-text and ANN answers match the stored rows again."""
    _, _, ws = api
    live = ws.vectorsearch.live("c.s.i")
    calls = {"n": 0}
    real = type(live.engine).apply

    def flaky(self, upserted, deleted):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        list(upserted)
        raise RuntimeError("simulated engine failure")

    monkeypatch.setattr(type(live.engine), "apply", flaky)
    out = _upsert(api, [{"id": 30, "txt": "hello again", "v": [0.1, 0.2, 0.3]}])
    monkeypatch.setattr(type(live.engine), "apply", real)
    assert out["status"] == "SUCCESS" and calls["n"] == 1
    url, headers, _ = api
    fts = httpx.post(url + "/query", headers=headers, timeout=30,
                     json={"query_text": "again", "query_type": "FULL_TEXT", "columns": ["id"], "num_results": 10})
    assert [r[0] for r in fts.json()["result"]["data_array"]] == [30]


@given(st.dictionaries(st.sampled_from([*SCHEMA, "other"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                 st.text(max_size=5), st.lists(st.one_of(st.floats(allow_nan=False),
                                                                         st.integers(), st.text(max_size=2)),
                                                               max_size=4))))
def test_every_row_is_either_refused_with_a_reason_or_storable(row: dict) -> None:
    """Whatever a client sends, the schema check either gives a reason or the row is one the store, the
    engine and the JSON answer can hold."""
    schema = RowSchema(SCHEMA, "id", vector_column="v", dimension=3)
    why = schema.row_problem(row)
    if why is None:
        assert isinstance(row["id"], int) and not isinstance(row["id"], bool) and -(2**63) <= row["id"] < 2**63
        assert len(row["v"]) == 3 and all(isinstance(x, int | float) and not isinstance(x, bool) for x in row["v"])
        json.dumps(row).encode("utf-8")
    else:
        assert isinstance(why, str) and why


