"""One job task in a process of its own: ``python -m brickyard.jobs._task_main SPEC.json``.

A Python file runs as ``__main__`` with its parameters as ``sys.argv``. A notebook runs headless, its code
cells one after the other in one namespace, Markdown cells skipped, with a ``dbutils`` that has what a job's
notebook uses: ``widgets`` (the task's base parameters and the job's parameters; ``text``/``dropdown``/
``combobox`` declare defaults), ``jobs.taskValues`` (``set`` here, ``get`` from the tasks this one depends on)
and ``notebook.exit(value)`` (the task's output). The process gets the run-as principal's short-lived token in
``DATABRICKS_HOST``/``DATABRICKS_TOKEN``, so the SDK, mlflow and the agents work in it as that principal.

What the task printed is its log; how it ended is written to the spec's ``output`` file as JSON.
"""

from __future__ import annotations

import json
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any


class NotebookExit(BaseException):  # noqa: N818 - named as the exit it stands for, not an error
    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class _Widgets:
    def __init__(self, values: dict[str, str]) -> None:
        self._values = dict(values)

    def get(self, name: str) -> str:
        if name not in self._values:
            raise ValueError(f"InputWidgetNotDefined: no widget named {name!r} (give it as a parameter of the task "
                             "or declare it with dbutils.widgets.text)")
        return self._values[name]

    def getArgument(self, name: str, default: str | None = None) -> str | None:  # noqa: N802 - Databricks' name
        return self._values.get(name, default)

    def getAll(self) -> dict[str, str]:  # noqa: N802 - Databricks' name
        return dict(self._values)

    def text(self, name: str, default_value: str = "", label: str | None = None) -> None:
        self._values.setdefault(name, default_value)

    def dropdown(self, name: str, default_value: str, choices: list[str], label: str | None = None) -> None:
        self._values.setdefault(name, default_value)

    combobox = dropdown

    def remove(self, name: str) -> None:
        self._values.pop(name, None)

    def removeAll(self) -> None:  # noqa: N802 - Databricks' name
        self._values.clear()


class _TaskValues:
    def __init__(self, folder: Path, task_key: str) -> None:
        self._folder = folder
        self._task_key = task_key

    def set(self, key: str, value: Any) -> None:
        path = self._folder / f"{self._task_key}.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        values[str(key)] = json.loads(json.dumps(value))  # must be JSON, as on Databricks
        path.write_text(json.dumps(values))

    def get(self, taskKey: str, key: str, default: Any = None, debugValue: Any = None) -> Any:  # noqa: N803
        path = self._folder / f"{taskKey}.json"
        values = json.loads(path.read_text()) if path.exists() else {}
        if key in values:
            return values[key]
        if default is not None:
            return default
        raise ValueError(f"no task value {key!r} from task {taskKey!r}")


class _Namespace:
    def __init__(self, **parts: Any) -> None:
        self.__dict__.update(parts)


def _exit(value: Any) -> None:
    raise NotebookExit(str(value))


def run(spec: dict[str, Any]) -> dict[str, Any]:
    sys.path[:0] = spec.get("paths") or []  # the task's unpacked wheels
    if spec["kind"] == "python_wheel_task":
        import importlib

        module, _, attribute = spec["entry"].partition(":")
        sys.argv = [spec["package"], *spec.get("parameters", [])]
        target: Any = importlib.import_module(module)
        for part in (attribute or "main").split("."):
            target = getattr(target, part)
        target()
        return {}
    source = Path(spec["file"])
    if spec["kind"] == "spark_python_task":
        sys.argv = [str(source), *spec.get("parameters", [])]
        runpy.run_path(str(source), run_name="__main__")
        return {}
    from brickyard.wsfs import notebook_cells

    dbutils = _Namespace(widgets=_Widgets(spec.get("widgets") or {}),
                         jobs=_Namespace(taskValues=_TaskValues(Path(spec["values_dir"]), spec["task_key"])),
                         notebook=_Namespace(exit=_exit))
    namespace: dict[str, Any] = {"__name__": "__main__", "dbutils": dbutils, "display": print}
    for index, (kind, text) in enumerate(notebook_cells(source.read_text(), spec.get("language") or "PYTHON")):
        if kind == "markdown":
            continue
        if kind == "magic":
            command = text.split(None, 1)[0] if text.strip() else "%"
            raise RuntimeError(f"cell {index + 1}: the magic command {command} is not supported in a job here "
                               "(Python cells and %md only)")
        try:
            exec(compile(text, f"<cell {index + 1}>", "exec"), namespace)  # noqa: S102 - the job's own notebook
        except NotebookExit as done:
            return {"result": done.value}
    return {}


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    output = Path(spec["output"])
    try:
        outcome = run(spec)
        code = 0
    except SystemExit as exc:  # sys.exit(n) or sys.exit("message"), as a script ends
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if code == 0:
            outcome = {}
        elif isinstance(exc.code, int):
            outcome = {"error": f"the task exited with code {code}"}
        else:
            print(exc.code, file=sys.stderr)
            outcome = {"error": str(exc.code)[:10_000]}
    except BaseException as exc:  # noqa: BLE001 - every failure becomes the task's error
        traceback.print_exc()
        outcome = {"error": f"{type(exc).__name__}: {exc}"[:10_000],
                   "error_trace": traceback.format_exc()[-20_000:]}
        code = 1
    output.write_text(json.dumps(outcome))
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
