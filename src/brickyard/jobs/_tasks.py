"""How each kind of task runs: a Python file or a notebook in a process of its own (:mod:`._task_main`), a
Python wheel's entry point the same way, a workspace SQL file statement by statement, another job's run, and
Brickyard's own tasks in the server; all as the run's run-as principal."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..core import processes
from ..core.errors import InvalidParameterValue, NotFound, PermissionDenied

WAIT_TICK = 0.25  # seconds between looks at a running task for a cancel or its timeout
MAX_NESTING = 3  # a job's run_job_task may start a job that starts one, no deeper
TERMINAL = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")


class TaskKinds:
    """The task-running half of :class:`~brickyard.jobs.Jobs` (a mixin: the state is the Jobs object's)."""

    def _attempt(self, run: Any, task: dict[str, Any], kind: str, body: dict[str, Any], params: dict[str, Any],
                 folder: Path, deadline: float | None) -> tuple[str, str, dict[str, Any]]:
        if kind == "sql_task":
            return self._sql_task(run, task, body, params, folder)
        if kind == "run_job_task":
            return self._run_job_task(run, task, body, params, deadline)
        if kind.startswith("brickyard_"):
            return self._builtin_task(run, task, kind, body, folder)
        key = task["task_key"]
        who = self.principal(run["run_as"])
        work = folder / key
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            libraries = self._libraries(who, task, work)
        except (NotFound, PermissionDenied, InvalidParameterValue) as exc:
            return "FAILED", exc.message[:1000], {"error": exc.message}
        parameters = params.get("python") if params.get("python") is not None else body.get("parameters") or []
        spec = {"kind": kind, "task_key": key, "values_dir": str(folder / "values"), "output": str(work / "outcome.json"),
                "paths": [str(p) for p in libraries]}
        if kind == "python_wheel_task":
            named = body.get("named_parameters")
            if params.get("job") and not body.get("parameters") and named is None:
                named = params["job"]  # job parameters reach a wheel as --name=value, as on Databricks
            spec.update(entry=self._entry_point(body, libraries), parameters=[f"--{k}={v}" for k, v in named.items()]
                        if named is not None else parameters, package=body["package_name"])
        else:
            path = body["python_file"] if kind == "spark_python_task" else body["notebook_path"]
            path = path.removeprefix("/Workspace") if path.startswith("/Workspace/") else path
            try:
                info, source = self.files.read(who, path)
            except (NotFound, PermissionDenied, InvalidParameterValue) as exc:
                return "FAILED", f"{path}: {exc.message}", {"error": f"{path}: {exc.message}"}
            script = work / ("main.py" if kind == "spark_python_task" else "notebook.py")
            script.write_bytes(source)
            widgets = {**(body.get("base_parameters") or {}), **params.get("job", {})}
            spec.update(file=str(script), parameters=parameters, widgets=widgets, language=info.get("language"))
        (work / "spec.json").write_text(json.dumps(spec))
        limit = task["timeout_seconds"] or None
        if deadline is not None:
            left = max(1.0, deadline - time.monotonic())
            limit = min(limit, left) if limit else left
        token, _ = self.identity.create_token(who.id, lifetime_seconds=int(limit or 24 * 3600) + 300,
                                              comment=f"job run {run['run_id']} task {key}", kind="job")
        env = self.environ(DATABRICKS_HOST=self.server_url(), DATABRICKS_TOKEN=token)
        log_path = folder / f"{key}.log"
        try:
            with open(log_path, "ab") as out:
                proc = subprocess.Popen([sys.executable, "-m", "brickyard.jobs._task_main", str(work / "spec.json")],
                                        cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
                with self._lock:
                    self._procs.setdefault(run["run_id"], {})[key] = proc
                with self.db.tx() as tx:
                    tx.execute("UPDATE job_task_runs SET pid = ? WHERE parent_run_id = ? AND task_key = ?",
                               (proc.pid, run["run_id"], key))
                try:
                    ends = time.monotonic() + limit if limit else None
                    while True:  # polled, so a cancel that came before the process was registered still stops it
                        if run["run_id"] in self._cancelled:
                            kill(proc)
                        try:
                            code = proc.wait(timeout=WAIT_TICK)
                            break
                        except subprocess.TimeoutExpired:
                            if ends is not None and time.monotonic() >= ends:
                                kill(proc)
                                return "TIMEDOUT", f"the task ran longer than {int(limit or 0)} s", \
                                    {"error": "timed out"}
                finally:
                    with self._lock:
                        self._procs.get(run["run_id"], {}).pop(key, None)
        finally:
            self.identity.revoke_secret_token(token)
        if run["run_id"] in self._cancelled:
            return "CANCELED", "the run was cancelled", {"error": "cancelled"}
        try:
            outcome = json.loads((work / "outcome.json").read_text())
        except (OSError, ValueError):
            outcome = {"error": f"the task process ended with code {code} before reporting"}
        if code == 0 and not outcome.get("error"):
            return "SUCCESS", "", outcome
        return "FAILED", str(outcome.get("error") or f"exit code {code}")[:1000], outcome

    def _libraries(self, who: Any, task: dict[str, Any], work: Path) -> list[Path]:
        """The task's ``libraries``: each wheel (a workspace or volume path the run-as principal may read) unpacked
        into the task's folder, its requirements checked against this environment; ``pypi`` packages must be
        installed already (Brickyard installs nothing: it runs offline). The folders to put on ``sys.path``."""
        from ..core.requirements import unmet

        out = []
        for index, lib in enumerate(task.get("libraries") or []):
            if "pypi" in lib:
                missing = unmet([lib["pypi"]["package"]])
                if missing:
                    raise InvalidParameterValue(f"library pypi {lib['pypi']['package']!r} is not installed in the "
                                                f"server's environment ({', '.join(missing)}); Brickyard installs "
                                                "nothing at run time")
                continue
            path = lib["whl"]
            if path.startswith("/Volumes/"):
                if self.volume_open is None:
                    raise InvalidParameterValue("this workspace cannot read volumes")
                data = self.volume_open(who, path).read_bytes()
            else:
                data = self.files.read(who, path.removeprefix("/Workspace") if path.startswith("/Workspace/")
                                       else path)[1]
            target = work / "libraries" / str(index)
            requires = unpack_wheel(data, target, path)
            missing = unmet(requires)
            if missing:
                raise InvalidParameterValue(f"{path} needs {', '.join(missing)}, which the server's environment does "
                                            "not have (Brickyard installs nothing at run time)")
            out.append(target)
        return out

    @staticmethod
    def _entry_point(body: dict[str, Any], libraries: list[Path]) -> str:
        """``module:attribute`` of a wheel task: the entry point called ``entry_point`` in the wheels' metadata
        (any group), else ``<package_name>.<entry_point>()``, as Databricks does."""
        import configparser

        wanted = body["entry_point"]
        for folder in libraries:
            for meta in folder.glob("*.dist-info/entry_points.txt"):
                parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
                parser.optionxform = str  # type: ignore[assignment,method-assign]
                try:
                    parser.read_string(meta.read_text("utf-8"))
                except (configparser.Error, UnicodeDecodeError):
                    continue
                for section in parser.sections():
                    if wanted in parser[section]:
                        return parser[section][wanted].split("[", 1)[0].strip()
        return f"{body['package_name']}:{wanted}"

    def _sql_task(self, run: Any, task: dict[str, Any], body: dict[str, Any], params: dict[str, Any],
                  folder: Path) -> tuple[str, str, dict[str, Any]]:
        """The statements of a workspace SQL file, in order, as the run-as principal; each one's row count and
        first rows go to the task's log. The first failing statement fails the task (those before it stay done)."""
        from ._spec import split_statements

        who = self.principal(run["run_as"])
        query_id = (body.get("query") or {}).get("query_id")
        path = f"query {query_id}" if query_id else body["file"]["path"]
        path = path.removeprefix("/Workspace") if path.startswith("/Workspace/") else path
        if self.sql is None:
            return "FAILED", "this workspace runs no SQL", {"error": "no SQL engine"}
        values = {**(body.get("parameters") or {}), **params.get("job", {})}
        with open(folder / f"{task['task_key']}.log", "a") as out:
            try:
                if query_id:
                    if self.saved_query is None:
                        raise InvalidParameterValue("this workspace has no saved queries")
                    text = self.saved_query(who, query_id)
                else:
                    text = self.files.read(who, path)[1].decode("utf-8")
                statements = split_statements(text)
                if not statements:
                    raise InvalidParameterValue(f"{path} holds no SQL statement")
                for number, statement in enumerate(statements, 1):
                    if run["run_id"] in self._cancelled:
                        return "CANCELED", "the run was cancelled", {"error": "cancelled"}
                    used = [{"name": k, "value": v, "type": "STRING"} for k, v in values.items()
                            if f":{k}" in statement]
                    table = self.sql(who, statement, used).table
                    out.write(f"-- statement {number}: {statement[:200]}\n{table.num_rows} rows\n")
                    for row in table.slice(0, 20).to_pylist():
                        out.write(json.dumps(row, default=str)[:1000] + "\n")
            except UnicodeDecodeError:
                return "FAILED", f"{path} is not UTF-8 text", {"error": f"{path} is not UTF-8 text"}
            except (NotFound, PermissionDenied, InvalidParameterValue) as exc:
                out.write(f"error: {exc.message}\n")
                return "FAILED", f"{path}: {exc.message}"[:1000], {"error": f"{path}: {exc.message}"}
            except Exception as exc:  # noqa: BLE001 - any statement error is the task's error, by message
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                out.write(f"error: {message}\n")
                return "FAILED", str(message)[:1000], {"error": str(message)}
        return "SUCCESS", "", {"sql_output": {"statements": len(statements)}}

    def _builtin_task(self, run: Any, task: dict[str, Any], kind: str, body: dict[str, Any],
                      folder: Path) -> tuple[str, str, dict[str, Any]]:
        """One of Brickyard's own tasks, in the server, as the run-as principal (its checks are the library's)."""
        action = self.builtins.get(kind)
        if action is None:
            return "FAILED", f"this workspace cannot run {kind}", {"error": f"no {kind}"}
        with open(folder / f"{task['task_key']}.log", "a") as out:
            try:
                text = action(self.principal(run["run_as"]), body)
            except Exception as exc:  # noqa: BLE001 - the library's refusal or failure is the task's error
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                out.write(f"error: {message}\n")
                return "FAILED", str(message)[:1000], {"error": str(message)}
            out.write(text + "\n")
        return "SUCCESS", "", {}

    def _run_job_task(self, run: Any, task: dict[str, Any], body: dict[str, Any], params: dict[str, Any],
                      deadline: float | None) -> tuple[str, str, dict[str, Any]]:
        """A run of another job (which the run-as principal must be able to run), waited for to its end."""
        who = self.principal(run["run_as"])
        depth = int(params.get("depth") or 0)
        if depth >= MAX_NESTING:
            return "FAILED", f"jobs run jobs more than {MAX_NESTING} deep (a loop?)", {"error": "nested too deep"}
        try:
            with self.db.tx(write=False) as tx:
                row = self._job(tx, who, body["job_id"])
        except (NotFound, InvalidParameterValue) as exc:
            return "FAILED", exc.message, {"error": exc.message}
        settings = json.loads(row["settings"])
        child_params = {d["name"]: str(d.get("default", "")) for d in settings.get("parameters") or []
                        if isinstance(d, dict) and d.get("name")}
        child_params.update(body.get("job_parameters") or {})
        child = self._launch(who, int(row["job_id"]), settings, row["run_as"], child_params, None, "ONE_TIME",
                             "JOB_RUN", depth=depth + 1)
        while True:
            state = self.get_run(who, child["run_id"])["state"]
            if state["life_cycle_state"] in TERMINAL:
                break
            if run["run_id"] in self._cancelled:
                self.cancel(who, child["run_id"])
            if deadline is not None and time.monotonic() > deadline:
                self.cancel(who, child["run_id"])
                return "TIMEDOUT", "the job it ran did not finish in time", {"run_job_output": {"run_id": child["run_id"]}}
            time.sleep(WAIT_TICK)
        result = state.get("result_state") or "FAILED"
        outcome = {"run_job_output": {"run_id": child["run_id"]}}
        if result == "SUCCESS":
            return "SUCCESS", "", outcome
        return ("CANCELED" if result == "CANCELED" else "FAILED"), \
            f"job run {child['run_id']} ended {result}: {state.get('state_message', '')}"[:1000], outcome


def kill_orphan(pid: int) -> None:
    """Kill the process group of a task process left by a server that was killed, if it is still one of ours."""
    processes.kill_orphan(pid, cmdline=b"brickyard.jobs._task_main")


def kill(proc: subprocess.Popen[bytes]) -> None:
    processes.kill_group(proc)


def unpack_wheel(data: bytes, target: Path, shown: str) -> list[str]:
    """Unpack a wheel (a zip) into ``target``, refusing members that would land outside it; its Requires-Dist."""
    import io
    import zipfile
    from email.parser import HeaderParser

    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidParameterValue(f"{shown} is not a wheel (not a zip archive)") from None
    root = target.resolve()
    total = 0
    with archive:
        for member in archive.infolist():
            dest = (target / member.filename).resolve()
            if member.filename.startswith("/") or (dest != root and root not in dest.parents):
                raise InvalidParameterValue(f"{shown}: the member {member.filename[:100]!r} would land outside the "
                                            "wheel's folder")
            total += member.file_size
            if total > 500 << 20:
                raise InvalidParameterValue(f"{shown} unpacks to more than 500 MB")
        archive.extractall(target)  # noqa: S202 - every member was checked to stay inside target
    metadata = next(iter(target.glob("*.dist-info/METADATA")), None)
    if metadata is None:
        raise InvalidParameterValue(f"{shown} has no .dist-info/METADATA: not a wheel")
    headers = HeaderParser().parsestr(metadata.read_text("utf-8", "replace"))
    return list(headers.get_all("Requires-Dist") or [])
