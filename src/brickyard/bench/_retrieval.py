"""``brickyard bench retrieval``: retrieval quality on SciFact with the default embedding model.

Reads ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` (BEIR layout) from a directory
(default: ``../shared/data/scifact`` next to the repository, or ``BRICKYARD_SCIFACT``-free: pass
``--data``). Documents are title + abstract. Every query type runs through Brickyard's engine
(``Engine.search_ann`` / ``search_text`` / RRF, and the reranker stages), and nDCG@10 and recall@10
are printed beside the published figures for the same model and BM25.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PUBLISHED = {"all-MiniLM-L6-v2 nDCG@10 (BEIR test)": 0.645, "BM25 nDCG@10 (BEIR test, bm25s)": 0.686}


def load(data: Path, split: str) -> tuple[list[str], list[str], dict[str, str], dict[str, dict[str, int]]]:
    ids, texts = [], []
    with (data / "corpus.jsonl").open() as fh:
        for line in fh:
            doc = json.loads(line)
            ids.append(str(doc["_id"]))
            texts.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
    queries = {}
    with (data / "queries.jsonl").open() as fh:
        for line in fh:
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    with (data / "qrels" / f"{split}.tsv").open() as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, {})[did] = int(score)
    return ids, texts, {q: queries[q] for q in qrels if q in queries}, qrels


def ndcg_recall(ranked: list[str], relevant: dict[str, int], k: int = 10) -> tuple[float, float]:
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum((2 ** r - 1) / math.log2(i + 2) for i, r in enumerate(ideal))
    recall = len(set(ranked[:k]) & set(relevant)) / len(relevant)
    return (dcg / idcg if idcg else 0.0), recall


def evaluate(run: Callable[[str, str], list[str]], queries: dict[str, str], qrels: dict[str, dict[str, int]]
             ) -> dict[str, float]:
    scores = [ndcg_recall(run(qid, text), qrels[qid]) for qid, text in queries.items()]
    return {"ndcg@10": round(float(np.mean([s[0] for s in scores])), 4),
            "recall@10": round(float(np.mean([s[1] for s in scores])), 4)}


def run_retrieval_bench(data: Path, *, split: str = "train", limit_docs: int | None = None) -> dict[str, Any]:
    from ..models._minilm import MiniLMEmbedder
    from ..vectorsearch import Engine, RowStore, rrf
    from ..vectorsearch._rerank import rerank_candidates

    ids, texts, queries, qrels = load(data, split)
    if limit_docs:
        keep = {d for rel in qrels.values() for d in rel}
        chosen = [i for i, d in enumerate(ids) if d in keep] + [i for i, d in enumerate(ids) if d not in keep]
        chosen = sorted(chosen[:limit_docs])
        ids, texts = [ids[i] for i in chosen], [texts[i] for i in chosen]
    model = MiniLMEmbedder()
    t0 = time.perf_counter()
    vectors = model.embed(texts[:256])  # the rate, measured on a sample every run
    embed_s = (time.perf_counter() - t0) * len(texts) / min(len(texts), 256)
    vectors = _cached_embeddings(texts, model.embed)
    out: dict[str, Any] = {"split": split, "docs": len(ids), "queries": len(queries),
                           "embed_passages_per_s": round(len(ids) / embed_s, 1), "published": PUBLISHED}
    with tempfile.TemporaryDirectory() as tmp:
        store = RowStore(Path(tmp) / "rows.db")
        store.apply([(d, {"id": d, "text": t}, vectors[i], None) for i, (d, t) in enumerate(zip(ids, texts,
                                                                                               strict=True))])
        engine = Engine(Path(tmp), store, dimension=vectors.shape[1], vector_column="v", text_column="text")
        qvec = {qid: model.embed([text])[0] for qid, text in queries.items()}

        def pk(hits: list[tuple[int, float]]) -> list[str]:
            return [engine.pks[label] or "" for label, _ in hits]

        def ann(qid: str, text: str) -> list[str]:
            return pk(engine.search_ann(qvec[qid], 10, None, ef=128))

        def full_text(qid: str, text: str) -> list[str]:
            return pk(engine.search_text(text, 10, None))

        def hybrid(qid: str, text: str) -> list[str]:
            return pk(rrf([engine.search_ann(qvec[qid], 50, None, ef=128), engine.search_text(text, 50, None)]))

        def full_text_every_word(qid: str, text: str) -> list[str]:
            return pk(engine.search_text(text, 10, None, drop_stop_words=False))

        def hybrid_every_word(qid: str, text: str) -> list[str]:
            return pk(rrf([engine.search_ann(qvec[qid], 50, None, ef=128),
                           engine.search_text(text, 50, None, drop_stop_words=False)]))

        def hybrid_rerank(qid: str, text: str) -> list[str]:
            fused = rrf([engine.search_ann(qvec[qid], 50, None, ef=128), engine.search_text(text, 50, None)])[:50]
            docs = [engine.rows[label]["text"] for label, _ in fused]  # type: ignore[index]
            order = rerank_candidates(text, docs, qvec[qid], [vectors[ids.index(engine.pks[lb] or "")]
                                                              for lb, _ in fused])
            return [engine.pks[fused[i][0]] or "" for i in order][:10]

        for name, fn in (("ANN", ann), ("FULL_TEXT", full_text), ("FULL_TEXT (every word)", full_text_every_word),
                         ("HYBRID", hybrid), ("HYBRID (every word)", hybrid_every_word),
                         ("HYBRID+rerank", hybrid_rerank)):
            t0 = time.perf_counter()
            out[name] = evaluate(fn, queries, qrels)
            out[name]["ms_per_query"] = round((time.perf_counter() - t0) / len(queries) * 1000, 2)
        store.close()
    best = max(out["ANN"]["ndcg@10"], out["FULL_TEXT"]["ndcg@10"])
    out["hybrid_at_least_best_single"] = out["HYBRID"]["ndcg@10"] >= best
    return out


# -- a documentation site and questions people type ------------------------------------------------------
DEFAULT_QUESTIONS = Path(__file__).parents[3] / "bench" / "questions" / "python-docs.json"


def _cached_embeddings(texts: list[str], embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Embeddings of ``texts``, kept under ~/.cache/brickyard/bench by the texts' hash (a re-run of the bench
    on the same chunks does not embed 20k chunks again)."""
    import hashlib

    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:24]
    cache = Path.home() / ".cache" / "brickyard" / "bench"
    path = cache / f"embeddings-{key}.npy"
    if path.exists():
        return np.load(path)
    vectors = np.asarray(embed(texts), dtype=np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def run_docs_retrieval_bench(site: Path, questions: Path = DEFAULT_QUESTIONS, *, strategy: str = "structure",
                             k: int = 5) -> dict[str, Any]:
    """Page-level hit@k and MRR@10 of ANN, FULL_TEXT, HYBRID and HYBRID + the offline reranker on a site's
    chunks (ingested as ``brickyard ingest`` does), for questions written as people type them; FULL_TEXT and
    HYBRID also with every query word kept (no stop-word filtering), in the same run."""
    from ..core.settings import Settings
    from ..ingest import Options
    from ..models._minilm import MiniLMEmbedder
    from ..vectorsearch import Engine, RowStore, rrf
    from ..vectorsearch._rerank import rerank_candidates
    from ..workspace import Workspace

    spec = json.loads(questions.read_text())
    asked = [(item["q"], set(item["pages"])) for item in spec["questions"]]
    with tempfile.TemporaryDirectory(prefix="brickyard-bench-docs-") as tmp:
        with Workspace(Settings(home=Path(tmp) / "home", access_log="off"), background=False) as ws:
            p = ws.ensure_user("bench@example.com", admin=True)
            ws.ingest(p, [site], "main.default.docs", options=Options(strategy=strategy))
            rows = ws.tables.read(p, "main.default.docs", columns=["chunk_id", "source", "text"]).to_pylist()
        missing = sorted({page for _, pages in asked for page in pages} - {r["source"] for r in rows})
        model = MiniLMEmbedder()
        t0 = time.perf_counter()
        vectors = _cached_embeddings([r["text"] for r in rows], model.embed)
        out: dict[str, Any] = {"site": str(site), "questions": len(asked), "chunks": len(rows),
                               "embed_seconds": round(time.perf_counter() - t0, 1), "pages_not_in_site": missing}
        store = RowStore(Path(tmp) / "rows.db")
        store.apply([(r["chunk_id"], {"id": r["chunk_id"], "text": r["text"]}, vectors[i], None)
                     for i, r in enumerate(rows)])
        engine = Engine(Path(tmp), store, dimension=vectors.shape[1], vector_column="v", text_column="text")
        source = {r["chunk_id"]: r["source"] for r in rows}
        position = {r["chunk_id"]: i for i, r in enumerate(rows)}
        qvec = [model.embed([q])[0] for q, _ in asked]

        def pages(hits: list[tuple[int, float]]) -> list[str]:
            return list(dict.fromkeys(source[engine.pks[label] or ""] for label, _ in hits))

        def run(i: int, query: str, kind: str) -> list[str]:
            keep = kind.endswith("(every word)")
            text_hits = engine.search_text(query, 50, None, drop_stop_words=not keep)
            if kind.startswith("FULL_TEXT"):
                return pages(text_hits)
            if kind == "ANN":
                return pages(engine.search_ann(qvec[i], 50, None, ef=128))
            fused = rrf([engine.search_ann(qvec[i], 50, None, ef=128), text_hits])[:50]
            if kind.startswith("HYBRID+rerank"):
                docs = [engine.rows[label]["text"] for label, _ in fused]  # type: ignore[index]
                order = rerank_candidates(query, docs, qvec[i],
                                          [vectors[position[engine.pks[lb] or ""]] for lb, _ in fused])
                fused = [fused[j] for j in order]
            return pages(fused)

        for kind in ("ANN", "FULL_TEXT", "FULL_TEXT (every word)", "HYBRID", "HYBRID (every word)",
                     "HYBRID+rerank"):
            hits, rr = 0, 0.0
            t0 = time.perf_counter()
            for i, (query, relevant) in enumerate(asked):
                ranked = run(i, query, kind)
                first = next((n for n, page in enumerate(ranked[:10]) if page in relevant), None)
                hits += first is not None and first < k
                rr += 0.0 if first is None else 1.0 / (first + 1)
            out[kind] = {f"hit@{k}": f"{hits}/{len(asked)}", "mrr@10": round(rr / len(asked), 3),
                         "ms_per_query": round((time.perf_counter() - t0) / len(asked) * 1000, 2)}
        store.close()
    return out
