"""UC functions: registration, tool specs, execution as the caller, and the Python sandbox (T29)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from brickyard.catalog import Principal
from brickyard.core.errors import FunctionFailed, InvalidParameterValue, PermissionDenied
from brickyard.core.sandbox import landlock_abi
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace

needs_landlock = pytest.mark.skipif(landlock_abi() == 0, reason="the kernel offers no Landlock to confine Python")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = Workspace(Settings(home=tmp_path_factory.mktemp("fn") / "home"))
    from brickyard.functions import Functions

    w.functions = Functions(w.catalog, w.sql, w.settings, cpu_seconds=2, wall_seconds=5)  # keep the suite quick
    admin = w.ensure_user("admin@example.com", admin=True)
    w.catalog.create(admin, "schema", "main.tools")
    w.tables.create(admin, "main.tools.prices", columns=[{"name": "item", "type_text": "string"},
                                                        {"name": "price", "type_text": "double"}])
    w.tables.write(admin, "main.tools.prices", [{"item": "tea", "price": 3.5}, {"item": "cake", "price": 4.0}])
    yield w
    w.close()


def _admin(ws: Workspace) -> Principal:
    return ws.principal("admin@example.com")


def add(a: int, b: int = 2) -> int:
    """Add two numbers.

    Args:
        a: the first number
        b: the second number
    """
    return a + b


def test_sql_functions_run_as_the_caller(ws: Workspace) -> None:
    admin = _admin(ws)
    ws.catalog.create(admin, "function", "main.tools.price_of", comment="The price of an item.", spec=_sql_spec(
        "price_of", "DOUBLE", "(SELECT price FROM main.tools.prices WHERE prices.item = item)",
        [("item", "STRING")]))
    assert ws.functions.execute(admin, "main.tools.price_of", {"item": "cake"}) == {"format": "SCALAR", "value": 4.0}
    ws.catalog.create(admin, "function", "main.tools.shout", spec=_sql_spec("shout", "STRING", "RETURN upper(s) || '!'",
                                                                          [("s", "STRING")]))
    assert ws.functions.execute(admin, "main.tools__shout", {"s": "x'); DROP TABLE t; --"})["value"] == \
        "X'); DROP TABLE T; --!"  # bound as a parameter, never spliced
    carol = ws.ensure_user("carol@example.com")
    with pytest.raises(PermissionDenied):
        ws.functions.execute(carol, "main.tools.price_of", {"item": "tea"})
    ws.catalog.update_grants(admin, "catalog", "main", [{"principal": "carol@example.com", "add": ["USE_CATALOG"]}])
    ws.catalog.update_grants(admin, "schema", "main.tools", [{"principal": "carol@example.com",
                                                             "add": ["USE_SCHEMA", "EXECUTE"]}])
    with pytest.raises(PermissionDenied, match="main.tools.prices"):  # EXECUTE, but the body reads a table carol cannot
        ws.functions.execute(carol, "main.tools.price_of", {"item": "tea"})
    with pytest.raises(InvalidParameterValue, match="needs argument"):
        ws.functions.execute(admin, "main.tools.price_of", {})
    with pytest.raises(InvalidParameterValue, match="no parameter"):
        ws.functions.execute(admin, "main.tools.price_of", {"item": "tea", "x": 1})


def _sql_spec(name: str, returns: str, body: str, params: list[tuple[str, str]]) -> dict[str, object]:
    from brickyard.catalog._objects import function_spec

    return function_spec({"name": name, "data_type": returns, "routine_body": "SQL", "routine_definition": body,
                          "input_params": {"parameters": [{"name": n, "type_text": t} for n, t in params]}})


@needs_landlock
def test_python_functions_from_code_and_their_tool_spec(ws: Workspace) -> None:
    admin = _admin(ws)
    obj = ws.functions.create_python_function(admin, "main.tools.add", add, replace=True)
    from brickyard.functions import tool_spec

    spec = tool_spec(obj)
    assert spec["name"] == "main__tools__add" and spec["description"] == "Add two numbers."
    assert spec["parameters"]["required"] == ["a"]
    assert spec["parameters"]["properties"]["a"] == {"type": "integer", "description": "the first number"}
    assert ws.functions.execute(admin, "main.tools.add", {"a": 40}) == {"format": "SCALAR", "value": 42}
    assert ws.functions.execute(admin, "main.tools.add", {"a": "1", "b": 2.0})["value"] == 3
    with pytest.raises(InvalidParameterValue, match="integer"):
        ws.functions.execute(admin, "main.tools.add", {"a": 1.5})


HOSTILE = {
    "read_key": "return open(path).read()",
    "read_environ": "return open('/proc/%d/environ' % ppid).read()",
    "list_home": "import os\nreturn os.listdir(path)",
    "env_secret": "import os\nreturn os.environ.get('BRICKYARD_CANARY_SECRET', 'absent')",
    "connect": "import socket\ns = socket.create_connection(('127.0.0.1', port), timeout=2)\nreturn 'connected'",
    "shell": "import subprocess\nreturn subprocess.run(['id'], capture_output=True).stdout.decode()",
    "kill_server": "import os, signal\nos.kill(ppid, signal.SIGTERM)\nreturn 'sent'",
    "ctypes": "import ctypes\nreturn ctypes.CDLL(None).getpid()",
    "burn_cpu": "while True:\n    pass",
    "eat_memory": "x = bytearray(4 << 30)\nreturn len(x)",
}


@needs_landlock
@pytest.mark.parametrize("attack", sorted(HOSTILE))
def test_t29_python_functions_cannot_reach_the_server(ws: Workspace, attack: str, monkeypatch: pytest.MonkeyPatch
                                                      ) -> None:
    """T29: a function cannot read the workspace's files (its key, its metastore), the server's
    environment or /proc, open connections, start programs, signal the server, or outlast its limits."""
    import socket

    admin = _admin(ws)
    monkeypatch.setenv("BRICKYARD_CANARY_SECRET", "canary-7f3a")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    key = ws.home / "secrets.key"
    assert key.exists()
    from brickyard.catalog._objects import function_spec

    name = f"main.tools.hostile_{attack}"
    if not ws.catalog.exists("function", name):
        ws.catalog.create(admin, "function", name, spec=function_spec({
            "name": name.rsplit(".", 1)[1], "data_type": "STRING", "routine_body": "EXTERNAL",
            "external_language": "PYTHON", "routine_definition": HOSTILE[attack],
            "input_params": {"parameters": [{"name": "path", "type_text": "STRING"},
                                            {"name": "ppid", "type_text": "INT"},
                                            {"name": "port", "type_text": "INT"}]}}))
    args = {"path": str(key if attack == "read_key" else ws.home), "ppid": os.getpid(), "port": port}
    try:
        try:
            out = ws.functions.execute(admin, name, args)
        except FunctionFailed as exc:
            assert "canary" not in exc.message and ws.secret_box.key_file.read_text() not in exc.message
            return
        assert out["value"] == "absent", out  # only the environment attack may "succeed", and finds nothing
    finally:
        listener.close()
    assert Path(key).exists()


FORK_EXEC_BEACON = """
import _posixsubprocess, os, sys
code = ("import socket, time\\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\\nfor i in range(60):\\n"
        "    s.sendto(b'beacon', ('127.0.0.1', %d))\\n    time.sleep(0.05)" % port)
exe = sys.executable.encode()
r, w = os.pipe()
pid = _posixsubprocess.fork_exec([exe, b'-I', b'-c', code.encode()], [exe], True, (w,), None, None,
                                 -1, -1, -1, -1, -1, -1, r, w, False, True, -1, None, None, None, -1, None, False)
return 'started %d' % pid
"""


@needs_landlock
def test_a_function_cannot_start_a_process_that_outlives_the_call(ws: Workspace) -> None:
    """Issue 17 point 3: ``_posixsubprocess.fork_exec`` fires no audit event, so only the kernel can stop it
    from starting a child Python without the hook, in a session of its own, that sends UDP (which Landlock
    does not cover). Nothing may arrive at a listener, during the call or after it."""
    import socket
    import sys

    from tests.conftest import drain_udp

    if sys.version_info[:2] != (3, 11):
        pytest.skip("the body calls fork_exec with Python 3.11's argument list")
    admin = _admin(ws)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.1)
    from brickyard.catalog._objects import function_spec

    name = "main.tools.hostile_fork_exec"
    if not ws.catalog.exists("function", name):
        ws.catalog.create(admin, "function", name, spec=function_spec({
            "name": "hostile_fork_exec", "data_type": "STRING", "routine_body": "EXTERNAL",
            "external_language": "PYTHON", "routine_definition": FORK_EXEC_BEACON,
            "input_params": {"parameters": [{"name": "port", "type_text": "INT"}]}}))
    try:
        with pytest.raises(FunctionFailed) as failed:
            ws.functions.execute(admin, name, {"port": udp.getsockname()[1]})
        assert "PermissionError" in failed.value.message or "Operation not permitted" in failed.value.message
        received = drain_udp(udp, 1.5)
    finally:
        udp.close()
    assert received == []
