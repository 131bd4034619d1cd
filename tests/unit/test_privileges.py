"""T18 (library level): the real privilege check against an independent reference model.

The reference below restates the Unity Catalog rules from the documentation in a few lines of plain
Python; hypothesis draws owners, grants and group nesting, and every (principal, privilege, object)
decision of the real catalog must agree with it: no unauthorized allow, no false denial.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace

CATALOGS = ["c1", "c2"]
SCHEMAS = ["c1.s1", "c1.s2", "c2.s1"]
TABLES = ["c1.s1.t1", "c1.s1.t2", "c1.s2.t1", "c2.s1.t1"]
USERS = ["alice", "bob", "carol"]
GROUPS = ["g1", "g2"]  # g1 = {alice}; g2 = {g1, bob} (nested)
GRANTEES = USERS + GROUPS + ["account users"]
PRIVS = {
    "catalog": ["USE_CATALOG", "USE_SCHEMA", "SELECT", "MODIFY", "CREATE_SCHEMA", "CREATE_TABLE", "MANAGE",
                "ALL_PRIVILEGES"],
    "schema": ["USE_SCHEMA", "SELECT", "MODIFY", "CREATE_TABLE", "MANAGE", "ALL_PRIVILEGES"],
    "table": ["SELECT", "MODIFY", "MANAGE", "ALL_PRIVILEGES"],
}
CHECKED = {"catalog": ["USE_CATALOG", "CREATE_SCHEMA", "MANAGE"], "schema": ["USE_SCHEMA", "CREATE_TABLE", "MANAGE"],
           "table": ["SELECT", "MODIFY", "MANAGE"]}
MEMBERSHIP = {"alice": {"g1", "g2"}, "bob": {"g2"}, "carol": set()}


def kind_of(name: str) -> str:
    return {1: "catalog", 2: "schema", 3: "table"}[name.count(".") + 1]


def ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)]


def reference(user: str, privilege: str, obj: str, owners: dict[str, str], grants: set[tuple[str, str, str]]) -> bool:
    names = {user, "account users"} | MEMBERSHIP[user]

    def has(node: str, priv: str) -> bool:
        return any((n, g, p) in grants for n in [node, *ancestors(node)] for g in names
                   for p in (priv, "ALL_PRIVILEGES") if not (priv == "MANAGE" and p == "ALL_PRIVILEGES"))

    for container in ancestors(obj):
        usage = "USE_CATALOG" if kind_of(container) == "catalog" else "USE_SCHEMA"
        if owners[container] not in names and not has(container, usage):
            return False
    if owners[obj] in names:
        return True
    if privilege == "MANAGE":
        return any(owners[a] in names for a in ancestors(obj)) or has(obj, "MANAGE")
    return has(obj, privilege)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("authz") / "home"))
    admin = ws.ensure_user("root", admin=True)
    for u in USERS:
        ws.ensure_user(u)
    g1 = ws.identity.create("group", "g1")
    g2 = ws.identity.create("group", "g2")
    ws.identity.add_member(g1.id, ws.principal("alice").id)
    ws.identity.add_member(g2.id, g1.id)
    ws.identity.add_member(g2.id, ws.principal("bob").id)
    for c in CATALOGS:
        ws.catalog.create(admin, "catalog", c)
    for s in SCHEMAS:
        ws.catalog.create(admin, "schema", s)
    for t in TABLES:
        ws.catalog.create(admin, "table", t)
    yield ws
    ws.close()


OBJECTS = CATALOGS + SCHEMAS + TABLES
owners_st = st.fixed_dictionaries({o: st.sampled_from(["root", "alice", "bob", "carol", "g1", "g2"]) for o in OBJECTS})
grants_st = st.sets(
    st.sampled_from(OBJECTS).flatmap(
        lambda o: st.tuples(st.just(o), st.sampled_from(GRANTEES), st.sampled_from(PRIVS[kind_of(o)]))),
    max_size=14,
)


@given(owners=owners_st, grants=grants_st)
def test_check_agrees_with_reference(world: Workspace, owners: dict[str, str], grants: set[tuple[str, str, str]]) -> None:
    with world.db.tx() as tx:
        tx.execute("DELETE FROM grants")
        for obj, owner in owners.items():
            tx.execute("UPDATE securables SET owner = ? WHERE full_name = ? AND kind = ?", (owner, obj, kind_of(obj)))
        for obj, who, priv in grants:
            sid = tx.scalar("SELECT id FROM securables WHERE full_name = ? AND kind = ?", (obj, kind_of(obj)))
            tx.execute("INSERT INTO grants (securable_id, principal, privilege, granted_by, granted_at)"
                       " VALUES (?, ?, ?, 'test', 0)", (sid, who, priv))
    for user in USERS:
        p = world.principal(user)
        for obj in OBJECTS:
            for priv in CHECKED[kind_of(obj)]:
                d = world.catalog.check(p, priv, (kind_of(obj), obj))
                expected = reference(user, priv, obj, owners, grants)
                assert d.allowed == expected, (user, priv, obj, d.reason)
                assert d.reason


def test_admin_is_allowed_and_disabled_user_is_not(world: Workspace) -> None:
    root = world.principal("root")
    assert world.catalog.check(root, "SELECT", ("table", "c1.s1.t1")).allowed
    carol = world.principal("carol")
    world.identity.update(carol.id, active=False)
    try:
        d = world.catalog.check(world.principal("carol"), "SELECT", ("table", "c1.s1.t1"))
        assert not d.allowed and "disabled" in d.reason
    finally:
        world.identity.update(carol.id, active=True)


@given(owners=owners_st, grants=grants_st,
       attempts=st.lists(st.tuples(st.sampled_from(USERS), st.sampled_from(OBJECTS)), min_size=1, max_size=6))
def test_no_escalation_through_grants(world: Workspace, owners: dict[str, str], grants: set[tuple[str, str, str]],
                                      attempts: list[tuple[str, str]]) -> None:
    """A user can grant (even to themselves) exactly when the reference model says they manage the object."""
    from brickyard.core.errors import PermissionDenied

    test_check_agrees_with_reference.hypothesis.inner_test(world, owners, grants)  # type: ignore[attr-defined]
    for user, obj in attempts:
        priv = "SELECT" if kind_of(obj) != "catalog" else "USE_CATALOG"
        expected = reference(user, "MANAGE", obj, owners, grants)
        try:
            world.catalog.update_grants(world.principal(user), kind_of(obj), obj, [{"principal": user, "add": [priv]}])
            allowed = True
        except PermissionDenied:
            allowed = False
        assert allowed == expected, (user, obj)
        if allowed:  # undo, so the next attempt is judged on the drawn grants only
            world.catalog.update_grants(world.principal("root"), kind_of(obj), obj,
                                        [{"principal": user, "remove": [priv]}])
            if (obj, user, priv) in grants:
                world.catalog.update_grants(world.principal("root"), kind_of(obj), obj,
                                            [{"principal": user, "add": [priv]}])


@pytest.fixture(scope="module")
def rest(world: Workspace) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from brickyard.api import create_app

    tokens = {u: world.create_token(u) for u in USERS}
    with TestClient(create_app(world), base_url="http://127.0.0.1") as client:
        yield client, tokens


@given(owners=owners_st, grants=grants_st, user=st.sampled_from(USERS), table=st.sampled_from(TABLES))
def test_rest_paths_agree_with_reference(world: Workspace, rest: Any, owners: dict[str, str],
                                         grants: set[tuple[str, str, str]], user: str, table: str) -> None:
    """T18 through REST: reading a table by SQL and granting on it are allowed exactly as the model says."""
    client, tokens = rest
    test_check_agrees_with_reference.hypothesis.inner_test(world, owners, grants)  # type: ignore[attr-defined]
    h = {"authorization": f"Bearer {tokens[user]}"}
    r = client.post("/api/2.0/sql/statements", json={"statement": f"SELECT * FROM {table}"}, headers=h)  # noqa: S608
    assert r.status_code == 200
    denied = r.json()["status"].get("error", {}).get("error_code") == "PERMISSION_DENIED"
    assert denied == (not reference(user, "SELECT", table, owners, grants)), (user, table, r.json()["status"])
    r = client.patch(f"/api/2.1/unity-catalog/permissions/table/{table}", headers=h,
                     json={"changes": [{"principal": user, "add": ["MODIFY"]}]})
    assert (r.status_code == 200) == reference(user, "MANAGE", table, owners, grants), (user, table, r.text)
    assert r.status_code in (200, 403)
