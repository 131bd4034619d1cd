"""Child process for T02/T03: upserts into a Direct Access index, or writes + syncs a Delta Sync index,
printing an acknowledgement after each durable step."""

from __future__ import annotations

import sys

import numpy as np

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace

DIM = 8


def vector(key: int, generation: int) -> list[float]:
    return np.random.default_rng(key * 7919 + generation).standard_normal(DIM).astype(np.float32).tolist()


def main() -> None:
    home, mode, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ws = Workspace(Settings(home=home))
    me = ws.principal("root")
    print("ready", flush=True)
    batch = start
    while True:
        if mode == "upsert":
            rows = [{"id": batch * 20 + i, "text": f"row {batch * 20 + i}", "vec": vector(batch * 20 + i, 0)}
                    for i in range(20)]
            if batch % 3 == 2:  # also re-upsert an earlier row with a new vector
                rows.append({"id": batch - 2, "text": "again", "vec": vector(batch - 2, batch)})
            result = ws.vectorsearch.upsert(me, "main.s.direct", rows)
            assert result["status"] == "SUCCESS", result
            print(f"ack {batch}", flush=True)
        else:
            rows = [{"id": batch * 10 + i, "body": f"b{batch}", "vec": vector(batch * 10 + i, 0)} for i in range(10)]
            ws.tables.write(me, "main.s.src", rows)
            if batch % 4 == 3:
                ws.sql.execute(me, f"DELETE FROM main.s.src WHERE id < {batch * 10 - 30} AND id % 3 = 0")  # noqa: S608 - integers
            done = ws.vectorsearch.sync_now("main.s.synced")
            print(f"synced {done['version']}", flush=True)
        batch += 1


if __name__ == "__main__":
    main()
