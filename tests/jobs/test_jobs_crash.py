"""kill -9 of the server during a job run (issue 23): when it starts again the run is marked failed with the
reason, and the task process the dead server left behind is stopped, not left running forever."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

from databricks.sdk import WorkspaceClient
from databricks.sdk.service import jobs as j
from databricks.sdk.service.workspace import ImportFormat

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve_process

ANN = "ann@example.com"


def _alive(pid: int) -> bool:
    try:
        ours = b"brickyard.jobs._task_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
        return ours and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # not a zombie
    except OSError:
        return False


def test_a_killed_server_leaves_no_run_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Workspace(Settings(home=home, access_log="off")) as ws:
        token = ws.create_token(ANN)
    with serve_process(home) as (url, proc):
        w = WorkspaceClient(host=url, token=token)
        w.workspace.mkdirs(f"/Users/{ANN}")
        w.workspace.upload(f"/Users/{ANN}/sleep.py", io.BytesIO(b"import time\ntime.sleep(120)\n"),
                           format=ImportFormat.AUTO)
        started = w.jobs.submit(run_name="long", tasks=[j.SubmitTask(
            task_key="sleep", spark_python_task=j.SparkPythonTask(python_file=f"/Users/{ANN}/sleep.py"))])
        deadline = time.monotonic() + 60
        while w.jobs.get_run(started.run_id).tasks[0].state.life_cycle_state != j.RunLifeCycleState.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        with Workspace(Settings(home=home, access_log="off"), background=False) as peek:
            pid = None
            while pid is None:  # the task's process is recorded just after it starts
                assert time.monotonic() < deadline
                with peek.db.tx(write=False) as tx:
                    pid = tx.scalar("SELECT pid FROM job_task_runs WHERE parent_run_id = ?", (started.run_id,))
                time.sleep(0.05)
        pid = int(pid)
        assert _alive(pid)
        os.kill(proc.pid, 9)
        proc.wait(timeout=30)
    assert _alive(pid)  # the task outlived its server
    with serve_process(home) as (url, _proc):
        run = WorkspaceClient(host=url, token=token).jobs.get_run(started.run_id)
        assert run.state.life_cycle_state == j.RunLifeCycleState.INTERNAL_ERROR
        assert "server stopped" in run.state.state_message
        assert run.tasks[0].state.result_state == j.RunResultState.FAILED
        deadline = time.monotonic() + 10
        while _alive(pid):
            assert time.monotonic() < deadline, "the orphaned task process is still running"
            time.sleep(0.1)
