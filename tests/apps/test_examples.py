"""``examples/deploy_apps.py``: the Gradio chat app and the custom MCP server app deployed with the official
clients and used through the workspace (Gradio's client; databricks-mcp, as an agent would)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("gradio", reason="the chat app runs on Gradio (the dev group)")
pytest.importorskip("databricks_mcp", reason="the MCP client (the dev group)")


def test_deploy_apps_example(tmp_path: Path) -> None:
    env = {**os.environ, "BRICKYARD_APPS_DEMO_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "deploy_apps.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "SUCCEEDED; app RUNNING" in out
    answer = out.split("through /apps/docs-chat/ -> ", 1)[1].splitlines()[0]
    assert len(answer.strip("'\" ")) > 10  # the model's words, through Gradio, the proxy and the endpoint
    assert "tools: whoami, word_count, count_rows" in out
    assert "admin calls whoami({}) -> admin@example.com" in out
    assert "admin calls count_rows({'table': 'main.demo.notes'}) -> 3" in out
    assert "bob, before CAN_USE" in out and "bob calls whoami -> bob@example.com" in out
    assert "bob calls count_rows(main.demo.notes) -> error: bob@example.com lacks USE_SCHEMA" in out
    assert "Traceback" not in done.stderr
