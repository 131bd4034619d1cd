"""T16 route inventory, T17 token matrix, T30 Host/Origin, T11 hostile bodies, T12/T13 names and paths."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from brickyard.api import build_api, create_app
from brickyard.api._http import POLICIES
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace

PUBLIC = {"/health", "/.well-known/databricks-config", "/oidc/.well-known/oauth-authorization-server",
          "/oidc/v1/token", "/openapi.json",
          "/api/2.0/brickyard/signed/{token}",  # its sealed, expiring token is the authorization
          "/login",  # the sign-in form and its post (a token in, a session cookie out)
          "/static/{name}"}  # the pages' own stylesheet and script: nothing secret, one folder, by name


@dataclasses.dataclass
class Harness:
    ws: Workspace
    client: TestClient
    calls: list[str]
    routes: list[Any]
    admin_token: str


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("sec") / "home"))
    api = build_api(ws)
    calls: list[str] = []

    def spy(spec: Any) -> Any:
        def handler(req: Any) -> Any:
            calls.append(f"{spec.method} {spec.path}")
            return spec.handler(req)

        async def async_handler(req: Any) -> Any:
            calls.append(f"{spec.method} {spec.path}")
            return await spec.handler(req)

        wrapper = async_handler if inspect.iscoroutinefunction(spec.handler) else handler
        wrapper.__name__ = spec.handler.__name__
        return dataclasses.replace(spec, handler=wrapper)

    api.routes = [spy(s) for s in api.routes]
    client = TestClient(create_app(ws, api=api), base_url="http://127.0.0.1")
    admin_token = ws.create_token("root@example.com", admin=True)
    with client:
        yield Harness(ws, client, calls, api.routes, admin_token)
    ws.close()


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path.replace("{path:path}", "Volumes/a/b/c/file.txt"))


def test_every_route_declares_a_policy_and_public_routes_are_allowlisted(harness: Harness) -> None:
    app_routes = harness.client.app.routes  # type: ignore[attr-defined]
    assert len(app_routes) == len(harness.routes)
    for route in app_routes:
        spec = route.endpoint.brickyard_spec
        assert spec.policy in POLICIES
        if spec.policy == "public":
            assert spec.path in PUBLIC, f"{spec.path} is public but not on the allowlist"
    doc = harness.client.get("/openapi.json").json()
    for spec in harness.routes:
        if spec.policy == "browser" or spec.path == "/login":  # pages, not API operations: not in the schema
            assert spec.path not in doc["paths"]
            continue
        op = doc["paths"][spec.path.replace(":path}", "}")][spec.method.lower()]
        assert ("security" in op) == (spec.policy != "public")


def test_no_handler_runs_without_authentication(harness: Harness) -> None:
    huge_invalid = b"{" * 200_000
    harness.calls.clear()
    for spec in harness.routes:
        if spec.policy == "public":
            continue
        r = harness.client.request(spec.method, concrete(spec.path), content=huge_invalid,
                                   headers={"content-type": "application/json"}, follow_redirects=False)
        if spec.policy == "browser" and spec.method == "GET":  # a page: sent to sign in
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), (spec.path, r.status_code)
            continue
        assert r.status_code == 401, (spec.method, spec.path, r.status_code, r.text[:200])
        if spec.method != "HEAD":
            assert r.json()["error_code"] == "UNAUTHENTICATED"
    assert harness.calls == []


def _bad_tokens(ws: Workspace) -> dict[str, str | None]:
    expired_user = ws.ensure_user("expired@example.com")
    now = ws.identity.clock
    ws.identity.clock = lambda: now() - 10_000_000
    expired, _ = ws.identity.create_token(expired_user.id, lifetime_seconds=60)
    ws.identity.clock = now
    revoked, info = ws.identity.create_token(expired_user.id)
    ws.identity.revoke_token(info["id"])
    disabled_user = ws.ensure_user("disabled@example.com")
    disabled, _ = ws.identity.create_token(disabled_user.id)
    ws.identity.update(disabled_user.id, active=False)
    deleted_user = ws.ensure_user("deleted@example.com")
    deleted, _ = ws.identity.create_token(deleted_user.id)
    ws.identity.delete(deleted_user.id)
    return {"missing": None, "empty": "Bearer ", "basic": "Basic YWRtaW46YWRtaW4=", "malformed": "Bearer a b c",
            "unknown": "Bearer dapi" + "0" * 40, "expired": f"Bearer {expired}", "revoked": f"Bearer {revoked}",
            "disabled": f"Bearer {disabled}", "deleted": f"Bearer {deleted}",
            "sql-ish": "Bearer ' OR '1'='1"}


def test_token_matrix(harness: Harness) -> None:
    bad = _bad_tokens(harness.ws)
    harness.calls.clear()
    count = 0
    for spec in harness.routes:
        if spec.policy == "public":
            continue
        for case, header in bad.items():
            headers = {} if header is None else {"authorization": header}
            if spec.policy == "browser":  # pages read the session cookie only: the same bad values there
                value = (header or "").removeprefix("Bearer ").strip()
                headers = {"cookie": f"brickyard_session={value}"} if value.isascii() and ";" not in value else {}
            r = harness.client.request(spec.method, concrete(spec.path), headers=headers, json={},
                                       follow_redirects=False)
            expected = 303 if spec.policy == "browser" and spec.method == "GET" else 401
            assert r.status_code == expected, (case, spec.method, spec.path, r.status_code)
            count += 1
    assert harness.calls == [] and count > 500


def test_admin_routes_refuse_non_admins(harness: Harness) -> None:
    user = harness.ws.create_token("plain@example.com")
    for spec in harness.routes:
        if spec.policy == "admin":
            r = harness.client.request(spec.method, concrete(spec.path), headers={"authorization": f"Bearer {user}"})
            assert r.status_code == 403, spec.path


def auth(h: Harness) -> dict[str, str]:
    return {"authorization": f"Bearer {h.admin_token}"}


def test_foreign_host_and_origin_are_refused(harness: Harness) -> None:
    r = harness.client.post("/api/2.1/unity-catalog/catalogs", json={"name": "evil1"},
                            headers={**auth(harness), "host": "evil.test"})
    assert r.status_code == 421
    r = harness.client.post("/api/2.1/unity-catalog/catalogs", json={"name": "evil2"},
                            headers={**auth(harness), "origin": "http://evil.test"})
    assert r.status_code == 403
    r = harness.client.delete("/api/2.1/unity-catalog/catalogs/main",
                              headers={**auth(harness), "host": "127.0.0.1.evil.test"})
    assert r.status_code == 421
    names = [c["name"] for c in harness.client.get("/api/2.1/unity-catalog/catalogs", headers=auth(harness))
             .json()["catalogs"]]
    assert "evil1" not in names and "evil2" not in names


@pytest.mark.parametrize("body, status", [
    (b"[" * 100_000 + b"]" * 100_000, 400),
    (b"{\"name\": NaN}", 400),
    (b"not json", 400),
    (b"[1, 2]", 400),
    (b"\xff\xfe", 400),
    (b"{\"name\": \"" + b"a" * (17 * 1024 * 1024) + b"\"}", 413),
])
def test_hostile_bodies_get_4xx(harness: Harness, body: bytes, status: int) -> None:
    r = harness.client.post("/api/2.1/unity-catalog/catalogs", content=body,
                            headers={**auth(harness), "content-type": "application/json"})
    assert r.status_code == status, r.text[:200]
    assert r.json()["error_code"] and r.json()["message"]


def test_unknown_routes_and_methods(harness: Harness) -> None:
    assert harness.client.get("/api/2.0/nope", headers=auth(harness)).status_code == 404
    assert harness.client.put("/health").status_code == 405


def _schema_hash(ws: Workspace) -> str:
    with ws.db.tx(write=False) as tx:
        rows = tx.all("SELECT name, sql FROM sqlite_master ORDER BY name")
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


NASTY = st.sampled_from(["'", '"', "`", ";", "--", "/*", "%00", "\u2019", "..", "%2e%2e", "%252e", "/", "\\",
                         " OR 1=1", "DROP TABLE grants", "ｍａｉｎ", "\x7f", "?", "#", "&"])
NAMES = st.lists(st.text(max_size=5) | NASTY, min_size=1, max_size=6).map("".join)


@given(name=NAMES)
def test_injection_through_name_parameters(harness: Harness, name: str) -> None:
    """T12/T13: hostile names in every name-taking UC route: 0 schema changes, 0 5xx, no files outside home."""
    before = _schema_hash(harness.ws)
    home = Path(harness.ws.home)
    outside_before = set(home.parent.iterdir())
    from urllib.parse import quote

    enc = quote(name, safe="")
    h = auth(harness)
    c = harness.client
    responses = [
        c.post("/api/2.1/unity-catalog/catalogs", json={"name": name}, headers=h),
        c.get(f"/api/2.1/unity-catalog/catalogs/{enc}", headers=h),
        c.get(f"/api/2.1/unity-catalog/tables/main.{enc}.t", headers=h),
        c.post("/api/2.1/unity-catalog/schemas", json={"name": name, "catalog_name": "main"}, headers=h),
        c.delete(f"/api/2.1/unity-catalog/schemas/{enc}", headers=h),
        c.get(f"/api/2.1/unity-catalog/permissions/table/{enc}", headers=h),
        c.get(f"/api/2.0/fs/files/Volumes/main/default/v/{enc}", headers=h),
        c.put(f"/api/2.0/fs/files/Volumes/{enc}/x/y/z", content=b"x", headers=h),
        c.post("/api/2.0/sql/statements", json={"statement": f"SELECT * FROM main.default.{name}"}, headers=h),  # noqa: S608
    ]
    for r in responses:
        assert r.status_code < 500, (name, r.request.url, r.text[:200])
        if r.status_code >= 400 and r.request.method != "HEAD":
            assert r.json()["message"]
    created = [x for x in c.get("/api/2.1/unity-catalog/catalogs", headers=h).json()["catalogs"]
               if x["name"] not in ("main", "system")]
    for cat in created:  # anything accepted must be a plain safe name
        assert re.fullmatch(r"[a-z0-9_][a-z0-9_-]*", cat["name"])
        c.delete(f"/api/2.1/unity-catalog/catalogs/{cat['name']}?force=true", headers=h)
    assert _schema_hash(harness.ws) == before
    assert set(home.parent.iterdir()) == outside_before


@pytest.fixture(scope="module", autouse=True)
def _main_catalog(harness: Harness) -> None:
    h = auth(harness)
    harness.client.post("/api/2.1/unity-catalog/catalogs", json={"name": "main"}, headers=h)
    harness.client.post("/api/2.1/unity-catalog/schemas", json={"name": "default", "catalog_name": "main"}, headers=h)
    harness.client.post("/api/2.1/unity-catalog/volumes", json={"name": "v", "catalog_name": "main",
                                                                "schema_name": "default", "volume_type": "MANAGED"},
                        headers=h)


TRAVERSAL = ["../../../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/etc/passwd", "a/../../x",
             "..\\..\\x", "%252e%252e%252fx", "/etc/passwd", "x%00.txt", "．．／x"]


@pytest.mark.parametrize("payload", TRAVERSAL)
def test_files_api_traversal(harness: Harness, payload: str, tmp_path: Path) -> None:
    h = auth(harness)
    base = "/api/2.0/fs/files/Volumes/main/default/v/"
    put = harness.client.put(base + payload, content=b"canary-data", headers=h)
    got = harness.client.get(base + payload, headers=h)
    assert put.status_code < 500 and got.status_code < 500
    volume_root = Path(harness.ws.catalog.get(harness.ws.principal("root@example.com"), "volume",
                                              "main.default.v").spec["storage_location"]).resolve()
    if put.status_code < 300:  # accepted only as a literal name inside the volume
        written = [p.resolve() for p in volume_root.rglob("*") if p.is_file()]
        assert written and all(volume_root in p.parents for p in written)
    if got.status_code == 200:
        assert b"root:" not in got.content
