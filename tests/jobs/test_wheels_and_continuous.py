"""Python wheel tasks and continuous jobs (issue 23), with ``w.jobs`` unchanged: a wheel from the workspace or
a volume, its entry point from the metadata (or ``package.entry_point``), positional and named parameters,
unmet requirements and unsafe archives refused by name; a continuous job that always has a run, backs off
after failures and stops when paused."""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import compute
from databricks.sdk.service import jobs as j
from databricks.sdk.service.catalog import VolumeType
from databricks.sdk.service.workspace import ImportFormat

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

ANN = "ann@example.com"
HOME = f"/Users/{ANN}/wheels"
WAIT = timedelta(seconds=120)


def wheel(name: str = "greeter", requires: tuple[str, ...] = ("packaging",), extra: dict[str, str] | None = None
          ) -> bytes:
    """A small pure-Python wheel, built here."""
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": "import sys\n\ndef main():\n    print('main of', __name__, sys.argv[1:])\n",
        f"{name}/cli.py": "import sys\n\ndef greet():\n    print('hello', ' '.join(sys.argv[1:]))\n"
                          "    if '--fail' in sys.argv:\n        raise SystemExit('asked to fail')\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: " + name + "\nVersion: 1.0\n"
                            + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\ngreet = " + name + ".cli:greet\n",
        f"{info}/RECORD": "",
        **(extra or {}),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, text in files.items():
            z.writestr(path, text)
    return buf.getvalue()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("wheels") / "home", access_log="off",
                            monitor_interval_seconds=0))
    token = ws.create_token(ANN, admin=True)
    with serve(ws) as url:
        w = WorkspaceClient(host=url, token=token)
        w.workspace.mkdirs(HOME)
        for name, data in (("greeter-1.0-py3-none-any.whl", wheel()),
                           ("needy-1.0-py3-none-any.whl", wheel("needy", ("no-such-dist-xyz>=1",))),
                           ("sneaky-1.0-py3-none-any.whl", wheel("sneaky", extra={"../../escape.py": "x = 1\n"}))):
            w.workspace.upload(f"{HOME}/{name}", io.BytesIO(data), format=ImportFormat.AUTO)
        w.workspace.upload(f"{HOME}/flaky.py", io.BytesIO(b"raise SystemExit('not today')\n"), format=ImportFormat.AUTO)
        w.workspace.upload(f"{HOME}/tick.py", io.BytesIO(b"import time\ntime.sleep(0.3)\nprint('tick')\n"),
                           format=ImportFormat.AUTO)
        w.volumes.create(catalog_name="main", schema_name="default", name="libs", volume_type=VolumeType.MANAGED)
        w.files.upload("/Volumes/main/default/libs/greeter-1.0-py3-none-any.whl", io.BytesIO(wheel()))
        yield {"ws": ws, "w": w}
    ws.close()


def wheel_task(key: str, whl: str, entry: str = "greet", **kw: Any) -> j.SubmitTask:
    return j.SubmitTask(task_key=key, python_wheel_task=j.PythonWheelTask(package_name=whl.rsplit("/", 1)[1].split(
        "-")[0], entry_point=entry, **kw), libraries=[compute.Library(whl=whl)])


def output(w: WorkspaceClient, run: j.Run, key: str) -> j.RunOutput:
    task = next(t for t in run.tasks if t.task_key == key)
    return w.jobs.get_run_output(task.run_id)


def test_wheel_tasks(env: dict[str, Any]) -> None:
    w = env["w"]
    whl = f"/Workspace{HOME}/greeter-1.0-py3-none-any.whl"
    run = w.jobs.submit_and_wait(run_name="wheels", timeout=WAIT, tasks=[
        wheel_task("positional", whl, parameters=["brick", "yard"]),
        wheel_task("named", whl, named_parameters={"who": "ann"}),
        wheel_task("fallback", whl, entry="main", parameters=["x"]),  # not in the metadata: greeter.main()
        wheel_task("volume", "/Volumes/main/default/libs/greeter-1.0-py3-none-any.whl", parameters=["from", "volume"]),
    ])
    assert run.state.result_state == j.RunResultState.SUCCESS, run.state
    assert "hello brick yard" in output(w, run, "positional").logs
    assert "hello --who=ann" in output(w, run, "named").logs
    assert "main of greeter ['x']" in output(w, run, "fallback").logs
    assert "hello from volume" in output(w, run, "volume").logs
    failed = w.jobs.submit_and_wait(run_name="bad wheels", timeout=WAIT, tasks=[
        wheel_task("fails", whl, parameters=["--fail"]),
        wheel_task("needy", f"{HOME}/needy-1.0-py3-none-any.whl"),
        wheel_task("sneaky", f"{HOME}/sneaky-1.0-py3-none-any.whl"),
        wheel_task("missing", f"{HOME}/missing-1.0-py3-none-any.whl"),
    ])
    assert failed.state.result_state == j.RunResultState.FAILED
    messages = {t.task_key: t.state.state_message for t in failed.tasks}
    assert "asked to fail" in messages["fails"]
    assert "no-such-dist-xyz" in messages["needy"] and "installs nothing" in messages["needy"]
    assert "would land outside" in messages["sneaky"]
    assert "missing-1.0" in messages["missing"]
    with pytest.raises(Exception, match="needs its wheel in libraries"):
        w.jobs.submit(tasks=[j.SubmitTask(task_key="t", python_wheel_task=j.PythonWheelTask(
            package_name="greeter", entry_point="greet"))])
    with pytest.raises(Exception, match="maven libraries are not supported"):
        w.jobs.submit(tasks=[j.SubmitTask(task_key="t", python_wheel_task=j.PythonWheelTask(
            package_name="greeter", entry_point="greet"), libraries=[compute.Library(
                maven=compute.MavenLibrary(coordinates="a:b:1"))])])


def runs_of(w: WorkspaceClient, job_id: int) -> list[j.BaseRun]:
    return list(w.jobs.list_runs(job_id=job_id))


def test_continuous_jobs(env: dict[str, Any]) -> None:
    w = env["w"]
    job = w.jobs.create(name="always", continuous=j.Continuous(pause_status=j.PauseStatus.UNPAUSED),
                        tasks=[j.Task(task_key="tick", spark_python_task=j.SparkPythonTask(python_file=f"{HOME}/tick.py"))])
    deadline = time.monotonic() + 60
    while len([r for r in runs_of(w, job.job_id) if r.state.result_state == j.RunResultState.SUCCESS]) < 3:
        assert time.monotonic() < deadline, "a continuous job should start a run whenever none is active"
        time.sleep(0.2)
    assert {r.trigger for r in runs_of(w, job.job_id)} == {j.TriggerType.CONTINUOUS}
    w.jobs.update(job.job_id, new_settings=j.JobSettings(continuous=j.Continuous(pause_status=j.PauseStatus.PAUSED)))
    time.sleep(1.5)  # what was running ends
    count = len(runs_of(w, job.job_id))
    time.sleep(2)
    assert len(runs_of(w, job.job_id)) == count, "a paused continuous job starts nothing"
    # a failing continuous job backs off: 1 s, 2 s, ... between runs
    flaky = w.jobs.create(name="flaky", continuous=j.Continuous(pause_status=j.PauseStatus.UNPAUSED),
                          tasks=[j.Task(task_key="f", spark_python_task=j.SparkPythonTask(python_file=f"{HOME}/flaky.py"))])
    deadline = time.monotonic() + 60
    while len(runs := runs_of(w, flaky.job_id)) < 3 or any(r.end_time == 0 for r in runs[:3]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    w.jobs.update(flaky.job_id, new_settings=j.JobSettings(continuous=j.Continuous(pause_status=j.PauseStatus.PAUSED)))
    ordered = sorted(runs, key=lambda r: r.start_time)[:3]
    assert ordered[1].start_time - ordered[0].end_time >= 900
    assert ordered[2].start_time - ordered[1].end_time >= 1900
    with pytest.raises(Exception, match="not more"):
        w.jobs.create(name="both", continuous=j.Continuous(), schedule=j.CronSchedule(
            quartz_cron_expression="0 0 1 * * ?", timezone_id="UTC"), tasks=[j.Task(
                task_key="t", spark_python_task=j.SparkPythonTask(python_file=f"{HOME}/tick.py"))])
    with pytest.raises(Exception, match="max_concurrent_runs must be 1"):
        w.jobs.create(name="wide", continuous=j.Continuous(), max_concurrent_runs=2, tasks=[j.Task(
            task_key="t", spark_python_task=j.SparkPythonTask(python_file=f"{HOME}/tick.py"))])
