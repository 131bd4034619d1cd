"""Issue 17, point 18: nothing Brickyard loads may call home. The quickstart flow (SQL, serving with tool
calling, ingestion, vector search, a deployed agent) runs with a Python audit hook in every process it
starts that records any attempt to reach a non-loopback address or to resolve a remote name, and, where
this machine allows it, inside a network namespace that has nothing but loopback. The environment asks
for the third-party usage reports (NEEDLE_TELEMETRY=1, DO_NOT_TRACK empty, no CI): Brickyard must force
them off anyway."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

HOOK = '''
import ipaddress, os, socket, sys

_LOG = os.environ.get("BRICKYARD_NET_AUDIT")
_LOCAL = {"localhost", "127.0.0.1", "::1", "", None}


def _report(what):
    with open(_LOG, "a") as log:
        log.write(f"{os.getpid()} {' '.join(sys.argv[:3])}: {what}\\n")


def _hook(event, args):
    if event == "socket.connect":
        sock, address = args[0], args[1]
        if isinstance(address, tuple) and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                remote = not ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
            except ValueError:
                remote = True
            if remote:
                _report(f"connect {address!r}")
                raise ConnectionRefusedError("blocked by the offline test")
    elif event in ("socket.getaddrinfo", "socket.gethostbyname"):
        host = args[0]
        host = host.decode() if isinstance(host, bytes) else host
        if host not in _LOCAL:
            try:
                ipaddress.ip_address(str(host).split("%")[0])
            except ValueError:
                _report(f"resolve {host!r}")


if _LOG:
    sys.addaudithook(_hook)
'''


TOOL_CALL = r"""
import json, subprocess, sys, time, urllib.request
from pathlib import Path
home, port = Path(sys.argv[1]), sys.argv[2]
brickyard = str(Path(sys.executable).parent / "brickyard")
token = subprocess.run([brickyard, "token", "create", "--home", str(home), "--user", "a@example.com", "--admin"],
                       check=True, capture_output=True, text=True).stdout.strip().split()[-1]
server = subprocess.Popen([brickyard, "serve", "--home", str(home), "--port", port])
try:
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    from openai import OpenAI
    client = OpenAI(base_url=f"http://127.0.0.1:{port}/serving-endpoints", api_key=token)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    answer = client.chat.completions.create(model="databricks-meta-llama-3-3-70b-instruct", tools=tools,
                                            messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    print(json.dumps(answer.choices[0].message.model_dump()))
finally:
    server.terminate()
    server.wait(timeout=30)
"""


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "brickyard").exists() and not shutil.which("brickyard"),
                    reason="needs the installed brickyard command (make test installs it)")
def test_the_quickstart_never_reaches_beyond_loopback(tmp_path: Path) -> None:
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    audit = tmp_path / "net-audit.log"
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "DO_NOT_TRACK", "MLFLOW_DISABLE_TELEMETRY", "HF_HUB_DISABLE_TELEMETRY")}
    env.update(PYTHONPATH=os.pathsep.join([str(hook_dir), str(ROOT / "src")]), BRICKYARD_NET_AUDIT=str(audit),
               BRICKYARD_DEMO_HOME=str(tmp_path / "demo"), HOME=str(tmp_path / "user-home"),
               NEEDLE_TELEMETRY="1", DO_NOT_TRACK="", MLFLOW_DISABLE_TELEMETRY="false")  # a user who wants them
    (tmp_path / "user-home").mkdir()
    command = [sys.executable, str(ROOT / "examples" / "quickstart.py")]
    isolated = os.geteuid() == 0 and shutil.which("unshare") and shutil.which("ip") and subprocess.run(
        ["unshare", "--net", "true"], capture_output=True).returncode == 0
    if isolated:  # also at the kernel: a namespace whose only interface is loopback
        command = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "== " in done.stdout  # the quickstart ran its steps
    assert "then open http://127.0.0.1:8080/" in done.stdout  # and ends with how to see it in a browser
    # Tool calling on the server's own chat model (Needle picks the call, in the server process).
    (tmp_path / "tools.py").write_text(TOOL_CALL)
    prefix = command[:command.index(sys.executable)]
    tooled = subprocess.run([*prefix, sys.executable, str(tmp_path / "tools.py"), str(tmp_path / "tools-home"),
                             "18873"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert tooled.returncode == 0 and "get_weather" in tooled.stdout, (tooled.stdout[-2000:], tooled.stderr[-3000:])
    attempts = audit.read_text() if audit.exists() else ""
    assert attempts == "", attempts
    assert not (tmp_path / "user-home" / ".cactus_needle").exists()  # Needle's tracker never started
