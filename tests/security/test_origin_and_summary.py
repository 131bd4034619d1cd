"""Issue 17, point 16: the CSRF rule (a browser's state-changing request must come from the server's own
origin, not from any localhost port) and the metastore summary, which shows the home's path to admins only."""

from __future__ import annotations

from pathlib import Path

import httpx

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve


def test_only_the_servers_own_origin_may_change_state(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path / "home"))
    token = ws.create_token("admin@example.com", admin=True)
    headers = {"authorization": f"Bearer {token}"}
    with serve(ws) as url:
        port = url.rsplit(":", 1)[1]
        for i, origin in enumerate(["http://localhost:3000", f"http://127.0.0.1:{int(port) + 1}", "null",
                                    f"https://127.0.0.1:{port}", "http://evil.test", f"http://127.0.0.1:{port}.evil"]):
            r = httpx.post(url + "/api/2.1/unity-catalog/catalogs", json={"name": f"c{i}"},
                           headers={**headers, "origin": origin})
            assert r.status_code == 403, (origin, r.text)
            r = httpx.delete(url + "/api/2.1/unity-catalog/catalogs/main", headers={**headers, "origin": origin})
            assert r.status_code == 403, origin
        same = httpx.post(url + "/api/2.1/unity-catalog/catalogs", json={"name": "same"},
                          headers={**headers, "origin": url})
        assert same.status_code == 200, same.text
        assert httpx.post(url + "/api/2.1/unity-catalog/catalogs", json={"name": "sdk"}, headers=headers).status_code == 200
        read = httpx.get(url + "/api/2.1/unity-catalog/catalogs", headers={**headers, "origin": "http://localhost:3000"})
        assert read.status_code == 200 and not {f"c{i}" for i in range(6)} & {c["name"] for c in read.json()["catalogs"]}
    ws.close()


def test_the_metastore_summary_shows_the_home_to_admins_only(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path / "home"))
    admin = ws.create_token("admin@example.com", admin=True)
    bob = ws.create_token("bob@example.com")
    with serve(ws) as url:
        def summary(token: str) -> dict:
            r = httpx.get(url + "/api/2.1/unity-catalog/metastore_summary", headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 200
            return r.json()

        assert summary(admin)["storage_root"] == "file://" + str(ws.home)
        seen = summary(bob)
        assert "storage_root" not in seen and str(tmp_path) not in str(seen)
    ws.close()
