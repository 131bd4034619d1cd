"""Vector Search through the official clients (databricks-vectorsearch and databricks-sdk) against a live
server: endpoints, Direct Access and Delta Sync indexes, ANN / FULL_TEXT / HYBRID queries with filters,
permissions, and incremental sync == full rebuild (T06)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from databricks.sdk import WorkspaceClient

from brickyard.core.errors import InvalidState
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

warnings.filterwarnings("ignore", category=DeprecationWarning)
from databricks.vector_search.client import VectorSearchClient  # noqa: E402

DIM = 16


@dataclass
class Env:
    ws: Workspace
    url: str
    token: str
    bob_token: str

    def client(self, token: str | None = None) -> VectorSearchClient:
        return VectorSearchClient(workspace_url=self.url, personal_access_token=token or self.token,
                                  disable_notice=True)

    def sdk(self) -> WorkspaceClient:
        return WorkspaceClient(host=self.url, token=self.token)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("vs") / "home", enable_fake_models=1))
    token = ws.create_token("admin@example.com", admin=True)
    ws.ensure_user("bob@example.com")
    bob = ws.create_token("bob@example.com")
    admin = ws.principal("admin@example.com")
    ws.catalog.create(admin, "schema", "main.rag")
    ws.serving.create(admin, {"name": "fake-embedding",
                              "config": {"served_entities": [{"entity_name": "system.ai.fake-embedding"}]}})
    ws.vectorsearch.create_endpoint(admin, {"name": "vs1"})
    with serve(ws) as url:
        yield Env(ws, url, token, bob)
    ws.close()


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_direct_access_index_end_to_end(env: Env) -> None:
    client = env.client()
    client.create_endpoint_and_wait(name="vs0", endpoint_type="STANDARD")
    assert client.get_endpoint("vs0")["endpoint_status"]["state"] == "ONLINE"
    client.delete_endpoint("vs0")
    index = client.create_direct_access_index(
        endpoint_name="vs1", index_name="main.rag.direct", primary_key="id", embedding_dimension=DIM,
        embedding_vector_column="vec",
        schema={"id": "integer", "text": "string", "category": "string", "year": "integer", "vec": "array<float>"})
    index.wait_until_ready()
    vecs = vectors(300)
    words = ["delta lake tables", "vector search engines", "model serving gateways"]
    rows = [{"id": i, "text": f"doc {i} about {words[i % 3]}", "category": ["a", "b", "c"][i % 3], "year": 2000 + i % 25,
             "vec": vecs[i].tolist()} for i in range(300)]
    result = index.upsert(rows)
    assert result["status"] == "SUCCESS" and result["result"]["success_row_count"] == 300
    q = vecs[7]
    hits = index.similarity_search(query_vector=q.tolist(), columns=["id", "category"], num_results=5)
    assert hits["manifest"]["columns"][-1]["name"] == "score"
    data = hits["result"]["data_array"]
    exact = np.argsort(-(vecs @ q))[:5]
    assert [int(r[0]) for r in data] == [int(i) for i in exact]
    # a filter is applied inside the search: k matching rows, nearest first
    hits = index.similarity_search(query_vector=q.tolist(), columns=["id", "category", "year"], num_results=10,
                                   filters={"category": "b", "year >=": 2010})
    ids = [int(r[0]) for r in hits["result"]["data_array"]]
    allowed = [i for i in range(300) if i % 3 == 1 and 2000 + i % 25 >= 2010]
    assert ids == [int(i) for i in sorted(allowed, key=lambda i: -float(vecs[i] @ q))[:10]]
    hits = index.similarity_search(query_vector=q.tolist(), columns=["id"], num_results=3,
                                   filters={"category NOT": ["a", "b"]})
    assert all(int(r[0]) % 3 == 2 for r in hits["result"]["data_array"])
    # full text on the string column
    hits = index.similarity_search(query_text="gateways", columns=["id", "text"], num_results=5,
                                   query_type="FULL_TEXT")
    assert hits["result"]["data_array"] and all("gateways" in r[1] for r in hits["result"]["data_array"])
    # delete and scan
    index.delete([0, 1, 2])
    hits = index.similarity_search(query_vector=vecs[1].tolist(), columns=["id"], num_results=1)
    assert int(hits["result"]["data_array"][0][0]) != 1
    assert index.describe()["status"]["indexed_row_count"] == 297
    scanned = index.scan(num_results=10)
    assert len(scanned["data"]) == 10


def test_bad_requests_get_clear_errors(env: Env) -> None:
    import httpx

    h = {"authorization": f"Bearer {env.token}"}
    r = httpx.post(env.url + "/api/2.0/vector-search/indexes/main.rag.direct/query", headers=h,
                   json={"query_vector": [0.1] * (DIM + 1), "columns": ["id"]})
    assert r.status_code == 400 and "dimensions" in r.json()["message"]
    r = httpx.post(env.url + "/api/2.0/vector-search/indexes/main.rag.direct/query", headers=h,
                   json={"query_vector": [0.1] * DIM, "columns": ["id"], "filters_json": json.dumps({"nope": 1})})
    assert r.status_code == 400 and "unknown column" in r.json()["message"]
    r = httpx.post(env.url + "/api/2.0/vector-search/indexes/main.rag.nothing/query", headers=h,
                   json={"query_vector": [0.1] * DIM})
    assert r.status_code == 404
    # The query route parses its body with the fast parser; what it refuses, the standard one explains.
    route = env.url + "/api/2.0/vector-search/indexes/main.rag.direct/query"
    for raw, said in ((b'{"query_vector": [NaN]}', "not valid JSON"), (b'{"query_vector": [0.1,', "line 1 column"),
                      (b"[1, 2]", "must be a JSON object"), (b'{"num_results": "3"}', "num_results")):
        r = httpx.post(route, headers={**h, "content-type": "application/json"}, content=raw)
        assert r.status_code == 400 and said in r.json()["message"], (raw, r.text)


def test_queries_need_select_on_the_index(env: Env) -> None:
    import httpx

    r = httpx.post(env.url + "/api/2.0/vector-search/indexes/main.rag.direct/query",
                   headers={"authorization": f"Bearer {env.bob_token}"}, json={"query_vector": [0.1] * DIM})
    assert r.status_code == 403
    admin = env.ws.principal("admin@example.com")
    for kind, name, priv in (("catalog", "main", "USE_CATALOG"), ("schema", "main.rag", "USE_SCHEMA"),
                             ("table", "main.rag.direct", "SELECT")):
        env.ws.catalog.update_grants(admin, kind, name, [{"principal": "bob@example.com", "add": [priv]}])
    r = httpx.post(env.url + "/api/2.0/vector-search/indexes/main.rag.direct/query",
                   headers={"authorization": f"Bearer {env.bob_token}"},
                   json={"query_vector": [0.1] * DIM, "columns": ["id"]})
    assert r.status_code == 200, r.text
    r = httpx.post(env.url + "/api/2.0/vector-search/indexes/main.rag.direct/upsert-data",
                   headers={"authorization": f"Bearer {env.bob_token}"}, json={"inputs_json": "[]"})
    assert r.status_code == 403  # reading is not writing


def _table_rows(n: int, start: int = 0, seed: int = 1) -> list[dict[str, Any]]:
    vecs = vectors(n + start, seed)
    return [{"id": i, "body": f"passage {i}", "tag": "even" if i % 2 == 0 else "odd", "vec": vecs[i].tolist()}
            for i in range(start, start + n)]


def _own_vectors_index(env: Env, source: str, name: str, pipeline: str) -> Any:
    """A Delta Sync index over ``source``'s own ``vec`` column, through the official client."""
    return env.client().create_delta_sync_index(endpoint_name="vs1", index_name=name, primary_key="id",
                                                source_table_name=source, pipeline_type=pipeline,
                                                embedding_dimension=DIM, embedding_vector_column="vec")


def _source(env: Env, name: str, rows: int) -> Any:
    """A Delta table of ``rows`` rows with an id, text, a tag and a vector; returns the admin."""
    admin = env.ws.principal("admin@example.com")
    env.ws.tables.create(admin, name, columns=[
        {"name": "id", "type_text": "bigint"}, {"name": "body", "type_text": "string"},
        {"name": "tag", "type_text": "string"}, {"name": "vec", "type_text": "array<float>"}])
    env.ws.tables.write(admin, name, _table_rows(rows))
    return admin


def test_delta_sync_self_managed_incremental_equals_rebuild(env: Env) -> None:
    ws = env.ws
    admin = _source(env, "main.rag.src", 100)
    client = env.client()
    index = client.create_delta_sync_index(endpoint_name="vs1", index_name="main.rag.synced", primary_key="id",
                                           source_table_name="main.rag.src", pipeline_type="TRIGGERED",
                                           embedding_dimension=DIM, embedding_vector_column="vec")
    index.wait_until_ready(wait_for_updates=True)
    assert index.describe()["status"]["indexed_row_count"] == 100
    # every write mode, then one sync
    ws.tables.write(admin, "main.rag.src", _table_rows(20, start=100))  # append
    ws.sql.execute(admin, "UPDATE main.rag.src SET tag = 'changed' WHERE id < 10")
    ws.sql.execute(admin, "DELETE FROM main.rag.src WHERE id >= 110")
    ws.tables.write(admin, "main.rag.src", _table_rows(15, start=50, seed=9), mode="merge", keys=["id"])
    index.sync()
    index.wait_until_ready(wait_for_updates=True)
    live = ws.vectorsearch.live("main.rag.synced")
    source = {r["id"]: r for r in ws.tables.read(admin, "main.rag.src").to_pylist()}
    assert live.store.meta("source_version") == ws.tables.open(ws.catalog.get(admin, "table", "main.rag.src")).version()
    held = {int(r.data["id"]): r for r in live.store.rows()}
    assert set(held) == set(source)
    for key, row in held.items():
        assert row.data["tag"] == source[key]["tag"]
        assert np.allclose(row.vector, source[key]["vec"], atol=1e-6)
    hits = index.similarity_search(query_vector=source[55]["vec"], columns=["id", "tag"], num_results=1,
                                   filters={"tag": source[55]["tag"]})
    assert int(hits["result"]["data_array"][0][0]) == 55
    # an overwrite is a change too
    ws.tables.write(admin, "main.rag.src", _table_rows(5, start=500), mode="overwrite")
    index.sync()
    index.wait_until_ready(wait_for_updates=True)
    assert sorted(int(r.data["id"]) for r in live.store.rows()) == list(range(500, 505))


def test_managed_embeddings_hybrid_and_lineage(env: Env) -> None:
    ws = env.ws
    admin = ws.principal("admin@example.com")
    ws.tables.create(admin, "main.rag.docs", columns=[
        {"name": "doc_id", "type_text": "string"}, {"name": "content", "type_text": "string"},
        {"name": "source", "type_text": "string"}])
    texts = ["Delta tables keep a transaction log", "Vector search finds nearest neighbours",
             "The AI gateway enforces rate limits", "Unity Catalog governs tables and models",
             "Rate limits protect serving endpoints"]
    ws.tables.write(admin, "main.rag.docs", [{"doc_id": f"d{i}", "content": t, "source": "kb" if i % 2 else "web"}
                                             for i, t in enumerate(texts)])
    index = env.client().create_delta_sync_index(
        endpoint_name="vs1", index_name="main.rag.docs_index", primary_key="doc_id", source_table_name="main.rag.docs",
        pipeline_type="TRIGGERED", embedding_source_column="content", embedding_model_endpoint_name="fake-embedding",
        sync_computed_embeddings=True)
    index.wait_until_ready(wait_for_updates=True)
    desc = index.describe()
    assert desc["status"]["indexed_row_count"] == 5
    assert desc["delta_sync_index_spec"]["embedding_source_columns"][0]["embedding_model_endpoint_name"] == \
        "fake-embedding"
    for query_type in ("ANN", "FULL_TEXT", "HYBRID"):
        hits = index.similarity_search(query_text="rate limits", columns=["doc_id", "content"], num_results=3,
                                       query_type=query_type)
        assert hits["result"]["data_array"], query_type
    hits = index.similarity_search(query_text="rate limits", columns=["doc_id", "content"], num_results=5,
                                   query_type="FULL_TEXT")
    assert {r[0] for r in hits["result"]["data_array"]} == {"d2", "d4"}
    hits = index.similarity_search(query_text="rate limits", columns=["doc_id", "source"], num_results=5,
                                   query_type="HYBRID", filters={"source": "web"})
    assert all(r[1] == "web" for r in hits["result"]["data_array"])
    hits = index.similarity_search(query_text="rate limits", columns=["doc_id", "content"], num_results=2,
                                   query_type="HYBRID", columns_to_rerank=["content"])
    # the fake embedding is noise, and the reranker weighs the dense signal 0.7: one of the two lexical matches
    # stays on top (its quality on real embeddings is measured by `brickyard bench retrieval`)
    assert len(hits["result"]["data_array"]) == 2 and {r[0] for r in hits["result"]["data_array"]} & {"d2", "d4"}
    assert "reranker_time" in hits.get("debug_info", {})
    import httpx

    r = httpx.post(env.url + "/api/2.0/vector-search/indexes/main.rag.docs_index/query",
                   headers={"authorization": f"Bearer {env.token}"},
                   json={"query_text": "x", "columns": ["doc_id"], "reranker": {"model": "no-such-endpoint"}})
    assert r.status_code == 404  # a rerank model that is not an endpoint
    lineage = ws.catalog.lineage(admin, "table", "main.rag.docs_index")
    assert any(e["full_name"] == "main.rag.docs" for e in lineage["upstreams"]), lineage
    # unchanged rows are not embedded again
    live = ws.vectorsearch.live("main.rag.docs_index")
    before = {r.pk: r.vector.copy() for r in live.store.rows()}
    ws.sql.execute(admin, "UPDATE main.rag.docs SET source = 'moved' WHERE doc_id = 'd0'")
    calls = []
    real = ws.vectorsearch.embed
    ws.vectorsearch.embed = lambda p, e, t: (calls.append(t), real(p, e, t))[1]  # type: ignore[method-assign]
    try:
        ws.vectorsearch.sync_now("main.rag.docs_index")
    finally:
        ws.vectorsearch.embed = real  # type: ignore[method-assign]
    assert calls == []
    assert np.array_equal(next(r.vector for r in live.store.rows() if r.pk == "d0"), before["d0"])
    # the embedding writeback table mirrors the index
    writeback = live.spec["delta_sync_index_spec"]["embedding_writeback_table"]
    ws.sql.execute(admin, "DELETE FROM main.rag.docs WHERE doc_id = 'd1'")
    ws.vectorsearch.sync_now("main.rag.docs_index")
    rows = {r["doc_id"]: r for r in ws.tables.read(admin, writeback).to_pylist()}
    assert set(rows) == {"d0", "d2", "d3", "d4"} and rows["d0"]["source"] == "moved"
    assert np.allclose(rows["d2"]["__db_content_vector"], before["d2"])


def test_sdk_routes(env: Env) -> None:
    w = env.sdk()
    names = [e.name for e in w.vector_search_endpoints.list_endpoints()]
    assert "vs1" in names
    got = w.vector_search_indexes.get_index("main.rag.direct")
    assert got.primary_key == "id"
    listed = [i.name for i in w.vector_search_indexes.list_indexes(endpoint_name="vs1")]
    assert "main.rag.direct" in listed
    q = w.vector_search_indexes.query_index("main.rag.direct", columns=["id"], query_vector=[0.1] * DIM,
                                            num_results=2)
    assert q.result.row_count == 2
    w.vector_search_indexes.delete_data_vector_index("main.rag.direct", primary_keys=["10", "11"])
    assert env.ws.vectorsearch.live("main.rag.direct").engine.count == 295


def test_continuous_pipeline_follows_the_table_and_paging(env: Env) -> None:
    import time

    ws = env.ws
    admin = _source(env, "main.rag.live", 10)
    index = _own_vectors_index(env, "main.rag.live", "main.rag.live_index", "CONTINUOUS")
    index.wait_until_ready()
    assert index.describe()["status"]["detailed_state"] == "ONLINE_CONTINUOUS_UPDATE"
    ws.tables.write(admin, "main.rag.live", _table_rows(30, start=10))
    deadline = time.monotonic() + 15
    while index.describe()["status"]["indexed_row_count"] < 40:
        assert time.monotonic() < deadline, "the continuous pipeline did not pick up the new rows"
        time.sleep(0.1)
    # paging: the client follows next_page_token; every row comes once
    import httpx

    h = {"authorization": f"Bearer {env.token}"}
    first = httpx.post(env.url + "/api/2.0/vector-search/indexes/main.rag.live_index/query", headers=h,
                       json={"query_vector": [0.1] * DIM, "columns": ["id"], "num_results": 25, "page_size": 10}).json()
    seen = [r[0] for r in first["result"]["data_array"]]
    token = first["next_page_token"]
    while token:
        page = httpx.post(env.url + "/api/2.0/vector-search/indexes/main.rag.live_index/query-next-page",
                          headers=h, json={"page_token": token, "endpoint_name": "vs1"}).json()
        seen += [r[0] for r in page["result"]["data_array"]]
        token = page["next_page_token"]
    assert len(seen) == 25 == len(set(seen))


def test_a_gap_in_the_change_feed_triggers_a_full_rebuild(env: Env) -> None:
    ws = env.ws
    admin = _source(env, "main.rag.gappy", 20)
    index = _own_vectors_index(env, "main.rag.gappy", "main.rag.gappy_index", "TRIGGERED")
    index.wait_until_ready()
    src = ws.catalog.get(admin, "table", "main.rag.gappy")
    ws.tables.write(admin, "main.rag.gappy", _table_rows(7, start=100), mode="overwrite")
    ws.tables.write(admin, "main.rag.gappy", _table_rows(3, start=200))
    ws.tables.open(src).vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    import shutil
    from pathlib import Path

    shutil.rmtree(Path(src.spec["storage_location"]) / "_change_data", ignore_errors=True)  # the feed is gone
    result = ws.vectorsearch.sync_now("main.rag.gappy_index")
    live = ws.vectorsearch.live("main.rag.gappy_index")
    held = sorted(int(r.data["id"]) for r in live.store.rows())
    assert held == [*range(100, 107), *range(200, 203)], (result, held)
    assert result["mode"] == "full"
    assert live.store.meta("source_version") == ws.tables.open(src).version()


def test_a_column_added_to_the_source_reaches_the_index(env: Env) -> None:
    """Schema evolution by another Delta writer (here delta-rs directly, as Spark would): the next sync
    carries the new column, and it can be returned and filtered on."""
    import pyarrow as pa
    from deltalake import write_deltalake

    ws = env.ws
    admin = _source(env, "main.rag.evolving", 10)
    index = _own_vectors_index(env, "main.rag.evolving", "main.rag.evolving_index", "TRIGGERED")
    index.wait_until_ready()
    src = ws.catalog.get(admin, "table", "main.rag.evolving")
    rows = _table_rows(5, start=50)
    for r in rows:
        r["lang"] = "en" if r["id"] % 2 else "fr"
    schema = pa.schema([("id", pa.int64()), ("body", pa.string()), ("tag", pa.string()),
                        ("vec", pa.list_(pa.float32())), ("lang", pa.string())])
    write_deltalake(src.spec["storage_location"], pa.Table.from_pylist(rows, schema=schema), mode="append",
                    schema_mode="merge")
    index.sync()
    index.wait_until_ready(wait_for_updates=True)
    assert index.describe()["status"]["indexed_row_count"] == 15
    hits = index.similarity_search(query_vector=rows[0]["vec"], columns=["id", "lang"], num_results=5,
                                   filters={"lang": "fr"})
    found = hits["result"]["data_array"]
    assert found and all(r[1] == "fr" for r in found)
    assert {int(r[0]) for r in found} == {50, 52, 54}


def test_dropped_and_renamed_source_columns_rebuild_the_index(env: Env) -> None:
    """Dropping or renaming a column is not described by the change feed alone (Spark's DROP COLUMN with
    column mapping rewrites no file, so no row is listed), so the sync rebuilds whenever a column was
    dropped, renamed or retyped (here a Delta overwrite with a new schema): the index then equals a full rebuild, a
    filter on the old column is refused by name, and a renamed column serves under its new name. When a
    column the index needs is gone, the sync fails with the reason and the index keeps what it had."""
    import httpx
    import pyarrow as pa
    from deltalake import write_deltalake

    ws = env.ws
    admin = _source(env, "main.rag.reshaped", 12)
    index = _own_vectors_index(env, "main.rag.reshaped", "main.rag.reshaped_index", "TRIGGERED")
    index.wait_until_ready()
    probe = _table_rows(12)[3]["vec"]
    assert index.similarity_search(query_vector=probe, columns=["id", "tag"], num_results=3,
                                   filters={"tag": "even"})["result"]["data_array"]  # "tag" is remembered as known
    src = ws.catalog.get(admin, "table", "main.rag.reshaped")
    location = src.spec["storage_location"]

    renamed = [{"id": r["id"], "body": r["body"], "label": r["tag"], "vec": r["vec"]} for r in _table_rows(12)]
    schema = pa.schema([("id", pa.int64()), ("body", pa.string()), ("label", pa.string()),
                        ("vec", pa.list_(pa.float32()))])
    write_deltalake(location, pa.Table.from_pylist(renamed, schema=schema), mode="overwrite", schema_mode="overwrite")
    result = ws.vectorsearch.sync_now("main.rag.reshaped_index")
    assert result["mode"] == "full", result
    live = ws.vectorsearch.live("main.rag.reshaped_index")
    held = {int(r.data["id"]): r.data for r in live.store.rows()}
    assert set(held) == set(range(12)) and all(set(row) == {"id", "body", "label"} for row in held.values())
    found = index.similarity_search(query_vector=probe, columns=["id", "label"], num_results=3,
                                    filters={"label": "odd"})["result"]["data_array"]
    assert found and all(r[1] == "odd" for r in found)
    refused = httpx.post(env.url + "/api/2.0/vector-search/indexes/main.rag.reshaped_index/query",
                         headers={"authorization": f"Bearer {env.token}"}, json={"query_vector": probe, "columns": ["id"],
                                                 "filters_json": '{"tag": "odd"}'})
    assert refused.status_code == 400 and "'tag'" in refused.json()["message"], refused.text

    dropped = [{"id": r["id"], "body": r["body"]} for r in renamed]  # the vector column itself is gone
    write_deltalake(location, pa.Table.from_pylist(dropped, schema=pa.schema([("id", pa.int64()),
                                                                              ("body", pa.string())])),
                    mode="overwrite", schema_mode="overwrite")
    with pytest.raises(InvalidState, match="no longer has column"):
        ws.vectorsearch.sync_now("main.rag.reshaped_index")
    status = index.describe()["status"]
    assert "no longer has column(s) vec" in status["message"] and status["indexed_row_count"] == 12
    assert index.similarity_search(query_vector=probe, columns=["id"], num_results=1)["result"]["data_array"]


def test_rerank_through_a_remote_rerank_endpoint(tmp_path: Any) -> None:
    """A serving endpoint with task llm/v1/rerank pointing at a /rerank provider (vLLM, TEI, Jina and Cohere
    share the shape); queries name it as reranker.model and the call goes through the gateway."""
    import threading
    import time

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    seen: list[dict[str, Any]] = []

    async def rerank(request: Request) -> JSONResponse:
        body = await request.json()
        seen.append(body)  # scores: longer documents first, so the order is easy to predict
        return JSONResponse({"results": [{"index": i, "relevance_score": float(len(d))}
                                         for i, d in enumerate(body["documents"])]})

    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/v1/rerank", rerank, methods=["POST"])]),
                                           host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    ws = Workspace(Settings(home=tmp_path / "home", allowed_model_hosts=f"127.0.0.1:{port}"))
    try:
        admin = ws.ensure_user("root", admin=True)
        ws.catalog.create(admin, "catalog", "c")
        ws.catalog.create(admin, "schema", "c.s")
        ws.serving.create(admin, {"name": "reranker", "config": {"served_entities": [{
            "name": "up", "external_model": {"name": "bge-reranker", "provider": "custom", "task": "llm/v1/rerank",
                                             "custom_provider_config": {
                                                 "custom_provider_url": f"http://127.0.0.1:{port}/v1"}}}]},
            "ai_gateway": {"usage_tracking_config": {"enabled": True}}})
        for _ in range(500):
            if ws.serving.get(admin, "reranker")["state"]["config_update"] == "NOT_UPDATING":
                break
            time.sleep(0.01)
        ws.vectorsearch.create_endpoint(admin, {"name": "ep"})
        ws.vectorsearch.create_index(admin, {
            "name": "c.s.i", "primary_key": "id", "index_type": "DIRECT_ACCESS",
            "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": 2}],
                                         "schema_json": '{"id": "integer", "text": "string", "v": "array<float>"}'}},
            endpoint="ep")
        texts = ["rate", "rate limits here", "rate limits", "something else"]
        ws.vectorsearch.upsert(admin, "c.s.i", [{"id": i, "text": t, "v": [1.0, float(i)]}
                                                for i, t in enumerate(texts)])
        out = ws.vectorsearch.query(admin, "c.s.i", {"query_text": "rate limits", "query_type": "FULL_TEXT",
                                                      "columns": ["text"], "num_results": 2,
                                                      "reranker": {"model": "reranker",
                                                                   "parameters": {"columns_to_rerank": ["text"]}}})
        assert [r[0] for r in out["result"]["data_array"]] == ["rate limits here", "rate limits"]
        assert seen[-1]["query"] == "rate limits" and seen[-1]["model"] == "bge-reranker"
        time.sleep(1.5)  # usage rows are written once a second
        usage = ws.sql.execute(admin, "SELECT endpoint_name, status_code FROM system.serving.endpoint_usage").table
        assert ("reranker", 200) in list(zip(*[usage.column(c).to_pylist() for c in usage.column_names], strict=True))
    finally:
        ws.close()
        server.should_exit = True
