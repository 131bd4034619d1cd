"""Jobs API 2.2 (issue 23): ``w.jobs`` unchanged — a multi-task job of notebooks and a Python file from the
workspace, run as its owner with a token of its own, task values and widgets, notebook output, logs; retries,
timeouts, cancel, bad settings. (A run cut short by kill -9 of the server: test_jobs_crash.py.)"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest
from databricks.sdk.service import iam
from databricks.sdk.service import jobs as j
from databricks.sdk.service.workspace import ImportFormat

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

ANN = "ann@example.com"
HOME = f"/Users/{ANN}/jobs"
PREPARE = """# Databricks notebook source
dbutils.widgets.text("rows", "3")
rows = int(dbutils.widgets.get("rows"))
dbutils.jobs.taskValues.set("count", rows * 2)

# COMMAND ----------

# MAGIC %md
# MAGIC Counting done.

# COMMAND ----------

print("prepared", rows)
"""
REPORT = """# Databricks notebook source
count = dbutils.jobs.taskValues.get("prepare", "count")
dbutils.notebook.exit(f"count={count} for {dbutils.widgets.get('who')}")
"""
SCRIPT = """import sys
from databricks.sdk import WorkspaceClient
print("args", sys.argv[1:])
print("acting as", WorkspaceClient().current_user.me().user_name)
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("jobs") / "home", access_log="off",
                            monitor_interval_seconds=0))
    token = ws.create_token(ANN)
    with serve(ws) as url:
        w = WorkspaceClient(host=url, token=token)
        w.workspace.mkdirs(HOME)
        for name, text in (("prepare.py", PREPARE), ("report.py", REPORT), ("script.py", SCRIPT),
                           ("fail.py", "raise SystemExit('no data today')\n"), ("sleep.py", "import time\ntime.sleep(60)\n"),
                           ("nap.py", "import time\ntime.sleep(2)\n")):
            w.workspace.upload(f"{HOME}/{name}", io.BytesIO(text.encode()), format=ImportFormat.AUTO)
        yield {"ws": ws, "w": w, "url": url}
    ws.close()


def _task(key: str, *, notebook: str | None = None, script: str | None = None, deps: tuple[str, ...] = (),
          **extra: Any) -> j.Task:
    return j.Task(task_key=key, depends_on=[j.TaskDependency(task_key=d) for d in deps],
                  notebook_task=j.NotebookTask(notebook_path=notebook, base_parameters=extra.pop("params", None))
                  if notebook else None,
                  spark_python_task=j.SparkPythonTask(python_file=script, parameters=extra.pop("args", None))
                  if script else None, **extra)


def test_a_multi_task_job_runs_as_its_owner(env: dict[str, Any]) -> None:
    w: WorkspaceClient = env["w"]
    job = w.jobs.create(name="nightly", tasks=[
        _task("prepare", notebook=f"{HOME}/prepare", params={"rows": "21"}),
        _task("report", notebook=f"{HOME}/report", deps=("prepare",)),
        _task("script", script=f"/Workspace{HOME}/script.py", args=["--day", "today"]),
    ], parameters=[j.JobParameterDefinition(name="who", default="nobody")])
    assert w.jobs.get(job.job_id).settings.name == "nightly"
    assert [x.job_id for x in w.jobs.list(name="nightly")] == [job.job_id]
    run = w.jobs.run_now_and_wait(job.job_id, job_parameters={"who": "the team"}, timeout=timedelta(minutes=3))
    assert run.state.result_state == j.RunResultState.SUCCESS, run.state
    by_key = {t.task_key: t for t in run.tasks}
    report = w.jobs.get_run_output(by_key["report"].run_id)
    assert report.notebook_output.result == "count=42 for the team"
    prepared = w.jobs.get_run_output(by_key["prepare"].run_id)
    assert "prepared 21" in prepared.logs
    script = w.jobs.get_run_output(by_key["script"].run_id).logs
    assert "args ['--day', 'today']" in script and f"acting as {ANN}" in script
    assert [r.run_id for r in w.jobs.list_runs(job_id=job.job_id)] == [run.run_id]
    # each task had a token of its own, revoked when it ended
    with env["ws"].db.tx(write=False) as tx:
        job_tokens = tx.all("SELECT revoked_at FROM tokens WHERE kind = 'job'")
    assert len(job_tokens) >= 3 and all(t["revoked_at"] for t in job_tokens)


def test_failures_retries_and_what_depends_on_them(env: dict[str, Any]) -> None:
    w: WorkspaceClient = env["w"]
    run = w.jobs.submit_and_wait(run_name="flaky", tasks=[
        j.SubmitTask(task_key="fail", spark_python_task=j.SparkPythonTask(python_file=f"{HOME}/fail.py"),
                     max_retries=1, min_retry_interval_millis=10),
        j.SubmitTask(task_key="after", depends_on=[j.TaskDependency(task_key="fail")],
                     notebook_task=j.NotebookTask(notebook_path=f"{HOME}/report"))])
    assert run.state.result_state == j.RunResultState.FAILED
    tasks = {t.task_key: t for t in run.tasks}
    assert tasks["fail"].attempt_number == 1 and tasks["fail"].state.result_state == j.RunResultState.FAILED
    assert tasks["after"].state.result_state == j.RunResultState.UPSTREAM_FAILED
    output = w.jobs.get_run_output(tasks["fail"].run_id)
    assert "no data today" in output.error
    missing = w.jobs.submit_and_wait(run_name="missing", tasks=[
        j.SubmitTask(task_key="ghost", spark_python_task=j.SparkPythonTask(python_file=f"{HOME}/nope.py"))])
    assert missing.state.result_state == j.RunResultState.FAILED and "nope.py" in missing.tasks[0].state.state_message


def test_independent_tasks_run_side_by_side(env: dict[str, Any]) -> None:
    w: WorkspaceClient = env["w"]
    run = w.jobs.submit_and_wait(run_name="fan out", tasks=[
        j.SubmitTask(task_key=k, spark_python_task=j.SparkPythonTask(python_file=f"{HOME}/nap.py")) for k in ("a", "b")
    ] + [j.SubmitTask(task_key="c", depends_on=[j.TaskDependency(task_key="a"), j.TaskDependency(task_key="b")],
                      spark_python_task=j.SparkPythonTask(python_file=f"{HOME}/nap.py"))])
    assert run.state.result_state == j.RunResultState.SUCCESS
    t = {x.task_key: x for x in run.tasks}
    assert t["b"].start_time < t["a"].end_time and t["a"].start_time < t["b"].end_time  # they overlapped
    assert t["c"].start_time >= max(t["a"].end_time, t["b"].end_time)  # and c waited for both


def test_sql_files_and_jobs_that_run_jobs(env: dict[str, Any]) -> None:
    w: WorkspaceClient = env["w"]
    w.workspace.upload(f"{HOME}/load.sql", io.BytesIO(
        b"CREATE TABLE IF NOT EXISTS main.default.ann_numbers (n INT);\n"
        b"-- a comment; with a semicolon\n"
        b"INSERT INTO main.default.ann_numbers VALUES (1), (2), (:extra);\n"
        b"SELECT count(*) AS rows FROM main.default.ann_numbers"), format=ImportFormat.RAW)
    env["ws"].catalog.update_grants(env["ws"].system_principal(), "schema", "main.default",
                                    [{"principal": ANN, "add": ["USE_SCHEMA", "CREATE_TABLE"]}])
    env["ws"].catalog.update_grants(env["ws"].system_principal(), "catalog", "main",
                                    [{"principal": ANN, "add": ["USE_CATALOG"]}])
    loader = w.jobs.create(name="load", tasks=[j.Task(task_key="sql", sql_task=j.SqlTask(
        warehouse_id="local", file=j.SqlTaskFile(path=f"/Workspace{HOME}/load.sql"), parameters={"extra": "7"}))])
    parent = w.jobs.run_now_and_wait(w.jobs.create(name="parent", tasks=[j.Task(
        task_key="child", run_job_task=j.RunJobTask(job_id=loader.job_id))]).job_id, timeout=timedelta(minutes=3))
    assert parent.state.result_state == j.RunResultState.SUCCESS, parent.state
    child_run = w.jobs.get_run_output(parent.tasks[0].run_id).run_job_output.run_id
    loaded = w.jobs.get_run(child_run)
    assert loaded.job_id == loader.job_id and loaded.state.result_state == j.RunResultState.SUCCESS
    log = w.jobs.get_run_output(loaded.tasks[0].run_id).logs
    assert '{"rows": 3}' in log
    rows = env["ws"].sql.execute(env["ws"].principal(ANN), "SELECT n FROM main.default.ann_numbers ORDER BY n")
    assert [r["n"] for r in rows.table.to_pylist()] == [1, 2, 7]
    broken = w.jobs.submit_and_wait(run_name="broken sql", tasks=[j.SubmitTask(task_key="bad", sql_task=j.SqlTask(
        warehouse_id="local", file=j.SqlTaskFile(path=f"{HOME}/script.py")))])
    assert broken.state.result_state == j.RunResultState.FAILED and "PARSE_SYNTAX_ERROR" in broken.tasks[0].state.state_message


def test_saved_queries_and_query_tasks(env: dict[str, Any]) -> None:
    from databricks.sdk.errors import NotFound
    from databricks.sdk.service import sql as s

    w: WorkspaceClient = env["w"]
    made = w.queries.create(query=s.CreateQueryRequestQuery(display_name="answer", query_text="SELECT 40 + 1 AS answer",
                                                            warehouse_id="local"))
    assert made.owner_user_name == ANN and made.lifecycle_state == s.LifecycleState.ACTIVE
    w.queries.update(made.id, update_mask="query_text", query=s.UpdateQueryRequestQuery(
        query_text="SELECT 40 + 2 AS answer"))
    assert w.queries.get(made.id).query_text == "SELECT 40 + 2 AS answer"
    assert made.id in [q.id for q in w.queries.list()]
    with pytest.raises(BadRequest, match="unknown field"):
        w.queries.update(made.id, update_mask="colour", query=s.UpdateQueryRequestQuery(query_text="x"))
    with pytest.raises(BadRequest, match="needs display_name and query_text"):
        w.queries.create(query=s.CreateQueryRequestQuery(display_name="empty"))

    def run_query(client: WorkspaceClient) -> j.Run:
        return client.jobs.submit_and_wait(run_name="saved query", tasks=[j.SubmitTask(
            task_key="q", sql_task=j.SqlTask(warehouse_id="local", query=j.SqlTaskQuery(query_id=made.id)))],
            timeout=timedelta(minutes=2))

    done = run_query(w)
    assert done.state.result_state == j.RunResultState.SUCCESS, done.state
    assert '{"answer": 42}' in w.jobs.get_run_output(done.tasks[0].run_id).logs
    bob = WorkspaceClient(host=w.config.host, token=env["ws"].create_token("bob@example.com"))
    with pytest.raises(NotFound):
        bob.queries.get(made.id)
    w.permissions.update("queries", made.id, access_control_list=[iam.AccessControlRequest(
        user_name="bob@example.com", permission_level=iam.PermissionLevel.CAN_VIEW)])
    assert bob.queries.get(made.id).display_name == "answer"
    assert "needs CAN_RUN" in run_query(bob).tasks[0].state.state_message
    w.permissions.update("queries", made.id, access_control_list=[iam.AccessControlRequest(
        user_name="bob@example.com", permission_level=iam.PermissionLevel.CAN_RUN)])
    assert run_query(bob).state.result_state == j.RunResultState.SUCCESS
    w.queries.delete(made.id)
    assert w.queries.get(made.id).lifecycle_state == s.LifecycleState.TRASHED
    assert made.id not in [q.id for q in w.queries.list()]
    assert "in the trash" in run_query(w).tasks[0].state.state_message


def test_repair_runs_the_failed_tasks_again(env: dict[str, Any]) -> None:
    w: WorkspaceClient = env["w"]
    w.workspace.upload(f"{HOME}/needs_flag.py", io.BytesIO(
        f"from databricks.sdk import WorkspaceClient\nWorkspaceClient().workspace.get_status('{HOME}/flag.txt')\n"
        .encode()), format=ImportFormat.AUTO)
    job = w.jobs.create(name="repairable", tasks=[
        _task("first", script=f"{HOME}/nap.py"), _task("flaky", script=f"{HOME}/needs_flag.py", deps=("first",)),
        _task("last", notebook=f"{HOME}/prepare", deps=("flaky",))])
    run = w.jobs.run_now_and_wait(job.job_id, timeout=timedelta(minutes=3))
    before = {t.task_key: t for t in run.tasks}
    assert run.state.result_state == j.RunResultState.FAILED
    assert before["last"].state.result_state == j.RunResultState.UPSTREAM_FAILED
    with pytest.raises(BadRequest, match="no task nope"):
        w.jobs.repair_run(run.run_id, rerun_tasks=["nope"])
    w.workspace.upload(f"{HOME}/flag.txt", io.BytesIO(b"go"), format=ImportFormat.AUTO)
    w.jobs.repair_run(run.run_id, rerun_all_failed_tasks=True, rerun_dependent_tasks=True).result(
        timeout=timedelta(minutes=3))
    after = w.jobs.get_run(run.run_id)
    assert after.state.result_state == j.RunResultState.SUCCESS
    tasks = {t.task_key: t for t in after.tasks}
    assert tasks["first"].start_time == before["first"].start_time  # kept, not run again
    assert tasks["last"].state.result_state == j.RunResultState.SUCCESS
    assert [r.type for r in after.repair_history] == [j.RepairHistoryItemType.ORIGINAL, j.RepairHistoryItemType.REPAIR]


def test_timeouts_and_cancel(env: dict[str, Any]) -> None:
    w: WorkspaceClient = env["w"]
    timed = w.jobs.submit_and_wait(run_name="slow", tasks=[
        j.SubmitTask(task_key="sleep", spark_python_task=j.SparkPythonTask(python_file=f"{HOME}/sleep.py"),
                     timeout_seconds=2)])
    assert timed.state.result_state == j.RunResultState.TIMEDOUT
    started = w.jobs.submit(run_name="cancel me", tasks=[
        j.SubmitTask(task_key="sleep", spark_python_task=j.SparkPythonTask(python_file=f"{HOME}/sleep.py"))])
    deadline = time.monotonic() + 30
    while w.jobs.get_run(started.run_id).tasks[0].state.life_cycle_state != j.RunLifeCycleState.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    w.jobs.cancel_run(started.run_id)
    done = started.result(timeout=timedelta(seconds=60))
    assert done.state.result_state == j.RunResultState.CANCELED


@pytest.mark.parametrize(("tasks", "message"), [
    ([_task("a", script=f"{HOME}/script.py", deps=("b",)), _task("b", script=f"{HOME}/script.py", deps=("a",))],
     "cycle"),
    ([_task("a", script=f"{HOME}/script.py", deps=("zzz",))], "not a task of this job"),
    ([j.Task(task_key="w", spark_jar_task=j.SparkJarTask(main_class_name="Main"))], "not supported"),
    ([j.Task(task_key="q", sql_task=j.SqlTask(warehouse_id="local", query=j.SqlTaskQuery(query_id="1"),
                                              file=j.SqlTaskFile(path="/Shared/x.sql")))], "a query .query_id. or a file"),
    ([j.Task(task_key="q", sql_task=j.SqlTask(warehouse_id="local"))], "needs a saved query"),
    ([_task("a", script=f"{HOME}/script.py"), _task("a", script=f"{HOME}/script.py")], "used twice"),
])
def test_bad_settings_are_clear_errors(env: dict[str, Any], tasks: list[j.Task], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        env["w"].jobs.create(name="bad", tasks=tasks)


def test_jobs_and_workspace_files_in_the_browser_pages(env: dict[str, Any]) -> None:
    from tests.ui._setup import csrf, sign_in

    w: WorkspaceClient = env["w"]
    job = w.jobs.create(name="paged", tasks=[_task("prepare", notebook=f"{HOME}/prepare")],
                        schedule=j.CronSchedule(quartz_cron_expression="0 0 6 * * ?", timezone_id="Europe/Paris",
                                                pause_status=j.PauseStatus.PAUSED))
    page = sign_in(env["url"], env["ws"].create_token(ANN))
    listing = page.get("/jobs").text
    assert "paged" in listing and "0 0 6 * * ?" in listing and "paused" in listing
    detail = page.get(f"/jobs/{job.job_id}")
    assert detail.status_code == 200 and "Run now" in detail.text
    started = page.post(f"/jobs/{job.job_id}/run-now", data={"csrf": csrf(detail.text)})
    assert started.status_code == 303 and started.headers["location"].startswith("/jobs/runs/")
    deadline = time.monotonic() + 60
    while "refresh" in (run_page := page.get(started.headers["location"]).text):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert "SUCCESS" in run_page and "prepared 3" in run_page  # the task's log, on its run's page
    assert run_page.count('id="task-prepare"') == 1
    folder = page.get("/workspace", params={"path": HOME}).text
    assert "prepare" in folder and "notebook (python)" in folder
    source = page.get("/workspace", params={"path": f"{HOME}/script.py"}).text
    assert "acting as" in source
    bob = env["ws"]
    bob.ensure_user("bob@example.com")
    other = sign_in(env["url"], bob.create_token("bob@example.com"))
    assert other.get(f"/jobs/{job.job_id}").status_code == 404
    assert other.get("/workspace", params={"path": HOME}).status_code == 404
    page.close()
    other.close()


def test_job_permissions_decide_who_sees_runs_and_manages(env: dict[str, Any]) -> None:
    from databricks.sdk.errors import NotFound, PermissionDenied

    ws = env["ws"]
    ws.ensure_user("carl@example.com")
    carl = WorkspaceClient(host=env["url"], token=ws.create_token("carl@example.com"))
    w: WorkspaceClient = env["w"]
    job = w.jobs.create(name="guarded", tasks=[_task("prepare", notebook=f"{HOME}/prepare")])
    with pytest.raises(NotFound):
        carl.jobs.get(job.job_id)
    assert job.job_id not in [x.job_id for x in carl.jobs.list()]
    w.jobs.set_permissions(str(job.job_id), access_control_list=[
        j.JobAccessControlRequest(user_name="carl@example.com", permission_level=j.JobPermissionLevel.CAN_VIEW)])
    assert carl.jobs.get(job.job_id).settings.name == "guarded"
    with pytest.raises(PermissionDenied):
        carl.jobs.run_now(job.job_id)
    w.jobs.update_permissions(str(job.job_id), access_control_list=[
        j.JobAccessControlRequest(user_name="carl@example.com", permission_level=j.JobPermissionLevel.CAN_MANAGE_RUN)])
    run = carl.jobs.run_now(job.job_id).result(timeout=timedelta(minutes=2))
    assert run.state.result_state == j.RunResultState.SUCCESS
    assert carl.jobs.get(job.job_id).run_as_user_name == ANN  # carl started it; it runs as its owner
    with pytest.raises(PermissionDenied):
        carl.jobs.delete(job.job_id)
    acl = w.jobs.get_permissions(str(job.job_id)).access_control_list
    levels = {(a.user_name, a.all_permissions[0].permission_level) for a in acl}
    assert (ANN, j.JobPermissionLevel.IS_OWNER) in levels
    assert ("carl@example.com", j.JobPermissionLevel.CAN_MANAGE_RUN) in levels
