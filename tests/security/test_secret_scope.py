"""Issue 17, points 1-2: the reserved secret scope ``__brickyard`` cannot be taken, read, granted or deleted
through any route, by anyone (admins included), and a workspace where it was taken is repaired on open."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import httpx
import pytest

from brickyard.catalog._secrets import SYSTEM_SCOPE
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

KEY = "sk-carols-provider-key-0123456789abcdef"


def _post(url: str, token: str, path: str, body: dict) -> httpx.Response:
    return httpx.post(url + path, json=body, headers={"authorization": f"Bearer {token}"}, timeout=30)


def _get(url: str, token: str, path: str, params: dict) -> httpx.Response:
    return httpx.get(url + path, params=params, headers={"authorization": f"Bearer {token}"}, timeout=30)


def _external_endpoint(url: str, token: str, name: str) -> None:
    config = {"served_entities": [{"name": "ext", "external_model": {
        "name": "m", "provider": "openai", "task": "llm/v1/chat",
        "openai_config": {"openai_api_base": "http://127.0.0.1:9/v1", "openai_api_key_plaintext": KEY}}}]}
    r = _post(url, token, "/api/2.0/serving-endpoints", {"name": name, "config": config})
    assert r.status_code == 200, r.text


def _stored_keys(ws: Workspace) -> list[str]:
    with ws.db.tx(write=False) as tx:
        return [r["key"] for r in tx.all("SELECT key FROM secrets WHERE scope = ?", (SYSTEM_SCOPE,))]


def test_nobody_can_create_read_grant_or_delete_the_system_scope(tmp_path: Path) -> None:
    ws = Workspace(Settings(home=tmp_path / "home", allowed_model_hosts="127.0.0.1:9"))
    admin, bob, carol = (ws.create_token("admin@example.com", admin=True), ws.create_token("bob@example.com"),
                         ws.create_token("carol@example.com"))
    with serve(ws) as url:
        # The scope exists from the start, so there is nothing to take; every spelling is refused.
        for name in (SYSTEM_SCOPE, "__BRICKYARD", "__brickyard2"):
            r = _post(url, bob, "/api/2.0/secrets/scopes/create", {"scope": name})
            assert r.status_code == 403 and "reserved" in r.json()["message"], r.text
        _external_endpoint(url, carol, "carols")
        (key,) = _stored_keys(ws)
        for token in (bob, admin):
            assert _get(url, token, "/api/2.0/secrets/list", {"scope": SYSTEM_SCOPE}).status_code == 403
            r = _get(url, token, "/api/2.0/secrets/get", {"scope": SYSTEM_SCOPE, "key": key})
            assert r.status_code == 403 and base64.b64encode(KEY.encode()).decode() not in r.text
            for path, body in [
                ("/api/2.0/secrets/acls/put", {"scope": SYSTEM_SCOPE, "principal": "bob@example.com",
                                               "permission": "READ"}),
                ("/api/2.0/secrets/acls/delete", {"scope": SYSTEM_SCOPE, "principal": "bob@example.com"}),
                ("/api/2.0/secrets/put", {"scope": SYSTEM_SCOPE, "key": key, "string_value": "attacker"}),
                ("/api/2.0/secrets/delete", {"scope": SYSTEM_SCOPE, "key": key}),
                ("/api/2.0/secrets/scopes/delete", {"scope": SYSTEM_SCOPE}),
            ]:
                assert _post(url, token, path, body).status_code == 403, path
            scopes = _get(url, token, "/api/2.0/secrets/scopes/list", {}).json().get("scopes", [])
            assert SYSTEM_SCOPE not in [s["name"] for s in scopes]
        # The key is still there and still works for the endpoint that owns it.
        assert _stored_keys(ws) == [key]
        assert ws.secrets.resolve("{{secrets/" + SYSTEM_SCOPE + "/" + key + "}}") == KEY
    ws.close()


def test_a_taken_system_scope_is_repaired_on_open(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace(Settings(home=home, allowed_model_hosts="127.0.0.1:9"))
    ws.create_token("bob@example.com")
    carol = ws.create_token("carol@example.com")
    with serve(ws) as url:
        _external_endpoint(url, carol, "carols")
    ws.close()
    # An older server let bob own the scope and grant himself on it: put that state back by hand.
    con = sqlite3.connect(home / "metastore.db")
    con.execute("UPDATE secret_scopes SET owner = 'bob@example.com' WHERE name = ?", (SYSTEM_SCOPE,))
    con.execute("INSERT INTO secret_acl (scope, principal, permission) VALUES (?, 'bob@example.com', 'MANAGE')",
                (SYSTEM_SCOPE,))
    con.commit()
    con.close()
    ws = Workspace(Settings(home=home, allowed_model_hosts="127.0.0.1:9"))
    with ws.db.tx(write=False) as tx:
        assert tx.one("SELECT owner FROM secret_scopes WHERE name = ?", (SYSTEM_SCOPE,))["owner"] == ""
        assert tx.all("SELECT * FROM secret_acl WHERE scope = ?", (SYSTEM_SCOPE,)) == []
    bob = ws.principal("bob@example.com")
    from brickyard.core.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        ws.secrets.list(bob, SYSTEM_SCOPE)
    ws.close()
