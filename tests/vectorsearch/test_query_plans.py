"""Issue 17, point 15: a query returns every row it should. Each ANN query is planned by the filter's
cardinality (known exactly from the selection): few passing rows, or ``k`` a large share of them, are scored
exactly; otherwise the HNSW graph answers, and if its walk comes up short the answer is made exactly."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brickyard.core.settings import Settings
from brickyard.vectorsearch import Engine, RowStore
from brickyard.vectorsearch._engine import Selection
from brickyard.workspace import Workspace
from tests.conftest import scaled, serve


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(2, n // 50), dim))
    v = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _engine(tmp: Path, vecs: np.ndarray) -> Engine:
    store = RowStore(tmp / "rows.db")
    store.apply([(str(i), {"id": i, "n": i}, vecs[i], None) for i in range(len(vecs))])
    return Engine(tmp, store, dimension=vecs.shape[1], vector_column="v", text_column=None)


def _by_label(engine: Engine, passing: np.ndarray) -> Selection:
    """The engine's own labels for a mask over row ids (a large graph is renumbered for locality)."""
    labels = np.array([engine.by_pk[str(i)] for i in range(len(passing))])
    mask = np.zeros(len(engine.pks), dtype=bool)
    mask[labels[passing]] = True
    return Selection(mask)


def _ids(engine: Engine, hits: list[tuple[int, float]]) -> list[int]:
    return [int(engine.pks[label]) for label, _ in hits]  # type: ignore[arg-type]


def _truth(vecs: np.ndarray, query: np.ndarray, passing: np.ndarray, k: int) -> list[int]:
    ids = np.flatnonzero(passing)
    scores = vecs[ids] @ query
    order = np.lexsort((ids, -scores))
    return ids[order[:k]].tolist()


@settings(max_examples=scaled(40, 400), deadline=None)
@given(n=st.integers(1, 600), dim=st.sampled_from([4, 16]), seed=st.integers(0, 2**16),
       share=st.floats(0.0, 1.0), k=st.integers(1, 700), force_ann=st.booleans())
def test_a_query_returns_min_k_passing_rows_and_exact_plans_are_exact(n: int, dim: int, seed: int, share: float,
                                                                        k: int, force_ann: bool) -> None:
    vecs = _clustered(n, dim, seed)
    rng = np.random.default_rng(seed + 1)
    passing = rng.random(n) < share
    query = vecs[int(rng.integers(0, n))]
    with tempfile.TemporaryDirectory() as tmp:
        engine = _engine(Path(tmp), vecs)
        if force_ann:
            engine.exact_floats = engine.exact_rows_per_ef = 0  # the graph answers unless k is a large share
        try:
            hits = _ids(engine, engine.search_ann(query, k, _by_label(engine, passing)))
            plan = engine.plan(int(passing.sum()), k)
        finally:
            engine.store.close()
    assert len(hits) == min(k, int(passing.sum()))
    assert all(passing[i] for i in hits)
    assert len(set(hits)) == len(hits)
    if plan == "exact":
        assert hits == _truth(vecs, query, passing, k)


def test_the_graph_plan_keeps_its_recall(tmp_path: Path) -> None:
    """Where the graph answers (the plan for 20k 384-d rows like text embeddings, filters passing 3-100% of
    them, with the exact thresholds off so the graph answers everything), recall@10 against exact search."""
    from brickyard.bench._vectorsearch import data

    n = 20_000
    vecs, queries = data(n, scaled(150, 1000))
    engine = _engine(tmp_path, vecs)
    engine.exact_floats = engine.exact_rows_per_ef = 0
    rng = np.random.default_rng(8)
    recalls: dict[float, list[float]] = {}
    for query in queries:
        share = float(rng.choice([0.03, 0.1, 0.3, 1.0]))
        passing = rng.random(n) < share
        assert engine.plan(int(passing.sum()), 10) == "ann"
        got = _ids(engine, engine.search_ann(query, 10, _by_label(engine, passing)))
        recalls.setdefault(share, []).append(len(set(got) & set(_truth(vecs, query, passing, 10))) / 10)
    engine.store.close()
    for share, values in recalls.items():
        assert float(np.mean(values)) >= 0.95, (share, np.mean(values))


@pytest.fixture(scope="module")
def index_url(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("plans") / "home"))
    admin = ws.ensure_user("a@example.com", admin=True)
    token = ws.create_token("a@example.com", admin=True)
    ws.catalog.create(admin, "catalog", "c")
    ws.catalog.create(admin, "schema", "c.s")
    ws.vectorsearch.create_endpoint(admin, {"name": "e"})
    for name, rows in (("small", 300), ("mid", 519)):
        ws.vectorsearch.create_index(admin, {
            "name": f"c.s.{name}", "endpoint_name": "e", "primary_key": "id", "index_type": "DIRECT_ACCESS",
            "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": 8}],
                                         "schema_json": json.dumps({"id": "long", "n": "long", "v": "array<float>"})}})
        vecs = _clustered(rows, 8, rows)
        ws.vectorsearch.upsert(admin, f"c.s.{name}", [{"id": i, "n": i, "v": vecs[i].tolist()} for i in range(rows)])
    with serve(ws) as url:
        yield url, {"authorization": f"Bearer {token}"}
    ws.close()


@pytest.mark.parametrize(("index", "body", "expected"), [
    ("small", {"filters_json": json.dumps({"n <": 20}), "num_results": 50}, 20),
    ("mid", {"num_results": 500}, 500),
    ("mid", {"num_results": 1000}, 519),
    ("mid", {"filters_json": json.dumps({"n >=": 400}), "num_results": 100}, 100),
])
def test_the_reported_short_answers_are_complete(index_url, index: str, body: dict, expected: int) -> None:  # type: ignore[no-untyped-def]
    url, headers = index_url
    r = httpx.post(f"{url}/api/2.0/vector-search/indexes/c.s.{index}/query", headers=headers, timeout=30,
                   json={"query_vector": [1.0] * 8, "columns": ["id", "n"], **body})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["row_count"] == expected
