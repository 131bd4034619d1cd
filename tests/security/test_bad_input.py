"""Issue 17, point 9: the reported 500s are 400s, and a token cannot be made to never expire by a negative
lifetime. (test_route_fuzz.py looks for the rest.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("bad") / "home"))
    admin = ws.ensure_user("admin@example.com", admin=True)
    token = ws.create_token("admin@example.com", admin=True)
    ws.volumes.create(admin, "main.default.v")
    with serve(ws) as url:
        yield url, {"authorization": f"Bearer {token}"}
    ws.close()


@pytest.mark.parametrize("lifetime", [10**30, 2**63, -5, 0, "soon", True, 1.5])
def test_token_lifetimes_out_of_range_are_refused(api: tuple[str, dict[str, str]], lifetime: object) -> None:
    url, headers = api
    r = httpx.post(url + "/api/2.0/token/create", headers=headers, json={"lifetime_seconds": lifetime})
    assert r.status_code == 400, r.text
    assert "lifetime_seconds" in r.json()["message"]


def test_a_token_with_a_lifetime_expires_and_one_without_does_not(api: tuple[str, dict[str, str]]) -> None:
    url, headers = api
    timed = httpx.post(url + "/api/2.0/token/create", headers=headers, json={"lifetime_seconds": 60}).json()
    assert timed["token_info"]["expiry_time"] > timed["token_info"]["creation_time"]
    forever = httpx.post(url + "/api/2.0/token/create", headers=headers, json={}).json()
    assert forever["token_info"]["expiry_time"] == -1


@pytest.mark.parametrize("base", ["http://127.0.0.1:99999/v1", "http://[::1/v1", "http://127.0.0.1:-3/v1"])
def test_an_endpoint_url_with_a_bad_port_is_a_400(api: tuple[str, dict[str, str]], base: str) -> None:
    url, headers = api
    config = {"served_entities": [{"name": "x", "external_model": {
        "name": "m", "provider": "openai", "task": "llm/v1/chat",
        "openai_config": {"openai_api_base": base, "openai_api_key_plaintext": "k"}}}]}
    r = httpx.post(url + "/api/2.0/serving-endpoints", headers=headers, json={"name": "badport", "config": config})
    assert r.status_code == 400, r.text


def test_a_file_cannot_be_used_as_a_directory(api: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, headers = api
    base = url + "/api/2.0/fs/files/Volumes/main/default/v"
    assert httpx.put(base + "/ok.txt", headers=headers, content=b"x").status_code == 204
    for method, path in (("PUT", "/api/2.0/fs/files/Volumes/main/default/v/ok.txt/child"),
                         ("PUT", "/api/2.0/fs/files/Volumes/main/default/v/ok.txt/a/b/child"),
                         ("PUT", "/api/2.0/fs/directories/Volumes/main/default/v/ok.txt/sub")):
        r = httpx.request(method, url + path, headers=headers, content=b"y")
        assert r.status_code == 409 and "is a file" in r.json()["message"], (path, r.text)
    assert httpx.get(base + "/ok.txt", headers=headers).content == b"x"
