"""T25: a Hypothesis state machine of one index through the service's own write path (upserts, deletes,
snapshots, a restart) against a dict model. Invariants after every step: the index holds exactly the
model's rows; a filtered query returns min(k, passing) rows, all passing, best first, equal to exact
search (these indexes are small, so every plan is exact); full-text finds exactly the rows holding a word."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import scaled

WORDS = ["red", "blue", "green"]
KEYS = st.integers(0, 40)
VECTOR = st.lists(st.integers(-4, 4), min_size=4, max_size=4).filter(lambda v: any(v))


class IndexMachine(RuleBasedStateMachine):
    @initialize()
    def index(self) -> None:
        self.dir = tempfile.TemporaryDirectory()
        self.settings = Settings(home=Path(self.dir.name) / "home", access_log="off")
        self.ws = Workspace(self.settings)
        admin = self.ws.ensure_user("admin@example.com", admin=True)
        self.ws.catalog.create(admin, "catalog", "c")
        self.ws.catalog.create(admin, "schema", "c.s")
        self.ws.vectorsearch.create_endpoint(admin, {"name": "e"})
        self.ws.vectorsearch.create_index(admin, {
            "name": "c.s.i", "endpoint_name": "e", "primary_key": "id", "index_type": "DIRECT_ACCESS",
            "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": 4}],
                                         "schema_json": json.dumps({"id": "long", "word": "string", "n": "int",
                                                                    "v": "array<float>"})}})
        self.model: dict[int, dict] = {}

    def teardown(self) -> None:
        if hasattr(self, "ws"):
            self.ws.close()
            self.dir.cleanup()

    @property
    def admin(self):  # type: ignore[no-untyped-def]
        return self.ws.principal("admin@example.com")

    @rule(rows=st.lists(st.tuples(KEYS, st.sampled_from(WORDS), st.integers(0, 9), VECTOR), min_size=1, max_size=8))
    def upsert(self, rows: list) -> None:
        batch = [{"id": k, "word": w, "n": n, "v": [float(x) for x in v]} for k, w, n, v in rows]
        out = self.ws.vectorsearch.upsert(self.admin, "c.s.i", batch)
        assert out["status"] == "SUCCESS", out
        for row in batch:
            self.model[row["id"]] = row

    @rule(keys=st.lists(KEYS, min_size=1, max_size=5))
    def delete(self, keys: list[int]) -> None:
        self.ws.vectorsearch.delete_rows(self.admin, "c.s.i", keys)
        for k in keys:
            self.model.pop(k, None)

    @rule()
    def restart(self) -> None:
        self.ws.close()
        self.ws = Workspace(self.settings)

    @invariant()
    def holds_exactly_the_model(self) -> None:
        if not hasattr(self, "ws"):
            return
        live = self.ws.vectorsearch.live("c.s.i")
        assert set(live.engine.by_pk) == {str(k) for k in self.model}
        scanned = self.ws.vectorsearch.scan(self.admin, "c.s.i", None, 1000)["data"]
        assert len(scanned) == len(self.model)

    @invariant()
    def filtered_queries_are_complete_and_exact(self) -> None:
        if not hasattr(self, "ws") or not self.model:
            return
        query = [1.0, 0.5, -0.5, 0.25]
        for k, flt in ((3, {"n >=": 5}), (50, {"word": "red"}), (5, {})):
            body = {"query_vector": query, "columns": ["id"], "num_results": k}
            if flt:
                body["filters_json"] = json.dumps(flt)
            got = [int(r[0]) for r in self.ws.vectorsearch.query(self.admin, "c.s.i", body)["result"]["data_array"]]
            passing = [r for r in self.model.values()
                       if all((r["n"] >= v) if c == "n >=" else r[c] == v for c, v in flt.items())]
            scores = {r["id"]: float(np.asarray(r["v"], dtype=np.float32) @ np.asarray(query, dtype=np.float32))
                      for r in passing}
            assert len(got) == min(k, len(passing)), (flt, got)
            assert sorted(scores[i] for i in got) == sorted(sorted(scores.values(), reverse=True)[:len(got)])

    @invariant()
    def full_text_finds_every_row_with_the_word(self) -> None:
        if not hasattr(self, "ws"):
            return
        body = {"query_text": "blue", "query_type": "FULL_TEXT", "columns": ["id"], "num_results": 100}
        got = {int(r[0]) for r in self.ws.vectorsearch.query(self.admin, "c.s.i", body)["result"]["data_array"]}
        assert got == {k for k, r in self.model.items() if r["word"] == "blue"}


IndexMachine.TestCase.settings = settings(max_examples=scaled(15, 200), stateful_step_count=scaled(12, 40),
                                          deadline=None)
TestIndexMachine = IndexMachine.TestCase
