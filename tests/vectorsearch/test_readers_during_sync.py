"""T07: readers during sync. While a Delta Sync index follows its source through incremental syncs and full
rebuilds, concurrent queries only ever see whole versions of the source: every row of an answer carries
the same version stamp, the answer has every row, and the stamp never goes backwards for a reader."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pyarrow as pa

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import scaled

ROWS, DIM = 2000, 8


def test_queries_during_syncs_see_whole_versions(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path / "home", access_log="off"))
    admin = ws.ensure_user("admin@example.com", admin=True)
    ws.catalog.create(admin, "catalog", "c")
    ws.catalog.create(admin, "schema", "c.s")
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    schema = pa.schema([("id", pa.int64()), ("stamp", pa.int64()), ("vec", pa.list_(pa.float32()))])

    def rows(stamp: int) -> pa.Table:
        return pa.table({"id": list(range(ROWS)), "stamp": [stamp] * ROWS, "vec": [v.tolist() for v in vecs]},
                        schema=schema)

    ws.tables.create(admin, "c.s.src", schema=schema)
    ws.tables.write(admin, "c.s.src", rows(0))
    ws.vectorsearch.create_endpoint(admin, {"name": "e"})
    ws.vectorsearch.create_index(admin, {
        "name": "c.s.idx", "endpoint_name": "e", "primary_key": "id", "index_type": "DELTA_SYNC",
        "delta_sync_index_spec": {"source_table": "c.s.src", "pipeline_type": "TRIGGERED",
                                  "embedding_vector_columns": [{"name": "vec", "embedding_dimension": DIM}]}})
    ws.vectorsearch.sync_now("c.s.idx")
    stop = threading.Event()
    seen: list[tuple[int, int, int]] = []  # (reader, stamp, rows)
    problems: list[str] = []

    def reader(n: int) -> None:
        last = -1
        body = {"query_vector": vecs[n].tolist(), "columns": ["id", "stamp"], "num_results": ROWS}
        while not stop.is_set():
            data = ws.vectorsearch.query(admin, "c.s.idx", body)["result"]["data_array"]
            stamps = {int(r[1]) for r in data}
            if len(data) != ROWS or len(stamps) != 1:
                problems.append(f"reader {n}: {len(data)} rows, stamps {sorted(stamps)[:5]}")
                return
            stamp = stamps.pop()
            if stamp < last:
                problems.append(f"reader {n}: stamp went back from {last} to {stamp}")
                return
            last = stamp
            seen.append((n, stamp, len(data)))

    readers = [threading.Thread(target=reader, args=(n,)) for n in range(3)]
    for t in readers:
        t.start()
    try:
        for stamp in range(1, scaled(12, 60)):
            if stamp % 4 == 0:  # an overwrite, and the index forgets where it was: a full rebuild
                ws.tables.write(admin, "c.s.src", rows(stamp), mode="overwrite")
                ws.vectorsearch.live("c.s.idx").store.apply([], [], meta={"source_version": None})
            else:  # an UPDATE of every row: an incremental sync
                ws.sql.execute(admin, f"UPDATE c.s.src SET stamp = {stamp}")  # noqa: S608 - a literal of ours
            ws.vectorsearch.sync_now("c.s.idx")
    finally:
        stop.set()
        for t in readers:
            t.join()
    ws.close()
    assert not problems, problems
    assert len({stamp for _, stamp, _ in seen}) > 3  # the readers really read while the versions changed
