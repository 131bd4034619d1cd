"""Brickyard's own job tasks (issue 23): a Delta Sync index brought up to date, an evaluation run of an endpoint,
a round of an experiment's scheduled scorers; each as the job's run-as principal, refused when it may not."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from brickyard.core.errors import InvalidParameterValue
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.sql._shared import synced_index

ADMIN, BOB = "admin@example.com", "bob@example.com"


def _wait(ws: Workspace, who: Any, run_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while (run := ws.jobs.get_run(who, run_id))["state"]["life_cycle_state"] not in ("TERMINATED", "INTERNAL_ERROR"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return run


def test_index_sync_evaluation_and_monitoring_tasks(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path / "home", access_log="off", monitor_interval_seconds=0, enable_fake_models=1))
    try:
        ws.ensure_user(ADMIN, admin=True)
        ws.ensure_user(BOB)
        admin, bob = ws.principal(ADMIN), ws.principal(BOB)
        ws.sql.execute(admin, "CREATE TABLE main.default.docs (id INT, text STRING)")
        ws.sql.execute(admin, "INSERT INTO main.default.docs VALUES (1, 'bricks are strong'), (2, 'mortar binds')")
        synced_index(ws, admin, "main.default.docs_index", "main.default.docs", "text")
        ws.sql.execute(admin, "INSERT INTO main.default.docs VALUES (3, 'walls need both')")
        ws.serving.create(admin, {"name": "echo", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]}})
        deadline = time.monotonic() + 60
        while ws.serving.get(admin, "echo")["state"]["ready"] != "READY":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        dataset = tmp_path / "rows.jsonl"
        dataset.write_text(json.dumps({"inputs": {"question": "hi"}, "expectations": {"expected_response": "echo: hi"}}))
        experiment = ws.tracking.create_experiment(admin, f"/Users/{ADMIN}/monitored")
        started = ws.jobs.submit(admin, {"run_name": "ops", "tasks": [
            {"task_key": "sync", "brickyard_index_sync_task": {"index_name": "main.default.docs_index"}},
            {"task_key": "evaluate", "depends_on": [{"task_key": "sync"}], "brickyard_evaluation_task": {
                "endpoint": "echo", "dataset": str(dataset), "scorers": ["exact_match"],
                "experiment": f"/Users/{ADMIN}/evals"}},
            {"task_key": "monitor", "brickyard_monitoring_task": {"experiment_id": str(experiment)}}]})
        run = _wait(ws, admin, started["run_id"])
        assert run["state"]["result_state"] == "SUCCESS", run
        logs = {t["task_key"]: ws.jobs.get_output(admin, t["run_id"])["logs"] for t in run["tasks"]}
        assert "3 rows" in logs["sync"]
        assert '"exact_match' in logs["evaluate"] and '"run_id"' in logs["evaluate"]
        assert '"scored"' in logs["monitor"]
        # as bob, who may not modify the index nor edit the experiment: each task fails with the library's refusal
        denied = ws.jobs.submit(bob, {"run_name": "not mine", "tasks": [
            {"task_key": "sync", "brickyard_index_sync_task": {"index_name": "main.default.docs_index"}},
            {"task_key": "monitor", "brickyard_monitoring_task": {"experiment_id": str(experiment)}}]})
        refused = _wait(ws, bob, denied["run_id"])
        assert refused["state"]["result_state"] == "FAILED"
        assert all(t["state"]["result_state"] == "FAILED" for t in refused["tasks"])
        with pytest.raises(InvalidParameterValue, match="needs scorers"):
            ws.jobs.submit(admin, {"tasks": [{"task_key": "e", "brickyard_evaluation_task": {
                "endpoint": "echo", "dataset": "x.jsonl"}}]})
    finally:
        ws.close()
