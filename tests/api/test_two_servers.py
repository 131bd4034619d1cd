"""Scale-out: two ``brickyard serve`` processes on one home and one metastore (SQLite, and PostgreSQL), on different
ports behind a TCP balancer, agree on everything -- rate limits are exact across them, a vector index written
through one answers through the other -- and ``serve --workers 2`` runs two processes on one port that restart
when killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from brickyard.core.homelock import holder
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import _free_port, serve_process


@contextmanager
def balancer(backends: list[str]) -> Iterator[tuple[str, list[int]]]:
    """A round-robin TCP balancer on loopback (each new connection goes to the next backend): yields its URL and
    how many connections each backend got."""
    port = _free_port()
    counts = [0] * len(backends)
    turn = [0]
    loop = asyncio.new_event_loop()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        i = turn[0] % len(backends)
        turn[0] += 1
        counts[i] += 1
        host, _, back_port = backends[i].removeprefix("http://").partition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(back_port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port))
        started.set()
        loop.run_forever()
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"http://127.0.0.1:{port}", counts
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def _prepare(home: Path, metastore_url: str | None) -> str:
    ws = Workspace(Settings(home=home, metastore_url=metastore_url, enable_fake_models=1))
    token = ws.create_token("admin@example.com", admin=True)
    admin = ws.principal("admin@example.com")
    ws.catalog.create(admin, "schema", "main.s")
    ws.vectorsearch.create_endpoint(admin, {"name": "vs"})
    ws.vectorsearch.create_index(admin, {
        "name": "main.s.idx", "primary_key": "id", "index_type": "DIRECT_ACCESS",
        "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": 2}],
                                     "schema_json": json.dumps({"id": "integer", "v": "array<float>"})}},
        endpoint="vs")
    ws.close()
    return token


def _env(metastore_url: str | None) -> dict[str, str]:
    env = {"BRICKYARD_ENABLE_FAKE_MODELS": "1", "BRICKYARD_ACCESS_LOG": "off"}
    if metastore_url:
        env["BRICKYARD_METASTORE_URL"] = metastore_url
    return env


def _upsert_then_query(write: str, read: str, h: dict[str, str], key: int) -> list[int]:
    up = httpx.post(f"{write}/api/2.0/vector-search/indexes/main.s.idx/upsert-data", headers=h,
                    json={"inputs_json": json.dumps([{"id": key, "v": [1.0, float(key)]}])})
    assert up.status_code == 200 and up.json()["status"] == "SUCCESS", up.text
    found = httpx.post(f"{read}/api/2.0/vector-search/indexes/main.s.idx/query", headers=h,
                       json={"columns": ["id"], "num_results": 50, "query_vector": [1.0, 0.0]})
    assert found.status_code == 200, found.text
    return sorted(int(r[0]) for r in found.json()["result"]["data_array"])


@pytest.mark.timeout(300)
def test_two_servers_behind_a_balancer_share_limits_and_indexes(tmp_path: Path, metastore_url: str | None) -> None:
    home = tmp_path / "home"
    token = _prepare(home, metastore_url)
    h = {"authorization": f"Bearer {token}"}
    with serve_process(home, env=_env(metastore_url)) as (first, _), \
            serve_process(home, env=_env(metastore_url), args=("--join",)) as (second, _), \
            balancer([first, second]) as (front, counts):
        created = httpx.post(f"{front}/api/2.0/serving-endpoints", headers=h, json={
            "name": "chat", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
            "ai_gateway": {"rate_limits": [{"key": "endpoint", "calls": 30, "renewal_period": "minute"}],
                           "usage_tracking_config": {"enabled": True},
                           "inference_table_config": {"enabled": True, "catalog_name": "main", "schema_name": "s",
                                                      "table_name_prefix": "chat"}}})
        assert created.status_code == 200, created.text
        deadline = time.monotonic() + 60
        while httpx.get(f"{front}/api/2.0/serving-endpoints/chat", headers=h).json()["state"]["config_update"] \
                != "NOT_UPDATING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        if 60 - time.time() % 60 < 15:  # the limit is per minute: do not straddle a minute boundary
            time.sleep(60 - time.time() % 60 + 0.5)
        statuses = []
        for _ in range(80):  # a new connection each time: the balancer alternates between the servers
            r = httpx.post(f"{front}/serving-endpoints/chat/invocations", headers=h, timeout=60,
                           json={"messages": [{"role": "user", "content": "hi"}]})
            statuses.append(r.status_code)
        assert statuses.count(200) == 30 and statuses.count(429) == 50, statuses
        assert min(counts) >= 40  # both servers answered

        def count(sql: str) -> dict[str, int]:
            r = httpx.post(f"{front}/api/2.0/sql/statements", headers=h, timeout=60,
                           json={"statement": sql, "warehouse_id": "w", "wait_timeout": "30s"})
            assert r.status_code == 200 and r.json()["status"]["state"] == "SUCCEEDED", r.text
            return {str(k): int(v) for k, v in r.json()["result"]["data_array"]}

        expected = {"200": 30, "429": 50}
        deadline = time.monotonic() + 30  # each server writes its usage rows about once a second
        while (seen := count("SELECT status_code, count(*) FROM system.serving.endpoint_usage"
                             " GROUP BY status_code")) != expected:
            assert time.monotonic() < deadline, seen  # every call counted once, by whichever server took it
            time.sleep(0.5)
        assert count("SELECT status_code, count(*) FROM main.s.chat_payload GROUP BY status_code")["200"] == 30

        assert 1 in _upsert_then_query(first, second, h, 1)  # written through one, read through the other
        assert 2 in _upsert_then_query(second, first, h, 2)
        gone = httpx.post(f"{first}/api/2.0/vector-search/indexes/main.s.idx/delete-data", headers=h,
                          json={"primary_keys": ["1"]})
        assert gone.status_code == 200, gone.text
        assert _upsert_then_query(first, second, h, 3) == [2, 3]


@pytest.mark.timeout(300)
def test_serve_workers_runs_processes_on_one_port_and_restarts_them(tmp_path: Path) -> None:
    home = tmp_path / "home"
    token = _prepare(home, None)
    h = {"authorization": f"Bearer {token}"}
    with serve_process(home, env=_env(None), args=("--workers", "2")) as (url, master):
        pids = set()
        for _ in range(40):  # new connections land on either process
            r = httpx.get(f"{url}/api/2.0/preview/scim/v2/Me", headers=h)
            assert r.status_code == 200
        children = _children(master.pid)
        assert len(children) == 2, children
        for i in range(10, 20):
            assert i in _upsert_then_query(url, url, h, i)  # whichever process answers sees every write
        primary = holder(home)
        assert primary is not None and primary["pid"] in children
        os.kill(primary["pid"], signal.SIGKILL)  # the primary, which does the background work
        deadline = time.monotonic() + 60
        while len(set(_children(master.pid)) - {primary["pid"]}) < 2 or holder(home) is None:
            assert time.monotonic() < deadline, _children(master.pid)  # started again, and slot 0 taken again
            time.sleep(0.1)
        assert holder(home)["pid"] != primary["pid"]
        ok = 0
        for _ in range(20):
            try:
                ok += httpx.get(f"{url}/api/2.0/preview/scim/v2/Me", headers=h).status_code == 200
            except httpx.HTTPError:
                pass
        assert ok >= 19
        pids.update(_children(master.pid))
    for pid in pids:  # the supervisor stopped its processes with it
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)
