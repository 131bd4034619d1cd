"""T08: the metastore under concurrency, on SQLite and on PostgreSQL (every test runs on both). Threads of
one process and a second process race to create the same names, create distinct ones, grant on one object
and change its owner; the outcome must be what some serial order of the operations gives: one winner per
name, nothing lost, no duplicate, grants intact, and the audit log holding every successful change once."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from brickyard.core.errors import AlreadyExists, TemporarilyUnavailable
from brickyard.workspace import Workspace

CHILD = r"""
import sys
from brickyard.core.errors import AlreadyExists
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
ws = Workspace(Settings(home=sys.argv[1], metastore_url=sys.argv[2] or None, access_log="off"))
admin = ws.principal("admin@example.com")
won = 0
for i in range(20):
    try:
        ws.catalog.create(admin, "schema", f"race.same{i}")
        won += 1
    except AlreadyExists:
        pass
    ws.catalog.create(admin, "schema", f"race.child{i}")
print(won)
ws.close()
"""


def _retrying(fn):  # type: ignore[no-untyped-def]
    """A busy metastore answers 503 with Retry-After; clients retry, and so does this test."""
    for _ in range(50):
        try:
            return fn()
        except TemporarilyUnavailable:
            continue
    raise AssertionError("the metastore stayed busy")


def test_races_have_a_serial_outcome(ws: Workspace, tmp_path: Path) -> None:
    admin = ws.ensure_user("admin@example.com", admin=True)
    for user in ("u0", "u1", "u2", "u3"):
        ws.ensure_user(user)
    ws.catalog.create(admin, "catalog", "race")
    wins: Counter[str] = Counter()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                try:
                    _retrying(lambda i=i: ws.catalog.create(admin, "schema", f"race.same{i}"))
                    wins[f"same{i}"] += 1
                except AlreadyExists:
                    pass
                _retrying(lambda i=i: ws.catalog.create(admin, "schema", f"race.t{n}_{i}"))
                _retrying(lambda i=i: ws.catalog.update_grants(admin, "catalog", "race", [
                    {"principal": f"u{n}", "add": ["USE_CATALOG"] if i % 2 == 0 else ["CREATE_SCHEMA"]}]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    url = ws.settings.metastore_url or ""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ws.home), url], stdout=subprocess.PIPE, text=True)
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0 and not errors, errors
    child_wins = int(out.strip())
    # one winner per contested name, across threads and processes
    assert all(wins[f"same{i}"] <= 1 for i in range(20))
    assert sum(wins.values()) + child_wins == 20
    names: list[str] = []
    token = None
    while True:
        page, token = ws.catalog.list(admin, "schema", "race", page_token=token)
        names += [s.full_name for s in page]
        if not token:
            break
    expected = {f"race.same{i}" for i in range(20)} | {f"race.t{n}_{i}" for n in range(4) for i in range(20)} | \
        {f"race.child{i}" for i in range(20)}
    assert len(names) == len(set(names)) and set(names) == expected | {"race.default"}  # + the default schema of a new catalog
    grants = {(g["principal"], p) for g in ws.catalog.grants(admin, "catalog", "race") for p in g["privileges"]}
    for n in range(4):
        assert {(f"u{n}", "USE_CATALOG"), (f"u{n}", "CREATE_SCHEMA")} <= grants
    audited = Counter(r["full_name"] for r in ws.catalog.audit_rows() if r["action"] == "createSchema" and r["allowed"])
    assert all(audited[name] == 1 for name in expected), [n for n in expected if audited[n] != 1][:5]
