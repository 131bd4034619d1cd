"""Usage rows under kill -9: every row is journaled when its request is answered, so a killed server
loses none; the next workspace to open replays the journal, exactly once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import scaled


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_usage_rows_lost_on_kill_are_bounded(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = Settings.child_environ(enable_fake_models="1", log_level="warning")
    env["PYTHONPATH"] = str(Path(__file__).parents[2] / "src")
    ws = Workspace(Settings(home=home, enable_fake_models=1))
    token = ws.create_token("a@example.com", admin=True)
    ws.serving.create(ws.principal("a@example.com"), {
        "name": "ep", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
        "ai_gateway": {"usage_tracking_config": {"enabled": True}}})
    time.sleep(0.3)
    ws.close()
    answered: dict[str, float] = {}
    kills = scaled(3, 20)
    for k in range(kills):
        port = _port()
        proc = subprocess.Popen([sys.executable, "-m", "brickyard.cli", "serve", "--home", str(home), "--port",
                                 str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        stop = time.monotonic() + 2.5 + k % 3 * 0.7
        with httpx.Client(timeout=10) as client:
            i = 0
            while time.monotonic() < stop:
                rid = f"k{k}-{i}"
                r = client.post(url + "/serving-endpoints/ep/invocations", headers={"authorization": f"Bearer {token}"},
                                json={"messages": [{"role": "user", "content": "x"}], "client_request_id": rid})
                assert r.status_code == 200
                answered[rid] = time.monotonic()
                i += 1
        killed_at = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # every answered request has exactly one usage row once the journal is replayed
        ws = Workspace(Settings(home=home, enable_fake_models=1))
        try:
            rows = ws.sql.execute(ws.principal("a@example.com"),
                                  "SELECT client_request_id FROM system.serving.endpoint_usage").table
            ids = rows.column("client_request_id").to_pylist() if rows.num_rows else []
        finally:
            ws.close()
        mine = {rid for rid in answered if rid.startswith(f"k{k}-")}
        missing = mine - set(ids)
        assert not missing, sorted(missing)[:5]
        assert len(ids) == len(set(ids)), "a replayed row was written twice"
        assert not list((home / "journal").glob("*/*.jsonl")), "the dead server's journal was not cleared"
        assert killed_at > 0


def test_a_journal_being_made_is_never_taken_for_a_dead_one(tmp_path: Path) -> None:
    """Workspaces opening at once on one home: each one's recovery removes the journals of dead processes.
    A journal directory must be locked before any other process can see it, or a neighbour's recovery
    deletes it under its writer (seen in T05 as FileNotFoundError on the first segment)."""
    import threading

    from brickyard.gateway._usage import _Journal

    root = tmp_path / "journal"
    errors: list[BaseException] = []
    stop = threading.Event()

    def recover() -> None:
        while not stop.is_set():
            try:
                _Journal(root, "usage").recover(lambda rows, segment: 0)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    workers = [threading.Thread(target=recover) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for _ in range(300):
            journal = _Journal(root, "usage")
            journal.append({"n": 1})  # writes into its first segment: its directory must still be there
            assert journal.dir.is_dir()
            journal.rotate()
    except BaseException as exc:  # noqa: BLE001 - the failure this test is about
        errors.append(exc)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    assert not errors, errors[:3]
    # a journal killed while being made (its staging directory unlocked) is cleaned by the next recovery
    staged, fresh = root / ".new-usage-0123456789ab", root / ".new-usage-ba9876543210"
    for d in (staged, fresh):
        d.mkdir()
        (d / "lock").touch()
    old = time.time() - 120
    os.utime(staged, (old, old))
    _Journal(root, "usage").recover(lambda rows, segment: 0)
    assert not staged.exists() and fresh.exists()  # a young one may still be in the making
