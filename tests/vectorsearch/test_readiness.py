"""An index is not ready until its first snapshot is indexed (issue 18, point 2): during the initial sync
``describe()`` says PROVISIONING_INITIAL_SNAPSHOT with the rows embedded so far, ``wait_until_ready()``
waits for it, and an initial sync that fails leaves the index OFFLINE_FAILED rather than ready and empty."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

warnings.filterwarnings("ignore", category=DeprecationWarning)
import databricks.ai_search.index as client_index  # noqa: E402
from databricks.vector_search.client import VectorSearchClient  # noqa: E402

ROWS = 300


class _QuickPolls:
    """The ``time`` module as the client sees it, with its 30-second sleeps between polls cut short."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(_seconds: float) -> None:
        time.sleep(0.05)


@pytest.fixture
def env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, VectorSearchClient]]:
    ws = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1))
    token = ws.create_token("admin@example.com", admin=True)
    admin = ws.principal("admin@example.com")
    ws.serving.create(admin, {"name": "fake-embedding",
                              "config": {"served_entities": [{"entity_name": "system.ai.fake-embedding"}]}})
    ws.vectorsearch.create_endpoint(admin, {"name": "vs"})
    ws.tables.create(admin, "main.default.chunks", schema=pa.schema([("id", pa.string()), ("text", pa.string())]))
    ws.tables.write(admin, "main.default.chunks", [{"id": f"c{i}", "text": f"chunk {i} about delta tables"}
                                                   for i in range(ROWS)])
    ws.vectorsearch.sync_wait_seconds = 0.2  # answer the create call while the snapshot goes on
    monkeypatch.setattr(client_index, "time", _QuickPolls())  # the client polls every 30 s
    with serve(ws) as url:
        yield ws, VectorSearchClient(workspace_url=url, personal_access_token=token, disable_notice=True)
    ws.close()


def _create(vsc: VectorSearchClient, name: str) -> Any:
    return vsc.create_delta_sync_index(endpoint_name="vs", index_name=name, source_table_name="main.default.chunks",
                                       primary_key="id", pipeline_type="TRIGGERED", embedding_source_column="text",
                                       embedding_model_endpoint_name="fake-embedding")


def test_an_index_is_provisioning_until_its_first_snapshot_is_indexed(env: Any) -> None:
    ws, vsc = env
    real = ws.vectorsearch.embed
    gate, first_batch = threading.Event(), threading.Event()

    def held(p: Any, endpoint: str, texts: list[str]) -> np.ndarray:
        out = real(p, endpoint, texts)
        if texts == ["dimension probe"]:  # create_index learns the dimension first
            return out
        first_batch.set()
        assert gate.wait(30)
        return out

    ws.vectorsearch.embed = held
    try:
        _held_until_ready(vsc, gate, first_batch)
    finally:
        gate.set()


def _held_until_ready(vsc: VectorSearchClient, gate: threading.Event, first_batch: threading.Event) -> None:
    index = _create(vsc, "main.default.chunks_index")
    assert first_batch.wait(10)
    status = index.describe()["status"]
    assert status["ready"] is False and status["detailed_state"] == "PROVISIONING_INITIAL_SNAPSHOT", status
    assert status["indexed_row_count"] == 0
    assert f"of {ROWS} rows" in status["message"] and status["sync_progress"]["rows_to_index"] == ROWS

    waited = threading.Thread(target=index.wait_until_ready)
    waited.start()
    time.sleep(0.5)
    assert waited.is_alive(), "wait_until_ready() returned before the first snapshot was indexed"
    gate.set()
    waited.join(30)
    assert not waited.is_alive()
    status = index.describe()["status"]
    assert status["ready"] is True and status["indexed_row_count"] == ROWS and "ONLINE" in status["detailed_state"]
    hits = index.similarity_search(query_text="delta tables", columns=["id"], num_results=3)
    assert len(hits["result"]["data_array"]) == 3


def test_a_failed_first_snapshot_leaves_the_index_offline_not_ready(env: Any) -> None:
    ws, vsc = env

    real = ws.vectorsearch.embed

    def broken(p: Any, endpoint: str, texts: list[str]) -> np.ndarray:
        if texts == ["dimension probe"]:
            return real(p, endpoint, texts)
        raise RuntimeError("the embedding model is down")

    ws.vectorsearch.embed = broken
    index = _create(vsc, "main.default.broken_index")
    deadline = time.monotonic() + 10
    while index.describe()["status"]["detailed_state"] != "OFFLINE_FAILED" and time.monotonic() < deadline:
        time.sleep(0.05)
    status = index.describe()["status"]
    assert status["detailed_state"] == "OFFLINE_FAILED" and status["ready"] is False
    assert "embedding model is down" in status["message"]
    with pytest.raises(Exception, match="offline"):
        index.wait_until_ready()


def test_an_interrupted_first_snapshot_is_taken_again_when_the_index_is_reopened(tmp_path: Any) -> None:
    home = tmp_path / "home"
    ws = Workspace(Settings(home=home, enable_fake_models=1), background=True)
    admin = ws.ensure_user("admin@example.com", admin=True)
    ws.serving.create(admin, {"name": "fake-embedding",
                              "config": {"served_entities": [{"entity_name": "system.ai.fake-embedding"}]}})
    ws.vectorsearch.create_endpoint(admin, {"name": "vs"})
    ws.tables.create(admin, "main.default.chunks", schema=pa.schema([("id", pa.string()), ("text", pa.string())]))
    ws.tables.write(admin, "main.default.chunks", [{"id": f"c{i}", "text": f"chunk {i}"} for i in range(ROWS)])
    real, gate = ws.vectorsearch.embed, threading.Event()

    def stuck(p: Any, endpoint: str, texts: list[str]) -> np.ndarray:
        if texts != ["dimension probe"]:
            gate.wait(30)
            raise RuntimeError("the process stopped")  # what a killed server leaves: no snapshot
        return real(p, endpoint, texts)

    ws.vectorsearch.embed = stuck
    ws.vectorsearch.sync_wait_seconds = 0.1
    ws.vectorsearch.create_index(admin, {
        "name": "main.default.idx", "endpoint_name": "vs", "primary_key": "id", "index_type": "DELTA_SYNC",
        "delta_sync_index_spec": {"source_table": "main.default.chunks", "pipeline_type": "TRIGGERED",
                                  "embedding_source_columns": [{"name": "text",
                                                                "embedding_model_endpoint_name": "fake-embedding"}]}})
    assert ws.vectorsearch.get_index(admin, "main.default.idx")["status"]["ready"] is False
    gate.set()
    live = ws.vectorsearch.live("main.default.idx")
    if live.sync_thread is not None:
        live.sync_thread.join(10)
    ws.close()
    with Workspace(Settings(home=home, enable_fake_models=1), background=True) as again:
        admin = again.principal("admin@example.com")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            status = again.vectorsearch.get_index(admin, "main.default.idx")["status"]
            if status["ready"]:
                break
            time.sleep(0.05)
        assert status["ready"] is True and status["indexed_row_count"] == ROWS, status
