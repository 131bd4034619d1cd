"""Issue 17, point 13 and T31: one server per home, held by an OS lock that a killed server cannot leave
behind, and the CLI commands the README shows keep working beside a running server, safely."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from brickyard.core.homelock import HomeInUse, HomeLock, holder
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import _free_port, serve_process

SRC = str(Path(__file__).parents[2] / "src")


def _cli(*args: str, home: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "brickyard.cli", *args, "--home", str(home)], input=stdin,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": SRC})


def test_a_second_server_on_one_home_is_refused_and_a_killed_one_leaves_no_lock(tmp_path: Path) -> None:
    home = tmp_path / "home"
    Workspace(Settings(home=home)).close()
    with serve_process(home) as (url, proc):
        info = holder(home)
        assert info is not None and info["pid"] == proc.pid and info["url"] == url
        second = subprocess.run([sys.executable, "-m", "brickyard.cli", "serve", "--home", str(home), "--port",
                                 str(_free_port())], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "PYTHONPATH": SRC})
        assert second.returncode == 2, second.stderr
        assert f"another Brickyard server (pid {proc.pid}, {url}" in second.stderr
        try:
            HomeLock(home).acquire()
            raise AssertionError("the lock was taken twice")
        except HomeInUse:
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert holder(home) is None  # the kernel dropped the dead server's lock
    with serve_process(home) as (url, _):
        assert httpx.get(url + "/health").status_code == 200


def test_cli_commands_work_beside_a_running_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace(Settings(home=home))
    ws.ensure_user("admin@example.com", admin=True)
    token = ws.create_token("admin@example.com", admin=True)
    ws.close()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Title\n\nSome words about Delta tables.\n\n## More\n\nAnd vector search.\n")
    headers = {"authorization": f"Bearer {token}"}
    with serve_process(home) as (url, _):
        def statement(sql: str) -> dict:
            r = httpx.post(url + "/api/2.0/sql/statements", headers=headers, timeout=60,
                           json={"statement": sql, "warehouse_id": "w", "wait_timeout": "30s"})
            assert r.status_code == 200 and r.json()["status"]["state"] == "SUCCEEDED", r.text
            return r.json()

        created = _cli("sql", "--user", "admin@example.com", "CREATE TABLE main.default.t (id BIGINT, who STRING)",
                       home=home)
        assert created.returncode == 0, created.stderr
        errors: list[str] = []

        def server_writes() -> None:
            try:
                for i in range(10):
                    statement(f"INSERT INTO main.default.t VALUES ({i}, 'server')")  # noqa: S608
            except AssertionError as exc:
                errors.append(str(exc))

        writer = threading.Thread(target=server_writes)
        writer.start()
        cli_rows = []
        for i in range(4):
            done = _cli("sql", "--user", "admin@example.com", f"INSERT INTO main.default.t VALUES ({100 + i}, 'cli')",  # noqa: S608
                        home=home)
            cli_rows.append(done.returncode)
            assert done.returncode == 0, done.stderr
        wrote = _cli("table", "write", "main.default.t", "-", "--user", "admin@example.com", home=home,
                     stdin='[{"id": 200, "who": "table write"}, {"id": 201, "who": "table write"}]')
        assert wrote.returncode == 0, wrote.stderr
        writer.join()
        assert not errors, errors
        counts = statement("SELECT who, count(*) FROM main.default.t GROUP BY who ORDER BY who")
        assert counts["result"]["data_array"] == [["cli", "4"], ["server", "10"], ["table write", "2"]]
        new_token = _cli("token", "create", "--user", "carol@example.com", home=home)
        assert new_token.returncode == 0, new_token.stderr
        r = httpx.get(url + "/api/2.0/preview/scim/v2/Me", timeout=30,
                      headers={"authorization": f"Bearer {new_token.stdout.strip().split()[-1]}"})
        assert r.status_code == 200 and r.json()["userName"] == "carol@example.com"
        ingested = _cli("ingest", str(docs), "--table", "main.default.docs", "--user", "admin@example.com",
                        "--strategy", "structure", "--json", home=home)
        assert ingested.returncode == 0, ingested.stderr
        chunks = statement("SELECT count(*) FROM main.default.docs")
        assert int(chunks["result"]["data_array"][0][0]) >= 1
    deadline = time.monotonic() + 5
    while holder(home) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert holder(home) is None
