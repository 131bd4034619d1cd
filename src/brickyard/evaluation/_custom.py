"""Custom code scorers (``@scorer`` functions) run by the server's scheduler, in the sandbox of UC Python
functions: the scorer's serialized body (``call_source``) is defined in the confined worker (no network, no
processes, Landlock, seccomp, CPU and memory limits) and called with the trace's ``inputs``, ``outputs`` and
``expectations``. Its result (a bool, number or string, or an mlflow ``Feedback``) becomes the verdict.

A scorer that reads the ``trace`` itself is not run by the server (the worker has no mlflow trace to give it):
its verdict is an error saying so; such scorers run client-side with ``mlflow.genai.evaluate``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

ARGUMENTS = ("inputs", "outputs", "expectations", "trace")
_PARAM = re.compile(r"^\s*\*{0,2}([A-Za-z_][A-Za-z0-9_]*)")
# What the body may name without importing it: a Feedback like mlflow's, so `return Feedback(value=..., rationale=...)`
# works without importing mlflow in the worker.
_PRELUDE = '''class Feedback:
    def __init__(self, value=None, rationale=None, error=None, name=None, **_):
        self.value, self.rationale, self.error, self.name = value, rationale, error, name
'''


class NotRunnable(Exception):
    """The scorer cannot run on the server; the message says why."""


def parameters(signature: str) -> list[str]:
    """The parameter names of a serialized scorer's ``call_signature`` such as ``(inputs, outputs) -> bool``."""
    inner = signature.strip()
    if not inner.startswith("(") or ")" not in inner:
        raise NotRunnable(f"cannot read the scorer's signature {signature[:80]!r}")
    body = inner[1:inner.index(")")]
    names = []
    for part in (p for p in body.split(",") if p.strip()):
        match = _PARAM.match(part)
        if not match:
            raise NotRunnable(f"cannot read the scorer's parameter {part.strip()[:40]!r}")
        names.append(match.group(1))
    unknown = [n for n in names if n not in ARGUMENTS]
    if unknown:
        raise NotRunnable(f"a scorer takes only {', '.join(ARGUMENTS)}; this one asks for {', '.join(unknown)}")
    if "trace" in names:
        raise NotRunnable("this scorer reads the trace, which the server's sandbox cannot give it; run it with "
                          "mlflow.genai.evaluate")
    return names


def program(serialized: dict[str, Any]) -> tuple[str, list[str]]:
    """(the worker's function body, the scorer's parameter names) for a serialized custom scorer."""
    source = serialized.get("call_source")
    if not isinstance(source, str) or not source.strip():
        raise NotRunnable("the scorer has no source to run (only @scorer functions and their like run on the server)")
    names = parameters(str(serialized.get("call_signature") or "()"))
    lines = source.strip("\n").splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    body = "\n".join("    " + line[indent:] for line in lines)
    call = ", ".join(f"{n}=__args__[{n!r}]" for n in names)
    code = (f"{_PRELUDE}def __scorer__({', '.join(names)}):\n{body}\n"
            f"__result = __scorer__({call})\n"
            "if hasattr(__result, 'value') and hasattr(__result, 'rationale'):\n"
            "    __error = getattr(__result, 'error', None)\n"
            "    return {'value': __result.value, 'rationale': __result.rationale,\n"
            "            'error': None if __error is None else str(getattr(__error, 'error_message', __error))}\n"
            "return {'value': __result}\n")
    return code, names


def run(serialized: dict[str, Any], args: dict[str, Any],
        run_code: Callable[[str, str, list[str], dict[str, Any]], Any], label: str) -> dict[str, Any]:
    """``{"value", "rationale"?, "error"?}`` of a custom scorer on one trace's inputs, outputs and expectations."""
    code, _ = program(serialized)
    out = run_code(label, code, ["__args__"], {"__args__": args})
    if not isinstance(out, dict):
        return {"value": None, "error": "the scorer returned nothing usable"}
    return out
