"""Issue 17, point 7: a SQL statement cannot make the server hold gigabytes. Values that functions would
blow up are refused before they are built, a result larger than the limit is refused while it is read,
DuckDB has a memory limit, and the results kept for a user to fetch later are bounded."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from brickyard.core.errors import BadRequest
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import rss_mb, serve_process


@pytest.fixture
def ws(tmp_path: Path):  # type: ignore[no-untyped-def]
    w = Workspace(Settings(home=tmp_path / "home", statement_results_per_user_bytes=2 << 20))
    admin = w.ensure_user("admin@example.com", admin=True)
    w.sql.execute(admin, "CREATE TABLE main.default.t (id BIGINT)")
    w.sql.execute(admin, "INSERT INTO main.default.t VALUES " + ", ".join(f"({i})" for i in range(40)))  # noqa: S608
    yield w
    w.close()


@pytest.mark.parametrize("statement", [
    "SELECT repeat('x', 2000000000)", "SELECT repeat('k', 400000000)", "SELECT lpad('a', 100000000, 'b')",
    "SELECT rpad('a', 100000000)", "SELECT range(100000000)", "SELECT generate_series(1, 10000000000)",
    "SELECT list_resize([1], 100000000)", "SELECT bar(1, 0, 10, 1000000000)", "SELECT printf('%0100000000d', 1)",
    "SELECT format('{:>100000000}', 'x')", "SELECT repeat(CAST(id AS VARCHAR), 1000000000) FROM t",
    "SELECT length(repeat('ab', 20000000))",
])
def test_oversized_values_are_refused_before_they_are_built(ws: Workspace, statement: str) -> None:
    admin = ws.principal("admin@example.com")
    started = time.monotonic()
    with pytest.raises(BadRequest, match="BRICKYARD_STATEMENT_RESULT_BYTES"):
        ws.sql.execute(admin, statement)
    assert time.monotonic() - started < 2


def test_results_over_the_limit_are_refused_and_small_ones_work(ws: Workspace) -> None:
    admin = ws.principal("admin@example.com")
    with pytest.raises(BadRequest, match="the result would be larger than 25 MiB") as refused:
        ws.sql.execute(admin, "SELECT repeat('x', 1000000) AS big FROM t")  # 40 values of 1 MB: 40 MB
    assert refused.value.error_code == "RESULT_TOO_LARGE"
    assert ws.sql.execute(admin, "SELECT length(repeat('ab', 1000)) AS n").table.column(0).to_pylist() == [2000]


def test_a_users_stored_results_are_bounded(ws: Workspace) -> None:
    admin = ws.principal("admin@example.com")
    ids = []
    for _ in range(4):  # four results of ~1 MB against a 2 MiB allowance
        out = ws.statements.submit(admin, "SELECT repeat('y', 1000000) AS v", wait_timeout="10s")
        assert out["status"]["state"] == "SUCCEEDED"
        ids.append(out["statement_id"])
    from brickyard.core.errors import NotFound

    with pytest.raises(NotFound, match="expired"):
        ws.statements.get(admin, ids[0])
    assert ws.statements.get(admin, ids[-1])["status"]["state"] == "SUCCEEDED"


def test_the_reported_statements_leave_the_server_small(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace(Settings(home=home))
    token = ws.create_token("admin@example.com", admin=True)
    ws.close()
    headers = {"authorization": f"Bearer {token}"}
    with serve_process(home) as (url, proc):
        def submit(sql: str) -> str:
            r = httpx.post(url + "/api/2.0/sql/statements", headers=headers, timeout=60,
                           json={"statement": sql, "warehouse_id": "w", "wait_timeout": "0s"})
            assert r.status_code == 200, r.text
            return str(r.json()["statement_id"])

        before = rss_mb(proc.pid)
        started = time.monotonic()
        ids = [submit("SELECT repeat('k', 400000000)") for _ in range(3)] + [submit("SELECT repeat('x', 2000000000)")]
        states = []
        for sid in ids:
            while True:
                status = httpx.get(f"{url}/api/2.0/sql/statements/{sid}", headers=headers).json()["status"]
                if status["state"] not in ("PENDING", "RUNNING"):
                    break
                time.sleep(0.05)
            states.append(status)
        assert time.monotonic() - started < 10
        assert all(s["state"] == "FAILED" and "BRICKYARD_STATEMENT_RESULT_BYTES" in s["error"]["message"]
                   for s in states), states
        assert rss_mb(proc.pid) - before < 200
