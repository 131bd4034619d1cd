"""T04: I/O errors. The k-th file operation of an index's derived files (its snapshot: the graph, the label
map, the full-text metadata) fails with EIO or ENOSPC, for every k in turn. Whatever fails, the index
reopens (0 unopenable), holds every row whose upsert was acknowledged (0 lost), and no upsert is
acknowledged whose change could not be made durable in the row store; the derived files are rebuilt
from the row store when they are damaged."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import scaled

DIM = 4


def _workspace(home: Path) -> Workspace:
    return Workspace(Settings(home=home, access_log="off"))


def _make(home: Path) -> None:
    ws = _workspace(home)
    admin = ws.ensure_user("a@example.com", admin=True)
    ws.catalog.create(admin, "catalog", "c")
    ws.catalog.create(admin, "schema", "c.s")
    ws.vectorsearch.create_endpoint(admin, {"name": "e"})
    ws.vectorsearch.create_index(admin, {
        "name": "c.s.i", "endpoint_name": "e", "primary_key": "id", "index_type": "DIRECT_ACCESS",
        "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": DIM}],
                                     "schema_json": json.dumps({"id": "long", "txt": "string", "v": "array<float>"})}})
    ws.close()


class _Failing:
    """Wraps a file operation of the engine module: the k-th call (counting from 1) raises ``code``."""

    def __init__(self, real, k: int, code: int) -> None:  # type: ignore[no-untyped-def]
        self.real, self.k, self.code, self.calls = real, k, code, 0

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == self.k:
            raise OSError(self.code, os.strerror(self.code))
        return self.real(*args, **kwargs)


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
@pytest.mark.parametrize("operation", ["fsync", "replace", "write_index"])
def test_every_failing_file_operation_leaves_an_index_that_opens_with_every_acknowledged_row(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, operation: str, code: int) -> None:
    import faiss

    from brickyard.vectorsearch import _engine

    triggered = 0
    for k in range(1, scaled(8, 40) + 1):
        home = tmp_path / f"{operation}-{k}"
        _make(home)
        ws = _workspace(home)
        admin = ws.principal("a@example.com")
        real = {"fsync": os.fsync, "replace": os.replace, "write_index": faiss.write_index}[operation]
        failing = _Failing(real, k, code)
        with monkeypatch.context() as patch:
            if operation == "write_index":
                patch.setattr(faiss, "write_index", failing)
            else:
                patch.setattr(_engine.os, operation, failing)
            acknowledged: set[int] = set()
            for batch in range(6):
                rows = [{"id": batch * 10 + i, "txt": f"row {batch} {i}", "v": [1.0, float(i), float(batch), 0.5]}
                        for i in range(10)]
                try:
                    out = ws.vectorsearch.upsert(admin, "c.s.i", rows)
                except OSError:
                    continue  # not acknowledged (its rows may or may not be there: the outcome is unknown)
                assert out["status"] == "SUCCESS"
                acknowledged |= {r["id"] for r in rows}
            try:
                ws.close()
            except OSError:
                pass
            triggered += failing.calls >= k
        reopened = _workspace(home)  # no failures now
        try:
            live = reopened.vectorsearch.live("c.s.i")
            held = {int(pk) for pk in live.engine.by_pk}
            assert acknowledged <= held, (operation, k, sorted(acknowledged - held)[:5])
            assert held == {int(r.pk) for r in live.store.rows()}  # derived == truth
            hits = reopened.vectorsearch.query(reopened.principal("a@example.com"), "c.s.i",
                                               {"query_vector": [1, 0, 0, 0], "columns": ["id"], "num_results": 5})
            assert hits["result"]["row_count"] == min(5, len(held))
        finally:
            reopened.close()
    assert triggered >= 3, f"the {operation} failure was injected only {triggered} times"
