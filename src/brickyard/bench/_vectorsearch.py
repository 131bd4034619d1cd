"""``brickyard bench vectorsearch``: Brickyard's index engine against its peers, in one run, per core.

* ANN: clustered 384-d unit vectors (a Gaussian mixture with low-rank clusters, like text embeddings),
  queries drawn fresh from the same mixture, exact top-10 by inner product as ground truth. Brickyard's
  engine (``Engine.search_ann``: the Python API a query takes, dead-row and filter bitmaps included) and
  faiss ``IndexHNSWFlat`` called directly (and hnswlib when installed) are built with the same M=16,
  efConstruction=128 and swept over ef; one query per call, one thread. Reported per figure: QPS per
  CPU-second at the smallest ef that reaches recall@10 >= 0.95 and >= 0.99, build inserts per
  CPU-second, memory against the raw float32 vectors, and recall of 10%-selective filtered queries.
* BM25: synthetic documents (Zipf vocabulary), Brickyard's ``search_text`` against tantivy queried
  directly; indexing docs per CPU-second.
* Embeddings: the default MiniLM at ~128 tokens, passages per CPU-second.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384
PEERS = {"faiss_hnsw_qps_at_0.95_per_core_100k": 5920, "faiss_hnsw_qps_at_0.99_per_core_100k": 3999,
         "chroma_qps_100k": 705, "tantivy_qps_per_core_117k": 10900,
         "minilm_ort_fp32_passages_per_s": 19}  # ../shared/design/performance.md, measured on this class of machine


def clustered(n: int, rng: np.random.Generator, centers: np.ndarray, bases: np.ndarray) -> np.ndarray:
    """``n`` unit vectors from a mixture of low-rank clusters: centre + a point of the cluster's 32-d
    subspace + a little isotropic noise, with Zipf-like cluster sizes (some topics are much bigger)."""
    k = centers.shape[0]
    weights = 1.0 / np.arange(1, k + 1) ** 0.7
    labels = rng.choice(k, size=n, p=weights / weights.sum())
    out = np.empty((n, DIM), dtype=np.float32)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(k + 1))
    for c in range(k):
        rows = order[bounds[c]:bounds[c + 1]]
        if len(rows):
            x = centers[c] + (rng.standard_normal((len(rows), bases.shape[1]), dtype=np.float32) * 0.106) @ bases[c]
            x += rng.standard_normal((len(rows), DIM), dtype=np.float32) * 0.0153
            out[rows] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def data(n: int, nq: int) -> tuple[np.ndarray, np.ndarray]:
    """The data set of ``../shared/design/perf-scripts/gen_vectors.py``, draw for draw (same seeds, same
    order: the peers' figures in performance.md were measured on exactly these vectors and queries):
    max(100, n/500) clusters; queries fresh from the same mixture, drawn as a set of at least 1,000 (the
    script's default) so the first ``nq`` are the same queries whatever ``nq`` is."""
    rng = np.random.default_rng(42)
    k = max(100, n // 500)
    centers = rng.standard_normal((k, DIM), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    bases = rng.standard_normal((k, 32, DIM), dtype=np.float32) / np.sqrt(DIM)
    return clustered(n, rng, centers, bases), clustered(max(nq, 1000), np.random.default_rng(7), centers, bases)[:nq]


def exact(base: np.ndarray, queries: np.ndarray, k: int, mask: np.ndarray | None = None) -> np.ndarray:
    out = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 100):
        scores = queries[start:start + 100] @ base.T
        if mask is not None:
            scores[:, ~mask] = -np.inf
        out[start:start + 100] = np.argsort(-scores, axis=1)[:, :k]
    return out


def _cpu() -> float:
    return time.process_time()


def _sweep(searchers: dict[str, Callable[[np.ndarray, int], np.ndarray]], queries: np.ndarray, truth: np.ndarray,
           efs: list[int]) -> dict[str, list[dict[str, float]]]:
    """Each searcher at each ef, interleaved (A B B A) so drift in the machine's speed hits all alike;
    the better of each side's two timings counts."""
    out: dict[str, list[dict[str, float]]] = {name: [] for name in searchers}
    names = list(searchers)
    for ef in efs:
        best: dict[str, float] = {}
        recall: dict[str, float] = {}
        for name in names + names[::-1]:
            search = searchers[name]
            for q in queries[:20]:  # warm up
                search(q, ef)
            cpu0, found = _cpu(), 0
            for i, q in enumerate(queries):
                found += len(set(search(q, ef).tolist()) & set(truth[i].tolist()))
            qps = len(queries) / (_cpu() - cpu0)
            best[name] = max(best.get(name, 0.0), qps)
            recall[name] = found / truth.size
        for name in names:
            out[name].append({"ef": ef, "recall": round(recall[name], 4), "qps_per_core": round(best[name], 1)})
    return out


def _best(sweep: list[dict[str, float]], recall: float) -> dict[str, float] | None:
    ok = [r for r in sweep if r["recall"] >= recall]
    return max(ok, key=lambda r: r["qps_per_core"]) if ok else None


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ann(n: int, nq: int, efs: list[int]) -> dict[str, Any]:
    import faiss

    from ..vectorsearch import Engine, RowStore

    base, queries = data(n, nq)
    truth = exact(base, queries, 10)
    out: dict[str, Any] = {"rows": n, "queries": nq, "dim": DIM, "raw_vectors_mb": round(base.nbytes / 2**20, 1)}

    with tempfile.TemporaryDirectory() as tmp:
        store = RowStore(Path(tmp) / "rows.db")
        t = time.perf_counter()
        for start in range(0, n, 10_000):
            store.apply([(str(i), {"id": i, "shard": i % 10}, base[i], None) for i in range(start, min(n, start + 10_000))])
        store_s = time.perf_counter() - t
        engine = Engine(Path(tmp) / "empty", RowStore(Path(tmp) / "empty" / "rows.db"), dimension=DIM,
                        vector_column="v", text_column=None)
        cpu0 = _cpu()
        engine.apply(store.rows(), [])
        build_cpu = _cpu() - cpu0
        faiss.omp_set_num_threads(1)
        labels = np.array([int(pk) for pk in engine.pks])  # label -> row id

        def ours(q: np.ndarray, ef: int) -> np.ndarray:
            return labels[[lb for lb, _ in engine.search_ann(q, 10, None, ef=ef)]]

        mask = np.asarray(engine.column("shard")) == 3
        truth_f = exact(base, queries, 10, mask=np.asarray([i % 10 == 3 for i in range(n)]))
        lab_mask = mask & engine.alive()

        def filtered(q: np.ndarray, ef: int) -> np.ndarray:
            return labels[[lb for lb, _ in engine.search_ann(q, 10, lab_mask, ef=ef)]]

        index = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 128
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        cpu0 = _cpu()
        index.add(base)
        peer_build_cpu = _cpu() - cpu0
        faiss.omp_set_num_threads(1)
        params = faiss.SearchParametersHNSW()

        def peer(q: np.ndarray, ef: int) -> np.ndarray:
            params.efSearch = ef
            return index.search(q.reshape(1, -1), 10, params=params)[1][0]

        sweeps = _sweep({"brickyard": ours, "faiss_hnsw": peer}, queries, truth, efs)
        fsweep = _sweep({"filtered": filtered}, queries, truth_f, [64, 128])["filtered"]
        ann_bytes = faiss.serialize_index(engine.ann).nbytes
        sweep = sweeps["brickyard"]
        out["brickyard"] = {"sweep": sweep, "at_0.95": _best(sweep, 0.95), "at_0.99": _best(sweep, 0.99),
                            "build_inserts_per_cpu_s": round(n / build_cpu, 1),
                            "row_store_write_s": round(store_s, 2),
                            "index_memory_vs_raw": round(ann_bytes / base.nbytes, 3),
                            "filtered_10pct": fsweep}
        sweep = sweeps["faiss_hnsw"]
        out["faiss_hnsw"] = {"sweep": sweep, "at_0.95": _best(sweep, 0.95), "at_0.99": _best(sweep, 0.99),
                             "build_inserts_per_cpu_s": round(n / peer_build_cpu, 1)}
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        store.close()
        engine.store.close()

    for level in ("0.95", "0.99"):
        mine, theirs = out["brickyard"][f"at_{level}"], out["faiss_hnsw"][f"at_{level}"]
        if mine and theirs:
            out[f"qps_ratio_vs_faiss_at_{level}"] = round(mine["qps_per_core"] / theirs["qps_per_core"], 3)
    return out


def corpus(n: int, nq: int) -> tuple[list[str], list[str]]:
    """``n`` short synthetic documents (8-30 words from a 20,000-word Zipf vocabulary) and ``nq`` queries of
    three words from the 2,000 most frequent."""
    rng = np.random.default_rng(3)
    vocab = [f"w{i}" for i in range(20_000)]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    lengths = rng.integers(8, 30, n)
    words = rng.choice(len(vocab), size=int(lengths.sum()), p=weights)
    docs, pos = [], 0
    for length in lengths:
        docs.append(" ".join(vocab[w] for w in words[pos:pos + length]))
        pos += length
    return docs, [" ".join(vocab[w] for w in rng.choice(2000, size=3)) for _ in range(nq)]


def bm25(n: int, nq: int, rounds: int = 3, chunk: int = 250) -> dict[str, Any]:
    """Brickyard's full-text index (built from its row store, as an index sync does) against tantivy fed
    the same documents directly. Brickyard's QPS is that of a read-mostly index (after the reads that
    make it build its hit table); ``qps_per_core_first_reads`` is that of the first reads after a build.
    Each round builds both indexes, then their query passes alternate ``chunk`` queries at a time (tens
    of milliseconds), so both see the same moments of a machine whose speed drifts by a third within a
    minute; each side keeps its best round. Tantivy's queries are parsed before the clock, as the peers
    were measured."""
    import tantivy

    from ..vectorsearch import Engine, RowStore

    docs, queries = corpus(n, nq)
    out: dict[str, Any] = {"docs": n, "queries": nq, "rounds": rounds}
    inf = float("inf")
    best = {"brickyard": [inf, inf, inf], "tantivy": [inf, inf]}  # index, query CPU (Brickyard: + first reads)
    spans = [queries[i:i + chunk] for i in range(0, len(queries), chunk)]
    with tempfile.TemporaryDirectory() as tmp:
        store = RowStore(Path(tmp) / "rows.db")
        store.apply([(str(i), {"id": i, "text": d}, None, None) for i, d in enumerate(docs)])
        for r in range(rounds):
            where = Path(tmp) / f"brickyard{r}"
            where.mkdir()
            cpu0 = _cpu()
            engine = Engine(where, store, dimension=None, vector_column=None, text_column="text")
            mine_index = _cpu() - cpu0
            for q in queries[:20]:
                engine.search_text(q, 10, None)
            cpu0 = _cpu()
            for q in queries:  # the first reads after a build: each hit's row through the fast field
                engine.search_text(q, 10, None)
            first = _cpu() - cpu0

            sb = tantivy.SchemaBuilder()
            sb.add_text_field("text", stored=False, tokenizer_name="en_stem")
            there = Path(tmp) / f"tantivy{r}"
            there.mkdir()
            index = tantivy.Index(sb.build(), path=str(there))
            cpu0 = _cpu()
            writer = index.writer(heap_size=64_000_000, num_threads=1)
            for d in docs:
                writer.add_document(tantivy.Document(text=d))
            writer.commit()
            writer.wait_merging_threads()
            theirs_index = _cpu() - cpu0
            index.reload()
            searcher = index.searcher()
            parsed = [[index.parse_query(q, ["text"]) for q in span] for span in spans]
            for q in parsed[0][:20]:
                searcher.search(q, 10, count=False)

            while queries and engine._fts_table is None:  # a read-mostly index builds its hit table after n/50 reads
                for q in queries:
                    engine.search_text(q, 10, None)
            mine_query = theirs_query = 0.0
            for span, span_parsed in zip(spans, parsed, strict=True):
                cpu0 = _cpu()
                for q in span:
                    engine.search_text(q, 10, None)
                cpu1 = _cpu()
                for pq in span_parsed:
                    searcher.search(pq, 10, count=False)
                cpu2 = _cpu()
                mine_query += cpu1 - cpu0
                theirs_query += cpu2 - cpu1
            mine, theirs = best["brickyard"], best["tantivy"]
            mine[:] = [min(mine[0], mine_index), min(mine[1], mine_query), min(mine[2], first)]
            theirs[:] = [min(theirs[0], theirs_index), min(theirs[1], theirs_query)]
            del engine, searcher, index
            shutil.rmtree(where)
            shutil.rmtree(there)
        store.close()
    for side, (index_cpu, query_cpu, *first_reads) in best.items():
        out[side] = {"qps_per_core": round(nq / query_cpu, 1), "index_docs_per_cpu_s": round(n / index_cpu, 1)}
        if first_reads:
            out[side]["qps_per_core_first_reads"] = round(nq / first_reads[0], 1)
    out["qps_ratio_vs_tantivy"] = round(out["brickyard"]["qps_per_core"] / out["tantivy"]["qps_per_core"], 3)
    out["index_ratio_vs_tantivy"] = round(out["brickyard"]["index_docs_per_cpu_s"]
                                          / out["tantivy"]["index_docs_per_cpu_s"], 3)
    return out


def _percentiles(samples: list[float]) -> dict[str, float]:
    ms = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def hybrid(n: int, nq: int) -> dict[str, Any]:
    """HYBRID query cost at ``n`` rows (clustered vectors, each row with a synthetic document), one query
    at a time: the retrieval part (ANN top 50 + BM25 top 50 + RRF, as the query route runs it), then with
    the query's embedding by the default model (a short question), then the rerank of the top 20 by the
    offline default and by a MiniLM-L6-sized cross-encoder (the configured one, else one with an untrained
    head: the same size and code path as ms-marco-MiniLM-L-6-v2, so the time is real and the order is not).
    Latencies are wall-clock; ``cpu_ms`` is process CPU per query (BLAS may use both cores for the models)."""
    from ..vectorsearch import Engine, RowStore, rrf
    from ..vectorsearch._rerank import rerank_candidates

    base, qvecs = data(n, nq)
    docs, texts = corpus(n, nq)
    out: dict[str, Any] = {"rows": n, "queries": nq}
    with tempfile.TemporaryDirectory() as tmp:
        store = RowStore(Path(tmp) / "rows.db")
        for start in range(0, n, 10_000):
            store.apply([(str(i), {"id": i, "text": docs[i]}, base[i], None) for i in range(start, min(n, start + 10_000))])
        engine = Engine(Path(tmp), store, dimension=DIM, vector_column="v", text_column="text")

        def retrieve(vector: np.ndarray, text: str) -> list[tuple[int, float]]:
            with engine.lock:
                return rrf([engine.search_ann(vector, 50, None), engine.search_text(text, 50, None)])

        for i in range(20):
            retrieve(qvecs[i], texts[i])
        walls, cpu0 = [], _cpu()
        for i in range(nq):
            t = time.perf_counter()
            retrieve(qvecs[i], texts[i])
            walls.append(time.perf_counter() - t)
        out["retrieval"] = {**_percentiles(walls), "cpu_ms": round((_cpu() - cpu0) / nq * 1000, 3)}
        try:
            from ..models._minilm import CrossEncoder, MiniLMEmbedder, untrained_cross_encoder
        except ImportError as exc:  # pragma: no cover - the local extra is missing
            out["with_query_embedding"] = out["rerank_top20"] = {"skipped": str(exc)}
            store.close()
            return out
        model = MiniLMEmbedder(threads=1)  # the per-core figure
        questions = [f"which documents mention {t.replace(' ', ' and ')}?" for t in texts]
        model.embed(questions[:5])
        walls, cpu0 = [], _cpu()
        for i in range(nq):
            t = time.perf_counter()
            retrieve(model.embed([questions[i]])[0], texts[i])  # timing: the index holds synthetic vectors
            walls.append(time.perf_counter() - t)
        out["with_query_embedding"] = {**_percentiles(walls), "cpu_ms": round((_cpu() - cpu0) / nq * 1000, 3)}

        from ..core.settings import Settings

        configured = Settings.from_env().reranker_path
        ce_dir = Path(configured) if configured else untrained_cross_encoder(Path(tmp) / "cross-encoder")
        cross = CrossEncoder(ce_dir)  # every core: the target is the wall time on this machine
        offline, cross_walls = [], []
        for i in range(min(nq, 50)):
            hits = retrieve(qvecs[i], texts[i])[:20]
            passages = [engine.rows[label]["text"] for label, _ in hits]  # type: ignore[index]
            vectors = [engine.ann.reconstruct(int(label)) for label, _ in hits]
            t = time.perf_counter()
            rerank_candidates(questions[i], passages, qvecs[i], vectors)
            offline.append(time.perf_counter() - t)
            if i < 5:  # the cross-encoder reads each passage padded out to a typical chunk of ~200 tokens
                chunks = []
                for passage in passages:
                    chunk = passage
                    while model.count_tokens(chunk) < 200:
                        chunk += " " + passage
                    chunks.append(chunk)
                t = time.perf_counter()
                cross.scores(questions[i], chunks)
                cross_walls.append(time.perf_counter() - t)
        out["rerank_top20"] = {"offline_default": _percentiles(offline),
                               "cross_encoder": {**_percentiles(cross_walls), "passage_tokens": model.count_tokens(chunks[0]),
                                                 "weights": configured or "untrained head on all-MiniLM-L6-v2 (timing only)"}}
        store.close()
    return out


def embeddings(passages: int, threads: int | None = None, rounds: int = 3) -> dict[str, Any]:
    """The default model at both precisions on passages of exactly 128 tokens (CLS and SEP included) and
    on a 16-token query, best of ``rounds`` (this machine's timings swing by 10%), and how close int8's
    vectors are to fp32's."""
    try:
        from ..models._minilm import MiniLMEmbedder
    except ImportError as exc:  # pragma: no cover - the local extra is missing
        return {"skipped": str(exc)}
    models = {p: MiniLMEmbedder(threads=threads, precision=p) for p in ("fp32", "int8")}
    if models["int8"].precision != "int8":  # pragma: no cover - no ONNX Runtime: auto is fp32
        models.pop("int8")
    tokenizer = models["fp32"].tokenizer
    rng = np.random.default_rng(5)
    words = "data table index vector query model serving gateway catalog schema token stream search".split()
    texts = []
    for _ in range(passages):
        ids = tokenizer.encode(" ".join(rng.choice(words, size=130))).ids[1:127]  # 126 word pieces
        texts.append(tokenizer.decode(ids))
    tokens = [models["fp32"].count_tokens(t) for t in texts]
    query = "which tables in the catalog hold the vector index of the gateway logs?"
    out: dict[str, Any] = {"tokens_per_passage": [min(tokens), max(tokens)],
                           "query_tokens": models["fp32"].count_tokens(query)}
    for name, model in models.items():
        model.embed(texts[:8])
        cpu = wall = q_cpu = float("inf")
        for _ in range(rounds):
            cpu0, t0 = _cpu(), time.perf_counter()
            model.embed(texts)
            cpu, wall = min(cpu, _cpu() - cpu0), min(wall, time.perf_counter() - t0)
            cpu0 = _cpu()
            for _ in range(20):
                model.embed([query])
            q_cpu = min(q_cpu, (_cpu() - cpu0) / 20)
        out[name] = {"backend": model.backend, "passages_per_s": round(passages / wall, 1),
                     "passages_per_cpu_s": round(passages / cpu, 1), "query_cpu_ms": round(q_cpu * 1000, 2)}
    if "int8" in models:
        cos = (models["fp32"].embed(texts) * models["int8"].embed(texts)).sum(1)
        out["int8"]["cosine_to_fp32"] = {"min": round(float(cos.min()), 5), "mean": round(float(cos.mean()), 5)}
    return out


def embeddings_both(passages: int) -> dict[str, Any]:
    """In this process (threads as configured) and in a child with one thread (ONNX Runtime and BLAS):
    the per-core figure, since idle BLAS threads spin and count as CPU time."""
    import json
    import subprocess
    import sys

    from ..core.settings import Settings

    env = Settings.blas_single_thread_environ()
    child = subprocess.run([sys.executable, "-c", "import json, sys; from brickyard.bench._vectorsearch import "
                            f"embeddings; print(json.dumps(embeddings({passages}, threads=1)))"],
                           env=env, capture_output=True, text=True, timeout=1800, check=False)
    one = json.loads(child.stdout.strip().splitlines()[-1]) if child.returncode == 0 else {"error": child.stderr[-300:]}
    return {"default_threads": embeddings(passages), "one_thread": one}


def freshness(rows: int) -> dict[str, Any]:
    """Seconds from a Delta commit of ``rows`` rows to all of them being queryable through a CONTINUOUS
    index: with your own vectors, and with managed embeddings (MiniLM stand-in), the embedding time
    reported apart."""
    from ..core.settings import Settings
    from ..workspace import Workspace

    out: dict[str, Any] = {"rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Settings(home=Path(tmp) / "home"))
        try:
            admin = ws.ensure_user("bench", admin=True)
            ws.catalog.create(admin, "catalog", "b")
            ws.catalog.create(admin, "schema", "b.s")
            ws.vectorsearch.create_endpoint(admin, {"name": "ep"})
            embedded = [0.0]
            real = ws.vectorsearch.embed

            def timed(p: Any, endpoint: str, texts: list[str]) -> np.ndarray:
                t = time.perf_counter()
                try:
                    return real(p, endpoint, texts)
                finally:
                    embedded[0] += time.perf_counter() - t

            ws.vectorsearch.embed = timed  # type: ignore[method-assign]
            rng = np.random.default_rng(1)
            for kind in ("own_vectors", "managed_embeddings"):
                table, index = f"b.s.{kind}", f"b.s.{kind}_index"
                ws.tables.create(admin, table, columns=[{"name": "id", "type_text": "bigint"},
                                                        {"name": "body", "type_text": "string"},
                                                        {"name": "vec", "type_text": "array<float>"}])
                ws.tables.write(admin, table, [{"id": -1, "body": "seed", "vec": [0.0] * 8}])
                ds: dict[str, Any] = {"source_table": table, "pipeline_type": "CONTINUOUS"}
                if kind == "own_vectors":
                    ds["embedding_vector_columns"] = [{"name": "vec", "embedding_dimension": 8}]
                else:
                    ds["embedding_source_columns"] = [{"name": "body",
                                                       "embedding_model_endpoint_name": "databricks-gte-large-en"}]
                ws.vectorsearch.create_index(admin, {"name": index, "primary_key": "id", "index_type": "DELTA_SYNC",
                                                     "delta_sync_index_spec": ds}, endpoint="ep")
                live = ws.vectorsearch.live(index)
                while live.engine.count < 1:
                    time.sleep(0.01)
                batch = [{"id": i, "body": f"passage {i} about topic {i % 17}",
                          "vec": rng.standard_normal(8).astype(np.float32).tolist()} for i in range(rows)]
                embedded[0] = 0.0
                ws.tables.write(admin, table, batch)
                t0 = time.perf_counter()
                deadline = t0 + 600
                while live.engine.count < rows + 1 and time.perf_counter() < deadline:
                    time.sleep(0.005)
                total = time.perf_counter() - t0
                out[kind] = {"seconds": round(total, 3), "embedding_seconds": round(embedded[0], 3),
                             "seconds_excluding_embedding": round(total - embedded[0], 3),
                             "complete": live.engine.count == rows + 1}
        finally:
            ws.close()
    return out


def chroma(peer_python: str | None, base: np.ndarray, queries: np.ndarray, shard: np.ndarray, value: int
           ) -> dict[str, Any]:
    """Chroma on the same vectors and filter, in its own process and environment (``chroma_peer.py``)."""
    import json
    import subprocess

    if not peer_python:
        return {"skipped": "no peers environment; `make bench` makes .venv-peers and passes --peer-python"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, base=base, queries=queries, shard=shard, value=value, truth=exact(base, queries, 10),
                 truth_filtered=exact(base, queries, 10, shard == value))
        script = Path(__file__).with_name("chroma_peer.py")
        done = subprocess.run([peer_python, str(script), str(path)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"failed": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def rest(n: int, seconds: float, concurrency: int, peer_python: str | None = None) -> dict[str, Any]:
    """Filtered ANN queries through the REST route of a real server process: aiohttp load at
    ``concurrency``, and one official client (databricks-vectorsearch) in a loop for its latency."""
    import asyncio
    import json
    import subprocess
    import sys
    import warnings

    from ..core.settings import Settings
    from ..workspace import Workspace
    from ._gateway import _cpu_seconds, _free_port, _load, _wait

    base, queries = data(n, 200)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        ws = Workspace(Settings(home=home))
        token = ws.create_token("bench@example.com", admin=True)
        admin = ws.principal("bench@example.com")
        ws.catalog.create(admin, "catalog", "b")
        ws.catalog.create(admin, "schema", "b.s")
        ws.vectorsearch.create_endpoint(admin, {"name": "ep"})
        ws.vectorsearch.create_index(admin, {
            "name": "b.s.vectors", "primary_key": "id", "index_type": "DIRECT_ACCESS",
            "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": DIM}],
                                         "schema_json": json.dumps({"id": "integer", "shard": "integer",
                                                                    "v": "array<float>"})}}, endpoint="ep")
        for start in range(0, n, 10_000):
            ws.vectorsearch.upsert(admin, "b.s.vectors", [{"id": i, "shard": i % 10, "v": base[i].tolist()}
                                                          for i in range(start, min(n, start + 10_000))])
        ws.close()
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "brickyard.cli", "serve", "--home", str(home), "--port",
                                   str(port), "--log-level", "warning"], env=Settings.child_environ())
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(url + "/health", server)
            filters = json.dumps({"shard": 3})
            # every query of the set in turn, as the peer gets them: one query repeated stays in cache and
            # measured at a third of the CPU
            bodies = [{"query_vector": q.tolist(), "columns": ["id"], "num_results": 10, "filters_json": filters}
                      for q in queries]
            route = url + "/api/2.0/vector-search/indexes/b.s.vectors/query"
            auth = {"authorization": f"Bearer {token}"}
            asyncio.run(_load(route, auth, bodies, 4, 1.0))  # warm up
            cpu0 = _cpu_seconds(server.pid)
            loaded = asyncio.run(_load(route, auth, bodies, concurrency, seconds))
            cpu = _cpu_seconds(server.pid) - cpu0
            loaded["server_cpu_ms_per_query"] = round(cpu / max(1, loaded["requests"]) * 1000, 3)
            loaded["qps_per_server_cpu_second"] = round(loaded["requests"] / cpu, 1) if cpu else None
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            from databricks.vector_search.client import VectorSearchClient

            index = VectorSearchClient(workspace_url=url, personal_access_token=token,
                                       disable_notice=True).get_index(endpoint_name="ep", index_name="b.s.vectors")
            truth = exact(base, queries, 10, np.arange(n) % 10 == 3)
            t0, count, hits = time.perf_counter(), 0, 0
            while time.perf_counter() - t0 < seconds:
                i = count % len(queries)
                found = index.similarity_search(query_vector=queries[i].tolist(), columns=["id"], num_results=10,
                                                filters={"shard": 3}, disable_notice=True)
                if count < len(queries):
                    ids = {int(row[0]) for row in found["result"]["data_array"]}
                    hits += len(ids & set(truth[i].tolist()))
                count += 1
            client = {"queries": count, "qps": round(count / (time.perf_counter() - t0), 1),
                      "recall_at_10": round(hits / (10 * min(count, len(queries))), 4)}
        finally:
            server.terminate()
            server.wait(timeout=10)
        scale_out = _scale_out(home, token, bodies, base, queries, n, seconds, concurrency)
    peer = chroma(peer_python, base, queries[:100], np.arange(n) % 10, 3)
    out = {"rows": n, "filter": {"shard": 3}, "selectivity": 0.1, f"aiohttp_c{concurrency}": loaded,
           "official_client_one_thread": client, "scale_out": scale_out, "chroma_embedded_same_run": peer,
           "peer_from_performance_md": "Chroma embedded 705 QPS per CPU-s at 100k, unfiltered"}
    ours = loaded.get("qps_per_server_cpu_second")
    for label in ("unfiltered", "filtered"):
        theirs = (peer.get(label) or {}).get("qps_per_cpu_second")
        if ours and theirs:
            out[f"ratio_to_chroma_{label}"] = round(ours / theirs, 2)
    return out


def _scale_out(home: Path, token: str, bodies: list[dict[str, Any]], base: np.ndarray, queries: np.ndarray, n: int,
               seconds: float, concurrency: int) -> dict[str, Any]:
    """The same filtered queries against ``brickyard serve --workers 1`` and ``--workers 2`` on the same home, one
    after the other, loaded by wrk (a C load generator, so the client takes little of the machine's CPU; aiohttp
    when wrk is missing, said in the answer), and the official client's recall through the two-process server."""
    import shutil
    import subprocess
    import sys
    import warnings

    from ..core.settings import Settings
    from ._gateway import _free_port, _load, _wait

    out: dict[str, Any] = {"load_generator": "wrk" if shutil.which("wrk") else "aiohttp (install wrk for the "
                                                                                "CPU it leaves to the server)"}
    for workers in (1, 2):
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "brickyard.cli", "serve", "--home", str(home), "--port",
                                   str(port), "--log-level", "warning", "--workers", str(workers)],
                                  env=Settings.child_environ(access_log="off"))
        try:
            url = f"http://127.0.0.1:{port}"
            _wait(url + "/health", server)
            route = url + "/api/2.0/vector-search/indexes/b.s.vectors/query"
            auth = {"authorization": f"Bearer {token}"}
            for _ in range(30):  # until every process has opened (or built) its copy of the index and warmed up
                if asyncio_run(_load(route, auth, bodies, 4 * workers, 2.0))["p99_ms"] < 50:
                    break
            if shutil.which("wrk"):
                result = _wrk(route, token, bodies, concurrency, seconds)
            else:
                result = asyncio_run(_load(route, auth, bodies, concurrency, seconds))
            if workers == 2:
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                from databricks.vector_search.client import VectorSearchClient

                index = VectorSearchClient(workspace_url=url, personal_access_token=token, disable_notice=True
                                           ).get_index(endpoint_name="ep", index_name="b.s.vectors")
                truth = exact(base, queries, 10, np.arange(n) % 10 == 3)
                hits = 0
                for i, q in enumerate(queries):
                    found = index.similarity_search(query_vector=q.tolist(), columns=["id"], num_results=10,
                                                    filters={"shard": 3}, disable_notice=True)
                    hits += len({int(row[0]) for row in found["result"]["data_array"]} & set(truth[i].tolist()))
                result["official_client_recall_at_10"] = round(hits / (10 * len(queries)), 4)
            out[f"workers_{workers}"] = result
        finally:
            server.terminate()
            server.wait(timeout=30)
    one, two = out["workers_1"].get("rps"), out["workers_2"].get("rps")
    out["ratio_2_to_1"] = round(two / one, 2) if one and two else None
    out["target"] = ">= 1.8 with 2 workers on 2 cores"
    return out


def asyncio_run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


def _wrk(url: str, token: str, bodies: list[dict[str, Any]], connections: int, seconds: float) -> dict[str, Any]:
    """wrk with a Lua script that posts the bodies in turn; requests/s, latency and non-2xx answers."""
    import json
    import re
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "post.lua"
        items = ",\n".join(f"[==[{json.dumps(b)}]==]" for b in bodies)
        script.write_text(f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local bodies = {{
{items}
}}
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])
end
""")
        done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script),
                               url], capture_output=True, text=True, timeout=seconds + 60)
    text = done.stdout
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    p50 = re.search(r"50%\s+([0-9.]+)(us|ms|s)", text)
    p99 = re.search(r"99%\s+([0-9.]+)(us|ms|s)", text)

    def ms(m: Any) -> float | None:
        if m is None:
            return None
        return round(float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)], 3)

    return {"rps": float(rps.group(1)) if rps else None, "errors": int(bad.group(1)) if bad else 0,
            "p50_ms": ms(p50), "p99_ms": ms(p99), "connections": connections}


PARTS = ("ann", "bm25", "hybrid", "embeddings", "freshness", "rest")


def run_vectorsearch_bench(*, rows: int = 100_000, queries: int = 1000, docs: int = 100_000,
                           passages: int = 64, freshness_rows: int = 1000, parts: tuple[str, ...] = PARTS,
                           peer_python: str | None = None, efs: list[int] | None = None) -> dict[str, Any]:
    unknown = set(parts) - set(PARTS)
    if unknown:
        from ..core.errors import InvalidParameterValue

        raise InvalidParameterValue(f"unknown part(s) {sorted(unknown)}; the parts are {', '.join(PARTS)}")
    efs = sorted(set(efs or [16, 24, 32, 48, 64, 96, 128, 192]))
    if any(not isinstance(e, int) or e < 1 or e > 4096 for e in efs):
        from ..core.errors import InvalidParameterValue

        raise InvalidParameterValue("ef values must be integers from 1 to 4096")
    run: dict[str, Callable[[], Any]] = {
        "ann": lambda: ann(rows, queries, efs), "bm25": lambda: bm25(docs, queries),
        "hybrid": lambda: hybrid(rows, min(queries, 1000)),
        "embeddings": lambda: embeddings_both(passages), "freshness": lambda: freshness(freshness_rows),
        "rest": lambda: rest(rows, 5.0, 16, peer_python)}
    out = {part: run[part]() for part in PARTS if part in parts}
    return {**out, "peers_from_performance_md": PEERS, "cpus": os.cpu_count(), "max_rss_mb": round(_rss_mb(), 1)}
