"""Job schedules (issue 23): Quartz cron expressions with time zones (daylight saving included), refused by name
when unsupported or wrong, and a workspace's scheduler firing an unpaused job and not a paused one."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from brickyard.core.errors import InvalidParameterValue
from brickyard.core.settings import Settings
from brickyard.jobs._quartz import Cron
from brickyard.workspace import Workspace

T0 = dt.datetime(2026, 3, 28, 23, 30, tzinfo=dt.UTC)  # a Saturday night, hours before Europe's spring change


@pytest.mark.parametrize(("expression", "zone", "expected"), [
    ("0 30 2 * * ?", "Europe/Amsterdam", "2026-03-30T00:30:00+00:00"),  # 02:30 does not exist on the 29th there
    ("0 30 1 * * ?", "Europe/Amsterdam", "2026-03-29T00:30:00+00:00"),  # 01:30 CET is 00:30 UTC
    ("0 0 9 ? * MON-FRI", "UTC", "2026-03-30T09:00:00+00:00"),
    ("0 0 12 ? * 1", "America/New_York", "2026-03-29T16:00:00+00:00"),  # Sunday (1) noon EDT
    ("0 0 0 L * ?", "UTC", "2026-03-31T00:00:00+00:00"),
    ("*/15 * * * * ?", "UTC", "2026-03-28T23:30:15+00:00"),
    ("0 0 6 1,15 JAN,JUL ? 2027", "UTC", "2027-01-01T06:00:00+00:00"),
    ("0 0/20 8-9 ? * SAT", "UTC", "2026-04-04T08:00:00+00:00"),
])
def test_next_fire_times(expression: str, zone: str, expected: str) -> None:
    when = Cron(expression, zone).next_after(T0)
    assert when is not None and when.isoformat() == expected


@pytest.mark.parametrize(("expression", "zone", "message"), [
    ("* * * * *", "UTC", "six or seven"),
    ("0 0 0 * * *", "UTC", "exactly one of day-of-month and day-of-week"),
    ("61 * * * * ?", "UTC", "second 61"),
    ("0 0 0 ? * 2#1", "UTC", "'#'"),
    ("0 0 0 15W * ?", "UTC", "'W'"),
    ("0 0 0 ? * 5L", "UTC", "'L'"),
    ("0 0 0 ? * FUNDAY", "UTC", "not a number or a name"),
    ("0 0 0 10-5 * ?", "UTC", "backwards"),
    ("0 0 0 * * ?", "Mars/Olympus", "unknown timezone_id"),
])
def test_bad_expressions_are_refused_by_name(expression: str, zone: str, message: str) -> None:
    with pytest.raises(InvalidParameterValue, match=message):
        Cron(expression, zone)


def test_the_scheduler_fires_unpaused_jobs_only(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path / "home", access_log="off", monitor_interval_seconds=0), background=True)
    try:
        ws.ensure_user("ann@example.com")
        ann = ws.principal("ann@example.com")
        ws.workspace_files.mkdirs(ann, "/Users/ann@example.com")
        ws.workspace_files.import_(ann, "/Users/ann@example.com/tick.py", b"print('tick')\n", fmt="AUTO")
        task = [{"task_key": "tick", "spark_python_task": {"python_file": "/Users/ann@example.com/tick.py"}}]
        every_second = {"quartz_cron_expression": "* * * * * ?", "timezone_id": "UTC"}
        live = ws.jobs.create(ann, {"name": "live", "tasks": task, "schedule": every_second})["job_id"]
        paused = ws.jobs.create(ann, {"name": "paused", "tasks": task,
                                      "schedule": {**every_second, "pause_status": "PAUSED"}})["job_id"]
        deadline = time.monotonic() + 30
        while not ws.jobs.list_runs(ann, job_id=live, completed_only=True)["runs"]:
            assert time.monotonic() < deadline, "the schedule never fired"
            time.sleep(0.2)
        run = ws.jobs.list_runs(ann, job_id=live)["runs"][-1]
        assert run["trigger"] == "PERIODIC"
        assert ws.jobs.list_runs(ann, job_id=paused)["runs"] == []
        with pytest.raises(InvalidParameterValue, match="Invalid Quartz"):
            ws.jobs.create(ann, {"name": "bad", "tasks": task, "schedule": {"quartz_cron_expression": "nope"}})
        ws.jobs.update(ann, live, {"schedule": {**every_second, "pause_status": "PAUSED"}})
        time.sleep(1.5)  # let a run the last tick started finish being counted
        count = len(ws.jobs.list_runs(ann, job_id=live, limit=100)["runs"])
        time.sleep(2.5)
        assert len(ws.jobs.list_runs(ann, job_id=live, limit=100)["runs"]) == count  # paused: no new runs
    finally:
        ws.close()


def test_file_arrival_and_table_update_triggers(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path / "home", access_log="off", monitor_interval_seconds=0), background=True)
    try:
        ws.ensure_user("ann@example.com", admin=True)
        ann = ws.principal("ann@example.com")
        ws.volumes.create(ann, "main.default.landing")
        ws.volumes.upload(ann, "/Volumes/main/default/landing/old.csv", b"a\n1\n")  # there before: no run for it
        ws.sql.execute(ann, "CREATE TABLE main.default.events (n INT)")
        ws.workspace_files.mkdirs(ann, "/Users/ann@example.com")
        ws.workspace_files.import_(ann, "/Users/ann@example.com/tick.py", b"print('tick')\n", fmt="AUTO")
        task = [{"task_key": "tick", "spark_python_task": {"python_file": "/Users/ann@example.com/tick.py"}}]
        files = ws.jobs.create(ann, {"name": "on files", "tasks": task, "trigger": {
            "file_arrival": {"url": "/Volumes/main/default/landing/"}}})["job_id"]
        tables = ws.jobs.create(ann, {"name": "on tables", "tasks": task, "trigger": {
            "table_update": {"table_names": ["main.default.events"]}}})["job_id"]

        def runs(job: int) -> list[dict[str, object]]:
            return ws.jobs.list_runs(ann, job_id=job, limit=100)["runs"]

        time.sleep(2.5)  # the triggers have looked at least once: what is there is their baseline
        assert runs(files) == [] and runs(tables) == []
        ws.volumes.upload(ann, "/Volumes/main/default/landing/new.csv", b"a\n2\n")
        ws.sql.execute(ann, "INSERT INTO main.default.events VALUES (1)")
        deadline = time.monotonic() + 20
        while not (runs(files) and runs(tables)):
            assert time.monotonic() < deadline, "a trigger never fired"
            time.sleep(0.2)
        assert runs(files)[0]["trigger"] == "FILE_ARRIVAL" and runs(tables)[0]["trigger"] == "TABLE"
        time.sleep(2.5)
        assert len(runs(files)) == 1 and len(runs(tables)) == 1  # once per change
        with pytest.raises(InvalidParameterValue, match="volume path"):
            ws.jobs.create(ann, {"name": "bad", "tasks": task, "trigger": {"file_arrival": {"url": "/tmp/x"}}})
        with pytest.raises(InvalidParameterValue, match="not more"):
            ws.jobs.create(ann, {"name": "bad", "tasks": task, "trigger": {"file_arrival": {
                "url": "/Volumes/main/default/landing"}}, "schedule": {"quartz_cron_expression": "0 0 0 * * ?"}})
    finally:
        ws.close()
