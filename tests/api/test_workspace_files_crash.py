"""kill -9 in the middle of workspace imports (issue 23): every object the metastore names has its bytes, whole
(the old version or the new one, never a torn one), and what the killed process left half-done is swept away
once it is old."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace

WRITER = r"""
import hashlib, os, random, sys
from pathlib import Path
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace

ws = Workspace(Settings(home=Path(sys.argv[1]), access_log="off"), background=False)
me = ws.ensure_user("ann@example.com")
ws.workspace_files.mkdirs(me, "/Users/ann@example.com/crash")
print("ready", flush=True)
rng = random.Random(int(sys.argv[2]))
while True:
    n = rng.randrange(40)
    body = os.urandom(rng.randrange(1, 300_000))
    data = hashlib.sha256(body).hexdigest().encode() + b"\n" + body  # says whether it is whole
    ws.workspace_files.import_(me, f"/Users/ann@example.com/crash/f{n}.bin", data, fmt="RAW", overwrite=True)
"""


def test_kill_9_during_imports_leaves_whole_objects(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    rng = random.Random(7)
    for round_ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(round_)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.2, 0.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with Workspace(Settings(home=home, access_log="off"), background=False) as ws:
        me = ws.ensure_user("ann@example.com")
        listed = ws.workspace_files.list(me, "/Users/ann@example.com/crash")
        assert listed, "some imports committed"
        for item in listed:
            _info, data = ws.workspace_files.read(me, item["path"])
            digest, _, body = data.partition(b"\n")
            assert hashlib.sha256(body).hexdigest().encode() == digest, f"{item['path']} is torn"
        folder = home / "wsfs"
        for path in folder.iterdir():  # age what the killed writers left, then sweep
            os.utime(path, (time.time() - 7200, time.time() - 7200))
        ws.workspace_files.sweep()
        with ws.db.tx(write=False) as tx:
            ids = {str(r["object_id"]) for r in tx.all("SELECT object_id FROM workspace_objects")}
        assert {p.name for p in folder.iterdir()} <= ids, "only bytes the metastore names are left"
        for item in listed:  # and nothing it names went
            ws.workspace_files.read(me, item["path"])
