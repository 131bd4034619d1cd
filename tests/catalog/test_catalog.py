"""The metastore on SQLite and on PostgreSQL (every test here runs on both)."""

from __future__ import annotations

import pytest

from brickyard.catalog import Principal
from brickyard.core.errors import (
    AlreadyExists,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    PermissionDenied,
)
from brickyard.workspace import Workspace


@pytest.fixture
def admin(ws: Workspace) -> Principal:
    return ws.ensure_user("admin@example.com", admin=True)


def test_create_get_list_update_delete(ws: Workspace, admin: Principal) -> None:
    cat = ws.catalog
    cat.create(admin, "catalog", "lab", comment="first")
    assert cat.get(admin, "schema", "lab.default").owner == "admin@example.com"  # created with its catalog
    for i in range(5):
        cat.create(admin, "table", f"lab.default.t{i}")
    with pytest.raises(AlreadyExists):
        cat.create(admin, "table", "lab.default.t0")
    assert cat.get(admin, "catalog", "LAB").comment == "first"  # names are case-insensitive

    page1, token = cat.list(admin, "table", "lab.default", max_results=2)
    assert [t.name for t in page1] == ["t0", "t1"] and token
    page2, token2 = cat.list(admin, "table", "lab.default", max_results=2, page_token=token)
    page3, token3 = cat.list(admin, "table", "lab.default", max_results=2, page_token=token2)
    assert [t.name for t in page2 + page3] == ["t2", "t3", "t4"] and token3 is None

    renamed = cat.update(admin, "schema", "lab.default", new_name="core", comment="c")
    assert renamed.full_name == "lab.core" and renamed.comment == "c"
    assert cat.get(admin, "table", "lab.core.t3").full_name == "lab.core.t3"
    with pytest.raises(NotFound):
        cat.get(admin, "table", "lab.default.t3")

    with pytest.raises(InvalidState, match="not empty"):
        cat.delete(admin, "schema", "lab.core")
    cat.delete(admin, "schema", "lab.core", force=True)
    assert cat.list(admin, "schema", "lab")[0] == []


def test_a_new_workspace_has_main_default_that_every_user_can_use(ws: Workspace, admin: Principal) -> None:
    cat = ws.catalog
    carol = ws.ensure_user("carol")
    assert cat.get(admin, "catalog", "main").owner == "admins"
    assert cat.get(admin, "schema", "main.default").owner == "admins"
    cat.create(carol, "table", "main.default.notes")  # any user may create in main.default ...
    cat.create(carol, "volume", "main.default.files")
    assert cat.get(carol, "table", "main.default.notes").owner == "carol"
    with pytest.raises(PermissionDenied):  # ... but not new schemas in main, nor read other users' tables
        cat.create(carol, "schema", "main.mine")
    cat.create(admin, "table", "main.default.secret")
    assert not cat.check(carol, "SELECT", ("table", "main.default.secret")).allowed
    with pytest.raises(PermissionDenied):
        cat.create(carol, "catalog", "carols")


def test_a_catalog_with_only_its_empty_default_schema_drops_without_force(ws: Workspace, admin: Principal) -> None:
    cat = ws.catalog
    cat.create(admin, "catalog", "scratch")
    assert [s.name for s in cat.list(admin, "schema", "scratch")[0]] == ["default"]
    cat.delete(admin, "catalog", "scratch")
    assert not cat.exists("schema", "scratch.default")
    cat.create(admin, "catalog", "scratch")
    cat.create(admin, "table", "scratch.default.t")
    with pytest.raises(InvalidState, match="not empty"):
        cat.delete(admin, "catalog", "scratch")


def test_grants_inheritance_and_denials_are_audited(ws: Workspace, admin: Principal) -> None:
    cat = ws.catalog
    alice = ws.ensure_user("alice")
    cat.create(admin, "catalog", "lab")
    cat.create(admin, "schema", "lab.s")
    cat.create(admin, "table", "lab.s.t")
    with pytest.raises(PermissionDenied, match="lacks USE_CATALOG"):
        cat.get(alice, "table", "lab.s.t")
    # Does a missing child reveal itself? No: the container check comes first.
    with pytest.raises(PermissionDenied, match="lacks USE_CATALOG"):
        cat.get(alice, "table", "lab.s.nope")
    cat.update_grants(admin, "catalog", "lab", [{"principal": "alice", "add": ["USE CATALOG"]}])
    cat.update_grants(admin, "schema", "lab.s", [{"principal": "alice", "add": ["USE_SCHEMA", "SELECT"]}])
    assert cat.check(alice, "SELECT", ("table", "lab.s.t")).allowed
    assert not cat.check(alice, "MODIFY", ("table", "lab.s.t")).allowed
    eff = cat.effective_grants(admin, "table", "lab.s.t", principal="alice")
    assert {p["privilege"] for p in eff[0]["privileges"]} == {"SELECT", "USE_SCHEMA", "USE_CATALOG"}
    with pytest.raises(PermissionDenied, match="cannot manage"):
        cat.update_grants(alice, "table", "lab.s.t", [{"principal": "alice", "add": ["MODIFY"]}])
    with pytest.raises(InvalidParameterValue, match="does not apply"):
        cat.update_grants(admin, "table", "lab.s.t", [{"principal": "alice", "add": ["CREATE_SCHEMA"]}])
    with pytest.raises(InvalidParameterValue, match="does not exist"):
        cat.update_grants(admin, "table", "lab.s.t", [{"principal": "mallory", "add": ["SELECT"]}])
    denials = [r for r in cat.audit_rows() if not r["allowed"]]
    assert {r["action"] for r in denials} >= {"getTable", "updatePermissions"}
    assert all(r["reason"] for r in denials)


def test_owner_of_parent_can_manage_but_not_read(ws: Workspace, admin: Principal) -> None:
    cat = ws.catalog
    bob = ws.ensure_user("bob")
    cat.create(admin, "catalog", "lab", owner="bob")
    cat.create(admin, "schema", "lab.s")
    cat.create(admin, "table", "lab.s.t")
    cat.update_grants(admin, "schema", "lab.s", [{"principal": "bob", "add": ["USE_SCHEMA"]}])
    assert cat.check(bob, "MANAGE", ("table", "lab.s.t")).allowed
    assert not cat.check(bob, "SELECT", ("table", "lab.s.t")).allowed
    cat.update_grants(bob, "table", "lab.s.t", [{"principal": "bob", "add": ["SELECT"]}])
    assert cat.check(bob, "SELECT", ("table", "lab.s.t")).allowed


def test_recreated_names_inherit_nothing(ws: Workspace, admin: Principal) -> None:
    cat = ws.catalog
    alice = ws.ensure_user("alice")
    cat.create(admin, "catalog", "lab")
    cat.update_grants(admin, "catalog", "lab", [{"principal": "alice", "add": ["USE_CATALOG"]}])
    cat.delete(admin, "catalog", "lab")
    cat.create(admin, "catalog", "lab")
    assert cat.grants(admin, "catalog", "lab") == []
    assert not cat.check(alice, "USE_CATALOG", ("catalog", "lab")).allowed
    # A deleted user's grants and ownership do not pass to a new user of the same name.
    cat.create(admin, "catalog", "alices", owner="alice")
    cat.update_grants(admin, "catalog", "lab", [{"principal": "alice", "add": ["USE_CATALOG"]}])
    ws.identity.delete(alice.id)
    again = ws.ensure_user("alice")
    assert not cat.check(again, "USE_CATALOG", ("catalog", "lab")).allowed
    assert cat.get(admin, "catalog", "alices").owner == "admins"


def test_lineage_edges_are_recorded_and_filtered(ws: Workspace, admin: Principal) -> None:
    cat = ws.catalog
    alice = ws.ensure_user("alice")
    cat.create(admin, "catalog", "lab")
    cat.create(admin, "schema", "lab.s")
    cat.create(admin, "table", "lab.s.src")
    cat.create(admin, "table", "lab.s.dst")
    cat.add_lineage(admin, ("table", "lab.s.src"), ("table", "lab.s.dst"), kind="TEST")
    assert cat.lineage(admin, "table", "lab.s.dst")["upstreams"][0]["full_name"] == "lab.s.src"
    cat.update_grants(admin, "catalog", "lab", [{"principal": "alice", "add": ["USE_CATALOG"]}])
    cat.update_grants(admin, "schema", "lab.s", [{"principal": "alice", "add": ["USE_SCHEMA"]}])
    cat.update_grants(admin, "table", "lab.s.dst", [{"principal": "alice", "add": ["SELECT"]}])
    assert cat.lineage(alice, "table", "lab.s.dst")["upstreams"] == []  # src is hidden from alice
    cat.delete(admin, "table", "lab.s.src")
    assert cat.lineage(admin, "table", "lab.s.dst")["upstreams"] == []


def test_model_versions_and_aliases(ws: Workspace, admin: Principal) -> None:
    cat = ws.catalog
    cat.create(admin, "catalog", "lab")
    cat.create(admin, "schema", "lab.s")
    cat.create(admin, "registered_model", "lab.s.m")
    v1 = cat.create_model_version(admin, "lab.s.m", source="runs:/r1/model")
    v2 = cat.create_model_version(admin, "lab.s.m", source="runs:/r2/model")
    assert (v1["version"], v2["version"]) == (1, 2)
    cat.set_alias(admin, "lab.s.m", "champion", 1)
    cat.set_alias(admin, "lab.s.m", "champion", 2)
    assert cat.version_by_alias(admin, "lab.s.m", "champion")["version"] == 2
    with pytest.raises(InvalidParameterValue, match="cannot be a number"):
        cat.set_alias(admin, "lab.s.m", "3", 1)
    cat.delete_model_version(admin, "lab.s.m", 2)
    with pytest.raises(NotFound):
        cat.version_by_alias(admin, "lab.s.m", "champion")
    rows, _ = cat.model_versions(admin, "lab.s.m")
    assert [r["version"] for r in rows] == [1]


def test_tokens_are_hashed_expire_and_revoke(ws: Workspace) -> None:
    from brickyard.core.errors import Unauthenticated

    now = [1_000_000]
    ws.identity.clock = lambda: now[0]
    user = ws.ensure_user("carol")
    token, info = ws.identity.create_token(user.id, lifetime_seconds=60)
    assert ws.identity.authenticate(token).name == "carol"
    with ws.db.tx(write=False) as tx:
        stored = tx.all("SELECT token_hash FROM tokens")
    assert all(token not in r["token_hash"] for r in stored)
    now[0] += 61_000
    with pytest.raises(Unauthenticated, match="expired"):
        ws.identity.authenticate(token)
    token2, info2 = ws.identity.create_token(user.id)
    ws.identity.revoke_token(info2["id"])
    with pytest.raises(Unauthenticated, match="revoked"):
        ws.identity.authenticate(token2)


def test_nested_groups_and_cycles(ws: Workspace, admin: Principal) -> None:
    ident = ws.identity
    a = ident.create("group", "a")
    b = ident.create("group", "b")
    u = ws.ensure_user("dave")
    ident.add_member(a.id, b.id)
    ident.add_member(b.id, u.id)
    assert ws.principal("dave").groups == {"a", "b"}
    with pytest.raises(InvalidParameterValue, match="cycle"):
        ident.add_member(b.id, a.id)
    admins = ws.principal("admins")
    ident.add_member(admins.id, a.id)
    assert ws.principal("dave").is_admin


def test_identity_changes_are_audited(ws: Workspace, admin: Principal) -> None:
    ident = ws.identity
    u = ident.create("user", "erin", actor=admin.name)
    g = ident.create("group", "team", actor=admin.name)
    ident.add_member(g.id, u.id, actor=admin.name)
    _token, info = ident.create_token(u.id, actor=admin.name)
    ident.revoke_token(info["id"], actor="erin")
    ident.delete(u.id, actor=admin.name)
    rows = [(r["principal"], r["action"]) for r in ws.catalog.audit_rows()]
    for expected in [(admin.name, "createUser"), (admin.name, "createGroup"), (admin.name, "addGroupMember"),
                     (admin.name, "createToken"), ("erin", "revokeToken"), (admin.name, "deleteUser")]:
        assert expected in rows
    assert all(_token not in str(r) for r in ws.catalog.audit_rows())


def test_cached_decisions_expire_and_a_refresh_is_shared(ws: Workspace, admin: Principal,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Hot read paths remember an allowed decision briefly. A revoke by another process (a second workspace
    on the same home) applies within twice DECISION_SECONDS; while one caller re-checks an expired decision,
    the others keep the old answer instead of all reading the metastore at once; a denied re-check drops it.
    The catalog's clock is driven by the test: on a loaded machine, opening the second workspace alone
    had outlasted the bound."""
    import types

    from brickyard.catalog import Catalog, _catalog

    now = [1000.0]
    monkeypatch.setattr(_catalog, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(Catalog, "DECISION_SECONDS", 0.2)
    cat = ws.catalog
    carol = ws.ensure_user("carol")
    cat.create(admin, "catalog", "lab")
    cat.create(admin, "schema", "lab.s")
    cat.create(admin, "table", "lab.s.t")
    cat.update_grants(admin, "catalog", "lab", [{"principal": "carol", "add": ["USE_CATALOG"]}])
    cat.update_grants(admin, "schema", "lab.s", [{"principal": "carol", "add": ["USE_SCHEMA", "SELECT"]}])
    assert not cat.is_cached(carol, "SELECT", "table", "lab.s.t")
    cat.require_cached(carol, "SELECT", "table", "lab.s.t", action="t")
    assert cat.is_cached(carol, "SELECT", "table", "lab.s.t")

    other = Workspace(ws.settings)
    try:
        other.catalog.update_grants(other.principal(admin.name), "schema", "lab.s",
                                    [{"principal": "carol", "remove": ["SELECT"]}])
    finally:
        other.close()
    now[0] += 0.1
    cat.require_cached(carol, "SELECT", "table", "lab.s.t", action="t")  # not yet seen: within the bound
    key = (carol.name, carol.groups, carol.scope, "SELECT", "table", "lab.s.t")
    now[0] += 0.15  # past the bound
    assert not cat.is_cached(carol, "SELECT", "table", "lab.s.t")
    cat._refreshing.add(key)  # another caller is re-checking: the old answer stands a little longer
    assert cat.is_cached(carol, "SELECT", "table", "lab.s.t")
    now[0] += 0.2
    assert not cat.is_cached(carol, "SELECT", "table", "lab.s.t")  # but never past twice the bound
    cat._refreshing.discard(key)
    with pytest.raises(PermissionDenied):
        cat.require_cached(carol, "SELECT", "table", "lab.s.t", action="t")
    assert not cat.is_cached(carol, "SELECT", "table", "lab.s.t") and key not in cat._refreshing
