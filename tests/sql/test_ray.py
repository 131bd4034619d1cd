"""Batch work on a real Ray cluster (issue 21): a head and a worker node on loopback, started for this module.

With ``BRICKYARD_RAY_ADDRESS`` set, ``ai_query`` over a table, ``ai_parse_document`` and the full build of a
managed-embedding Delta Sync index run their local models on the cluster's workers; every call still passes the
AI Gateway in the server. Checked: the results equal the in-process run; a worker killed in the middle of an
``INSERT ... SELECT`` is restarted, its calls retried, and the insert commits once with every row; the governance
checks refuse a caller before any worker starts."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from brickyard.core.errors import BrickyardError
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import wait_deployed

Settings.join_ray_on_loopback()  # before Ray is imported: this driver joins a loopback-only cluster
ray = pytest.importorskip("ray", reason="Ray is not installed (make test installs the 'ray' extra)")

EMBED = "databricks-gte-large-en"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from brickyard.bench._raycluster import LocalCluster

    with LocalCluster(workers=1, cpus=1) as address:
        yield address


def _workspace(home: Path, address: str | None) -> Workspace:
    w = Workspace(Settings(home=home, ray_address=address, access_log="off", monitor_interval_seconds=0,
                           enable_fake_models=1))
    admin = w.ensure_user("admin@example.com", admin=True)
    w.ensure_user("bob@example.com")
    w.sql.execute(admin, "CREATE TABLE main.default.q AS SELECT CAST(id AS BIGINT) AS id, "
                         "concat('question number ', CAST(id AS STRING)) AS t FROM (SELECT explode(sequence(1, 400)) AS id)")
    return w


def _vectors(ws: Workspace, sql: str) -> np.ndarray:
    rows = ws.sql.execute(ws.principal("admin@example.com"), sql).table.to_pylist()
    return np.array([r["v"] for r in rows], dtype=np.float32)


def test_ai_query_and_parsing_on_ray_equal_the_in_process_run(cluster: str, tmp_path: Path) -> None:
    sql = "SELECT id, ai_query('databricks-gte-large-en', t) AS v FROM main.default.q ORDER BY id"
    with _workspace(tmp_path / "local", None) as local:
        expected = _vectors(local, sql)
        local_docs = local.sql.parse_documents([b"# Title\n\nbody", b"plain text", b"\x00bad"])
    with _workspace(tmp_path / "ray", cluster) as on_ray:
        got = _vectors(on_ray, sql)
        assert on_ray.serving.ray is not None and len(set(on_ray.serving.ray.pids("minilm"))) == 2  # two workers
        assert on_ray.serving.ray.pids("minilm") != [os.getpid()] * 2
        docs = on_ray.sql.parse_documents([b"# Title\n\nbody", b"plain text", b"\x00bad"])
    assert got.shape == expected.shape == (400, 384)
    assert np.abs(got - expected).max() < 1e-5
    assert docs == local_docs  # parsed in the workers' own sandboxes, the same answer


def test_index_builds_on_ray_equal_the_in_process_build(cluster: str, tmp_path: Path) -> None:
    answers = []
    for name, address in (("local", None), ("ray", cluster)):
        with _workspace(tmp_path / name, address) as ws:
            admin = ws.principal("admin@example.com")
            ws.vectorsearch.create_endpoint(admin, {"name": "vs"})
            ws.vectorsearch.create_index(admin, {
                "name": "main.default.qi", "endpoint_name": "vs", "primary_key": "id", "index_type": "DELTA_SYNC",
                "delta_sync_index_spec": {"source_table": "main.default.q", "pipeline_type": "TRIGGERED",
                                          "embedding_source_columns": [{"name": "t",
                                                                        "embedding_model_endpoint_name": EMBED}]}})
            result = ws.vectorsearch.sync_now("main.default.qi")
            hits = ws.vectorsearch.query(admin, "main.default.qi", {"query_text": "question number 17",
                                                                    "columns": ["id"], "num_results": 5})
            answers.append([(row[0], round(row[-1], 5)) for row in hits["result"]["data_array"]])
            if address:
                assert result["mode"] in ("full", "none") and ws.serving.ray is not None and ws.serving.ray._pools
    assert answers[0] == answers[1] and answers[0][0][0] == 17


def test_a_killed_worker_is_retried_and_the_insert_commits_once(cluster: str, tmp_path: Path) -> None:
    with _workspace(tmp_path / "ray", cluster) as ws:
        admin = ws.principal("admin@example.com")
        ws.sql.execute(admin, "CREATE TABLE main.default.out (id BIGINT, v ARRAY<FLOAT>)")
        ws.sql.execute(admin, "INSERT INTO main.default.q SELECT id + 400, concat('more ', CAST(id AS STRING)) "
                              "FROM main.default.q")
        versions = len(ws.tables.history(admin, "main.default.out"))
        ray_models = ws.serving.ray
        assert ray_models is not None
        victims = ray_models.pids("minilm")  # the workers, started (and warm) before the statement
        done: dict[str, Any] = {}

        def run() -> None:
            try:
                done["result"] = ws.sql.execute(admin, "INSERT INTO main.default.out SELECT id, ai_query("
                                                       "'databricks-gte-large-en', t) FROM main.default.q")
            except BrickyardError as exc:
                done["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.3)
        os.kill(victims[0], signal.SIGKILL)  # one worker dies in the middle of the statement
        thread.join(300)
        assert "error" not in done, done.get("error")
        rows = ws.sql.execute(admin, "SELECT count(*) AS n, count(DISTINCT id) AS d FROM main.default.out").table
        assert rows.to_pylist() == [{"n": 800, "d": 800}]  # every row once: nothing lost, nothing twice
        assert len(ws.tables.history(admin, "main.default.out")) == versions + 1  # one commit
        assert victims[0] not in ray_models.pids("minilm")  # the dead worker was replaced


def test_governance_is_checked_before_any_worker_starts(cluster: str, tmp_path: Path) -> None:
    with _workspace(tmp_path / "ray", cluster) as ws:
        admin = ws.principal("admin@example.com")
        ws.serving.create(admin, {"name": "private-emb", "config": {"served_entities": [
            {"entity_name": "system.ai.fake-embedding"}]}})
        wait_deployed(ws, admin, "private-emb")
        with pytest.raises(BrickyardError):
            ws.sql.execute(ws.principal("bob@example.com"),
                           "SELECT ai_query('private-emb', t) FROM main.default.q")
        assert ws.serving.ray is not None and ws.serving.ray._pools == {}  # no worker was ever asked
        assert ws.serving.ray._ray is None  # the cluster was not even joined
