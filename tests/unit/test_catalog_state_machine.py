"""T24: a Hypothesis state machine drives the real catalog through grants, revokes, ownership transfers,
drops (with CASCADE) and re-creations under the same name, and after every step compares each decision
with the reference model of ``test_privileges.py``. Invariants: no decision differs from the reference;
a re-created name does not inherit the grants or lineage of the object it replaces; no lineage edge
points at an object that no longer exists."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import scaled
from tests.unit.test_privileges import (
    CATALOGS,
    CHECKED,
    GRANTEES,
    MEMBERSHIP,
    PRIVS,
    SCHEMAS,
    TABLES,
    USERS,
    ancestors,
    kind_of,
    reference,
)

OBJECTS = CATALOGS + SCHEMAS + TABLES
OWNERS = ["root", *USERS, "g1", "g2"]


class CatalogMachine(RuleBasedStateMachine):
    @initialize()
    def world(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        ws = Workspace(Settings(home=Path(self.dir.name) / "home", access_log="off"))
        self.ws = ws
        self.root = ws.ensure_user("root", admin=True)
        for u in USERS:
            ws.ensure_user(u)
        g1, g2 = ws.identity.create("group", "g1"), ws.identity.create("group", "g2")
        ws.identity.add_member(g1.id, ws.principal("alice").id)
        ws.identity.add_member(g2.id, g1.id)
        ws.identity.add_member(g2.id, ws.principal("bob").id)
        self.owners: dict[str, str] = {}
        self.grants: set[tuple[str, str, str]] = set()
        self.edges: set[tuple[str, str]] = set()
        for obj in OBJECTS:
            self._create(obj)

    def teardown(self) -> None:
        if hasattr(self, "ws"):
            self.ws.close()
            self.dir.cleanup()

    # -- model helpers ----------------------------------------------------------------------------
    def _create(self, obj: str) -> None:
        self.ws.catalog.create(self.root, kind_of(obj), obj)
        self.owners[obj] = "root"

    def _gone(self, obj: str) -> list[str]:
        """``obj`` and everything under it, as the model knows them."""
        return [o for o in list(self.owners) if o == obj or o.startswith(obj + ".")]

    # -- rules ------------------------------------------------------------------------------------
    @rule(obj=st.sampled_from(OBJECTS), who=st.sampled_from(GRANTEES), data=st.data())
    def grant(self, obj: str, who: str, data: st.DataObject) -> None:
        if obj not in self.owners:
            return
        priv = data.draw(st.sampled_from(PRIVS[kind_of(obj)]))
        self.ws.catalog.update_grants(self.root, kind_of(obj), obj, [{"principal": who, "add": [priv]}])
        self.grants.add((obj, who, priv))

    @precondition(lambda self: bool(self.grants))
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        obj, who, priv = data.draw(st.sampled_from(sorted(self.grants)))
        self.ws.catalog.update_grants(self.root, kind_of(obj), obj, [{"principal": who, "remove": [priv]}])
        self.grants.discard((obj, who, priv))

    @rule(obj=st.sampled_from(OBJECTS), owner=st.sampled_from(OWNERS))
    def transfer(self, obj: str, owner: str) -> None:
        if obj not in self.owners:
            return
        self.ws.catalog.update(self.root, kind_of(obj), obj, owner=owner)
        self.owners[obj] = owner

    @rule(obj=st.sampled_from(OBJECTS))
    def drop(self, obj: str) -> None:
        if obj not in self.owners:
            return
        self.ws.catalog.delete(self.root, kind_of(obj), obj, force=True)
        for o in self._gone(obj):
            del self.owners[o]
        self.grants = {g for g in self.grants if g[0] in self.owners}
        self.edges = {e for e in self.edges if e[0] in self.owners and e[1] in self.owners}

    @rule(obj=st.sampled_from(OBJECTS))
    def recreate(self, obj: str) -> None:
        """Create a dropped object again under its old name (its containers first)."""
        if obj in self.owners:
            return
        for container in reversed(ancestors(obj)):
            if container not in self.owners:
                self._create(container)
        self._create(obj)

    @rule(upstream=st.sampled_from(TABLES), downstream=st.sampled_from(TABLES))
    def link(self, upstream: str, downstream: str) -> None:
        source, target = upstream, downstream
        if source == target or source not in self.owners or target not in self.owners:
            return
        self.ws.catalog.add_lineage(self.root, ("table", source), ("table", target), kind="TEST")
        self.edges.add((source, target))

    # -- invariants -------------------------------------------------------------------------------
    @invariant()
    def decisions_match_the_reference(self) -> None:
        if not hasattr(self, "ws"):
            return
        for user in USERS:
            p = self.ws.principal(user)
            for obj in self.owners:
                for priv in CHECKED[kind_of(obj)]:
                    decision = self.ws.catalog.check(p, priv, (kind_of(obj), obj))
                    assert decision.allowed == reference(user, priv, obj, self.owners, self.grants), \
                        (user, priv, obj, decision.reason, sorted(self.grants))

    @invariant()
    def lineage_never_dangles_and_never_survives_a_drop(self) -> None:
        if not hasattr(self, "ws"):
            return
        for table in TABLES:
            if table not in self.owners:
                continue
            seen = self.ws.catalog.lineage(self.root, "table", table)
            down = {e["full_name"] for e in seen["downstreams"]}
            up = {e["full_name"] for e in seen["upstreams"]}
            assert down == {t for s, t in self.edges if s == table}, (table, down)
            assert up == {s for s, t in self.edges if t == table}, (table, up)


CatalogMachine.TestCase.settings = settings(max_examples=scaled(25, 200), stateful_step_count=scaled(20, 50),
                                            deadline=None)
TestCatalogMachine = CatalogMachine.TestCase
assert MEMBERSHIP  # the reference model's groups are the ones created above
