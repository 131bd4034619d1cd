"""Jobs and their runs: settings kept in the metastore, runs executed by the server, tasks as subprocesses.

A run executes its tasks one at a time in dependency order (a task starts once everything it depends on has
succeeded; the tasks downstream of a failure end ``UPSTREAM_FAILED``). Each task runs as the job's run-as
principal in a process of its own (:mod:`._task_main`) with a token of that principal made for the task and
revoked when it ends, its timeout enforced on the whole process group, its retries after
``min_retry_interval_millis``. A task's printed output is its log (``<home>/jobs/runs/<run>/<task>.log``),
read back by ``runs/get-output``. A run still marked running when the server starts again was cut short by
the server stopping: it is marked failed with that reason, never left running.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from ..catalog import Principal, access_entries
from ..core.errors import InvalidParameterValue, NotFound, PermissionDenied
from ..core.ids import now_ms
from ._scheduler import Scheduling
from ._spec import check_settings, order, task_kind
from ._tasks import TERMINAL, TaskKinds, kill, kill_orphan

log = logging.getLogger("brickyard.jobs")

LOG_LIMIT = 5 << 20
PARALLEL_TASKS = 4  # tasks of one run at once, where their dependencies allow
MAX_LIST = 100
CODES = {"SUCCESS": ("SUCCESS", "SUCCESS"), "FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
         "TIMEDOUT": ("TIMED_OUT", "CLIENT_ERROR"), "CANCELED": ("CANCELED", "SUCCESS"),
         "UPSTREAM_FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"), "INTERNAL_ERROR": ("INTERNAL_ERROR", "INTERNAL_ERROR")}


JOB_LEVELS = {"CAN_VIEW": 1, "CAN_MANAGE_RUN": 2, "IS_OWNER": 3, "CAN_MANAGE": 3}


def _new_id() -> int:
    return secrets.randbelow(2**52) + 1


class Jobs(Scheduling, TaskKinds):
    def __init__(self, *, db: Any, home: Path, files: Any, identity: Any, principal: Callable[[str], Principal],
                 server_url: Callable[[], str], environ: Callable[..., dict[str, str]],
                 sql: Callable[[Principal, str, list[dict[str, Any]]], Any] | None = None,
                 destinations: Any = None, volume_files: Callable[[Principal, str], dict[str, Any]] | None = None,
                 table_version: Callable[[Principal, str], int] | None = None,
                 volume_open: Callable[[Principal, str], Path] | None = None,
                 saved_query: Callable[[Principal, str], str] | None = None,
                 builtins: dict[str, Callable[[Principal, dict[str, Any]], str]] | None = None, workers: int = 4,
                 clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.dir = home / "jobs" / "runs"
        self.files = files
        self.identity = identity
        self.principal = principal
        self.server_url = server_url
        self.environ = environ
        self.sql = sql
        self.destinations = destinations
        self.volume_files = volume_files
        self.saved_query = saved_query  # the SQL of a saved query, for a sql_task's query
        self.volume_open = volume_open  # a volume file's local path, read as the principal (wheels of wheel tasks)
        self.table_version = table_version
        self.builtins = builtins or {}
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job-run")
        self._cancelled: set[int] = set()
        self._procs: dict[int, dict[str, subprocess.Popen[bytes]]] = {}  # run id -> task key -> its process
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._scheduler: threading.Thread | None = None
        self._started = False  # only the server's own workspace fires schedules and triggers

    def start(self) -> None:
        """The server's own start: runs a stopped server left running are marked failed (nothing resumes them),
        and the schedules and triggers start firing (the scheduler runs while any job has one)."""
        self._started = True
        self._mark_interrupted()
        with self.db.tx(write=False) as tx:
            timed = tx.scalar("SELECT count(*) FROM jobs WHERE settings LIKE ? OR settings LIKE ? OR settings LIKE ?",
                              ('%"schedule"%', '%"trigger"%', '%"continuous"%'))
        if timed:
            self._ensure_scheduler()

    def _mark_interrupted(self) -> None:
        now = self.clock()
        with self.db.tx() as tx:
            for task in tx.all("SELECT pid FROM job_task_runs WHERE state = 'RUNNING' AND pid IS NOT NULL"):
                kill_orphan(int(task["pid"]))  # a task process that outlived its server (kill -9)
            for row in tx.all("SELECT run_id FROM job_runs WHERE state NOT IN ('TERMINATED', 'SKIPPED', 'INTERNAL_ERROR')"):
                message = "the server stopped while this run was in progress"
                tx.execute("UPDATE job_task_runs SET state = 'TERMINATED', result = 'FAILED', message = ?, end_time = ? "
                           "WHERE parent_run_id = ? AND state NOT IN ('TERMINATED', 'SKIPPED')",
                           (message, now, row["run_id"]))
                tx.execute("UPDATE job_runs SET state = 'INTERNAL_ERROR', result = 'FAILED', message = ?, end_time = ? "
                           "WHERE run_id = ?", (message, now, row["run_id"]))

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._cancelled.update(self._procs)
            procs = [proc for by_task in self._procs.values() for proc in by_task.values()]
        for proc in procs:
            kill(proc)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- jobs ----------------------------------------------------------------------------------------------------
    def _level(self, tx: Any, p: Principal, job_id: Any, creator: str, run_as: str) -> int:
        """What ``p`` may do with a job: admins and its owner (creator) manage it, its run-as principal sees it,
        and grants (``/api/2.0/permissions/jobs``) to the user, their groups or ``users`` add the rest."""
        if p.is_admin or creator == p.name:
            return JOB_LEVELS["CAN_MANAGE"]
        best = JOB_LEVELS["CAN_VIEW"] if run_as == p.name else 0
        names = [p.name, *getattr(p, "groups", ()), "users"]
        marks = ",".join("?" * len(names))
        for row in tx.all(f"SELECT level FROM job_acl WHERE job_id = ? AND principal IN ({marks})",  # noqa: S608
                          [int(job_id), *names]):
            best = max(best, JOB_LEVELS.get(row["level"], 0))
        return best

    def _job(self, tx: Any, p: Principal, job_id: Any, manage: bool = False, need: str = "CAN_VIEW") -> Any:
        try:
            ident = int(job_id)
        except (TypeError, ValueError):
            raise InvalidParameterValue("job_id must be a number") from None
        row = tx.one("SELECT * FROM jobs WHERE job_id = ?", (ident,))
        level = 0 if row is None else self._level(tx, p, ident, row["creator"], row["run_as"])
        if level == 0:
            raise NotFound(f"Job {ident} does not exist.", error_code="RESOURCE_DOES_NOT_EXIST")
        need = "CAN_MANAGE" if manage else need
        if level < JOB_LEVELS[need]:
            raise PermissionDenied(f"{p.name} lacks {need} on job {ident}")
        return row

    def permissions(self, p: Principal, job_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._job(tx, p, job_id)
            acl = tx.all("SELECT principal, level FROM job_acl WHERE job_id = ? ORDER BY principal", (row["job_id"],))
        out = [{"user_name": row["creator"], "all_permissions": [{"permission_level": "IS_OWNER", "inherited": False}]}]
        for entry in acl:
            key = "user_name" if "@" in entry["principal"] else "group_name"
            out.append({key: entry["principal"], "all_permissions": [{"permission_level": entry["level"],
                                                                     "inherited": False}]})
        return {"object_id": f"/jobs/{row['job_id']}", "object_type": "job", "access_control_list": out}

    def set_permissions(self, p: Principal, job_id: Any, acl: Any, *, replace: bool) -> dict[str, Any]:
        entries = access_entries(acl, ("CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE"), "IS_OWNER is the creator's")
        with self.db.tx() as tx:
            row = self._job(tx, p, job_id, manage=True)
            if replace:
                tx.execute("DELETE FROM job_acl WHERE job_id = ?", (row["job_id"],))
            for who, level in entries:
                tx.execute("DELETE FROM job_acl WHERE job_id = ? AND principal = ?", (row["job_id"], who))
                tx.execute("INSERT INTO job_acl (job_id, principal, level) VALUES (?, ?, ?)", (row["job_id"], who, level))
        return self.permissions(p, job_id)

    def _run_as(self, p: Principal, settings: dict[str, Any]) -> str:
        run_as = settings.get("run_as") or {}
        who = run_as.get("user_name") or run_as.get("service_principal_name") or p.name
        if who != p.name and not p.is_admin:
            raise PermissionDenied(f"{p.name} may not run a job as {who}: only admins may set another run_as")
        self.principal(who)  # exists
        return str(who)

    def _checked(self, body: Any) -> dict[str, Any]:
        settings = check_settings(body)
        if settings.get("webhook_notifications") is not None:
            if self.destinations is None:
                raise InvalidParameterValue("this workspace sends no webhooks")
            self.destinations.check(settings["webhook_notifications"])
        return settings

    def create(self, p: Principal, body: Any) -> dict[str, Any]:
        settings = self._checked(body)
        job_id = _new_id()
        with self.db.tx() as tx:
            tx.execute("INSERT INTO jobs (job_id, creator, run_as, settings, created_at) VALUES (?, ?, ?, ?, ?)",
                       (job_id, p.name, self._run_as(p, settings), json.dumps(settings), self.clock()))
        if settings.get("schedule") or settings.get("trigger") or settings.get("continuous"):
            self._ensure_scheduler()
        return {"job_id": job_id}

    def _shape(self, row: Any) -> dict[str, Any]:
        return {"job_id": int(row["job_id"]), "creator_user_name": row["creator"], "run_as_user_name": row["run_as"],
                "created_time": row["created_at"], "settings": json.loads(row["settings"])}

    def get(self, p: Principal, job_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            return self._shape(self._job(tx, p, job_id))

    def list(self, p: Principal, *, name: str | None = None, offset: int = 0, limit: int = 25) -> dict[str, Any]:
        limit = max(1, min(MAX_LIST, limit))
        with self.db.tx(write=False) as tx:
            rows = [r for r in tx.all("SELECT * FROM jobs ORDER BY created_at, job_id")
                    if self._level(tx, p, r["job_id"], r["creator"], r["run_as"])]
        jobs = [self._shape(r) for r in rows]
        if name:
            jobs = [j for j in jobs if j["settings"]["name"] == name]
        page = jobs[offset:offset + limit]
        out: dict[str, Any] = {"jobs": page, "has_more": offset + limit < len(jobs)}
        if out["has_more"]:
            out["next_page_token"] = str(offset + limit)
        return out

    def reset(self, p: Principal, job_id: Any, new_settings: Any) -> None:
        settings = self._checked(new_settings)
        with self.db.tx() as tx:
            row = self._job(tx, p, job_id, manage=True)
            tx.execute("UPDATE jobs SET settings = ?, run_as = ? WHERE job_id = ?",
                       (json.dumps(settings), self._run_as(p, settings), row["job_id"]))
        if settings.get("schedule") or settings.get("trigger") or settings.get("continuous"):
            self._ensure_scheduler()

    def update(self, p: Principal, job_id: Any, new_settings: Any, fields_to_remove: Any = None) -> None:
        with self.db.tx(write=False) as tx:
            current = json.loads(self._job(tx, p, job_id, manage=True)["settings"])
        merged = {**current, **(new_settings or {})}
        if isinstance((new_settings or {}).get("tasks"), list):  # tasks merge by key, as on Databricks
            by_key = {t["task_key"]: t for t in current.get("tasks", [])}
            for task in new_settings["tasks"]:
                by_key[task.get("task_key")] = task
            merged["tasks"] = list(by_key.values())
        for field in fields_to_remove or []:
            if isinstance(field, str) and field.startswith("tasks/"):
                merged["tasks"] = [t for t in merged.get("tasks", []) if t["task_key"] != field[6:]]
            else:
                merged.pop(str(field), None)
        self.reset(p, job_id, merged)

    def delete(self, p: Principal, job_id: Any) -> None:
        with self.db.tx() as tx:
            row = self._job(tx, p, job_id, manage=True)
            tx.execute("DELETE FROM jobs WHERE job_id = ?", (row["job_id"],))

    # -- runs ----------------------------------------------------------------------------------------------------
    def run_now(self, p: Principal, job_id: Any, *, job_parameters: Any = None, notebook_params: Any = None,
                python_params: Any = None) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._job(tx, p, job_id, need="CAN_MANAGE_RUN")
        settings = json.loads(row["settings"])
        params = {d["name"]: str(d.get("default", "")) for d in settings.get("parameters") or []
                  if isinstance(d, dict) and d.get("name")}
        for given in (job_parameters, notebook_params):
            if given is not None and not (isinstance(given, dict) and all(isinstance(v, str) for v in given.values())):
                raise InvalidParameterValue("job_parameters and notebook_params must be objects of strings")
            params.update(given or {})
        if python_params is not None and not (isinstance(python_params, list)
                                              and all(isinstance(x, str) for x in python_params)):
            raise InvalidParameterValue("python_params must be a list of strings")
        with self.db.tx(write=False) as tx:
            active = tx.scalar("SELECT count(*) FROM job_runs WHERE job_id = ? AND state NOT IN "
                               "('TERMINATED', 'SKIPPED', 'INTERNAL_ERROR')", (row["job_id"],))
        if active >= settings["max_concurrent_runs"]:
            raise InvalidParameterValue(f"job {row['job_id']} already has {active} active runs (max_concurrent_runs "
                                        f"{settings['max_concurrent_runs']})", error_code="RESOURCE_EXHAUSTED")
        return self._launch(p, int(row["job_id"]), settings, row["run_as"], params, python_params, "ONE_TIME",
                            "JOB_RUN")

    def submit(self, p: Principal, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidParameterValue("the run must be an object with tasks")
        settings = self._checked({**body, "name": body.get("run_name") or "Untitled"})
        return self._launch(p, None, settings, self._run_as(p, settings), {}, None, "ONE_TIME", "SUBMIT_RUN")

    def _launch(self, p: Principal, job_id: int | None, settings: dict[str, Any], run_as: str, params: dict[str, str],
                python_params: list[str] | None, trigger: str, run_type: str, depth: int = 0) -> dict[str, Any]:
        run_id = _new_id()
        now = self.clock()
        with self.db.tx() as tx:
            number = (tx.scalar("SELECT count(*) FROM job_runs WHERE job_id = ?", (job_id,)) or 0) + 1 if job_id else 1
            tx.execute("INSERT INTO job_runs (run_id, job_id, number_in_job, run_name, creator, run_as, trigger_type, "
                       "run_type, state, result, message, params, settings, start_time, end_time) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', NULL, '', ?, ?, ?, NULL)",
                       (run_id, job_id, number, settings["name"], p.name, run_as, trigger, run_type,
                        json.dumps({"job": params, "python": python_params, "depth": depth}), json.dumps(settings), now))
            for task in settings["tasks"]:
                tx.execute("INSERT INTO job_task_runs (run_id, parent_run_id, task_key, state, result, message, "
                           "attempt, start_time, end_time, output) VALUES (?, ?, ?, 'PENDING', NULL, '', 0, NULL, NULL, "
                           "NULL)", (_new_id(), run_id, task["task_key"]))
        self._pool.submit(self._execute, run_id)
        return {"run_id": run_id, "number_in_job": number}

    def _execute(self, run_id: int, only: set[str] | None = None) -> None:
        try:
            self._execute_run(run_id, only)
        except Exception:  # noqa: BLE001 - a bug must not leave the run running forever
            log.exception("job run %s failed inside the server", run_id)
            self._finish(run_id, "INTERNAL_ERROR", "FAILED", "the server could not run this job; see its log")

    def _execute_run(self, run_id: int, only: set[str] | None = None) -> None:
        """Run the run's tasks; with ``only`` (a repair), just those, the others keeping their results."""
        with self.db.tx() as tx:
            run = tx.one("SELECT * FROM job_runs WHERE run_id = ?", (run_id,))
            tx.execute("UPDATE job_runs SET state = 'RUNNING' WHERE run_id = ?", (run_id,))
        settings = json.loads(run["settings"])
        self._notify(run, settings, "on_start", "RUNNING", None)
        params = json.loads(run["params"])
        tasks = {t["task_key"]: t for t in settings["tasks"]}
        results: dict[str, str] = {}
        if only is not None:
            with self.db.tx(write=False) as tx:
                for t in tx.all("SELECT task_key, result FROM job_task_runs WHERE parent_run_id = ?", (run_id,)):
                    if t["task_key"] not in only:
                        results[t["task_key"]] = t["result"] or "FAILED"
        folder = self.dir / str(run_id)
        (folder / "values").mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + settings["timeout_seconds"] if settings["timeout_seconds"] else None
        order(settings["tasks"])  # checked at create; a stored job is never cyclic
        pending = {k: t for k, t in tasks.items() if only is None or k in only}
        running: dict[Any, str] = {}
        with ThreadPoolExecutor(max_workers=PARALLEL_TASKS, thread_name_prefix=f"run-{run_id}") as pool:
            while pending or running:
                for key, task in list(pending.items()):
                    upstream = [d["task_key"] for d in task.get("depends_on") or []]
                    if any(u not in results for u in upstream):
                        continue  # waits for what it depends on
                    del pending[key]
                    if run_id in self._cancelled:
                        self._task_done(run_id, key, results, "CANCELED", "the run was cancelled")
                    elif any(results[u] != "SUCCESS" for u in upstream):
                        self._task_done(run_id, key, results, "UPSTREAM_FAILED",
                                        f"a task it depends on did not succeed: {', '.join(upstream)}")
                    else:
                        running[pool.submit(self._run_task, run, task, params, folder, deadline)] = key
                if not running:
                    continue
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    key = running.pop(future)
                    try:
                        result, message = future.result()
                    except Exception:  # noqa: BLE001 - one task's bug fails that task, not the server
                        log.exception("task %s of run %s failed inside the server", key, run_id)
                        result, message = "FAILED", "the server could not run this task; see its log"
                    self._task_done(run_id, key, results, result, message)
        failed = [k for k, r in results.items() if r != "SUCCESS"]
        if run_id in self._cancelled:
            self._finish(run_id, "TERMINATED", "CANCELED", "the run was cancelled")
        elif any(r == "TIMEDOUT" for r in results.values()):
            self._finish(run_id, "TERMINATED", "TIMEDOUT", f"timed out in {', '.join(failed)}")
        elif failed:
            self._finish(run_id, "TERMINATED", "FAILED", f"{len(failed)} of {len(results)} tasks did not succeed: "
                                                         f"{', '.join(failed)}")
        else:
            self._finish(run_id, "TERMINATED", "SUCCESS", "")

    def _task_done(self, run_id: int, key: str, results: dict[str, str], result: str, message: str) -> None:
        results[key] = result
        with self.db.tx() as tx:
            tx.execute("UPDATE job_task_runs SET state = 'TERMINATED', result = ?, message = ?, end_time = ?, pid = NULL "
                       "WHERE parent_run_id = ? AND task_key = ?", (result, message, self.clock(), run_id, key))

    def _finish(self, run_id: int, state: str, result: str, message: str) -> None:
        with self.db.tx() as tx:
            tx.execute("UPDATE job_runs SET state = ?, result = ?, message = ?, end_time = ? WHERE run_id = ?",
                       (state, result, message, self.clock(), run_id))
            run = tx.one("SELECT * FROM job_runs WHERE run_id = ?", (run_id,))
        self._cancelled.discard(run_id)
        if run is not None:
            self._notify(run, json.loads(run["settings"]), "on_success" if result == "SUCCESS" else "on_failure",
                         state, result)

    def _notify(self, run: Any, settings: dict[str, Any], event: str, state: str, result: str | None) -> None:
        if self.destinations is None or not settings.get("webhook_notifications"):
            return
        self.destinations.notify(settings["webhook_notifications"], event, {
            "run": {"run_id": int(run["run_id"]), "run_name": run["run_name"], "run_page_url":
                    f"/jobs/runs/{run['run_id']}", "state": {"life_cycle_state": state, "result_state": result}},
            "job": {"job_id": int(run["job_id"]) if run["job_id"] else None, "name": settings.get("name")}})

    def _run_task(self, run: Any, task: dict[str, Any], params: dict[str, Any], folder: Path,
                  deadline: float | None) -> tuple[str, str]:
        key, kind = task["task_key"], task_kind(task)
        body = task[kind]
        retries = task["max_retries"] if task["max_retries"] >= 0 else 100
        attempt = 0
        while True:
            with self.db.tx() as tx:
                tx.execute("UPDATE job_task_runs SET state = 'RUNNING', attempt = ?, start_time = ? "
                           "WHERE parent_run_id = ? AND task_key = ?", (attempt, self.clock(), run["run_id"], key))
            result, message, outcome = self._attempt(run, task, kind, body, params, folder, deadline)
            with self.db.tx() as tx:
                tx.execute("UPDATE job_task_runs SET output = ? WHERE parent_run_id = ? AND task_key = ?",
                           (json.dumps(outcome), run["run_id"], key))
            if result == "SUCCESS" or result in ("CANCELED", "TIMEDOUT") or attempt >= retries:
                return result, message
            attempt += 1
            time.sleep(task["min_retry_interval_millis"] / 1000)

    def repair(self, p: Principal, run_id: Any, *, rerun_tasks: Any = None, rerun_all_failed_tasks: bool = False,
               rerun_dependent_tasks: bool = False) -> dict[str, Any]:
        """Run again some tasks of a finished run (the failed ones, or those named, with what depends on them if
        asked), keeping the results of the others; returns the repair's id."""
        row = self._run_row(p, run_id, need="CAN_MANAGE_RUN")
        if row["state"] not in TERMINAL:
            raise InvalidParameterValue(f"run {row['run_id']} is still {row['state']}; repair it once it has ended",
                                        error_code="INVALID_STATE")
        settings = json.loads(row["settings"])
        keys = {t["task_key"] for t in settings["tasks"]}
        with self.db.tx(write=False) as tx:
            current = {t["task_key"]: t["result"] for t in tx.all(
                "SELECT task_key, result FROM job_task_runs WHERE parent_run_id = ?", (row["run_id"],))}
        if rerun_all_failed_tasks:
            chosen = {k for k, r in current.items() if r != "SUCCESS"}
        else:
            if not isinstance(rerun_tasks, list) or not rerun_tasks or not all(isinstance(k, str) for k in rerun_tasks):
                raise InvalidParameterValue("name the tasks to run again (rerun_tasks) or set rerun_all_failed_tasks")
            unknown = sorted(set(rerun_tasks) - keys)
            if unknown:
                raise InvalidParameterValue(f"run {row['run_id']} has no task {', '.join(unknown)}")
            chosen = set(rerun_tasks)
        if rerun_dependent_tasks:
            grew = True
            while grew:
                grew = False
                for task in settings["tasks"]:
                    if task["task_key"] not in chosen and any(d["task_key"] in chosen for d in task.get("depends_on") or []):
                        chosen.add(task["task_key"])
                        grew = True
        if not chosen:
            raise InvalidParameterValue(f"run {row['run_id']} has no failed task to run again")
        repair_id = _new_id()
        params = json.loads(row["params"])
        params.setdefault("repairs", []).append({"repair_id": repair_id, "start_time": self.clock(),
                                                 "task_keys": sorted(chosen)})
        with self.db.tx() as tx:
            tx.execute("UPDATE job_runs SET state = 'PENDING', result = NULL, message = '', end_time = NULL, params = ? "
                       "WHERE run_id = ?", (json.dumps(params), row["run_id"]))
            for key in chosen:
                tx.execute("UPDATE job_task_runs SET state = 'PENDING', result = NULL, message = '', end_time = NULL "
                           "WHERE parent_run_id = ? AND task_key = ?", (row["run_id"], key))
        self._pool.submit(self._execute, int(row["run_id"]), chosen)
        return {"repair_id": repair_id}

    def cancel(self, p: Principal, run_id: Any) -> None:
        row = self._run_row(p, run_id, need="CAN_MANAGE_RUN")
        if row["state"] in TERMINAL:
            return
        with self._lock:
            self._cancelled.add(int(row["run_id"]))
            procs = list(self._procs.get(int(row["run_id"]), {}).values())
        for proc in procs:
            kill(proc)

    def _run_row(self, p: Principal, run_id: Any, need: str = "CAN_VIEW") -> Any:
        try:
            ident = int(run_id)
        except (TypeError, ValueError):
            raise InvalidParameterValue("run_id must be a number") from None
        with self.db.tx(write=False) as tx:
            row = tx.one("SELECT * FROM job_runs WHERE run_id = ?", (ident,))
            if row is None:
                task = tx.one("SELECT parent_run_id FROM job_task_runs WHERE run_id = ?", (ident,))
                row = tx.one("SELECT * FROM job_runs WHERE run_id = ?", (task["parent_run_id"],)) if task else None
        if row is None or self._run_level(p, row) < JOB_LEVELS[need]:
            if row is not None and self._run_level(p, row) > 0:
                raise PermissionDenied(f"{p.name} lacks {need} on run {ident}")
            raise NotFound(f"Run {ident} does not exist.", error_code="RESOURCE_DOES_NOT_EXIST")
        return row

    def _run_level(self, p: Principal, row: Any) -> int:
        """A run is seen like its job (a one-time run: by who submitted it, its run-as principal and admins)."""
        if p.is_admin or row["creator"] == p.name:
            return JOB_LEVELS["CAN_MANAGE"]
        if row["job_id"]:
            with self.db.tx(write=False) as tx:
                job = tx.one("SELECT creator, run_as FROM jobs WHERE job_id = ?", (row["job_id"],))
                if job is not None:
                    return self._level(tx, p, row["job_id"], job["creator"], job["run_as"])
        return JOB_LEVELS["CAN_VIEW"] if row["run_as"] == p.name else 0

    @staticmethod
    def _state(state: str, result: str | None, message: str) -> dict[str, Any]:
        out: dict[str, Any] = {"life_cycle_state": state, "state_message": message or "",
                               "user_cancelled_or_timedout": result in ("CANCELED", "TIMEDOUT")}
        if result:
            out["result_state"] = result
        return out

    @staticmethod
    def _status(state: str, result: str | None, message: str) -> dict[str, Any]:
        if state not in TERMINAL:
            return {"state": {"PENDING": "PENDING"}.get(state, "RUNNING")}
        code, kind = CODES.get(result or "INTERNAL_ERROR", CODES["INTERNAL_ERROR"])
        return {"state": "TERMINATED", "termination_details": {"code": code, "type": kind, "message": message or ""}}

    def get_run(self, p: Principal, run_id: Any) -> dict[str, Any]:
        row = self._run_row(p, run_id)
        with self.db.tx(write=False) as tx:
            tasks = tx.all("SELECT * FROM job_task_runs WHERE parent_run_id = ? ORDER BY start_time, task_key",
                           (row["run_id"],))
        settings = json.loads(row["settings"])
        specs = {t["task_key"]: t for t in settings["tasks"]}
        out: dict[str, Any] = {
            "run_id": int(row["run_id"]), "number_in_job": row["number_in_job"], "run_name": row["run_name"],
            "creator_user_name": row["creator"], "run_as_user_name": row["run_as"], "start_time": row["start_time"],
            "end_time": row["end_time"] or 0, "trigger": row["trigger_type"], "run_type": row["run_type"],
            "state": self._state(row["state"], row["result"], row["message"]),
            "status": self._status(row["state"], row["result"], row["message"]),
            "run_page_url": f"/jobs/runs/{row['run_id']}",  # the run's page in the workspace UI
            "tasks": [{"run_id": int(t["run_id"]), "task_key": t["task_key"], "attempt_number": t["attempt"],
                       "start_time": t["start_time"] or 0, "end_time": t["end_time"] or 0,
                       "state": self._state(t["state"], t["result"], t["message"]),
                       "status": self._status(t["state"], t["result"], t["message"]),
                       **{k: v for k, v in specs.get(t["task_key"], {}).items()
                          if k in ("depends_on", "notebook_task", "spark_python_task", "description")}}
                      for t in tasks],
            "job_parameters": [{"name": k, "value": v} for k, v in (json.loads(row["params"]).get("job") or {}).items()],
        }
        repairs = json.loads(row["params"]).get("repairs") or []
        if repairs:
            out["repair_history"] = [{"type": "ORIGINAL", "start_time": row["start_time"]}] + [
                {"type": "REPAIR", "id": r["repair_id"], "start_time": r["start_time"],
                 "task_run_ids": [t["run_id"] for t in out["tasks"] if t["task_key"] in r["task_keys"]]}
                for r in repairs]
        if row["job_id"]:
            out["job_id"] = int(row["job_id"])
        return out

    def list_runs(self, p: Principal, *, job_id: Any = None, active_only: bool = False, completed_only: bool = False,
                  offset: int = 0, limit: int = 25) -> dict[str, Any]:
        limit = max(1, min(MAX_LIST, limit))
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT run_id, job_id, creator, run_as, state FROM job_runs ORDER BY start_time DESC")
        picked = [r for r in rows if self._run_level(p, r) > 0
                  and (job_id is None or str(r["job_id"]) == str(job_id))
                  and not (active_only and r["state"] in TERMINAL) and not (completed_only and r["state"] not in TERMINAL)]
        page = picked[offset:offset + limit]
        out: dict[str, Any] = {"runs": [self.get_run(p, r["run_id"]) for r in page],
                               "has_more": offset + limit < len(picked)}
        if out["has_more"]:
            out["next_page_token"] = str(offset + limit)
        return out

    def get_output(self, p: Principal, run_id: Any) -> dict[str, Any]:
        """The output of one task's run (a task run id), as on Databricks; a multi-task run's id is refused."""
        with self.db.tx(write=False) as tx:
            task = tx.one("SELECT * FROM job_task_runs WHERE run_id = ?", (int(run_id),)) if str(run_id).isdigit() \
                else None
        if task is None:
            raise InvalidParameterValue("runs/get-output takes the run id of a task (see tasks[].run_id in runs/get)")
        run = self._run_row(p, task["parent_run_id"])
        outcome = json.loads(task["output"] or "{}")
        log_path = self.dir / str(run["run_id"]) / f"{task['task_key']}.log"
        data = log_path.read_bytes() if log_path.exists() else b""
        out: dict[str, Any] = {"metadata": self.get_run(p, run["run_id"]),
                               "logs": data[-LOG_LIMIT:].decode("utf-8", "replace"),
                               "logs_truncated": len(data) > LOG_LIMIT}
        if "result" in outcome:
            out["notebook_output"] = {"result": outcome["result"], "truncated": False}
        if "run_job_output" in outcome:
            out["run_job_output"] = outcome["run_job_output"]
        if outcome.get("error") and task["result"] != "SUCCESS":
            out["error"] = outcome["error"]
            if outcome.get("error_trace"):
                out["error_trace"] = outcome["error_trace"]
        return out

