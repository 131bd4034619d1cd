"""A CLI command that reads a table exits with 0, every time (issue 18, point 1).

A ``LIMIT`` query over a table of many files stops reading early; Arrow's I/O threads that were reading ahead
used to call into deltalake's Python file system while the interpreter exited: rc 134 (``terminate called
without an active exception``), 139, or a hang. Tables are now read through Arrow's own local file system."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace

BIN = Path(sys.executable).parent / "brickyard"
RUNS = 50
FILES = 200


def test_a_limit_query_over_a_many_file_table_exits_cleanly_fifty_times(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Workspace(Settings(home=home), background=False) as ws:
        admin = ws.ensure_user("admin@example.com", admin=True)
        ws.tables.create(admin, "main.default.docs", schema=pa.schema([("source", pa.string()), ("text", pa.string())]))
        for i in range(FILES):  # one commit, one file each: what an ingest of many documents leaves
            ws.tables.write(admin, "main.default.docs", pa.table({
                "source": [f"page{i}.html"] * 30,
                "text": [("word " * (j % 20)) + str(i) for j in range(30)]}), mode="append")
    env = {"BRICKYARD_HOME": str(home), "BRICKYARD_USER": "admin@example.com", "PATH": "/usr/bin:/bin"}
    statement = "SELECT source, text FROM main.default.docs WHERE length(text) < 50 LIMIT 15"

    def run(_: int) -> tuple[int | str, str]:
        try:
            r = subprocess.run([str(BIN), "sql", statement, "--json"], capture_output=True, text=True, env=env,
                               timeout=60)
        except subprocess.TimeoutExpired:
            return "hang", ""
        return r.returncode, (r.stderr[-300:] if r.returncode else r.stdout)

    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, range(RUNS)))
    elapsed = time.monotonic() - started
    failures = [(rc, err) for rc, err in results if rc != 0]
    assert not failures, f"{len(failures)} of {RUNS} runs failed: {failures[:3]}"
    assert all(len(out.splitlines()) == 15 for _, out in results)
    assert elapsed < 240, f"{RUNS} runs took {elapsed:.0f} s"
