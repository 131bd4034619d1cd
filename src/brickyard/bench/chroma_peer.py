"""Chroma, measured as a peer of Brickyard's vector search: run by ``brickyard bench vectorsearch`` with the
peers environment's Python (``make bench`` makes ``.venv-peers``), so Chroma's dependencies never meet
Brickyard's. Standalone on purpose: it imports only numpy and chromadb.

    python chroma_peer.py DATA.npz  ->  one JSON object on stdout

DATA.npz holds ``base`` (n x d float32, unit norm), ``queries``, ``shard`` (an int per row), ``value`` (the
shard the filtered run asks for) and the exact top-10 ``truth`` / ``truth_filtered``. Chroma gets what every
engine in the bench gets: inner product, HNSW M=16, efConstruction=128, ef 64, one query per call.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(path: str) -> dict[str, object]:
    import chromadb
    import numpy as np

    data = np.load(path)
    base, queries, shard, value = data["base"], data["queries"], data["shard"], int(data["value"])
    with tempfile.TemporaryDirectory() as tmp:
        client = chromadb.PersistentClient(path=tmp)
        collection = client.create_collection("vectors", configuration={"hnsw": {
            "space": "ip", "max_neighbors": 16, "ef_construction": 128, "ef_search": 64}})
        cpu0 = _cpu()
        for start in range(0, len(base), 5000):
            stop = min(len(base), start + 5000)
            collection.add(ids=[str(i) for i in range(start, stop)], embeddings=base[start:stop],
                           metadatas=[{"shard": int(shard[i])} for i in range(start, stop)])
        out: dict[str, object] = {"version": chromadb.__version__,
                                  "build_inserts_per_cpu_second": round(len(base) / (_cpu() - cpu0), 1)}
        for label, where, truth in (("unfiltered", None, data["truth"]),
                                    ("filtered", {"shard": value}, data["truth_filtered"])):
            for q in queries[:20]:  # warm-up
                collection.query(query_embeddings=[q], n_results=10, where=where, include=[])
            cpu0, wall0, hits = _cpu(), time.perf_counter(), 0
            for i, q in enumerate(queries):
                found = collection.query(query_embeddings=[q], n_results=10, where=where, include=[])["ids"][0]
                hits += len({int(x) for x in found} & set(truth[i].tolist()))
            cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
            out[label] = {"queries": len(queries), "qps_per_cpu_second": round(len(queries) / cpu, 1),
                          "wall_qps": round(len(queries) / wall, 1),
                          "recall_at_10": round(hits / (10 * len(queries)), 4)}
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
