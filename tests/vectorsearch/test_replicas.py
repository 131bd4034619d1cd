"""Several server processes share one home (``brickyard serve --workers``): each keeps its own search
structures, and every one sees what any other wrote -- upserts, deletes and full rebuilds -- at its next query,
from the shared row store. Two workspaces on one home stand for two server processes here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace

SCHEMA = json.dumps({"id": "integer", "text": "string", "v": "array<float>"})


def _ids(ws: Workspace, p: object, query: list[float], text: str | None = None) -> list[int]:
    body: dict[str, object] = {"columns": ["id"], "num_results": 10, "query_vector": query}
    if text is not None:
        body = {"columns": ["id"], "num_results": 10, "query_text": text, "query_type": "FULL_TEXT"}
    found = ws.vectorsearch.query(p, "main.s.idx", body)  # type: ignore[arg-type]
    return sorted(int(r[0]) for r in found["result"]["data_array"])


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Workspace, Workspace]]:
    """Two server processes' workspaces on one home (the primary, slot 0, and a joined one, slot 1), with a
    schema and a vector search endpoint."""
    settings = Settings(home=tmp_path / "home", access_log="off", monitor_interval_seconds=0)
    first = Workspace(settings, background=True, replica=0)
    second = Workspace(settings, background=False, replica=1)
    try:
        admin = first.ensure_user("admin@example.com", admin=True)
        first.catalog.create(admin, "schema", "main.s")
        first.vectorsearch.create_endpoint(admin, {"name": "ep"})
        yield first, second
    finally:
        second.close()
        first.close()


def test_every_process_sees_every_other_processes_writes(pair: tuple[Workspace, Workspace]) -> None:
    first, second = pair
    settings = first.settings
    admin = first.principal("admin@example.com")
    first.vectorsearch.create_index(admin, {
        "name": "main.s.idx", "primary_key": "id", "index_type": "DIRECT_ACCESS",
        "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": 2}],
                                     "schema_json": SCHEMA}}, endpoint="ep")
    first.vectorsearch.upsert(admin, "main.s.idx", [{"id": 1, "text": "red apple", "v": [1.0, 0.0]},
                                                    {"id": 2, "text": "green pear", "v": [0.0, 1.0]}])
    other = second.principal("admin@example.com")
    assert _ids(second, other, [1.0, 0.0]) == [1, 2]  # opened after the writes: built from the store

    second.vectorsearch.upsert(other, "main.s.idx", [{"id": 3, "text": "red cherry", "v": [0.9, 0.1]}])
    assert _ids(first, admin, [1.0, 0.0]) == [1, 2, 3]  # the other process's upsert, at the next query
    assert _ids(first, admin, [], text="cherry") == [3]  # in the full-text index too

    first.vectorsearch.delete_rows(admin, "main.s.idx", [1])
    assert _ids(second, other, [1.0, 0.0]) == [2, 3]
    assert _ids(second, other, [], text="apple") == []

    first.vectorsearch.upsert(admin, "main.s.idx", [{"id": 1, "text": "red apple again", "v": [1.0, 0.0]}])
    assert _ids(second, other, [1.0, 0.0]) == [1, 2, 3]  # deleted, then written again
    engines = {p.name for p in (settings.home / "indexes").rglob("replica-1")}
    assert engines == {"replica-1"}  # the second process's structures live apart from the first's


def test_syncs_of_one_index_take_turns_across_processes(pair: tuple[Workspace, Workspace]) -> None:
    """Both processes sync the same Delta Sync index at once: one does the work, the other finds it done, and
    both answer with every source row."""
    from concurrent.futures import ThreadPoolExecutor

    first, second = pair
    admin = first.principal("admin@example.com")
    first.tables.create(admin, "main.s.src", columns=[{"name": "id", "type_text": "bigint"},
                                                     {"name": "v", "type_text": "array<float>"}])
    first.tables.write(admin, "main.s.src", [{"id": 0, "v": [1.0, 0.0]}])
    first.vectorsearch.create_index(admin, {
        "name": "main.s.idx", "primary_key": "id", "index_type": "DELTA_SYNC",
        "delta_sync_index_spec": {"source_table": "main.s.src", "pipeline_type": "TRIGGERED",
                                  "embedding_vector_columns": [{"name": "v", "embedding_dimension": 2}]}},
        endpoint="ep")
    first.vectorsearch.sync_now("main.s.idx")
    first.tables.write(admin, "main.s.src", [{"id": i, "v": [1.0, i / 100]} for i in range(1, 60)])
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda ws: ws.vectorsearch.sync_now("main.s.idx"), [first, second]))
    assert sorted(d["mode"] for d in done) in (["incremental", "none"], ["full", "none"]), done
    other = second.principal("admin@example.com")
    assert len(_ids(first, admin, [1.0, 0.0])) == 10
    for ws, p in ((first, admin), (second, other)):
        found = ws.vectorsearch.query(p, "main.s.idx", {"columns": ["id"], "num_results": 100,
                                                        "query_vector": [1.0, 0.0]})
        assert found["result"]["row_count"] == 60
