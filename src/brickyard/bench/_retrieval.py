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
    vectors = model.embed(texts)
    embed_s = time.perf_counter() - t0
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

        def hybrid_rerank(qid: str, text: str) -> list[str]:
            fused = rrf([engine.search_ann(qvec[qid], 50, None, ef=128), engine.search_text(text, 50, None)])[:50]
            docs = [engine.rows[label]["text"] for label, _ in fused]  # type: ignore[index]
            order = rerank_candidates(text, docs, qvec[qid], [vectors[ids.index(engine.pks[lb] or "")]
                                                              for lb, _ in fused])
            return [engine.pks[fused[i][0]] or "" for i in order][:10]

        for name, fn in (("ANN", ann), ("FULL_TEXT", full_text), ("HYBRID", hybrid),
                         ("HYBRID+rerank", hybrid_rerank)):
            t0 = time.perf_counter()
            out[name] = evaluate(fn, queries, qrels)
            out[name]["ms_per_query"] = round((time.perf_counter() - t0) / len(queries) * 1000, 2)
        store.close()
    best = max(out["ANN"]["ndcg@10"], out["FULL_TEXT"]["ndcg@10"])
    out["hybrid_at_least_best_single"] = out["HYBRID"]["ndcg@10"] >= best
    return out
