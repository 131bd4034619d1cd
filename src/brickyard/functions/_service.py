"""Unity Catalog functions as callable tools: execution as the caller with EXECUTE checked, tool specs
derived from the signature, and a helper that registers a Python function from its source.

* **SQL bodies** run through the SQL engine as the caller, so every table the body reads is checked
  against the caller's grants. A scalar body (``a + b`` or ``RETURN a + b``) is evaluated as
  ``SELECT <body>``; a table function's body is a query, answered as CSV. Parameters are bound, never
  spliced into the text.
* **Python bodies** run in a fresh subprocess confined by :mod:`brickyard.core.sandbox`: 1 GiB of address
  space, 10 s of CPU, 15 s of wall time, a scratch directory as the only writable place, the Python
  installation as the only readable one (Landlock), a network namespace of its own, a seccomp filter (no
  sockets, no new processes, no exec), and a minimal environment without the server's variables; its
  process group is killed when the call ends. Without Landlock the call is refused unless an admin allows
  unconfined Python functions (``BRICKYARD_ALLOW_UNCONFINED_PYTHON_FUNCTIONS``). At most
  ``BRICKYARD_FUNCTION_WORKERS`` calls run at once and ``BRICKYARD_FUNCTION_QUEUE_SIZE`` wait; more are
  refused with 503 and Retry-After.
"""

from __future__ import annotations

import contextlib
import csv
import inspect
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import typing
from collections.abc import Callable
from typing import Any

from ..catalog import Catalog, Principal, Securable, uc_type_name
from ..core.errors import FunctionFailed, InvalidParameterValue, NotSupported, TemporarilyUnavailable
from ..core.names import parse_name
from ..core.sandbox import landlock_abi
from ..core.settings import Settings

WALL_SECONDS = 15.0
MAX_RESULT_BYTES = 1 << 20

_JSON_TYPES = {"STRING": "string", "CHAR": "string", "VARCHAR": "string", "INT": "integer", "INTEGER": "integer",
               "BIGINT": "integer", "LONG": "integer", "SHORT": "integer", "SMALLINT": "integer", "BYTE": "integer",
               "TINYINT": "integer", "DOUBLE": "number", "FLOAT": "number", "DECIMAL": "number",
               "BOOLEAN": "boolean", "DATE": "string", "TIMESTAMP": "string", "TIMESTAMP_NTZ": "string",
               "BINARY": "string", "ARRAY": "array", "MAP": "object", "STRUCT": "object", "VARIANT": "object"}
_SQL_PARAM = {"INT": "INT", "INTEGER": "INT", "BIGINT": "BIGINT", "LONG": "BIGINT", "SHORT": "SMALLINT",
              "SMALLINT": "SMALLINT", "BYTE": "TINYINT", "TINYINT": "TINYINT", "DOUBLE": "DOUBLE", "FLOAT": "FLOAT",
              "DECIMAL": "DECIMAL", "BOOLEAN": "BOOLEAN", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP"}


def _base(type_text: str) -> str:
    return str(type_text or "STRING").split("<", 1)[0].split("(", 1)[0].strip().upper()


def _schema_of(type_text: str) -> dict[str, Any]:
    base = _base(type_text)
    out: dict[str, Any] = {"type": _JSON_TYPES.get(base, "string")}
    if base == "ARRAY" and "<" in type_text:
        out["items"] = _schema_of(type_text[type_text.index("<") + 1:type_text.rindex(">")])
    if base in ("DATE", "TIMESTAMP"):
        out["format"] = "date" if base == "DATE" else "date-time"
    return out


def tool_name(full_name: str) -> str:
    """The name agents and MCP clients see: ``catalog__schema__function`` (dots are not allowed there)."""
    return full_name.replace(".", "__")


def tool_spec(obj: Securable) -> dict[str, Any]:
    """An OpenAI/MCP-style tool description from a function's signature and comments."""
    properties: dict[str, Any] = {}
    required = []
    for prm in (obj.spec.get("input_params") or {}).get("parameters", []):
        schema = _schema_of(prm.get("type_text") or prm.get("type_name") or "STRING")
        if prm.get("comment"):
            schema["description"] = prm["comment"]
        properties[prm["name"]] = schema
        if prm.get("parameter_default") is None:
            required.append(prm["name"])
    return {"name": tool_name(obj.full_name), "description": obj.comment or f"Unity Catalog function {obj.full_name}",
            "parameters": {"type": "object", "properties": properties, "required": required,
                           "additionalProperties": False}}


def _coerce(name: str, type_text: str, value: Any) -> Any:
    base = _base(type_text)
    kind = _JSON_TYPES.get(base, "string")
    if value is None:
        return None
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise InvalidParameterValue(f"argument {name!r} must be an integer")
        try:
            number = float(value)
        except ValueError:
            raise InvalidParameterValue(f"argument {name!r} must be an integer") from None
        if number != int(number):
            raise InvalidParameterValue(f"argument {name!r} must be an integer")
        return int(number)
    if kind == "number":
        if isinstance(value, bool):
            raise InvalidParameterValue(f"argument {name!r} must be a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidParameterValue(f"argument {name!r} must be a number") from None
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise InvalidParameterValue(f"argument {name!r} must be true or false")
    if kind == "array" and not isinstance(value, list):
        raise InvalidParameterValue(f"argument {name!r} must be a list")
    if kind == "object" and not isinstance(value, dict):
        raise InvalidParameterValue(f"argument {name!r} must be an object")
    if kind == "string" and not isinstance(value, str):
        return json.dumps(value) if isinstance(value, list | dict) else str(value)
    return value


def _default(text: Any) -> Any:
    """A parameter default as stored (SQL literal text) -> a Python value."""
    if text is None:
        return None
    s = str(text).strip()
    if s.upper() == "NULL":
        return None
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    try:
        return json.loads(s.lower() if s.upper() in ("TRUE", "FALSE") else s)
    except ValueError:
        return s


class _Admission:
    """At most ``running`` calls at once and ``queued`` more waiting for a turn; a call beyond that is refused
    at once with 503 and a Retry-After, so a flood of slow functions holds a bounded number of the server's
    threads and ordinary requests keep theirs."""

    def __init__(self, running: int, queued: int, wait_seconds: float) -> None:
        self.running, self.queued, self.wait_seconds = running, queued, wait_seconds
        self._busy = 0
        self._waiting = 0
        self._cond = threading.Condition()

    def _full(self, name: str) -> TemporarilyUnavailable:
        return TemporarilyUnavailable(
            f"{self.running} Python function calls are running and {self.queued} are waiting; {name} was not "
            "started. Retry later, or raise BRICKYARD_FUNCTION_WORKERS / BRICKYARD_FUNCTION_QUEUE_SIZE",
            retry_after=max(1.0, self.wait_seconds / 2))

    @contextlib.contextmanager
    def turn(self, name: str) -> Any:
        with self._cond:
            if self._busy >= self.running:
                if self._waiting >= self.queued:
                    raise self._full(name)
                self._waiting += 1
                try:
                    if not self._cond.wait_for(lambda: self._busy < self.running, timeout=self.wait_seconds):
                        raise TemporarilyUnavailable(f"{name} waited {self.wait_seconds:.0f} s for a free worker; "
                                                     "retry later", retry_after=max(1.0, self.wait_seconds / 2))
                finally:
                    self._waiting -= 1
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify()


class Functions:
    def __init__(self, catalog: Catalog, sql: Any, settings: Settings, *, cpu_seconds: int = 10,
                 wall_seconds: float = WALL_SECONDS) -> None:
        self.catalog = catalog
        self.sql = sql
        self.allow_unconfined = bool(settings.allow_unconfined_python_functions)
        self.cpu_seconds = cpu_seconds
        self.wall_seconds = wall_seconds
        self.admission = _Admission(settings.function_workers or max(2, os.cpu_count() or 2),
                                    settings.function_queue_size, wall_seconds)

    # -- lookup --------------------------------------------------------------------------------------
    def get(self, p: Principal, name: str) -> Securable:
        return self.catalog.get(p, "function", str(parse_name(name.replace("__", "."), 3, what="function name")))

    def list(self, p: Principal, schema: str) -> list[Securable]:
        out: list[Securable] = []
        token = None
        while True:
            page, token = self.catalog.list(p, "function", schema, page_token=token)
            out += page
            if not token:
                return out

    # -- execution -----------------------------------------------------------------------------------
    def execute(self, p: Principal, name: str, args: dict[str, Any] | None) -> dict[str, Any]:
        """Run ``name`` as ``p`` (who needs EXECUTE on it): {"format": "SCALAR"|"CSV", "value": ...}."""
        full = str(parse_name(name.replace("__", "."), 3, what="function name"))
        obj = self.catalog.require(p, "EXECUTE", "function", full, action="executeFunction")
        args = dict(args or {})
        if not isinstance(args, dict):
            raise InvalidParameterValue("arguments must be an object")
        params = (obj.spec.get("input_params") or {}).get("parameters", [])
        known = {prm["name"] for prm in params}
        extra = sorted(set(args) - known)
        if extra:
            raise InvalidParameterValue(f"{full} has no parameter(s) {', '.join(extra)}; it takes "
                                        f"{', '.join(sorted(known)) or 'none'}")
        bound: dict[str, Any] = {}
        for prm in sorted(params, key=lambda x: x.get("position", 0)):
            if prm["name"] in args:
                bound[prm["name"]] = _coerce(prm["name"], prm.get("type_text") or "STRING", args[prm["name"]])
            elif prm.get("parameter_default") is not None:
                bound[prm["name"]] = _default(prm["parameter_default"])
            else:
                raise InvalidParameterValue(f"{full} needs argument {prm['name']!r}")
        if obj.spec.get("routine_body") == "SQL":
            return self._sql(p, obj, params, bound)
        return self._python(obj, params, bound)

    def _sql(self, p: Principal, obj: Securable, params: list[dict[str, Any]], bound: dict[str, Any]) -> dict[str, Any]:
        import sqlglot
        from sqlglot import exp

        body = str(obj.spec.get("routine_definition") or "").strip().rstrip(";")
        if body[:7].upper() == "RETURN ":
            body = body[7:].strip()
        names = {prm["name"] for prm in params}
        table = str(obj.spec.get("data_type") or "").upper().startswith("TABLE")
        try:
            tree = sqlglot.parse_one(body if table else f"SELECT {body} AS value", read="databricks")
        except sqlglot.errors.ParseError as exc:
            raise FunctionFailed(f"the body of {obj.full_name} is not valid SQL: {str(exc).splitlines()[0]}") from None
        tree = tree.transform(lambda n: exp.Placeholder(this=n.name)
                              if isinstance(n, exp.Column) and not n.table and n.name in names else n)
        parameters = [{"name": prm["name"], "value": None if bound[prm["name"]] is None else (
            json.dumps(bound[prm["name"]]) if isinstance(bound[prm["name"]], list | dict) else bound[prm["name"]]),
            "type": _SQL_PARAM.get(_base(prm.get("type_text") or "STRING"), "STRING")} for prm in params]
        catalog, schema, _ = obj.parts
        result = self.sql.execute(p, tree.sql("databricks"), parameters=parameters, catalog=catalog, schema=schema)
        if not table:
            values = result.table.column(0).to_pylist() if result.table.num_rows else [None]
            return {"format": "SCALAR", "value": values[0]}
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(result.table.column_names)
        for row in result.table.to_pylist():
            writer.writerow([row[c] for c in result.table.column_names])
        return {"format": "CSV", "value": out.getvalue()[:MAX_RESULT_BYTES]}

    def _python(self, obj: Securable, params: list[dict[str, Any]], bound: dict[str, Any]) -> dict[str, Any]:
        names = [prm["name"] for prm in sorted(params, key=lambda x: x.get("position", 0))]
        value = self.run_confined(obj.full_name, obj.spec.get("routine_definition") or "", names, bound)
        return {"format": "SCALAR", "value": value}

    def run_confined(self, label: str, code: str, params: list[str], args: dict[str, Any]) -> Any:
        """Run a Python function body with ``params`` bound from ``args`` in the confined worker (the sandbox
        of UC Python functions: no network, no processes, Landlock, seccomp, CPU and memory limits); its
        JSON result. ``label`` names it in errors and in the admission queue."""
        return self._confined(label, {"code": code, "params": params, "args": args})

    def run_confined_rows(self, label: str, code: str, params: list[str], rows: list[dict[str, Any]]) -> list[Any]:
        """The same for a batch: one confined process calls the function once per row (SQL's calls of a Python
        function come a chunk of rows at a time); one result per row."""
        out = self._confined(label, {"code": code, "params": params, "rows": rows})
        if not isinstance(out, list) or len(out) != len(rows):
            raise FunctionFailed(f"{label} did not answer every row")
        return out

    def _confined(self, label: str, request: dict[str, Any]) -> Any:
        if landlock_abi() == 0 and not self.allow_unconfined:
            raise NotSupported("Python functions need Landlock (Linux 5.13+) to confine them; this kernel has none. "
                               "An admin may allow unconfined Python functions with "
                               "BRICKYARD_ALLOW_UNCONFINED_PYTHON_FUNCTIONS=1 on a trusted machine.")
        request = {**request, "allow_unconfined": self.allow_unconfined, "cpu_seconds": self.cpu_seconds}
        env = Settings.sandbox_environ(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
        with self.admission.turn(label), tempfile.TemporaryDirectory(prefix="brickyard-fn-") as scratch:
            returncode, stdout, stderr = _run_worker(json.dumps(request, default=str).encode(), cwd=scratch,
                                                     env=env, timeout=self.wall_seconds, name=label)
        if returncode != 0 or not stdout:
            reason = "it used more than its CPU time" if returncode in (-9, -24) else (
                "it ran out of memory" if b"MemoryError" in stderr else f"the worker exited with {returncode}")
            raise FunctionFailed(f"{label} failed: {reason}")
        if len(stdout) > MAX_RESULT_BYTES * (1 + len(request.get("rows") or ())):
            raise FunctionFailed(f"{label} returned more than {MAX_RESULT_BYTES} bytes")
        out = json.loads(stdout)
        if "error" in out:
            err = out["error"]
            where = f" at line {err['line']} of its body" if err.get("line") else ""
            raise FunctionFailed(f"{label} raised {err['type']}{where}: {err['message']}")
        return out["ok"]

    # -- registering Python functions from code ------------------------------------------------------
    def create_python_function(self, p: Principal, name: str, fn: Callable[..., Any], *, replace: bool = False,
                               comment: str | None = None) -> Securable:
        """Register ``fn`` as a UC Python function: parameter and return types from its annotations,
        descriptions from its docstring (``Args:`` section), the body from its source."""
        full = str(parse_name(name, 3, what="function name"))
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
        if "return" not in hints:
            raise InvalidParameterValue(f"{fn.__name__} needs a return type annotation")
        docs = _arg_docs(fn.__doc__ or "")
        parameters = []
        for i, (pname, prm) in enumerate(sig.parameters.items()):
            if prm.kind not in (prm.POSITIONAL_OR_KEYWORD, prm.KEYWORD_ONLY):
                raise InvalidParameterValue(f"parameter {pname!r}: *args and **kwargs cannot be typed")
            if pname not in hints:
                raise InvalidParameterValue(f"parameter {pname!r} of {fn.__name__} needs a type annotation")
            type_text = _uc_type(hints[pname])
            entry: dict[str, Any] = {"name": pname, "type_text": type_text, "type_name": uc_type_name(type_text),
                                     "position": i}
            if prm.default is not inspect.Parameter.empty:
                entry["parameter_default"] = json.dumps(prm.default) if not isinstance(prm.default, str) \
                    else f"'{prm.default}'"
            if pname in docs:
                entry["comment"] = docs[pname]
            parameters.append(entry)
        source = textwrap.dedent(inspect.getsource(fn))
        body = source.split(":\n", 1)[1] if ":\n" in source else ""
        body = _strip_docstring(textwrap.dedent(body))
        returns = _uc_type(hints["return"])
        info = {"name": full.split(".")[-1], "catalog_name": full.split(".")[0], "schema_name": full.split(".")[1],
                "data_type": uc_type_name(returns), "full_data_type": returns, "routine_body": "EXTERNAL",
                "external_language": "Python", "routine_definition": body,
                "input_params": {"parameters": parameters},
                "comment": comment or (fn.__doc__ or "").strip().split("\n\n")[0] or None}
        from ..catalog._objects import function_spec

        if replace and self.catalog.exists("function", full):
            self.catalog.delete(p, "function", full, force=True)
        return self.catalog.create(p, "function", full, comment=info["comment"], spec=function_spec(info))


def _run_worker(request: bytes, *, cwd: str, env: dict[str, str], timeout: float, name: str
                ) -> tuple[int, bytes, bytes]:
    """Run one worker in a process group of its own and kill the whole group when the call ends, however it
    ends, so nothing it might have started outlives the call (the seccomp filter already refuses new
    processes; this is the second line)."""
    proc = subprocess.Popen([sys.executable, "-I", "-m", "brickyard.functions._worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(request, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FunctionFailed(f"{name} ran longer than {timeout:.0f} s") from None
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return proc.returncode, stdout, stderr


def _uc_type(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if hint is str:
        return "STRING"
    if hint is bool:
        return "BOOLEAN"
    if hint is int:
        return "BIGINT"
    if hint is float:
        return "DOUBLE"
    if origin is list:
        (inner,) = typing.get_args(hint) or (str,)
        return f"ARRAY<{_uc_type(inner)}>"
    if origin is dict:
        key, value = typing.get_args(hint) or (str, str)
        return f"MAP<{_uc_type(key)}, {_uc_type(value)}>"
    raise InvalidParameterValue(f"type {hint!r} has no Unity Catalog equivalent (use str, int, float, bool, "
                                "list[...] or dict[str, ...])")


def _arg_docs(doc: str) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = inspect.cleandoc(doc).splitlines()
    in_args = False
    for line in lines:
        if line.strip().lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if in_args:
            if not line.startswith((" ", "\t")) and line.strip():
                break
            name, _, text = line.strip().partition(":")
            if text:
                out[name.split("(")[0].strip()] = text.strip()
    return out


def _strip_docstring(body: str) -> str:
    stripped = body.lstrip()
    for quote in ('"""', "'''"):
        if stripped.startswith(quote):
            end = stripped.find(quote, 3)
            if end != -1:
                return stripped[end + 3:].lstrip("\n")
    return body
