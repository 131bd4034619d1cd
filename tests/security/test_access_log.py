"""Issue 17, point 14: one structured access-log line per request, with a request id that is also in the
response header and in error bodies (as the SDK reads it), and never a token, secret or body."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve, serve_process

SECRET = "sk-access-log-canary-0123456789abcdef"


def _lines(path: Path, count: int) -> list[dict]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if path.exists():
            lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
            if len(lines) >= count:
                return lines
        time.sleep(0.05)
    raise AssertionError(f"expected {count} access-log lines in {path}")


def test_every_request_is_logged_once_with_its_id_and_no_secrets(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    ws = Workspace(Settings(home=tmp_path / "home", access_log=str(log)))
    token = ws.create_token("admin@example.com", admin=True)
    headers = {"authorization": f"Bearer {token}"}
    with serve(ws) as url:
        ok = httpx.get(url + "/api/2.1/unity-catalog/catalogs?max_results=5&token=" + SECRET, headers=headers)
        put = httpx.post(url + "/api/2.0/secrets/scopes/create", headers=headers, json={"scope": "s"})
        secret = httpx.post(url + "/api/2.0/secrets/put", headers=headers,
                            json={"scope": "s", "key": "k", "string_value": SECRET})
        denied = httpx.get(url + "/api/2.1/unity-catalog/catalogs", headers={"authorization": f"Bearer {SECRET}"})
        missing = httpx.get(url + "/no/such/route", headers=headers)
        sdk_error = None
        try:
            WorkspaceClient(host=url, token=token).catalogs.get("nope")
        except NotFound as exc:
            sdk_error = exc
    lines = _lines(log, 6)
    ws.close()
    text = log.read_text()
    assert SECRET not in text and token not in text and "string_value" not in text
    answers = [ok, put, secret, denied, missing]
    ids = [a.headers["x-request-id"] for a in answers]
    assert len(set(ids)) == 5
    by_id = {line["request_id"]: line for line in lines}
    assert set(ids) <= set(by_id)
    first = by_id[ids[0]]
    assert first["principal"] == "admin@example.com" and first["method"] == "GET"
    assert first["route"] == "/api/2.1/unity-catalog/catalogs" and first["status"] == 200
    assert first["bytes"] == len(ok.content) and first["latency_ms"] >= 0 and first["time"].endswith("Z")
    assert by_id[ids[3]]["status"] == 401 and by_id[ids[3]]["principal"] is None
    assert by_id[ids[4]]["status"] == 404 and by_id[ids[4]]["route"] == "(no route)"
    for answer in (denied, missing):
        (detail,) = answer.json()["details"]
        assert detail["@type"].endswith("RequestInfo") and detail["request_id"] == answer.headers["x-request-id"]
    assert sdk_error is not None
    info = sdk_error.get_error_details().request_info
    assert info is not None and info.request_id in by_id


def test_the_server_logs_to_stderr_by_default_and_off_turns_it_off(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace(Settings(home=home))
    token = ws.create_token("admin@example.com", admin=True)
    ws.close()
    err = tmp_path / "stderr.txt"
    with err.open("wb") as sink, serve_process(home, stderr=sink) as (url, _):
        rid = httpx.get(url + "/api/2.1/unity-catalog/catalogs",
                        headers={"authorization": f"Bearer {token}"}).headers["x-request-id"]
        deadline = time.monotonic() + 10
        while rid not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    line = next(x for x in err.read_text().splitlines() if rid in x)
    assert json.loads(line)["route"] == "/api/2.1/unity-catalog/catalogs"
    quiet = tmp_path / "quiet.txt"
    with quiet.open("wb") as sink, serve_process(home, stderr=sink, env={"BRICKYARD_ACCESS_LOG": "off"}) as (url, _):
        httpx.get(url + "/health")
        time.sleep(0.3)
    assert '"request_id"' not in quiet.read_text()


@pytest.mark.parametrize("value", ["", "a\x00b"])
def test_a_bad_access_log_setting_is_refused(value: str) -> None:
    from brickyard.core.errors import InvalidParameterValue

    with pytest.raises(InvalidParameterValue):
        Settings(access_log=value).validate()
