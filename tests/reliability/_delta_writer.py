"""Child process for T05: append tagged batches with idempotency keys; acknowledge each commit."""

from __future__ import annotations

import sys

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace


def main() -> None:
    home, writer, start, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ws = Workspace(Settings(home=home))
    me = ws.principal("root")
    print("ready", flush=True)
    for batch in range(start, stop):
        rows = [{"writer": writer, "batch": batch, "i": i} for i in range(10)]
        res = ws.tables.write(me, "main.s.t", rows, txn=(writer, batch))
        print(f"ack {writer} {batch} {'skipped' if res.skipped else res.version}", flush=True)


if __name__ == "__main__":
    main()
