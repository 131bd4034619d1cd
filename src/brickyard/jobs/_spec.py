"""A job's settings, checked: the tasks Brickyard runs, their dependencies (no cycles), retries and limits.

Task kinds: ``spark_python_task`` (a Python file in the workspace, run with its ``parameters`` as ``sys.argv``),
``notebook_task`` (a workspace notebook run headless, cell by cell, with ``base_parameters`` as its widgets),
``sql_task`` with a ``file`` (a workspace ``.sql`` file, its statements run in order with ``parameters`` as
``:name`` markers) and ``run_job_task`` (a run of another job, waited for). Any other kind is refused with its
name, so a job never half-runs.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import InvalidParameterValue

MAX_TASKS = 100
KINDS = ("spark_python_task", "notebook_task", "python_wheel_task", "sql_task", "run_job_task",
         "brickyard_index_sync_task",
         "brickyard_evaluation_task", "brickyard_monitoring_task")
#: Brickyard's own task kinds and the fields each needs: a Delta Sync index brought up to date, an evaluation
#: run of an endpoint on a dataset, a round of an experiment's scheduled scorers
BUILTIN = {"brickyard_index_sync_task": ("index_name",),
           "brickyard_evaluation_task": ("endpoint", "dataset", "scorers"),
           "brickyard_monitoring_task": ("experiment_id",)}
UNSUPPORTED = ("spark_jar_task", "spark_submit_task",
               "pipeline_task", "dbt_task", "condition_task", "for_each_task", "dashboard_task")
MAX_TIMEOUT = 7 * 24 * 3600


def _int(value: Any, name: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameterValue(f"{name} must be a whole number from {low} to {high}")
    return value


def task_kind(task: dict[str, Any]) -> str:
    found = [k for k in (*KINDS, *UNSUPPORTED) if task.get(k) is not None]
    if len(found) != 1:
        raise InvalidParameterValue(f"task {task.get('task_key')!r} needs exactly one task type: "
                                    f"{', '.join(KINDS)}")
    if found[0] in UNSUPPORTED:
        raise InvalidParameterValue(f"task {task.get('task_key')!r}: {found[0]} is not supported yet; "
                                    f"Brickyard runs {', '.join(KINDS)}")
    return found[0]


def check_settings(settings: Any) -> dict[str, Any]:
    """The settings, validated and with defaults filled; raises a clear 400 for anything wrong."""
    if not isinstance(settings, dict):
        raise InvalidParameterValue("job settings must be an object")
    out = dict(settings)
    name = out.get("name") or "Untitled"
    if not isinstance(name, str) or len(name) > 4096:
        raise InvalidParameterValue("name must be a string of at most 4096 characters")
    out["name"] = name
    out["max_concurrent_runs"] = _int(out.get("max_concurrent_runs"), "max_concurrent_runs", 1, 1000, 1)
    out["timeout_seconds"] = _int(out.get("timeout_seconds"), "timeout_seconds", 0, MAX_TIMEOUT, 0)
    if out.get("schedule") is not None:
        out["schedule"] = check_schedule(out["schedule"])
    if out.get("trigger") is not None:
        out["trigger"] = check_trigger(out["trigger"])
    if out.get("continuous") is not None:
        continuous = out["continuous"]
        if not isinstance(continuous, dict) or continuous.get("pause_status", "UNPAUSED") not in ("PAUSED", "UNPAUSED"):
            raise InvalidParameterValue("continuous must be {pause_status: UNPAUSED or PAUSED}")
        out["continuous"] = {"pause_status": continuous.get("pause_status") or "UNPAUSED"}
        if out["max_concurrent_runs"] != 1:
            raise InvalidParameterValue("a continuous job runs one run at a time: max_concurrent_runs must be 1")
    if sum(out.get(k) is not None for k in ("schedule", "trigger", "continuous")) > 1:
        raise InvalidParameterValue("a job has one of a schedule, a trigger or continuous, not more")
    tasks = out.get("tasks")
    if not isinstance(tasks, list) or not tasks or len(tasks) > MAX_TASKS:
        raise InvalidParameterValue(f"a job needs 1 to {MAX_TASKS} tasks")
    keys: set[str] = set()
    for task in tasks:
        if not isinstance(task, dict):
            raise InvalidParameterValue("each task must be an object")
        key = task.get("task_key")
        if not isinstance(key, str) or not key or len(key) > 100 or not key.replace("_", "").replace("-", "").isalnum():
            raise InvalidParameterValue(f"task_key {str(key)[:100]!r} must be 1 to 100 letters, digits, '_' or '-'")
        if key in keys:
            raise InvalidParameterValue(f"task_key {key!r} is used twice")
        keys.add(key)
        kind = task_kind(task)
        body = task[kind]
        if not isinstance(body, dict):
            raise InvalidParameterValue(f"task {key!r}: {kind} must be an object")
        _check_body(key, kind, body)
        _check_libraries(key, kind, task.get("libraries"))
        task["max_retries"] = _int(task.get("max_retries"), f"task {key!r} max_retries", -1, 100, 0)
        task["min_retry_interval_millis"] = _int(task.get("min_retry_interval_millis"),
                                                 f"task {key!r} min_retry_interval_millis", 0, 3_600_000, 0)
        task["timeout_seconds"] = _int(task.get("timeout_seconds"), f"task {key!r} timeout_seconds", 0, MAX_TIMEOUT, 0)
        deps = task.get("depends_on") or []
        if not isinstance(deps, list) or not all(isinstance(d, dict) and isinstance(d.get("task_key"), str)
                                                 for d in deps):
            raise InvalidParameterValue(f"task {key!r}: depends_on must be a list of {{task_key}}")
    for task in tasks:
        for dep in task.get("depends_on") or []:
            if dep["task_key"] not in keys:
                raise InvalidParameterValue(f"task {task['task_key']!r} depends on {dep['task_key']!r}, which is not "
                                            "a task of this job")
    order(tasks)  # raises on a cycle
    return out


def _check_libraries(key: str, kind: str, libraries: Any) -> None:
    if libraries is None:
        libraries = []
    if not isinstance(libraries, list) or not all(isinstance(lib, dict) and len(lib) == 1 for lib in libraries):
        raise InvalidParameterValue(f"task {key!r}: libraries must be a list of {{whl: path}} or {{pypi: {{package}}}}")
    for lib in libraries:
        kind_of = next(iter(lib))
        if kind_of == "whl":
            path = lib["whl"]
            if not isinstance(path, str) or not path.endswith(".whl") or not path.startswith(
                    ("/Workspace/", "/Users/", "/Shared/", "/Volumes/")):
                raise InvalidParameterValue(f"task {key!r}: a whl library is the path of a .whl file in the workspace "
                                            "or a volume")
        elif kind_of == "pypi":
            if not isinstance(lib["pypi"], dict) or not isinstance(lib["pypi"].get("package"), str):
                raise InvalidParameterValue(f"task {key!r}: a pypi library is {{pypi: {{package: 'name==version'}}}}")
        else:
            raise InvalidParameterValue(f"task {key!r}: {kind_of} libraries are not supported (whl and pypi are; "
                                        "Brickyard runs Python tasks only and installs nothing)")
    if kind == "python_wheel_task" and not any("whl" in lib for lib in libraries):
        raise InvalidParameterValue(f"task {key!r}: a python_wheel_task needs its wheel in libraries: [{{whl: path}}]")


def _check_body(key: str, kind: str, body: dict[str, Any]) -> None:
    if kind == "python_wheel_task":
        for field in ("package_name", "entry_point"):
            if not isinstance(body.get(field), str) or not body[field]:
                raise InvalidParameterValue(f"task {key!r}: python_wheel_task needs {field}")
        positional, named = body.get("parameters"), body.get("named_parameters")
        if positional is not None and named is not None:
            raise InvalidParameterValue(f"task {key!r}: give parameters or named_parameters, not both")
        if positional is not None and not (isinstance(positional, list) and all(isinstance(x, str) for x in positional)):
            raise InvalidParameterValue(f"task {key!r}: parameters must be a list of strings")
        if named is not None and not (isinstance(named, dict) and all(isinstance(v, str) for v in named.values())):
            raise InvalidParameterValue(f"task {key!r}: named_parameters must be an object of strings")
        return
    if kind in BUILTIN:
        for field in BUILTIN[kind]:
            value = body.get(field)
            ok = isinstance(value, list) and value and all(isinstance(x, str) for x in value) if field == "scorers" \
                else isinstance(value, str) and bool(value)
            if not ok:
                raise InvalidParameterValue(f"task {key!r}: {kind} needs {field}"
                                            + (" (a list of scorer names)" if field == "scorers" else ""))
        return
    if kind == "run_job_task":
        if isinstance(body.get("job_id"), bool) or not isinstance(body.get("job_id"), int):
            raise InvalidParameterValue(f"task {key!r}: run_job_task needs the job_id of the job to run")
        params = body.get("job_parameters")
        if params is not None and not (isinstance(params, dict) and all(isinstance(v, str) for v in params.values())):
            raise InvalidParameterValue(f"task {key!r}: job_parameters must be an object of strings")
        return
    if kind == "sql_task":
        file, query = body.get("file"), body.get("query")
        if query is not None:
            if file is not None or not isinstance(query, dict) or not isinstance(query.get("query_id"), str):
                raise InvalidParameterValue(f"task {key!r}: sql_task has a query {{query_id}} or a file {{path}}")
        elif not isinstance(file, dict) or not isinstance(file.get("path"), str) or not file["path"]:
            raise InvalidParameterValue(f"task {key!r}: sql_task needs a saved query {{query_id}} or a file {{path}} "
                                        "in the workspace (alerts and dashboards are not supported)")
        elif file.get("source") not in (None, "WORKSPACE"):
            raise InvalidParameterValue(f"task {key!r}: only source WORKSPACE is supported (no Git sources)")
        params = body.get("parameters")
        if params is not None and not (isinstance(params, dict) and all(isinstance(v, str) for v in params.values())):
            raise InvalidParameterValue(f"task {key!r}: sql_task parameters must be an object of strings")
        return
    path = body.get("python_file") if kind == "spark_python_task" else body.get("notebook_path")
    if not isinstance(path, str) or not path:
        raise InvalidParameterValue(f"task {key!r}: {'python_file' if kind == 'spark_python_task' else 'notebook_path'}"
                                    " is required (a workspace path)")
    if body.get("source") not in (None, "WORKSPACE"):
        raise InvalidParameterValue(f"task {key!r}: only source WORKSPACE is supported (no Git sources)")
    params = body.get("parameters") if kind == "spark_python_task" else body.get("base_parameters")
    if params is not None and not (isinstance(params, list) and all(isinstance(x, str) for x in params)
                                   if kind == "spark_python_task" else
                                   isinstance(params, dict) and all(isinstance(v, str) for v in params.values())):
        raise InvalidParameterValue(f"task {key!r}: parameters must be a list of strings (Python) or "
                                    "base_parameters an object of strings (notebook)")


def split_statements(text: str) -> list[str]:
    """The statements of a SQL file: split at ``;`` outside quotes, backticks, ``$$`` bodies and comments."""
    out, current, i, quote = [], [], 0, ""
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if text.startswith(quote, i):
                if quote == "$$":
                    current.append("$")
                    i += 1
                quote = ""
            elif ch == "\\" and quote in ("'", '"') and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif text.startswith("$$", i):
            quote = "$$"
            current.append("$$")
            i += 2
            continue
        elif ch in ("'", '"', "`"):
            quote = ch
            current.append(ch)
        elif ch == ";":
            out.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current).strip())
    return [x for x in out if x]


def check_trigger(trigger: Any) -> dict[str, Any]:
    """``{file_arrival: {url}}`` (a volume path) or ``{table_update: {table_names, condition}}``, with their wait
    settings and a pause status."""
    if not isinstance(trigger, dict):
        raise InvalidParameterValue("trigger must be an object")
    pause = trigger.get("pause_status") or "UNPAUSED"
    if pause not in ("PAUSED", "UNPAUSED"):
        raise InvalidParameterValue("pause_status must be PAUSED or UNPAUSED")
    kinds = [k for k in ("file_arrival", "table_update", "periodic", "model") if trigger.get(k) is not None]
    if len(kinds) != 1 or kinds[0] not in ("file_arrival", "table_update"):
        raise InvalidParameterValue("a trigger is file_arrival {url} or table_update {table_names}"
                                    + (f"; {kinds[0]} is not supported" if len(kinds) == 1 else ""))
    kind, body = kinds[0], trigger[kinds[0]]
    if not isinstance(body, dict):
        raise InvalidParameterValue(f"trigger.{kind} must be an object")
    out: dict[str, Any] = {"pause_status": pause}
    waits = {name: _int(body.get(name), f"trigger.{kind}.{name}", 0, 24 * 3600, 0)
             for name in ("min_time_between_triggers_seconds", "wait_after_last_change_seconds")}
    if kind == "file_arrival":
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith("/Volumes/"):
            raise InvalidParameterValue("trigger.file_arrival.url must be a volume path (/Volumes/catalog/schema/"
                                        "volume/...)")
        out["file_arrival"] = {"url": url, **waits}
    else:
        names = body.get("table_names")
        if not isinstance(names, list) or not names or len(names) > 10 or not all(
                isinstance(n, str) and n.count(".") == 2 for n in names):
            raise InvalidParameterValue("trigger.table_update.table_names must list 1 to 10 tables as "
                                        "catalog.schema.table")
        condition = body.get("condition") or "ANY_UPDATED"
        if condition not in ("ANY_UPDATED", "ALL_UPDATED"):
            raise InvalidParameterValue("trigger.table_update.condition must be ANY_UPDATED or ALL_UPDATED")
        out["table_update"] = {"table_names": names, "condition": condition, **waits}
    return out


def check_schedule(schedule: Any) -> dict[str, Any]:
    from ._quartz import Cron

    if not isinstance(schedule, dict) or not isinstance(schedule.get("quartz_cron_expression"), str):
        raise InvalidParameterValue("schedule needs quartz_cron_expression (and timezone_id, pause_status)")
    pause = schedule.get("pause_status") or "UNPAUSED"
    if pause not in ("PAUSED", "UNPAUSED"):
        raise InvalidParameterValue("pause_status must be PAUSED or UNPAUSED")
    zone = schedule.get("timezone_id") or "UTC"
    Cron(schedule["quartz_cron_expression"], str(zone))  # refuses a bad expression or zone, naming it
    return {"quartz_cron_expression": schedule["quartz_cron_expression"], "timezone_id": zone, "pause_status": pause}


def order(tasks: list[dict[str, Any]]) -> list[str]:
    """The task keys in an order that runs every task after what it depends on; a cycle is an error naming it."""
    deps = {t["task_key"]: {d["task_key"] for d in t.get("depends_on") or []} for t in tasks}
    done: list[str] = []
    ready = sorted(k for k, d in deps.items() if not d)
    while ready:
        key = ready.pop(0)
        done.append(key)
        for other, needs in deps.items():
            if key in needs:
                needs.discard(key)
                if not needs and other not in done and other not in ready:
                    ready.append(other)
    if len(done) != len(deps):
        stuck = sorted(k for k in deps if k not in done)
        raise InvalidParameterValue(f"the tasks' dependencies form a cycle through {', '.join(stuck)}")
    return done
