"""The process a Python UC function runs in (``python -I -m brickyard.functions._worker``).

It reads one request from stdin ({"code", "params", "args"}, or "rows", a list of args, for a batch), confines
itself, then defines the function from its body, calls it (once per row) and prints {"ok": value} (a list for
a batch) or {"error": {"type", "message", "line", "row"}}. Nothing in its
environment is secret: the parent passes a minimal one.

The confinement, in the order it is applied (see :mod:`brickyard.core.sandbox`): resource limits (no
new processes or threads for a non-root user), a network namespace of its own, no capabilities when
started as root, Landlock, and a seccomp filter that the kernel checks on every system call (no fork,
exec or socket). A Python audit hook then refuses the same operations with a clearer message; it is a
second line, not the boundary.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

MEMORY_BYTES = 1 << 30
CPU_SECONDS = 10
WRITE_BYTES = 10 << 20

_BLOCKED = ("socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "subprocess.Popen",
            "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
            "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "ctypes.cdata", "ctypes.addressof",
            "pty.spawn", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request",
            "webbrowser.open", "os.putenv", "os.chmod", "os.chown", "os.symlink", "os.link")


def _hook(event: str, _args: tuple[Any, ...]) -> None:
    if event in _BLOCKED or event.startswith(("os.exec", "os.spawn", "os.posix_spawn")):
        raise PermissionError(f"{event} is not allowed in a UC function")


def _define(code: str, params: list[str]) -> Any:
    body = code.strip("\n")
    if not body.strip():
        raise ValueError("the function body is empty")
    lines = body.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    source = f"def __uc_function__({', '.join(params)}):\n" + "\n".join("    " + line[indent:] for line in lines)
    namespace: dict[str, Any] = {}
    exec(compile(source, "<uc function>", "exec"), namespace)  # noqa: S102 - the point of this process
    return namespace["__uc_function__"]


def _body_line(exc: BaseException) -> int | None:
    """The line of the function's body (1 = its first line) where ``exc`` was raised, if it was raised there."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<uc function>":
            line = tb.tb_lineno - 1  # the first line of the source is the def this process wraps the body in
        tb = tb.tb_next
    return line


def main() -> int:
    request = json.loads(sys.stdin.buffer.read() or b"{}")
    from brickyard.core.sandbox import (
        confine,
        deny_syscalls,
        drop_root,
        isolate_network,
        limit_resources,
        python_dirs,
    )

    scratch = os.getcwd()
    cpu = max(1, min(CPU_SECONDS, int(request.get("cpu_seconds") or CPU_SECONDS)))
    limit_resources(memory_bytes=MEMORY_BYTES, cpu_seconds=cpu, file_bytes=WRITE_BYTES, processes=0)
    network = isolate_network()
    readable = python_dirs()
    dropped = drop_root()
    abi = confine(read_only=readable, writable=[scratch])
    if abi == 0 and not request.get("allow_unconfined"):
        print(json.dumps({"error": {"type": "SandboxUnavailable",
                                    "message": "this kernel offers no Landlock; Python functions are refused"}}))
        return 0
    try:
        deny_syscalls()
    except OSError as exc:
        if not request.get("allow_unconfined"):
            print(json.dumps({"error": {"type": "SandboxUnavailable",
                                        "message": f"seccomp is not available ({exc}); Python functions are refused"}}))
            return 0
    sys.modules.pop("ctypes", None)
    sys.addaudithook(_hook)
    row = None
    try:
        fn = _define(str(request["code"]), list(request.get("params") or []))
        if "rows" in request:  # a batch (SQL calls a function once per chunk of rows): one answer per row
            value: Any = []
            for row, args in enumerate(request["rows"]):  # noqa: B007 - `row` names the failing row below
                value.append(fn(**args))
        else:
            value = fn(**(request.get("args") or {}))
        text = json.dumps({"ok": value, "confined": {"landlock_abi": abi, "capabilities_dropped": dropped,
                                                          "own_network": network}}, default=str)
    except BaseException as exc:  # noqa: BLE001 - every failure of user code becomes an answer
        text = json.dumps({"error": {"type": type(exc).__name__, "message": str(exc)[:2000], "line": _body_line(exc),
                                     "row": row}})
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
