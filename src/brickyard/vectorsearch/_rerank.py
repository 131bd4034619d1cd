"""The rerank stage of a query: reorder the top candidates with more evidence than retrieval used.

No package ships cross-encoder weights (models-and-data.md), so the offline default needs none: it
scores each candidate by a convex combination of two z-normalised signals over the candidate pool,
the dense similarity of query and candidate vectors and a BM25 score of the query over the
candidates' rerank columns (IDF from the pool). Combining normalised scores instead of ranks keeps the
margin information that Reciprocal Rank Fusion throws away (Bruch, Gai and Ingber, "An Analysis of
Fusion Functions for Hybrid Retrieval", 2023). ``brickyard bench retrieval`` measures what it adds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ._words import STOP_WORDS, WORD

DENSE_WEIGHT = 0.7


def _terms(text: str) -> list[str]:
    out = []
    for word in WORD.findall(text.lower()):
        if word in STOP_WORDS:
            continue
        for suffix in ("ingly", "edly", "ing", "ies", "ied", "es", "ed", "ly", "s"):  # a light stemmer
            if len(word) > len(suffix) + 3 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        out.append(word)
    return out


def _z(values: np.ndarray) -> np.ndarray:
    std = float(values.std())
    return (values - values.mean()) / std if std > 1e-9 else np.zeros_like(values)


def lexical_scores(query: str, documents: Sequence[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    docs = [_terms(d) for d in documents]
    n = len(docs)
    avg = max(1.0, sum(map(len, docs)) / max(n, 1))
    df = Counter(t for d in docs for t in set(d))
    scores = np.zeros(n, dtype=np.float64)
    for term in set(_terms(query)):
        if term not in df:
            continue
        idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
        for i, d in enumerate(docs):
            tf = d.count(term)
            if tf:
                scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avg))
    return scores


def rerank_candidates(query: str, documents: Sequence[str], query_vector: np.ndarray | None = None,
                      document_vectors: Sequence[np.ndarray] | None = None, *, dense_weight: float = DENSE_WEIGHT
                      ) -> list[int]:
    """Indexes of ``documents`` in their new order, best first."""
    return [i for i, _ in rerank_scores(query, documents, query_vector, document_vectors, dense_weight=dense_weight)]


def rerank_scores(query: str, documents: Sequence[str], query_vector: np.ndarray | None = None,
                  document_vectors: Sequence[np.ndarray] | None = None, *, dense_weight: float = DENSE_WEIGHT
                  ) -> list[tuple[int, float]]:
    """(index, rerank score) of ``documents``, best first."""
    if not documents:
        return []
    score = (1 - dense_weight) * _z(lexical_scores(query, documents))
    if query_vector is not None and document_vectors is not None and len(document_vectors) == len(documents):
        matrix = np.asarray(document_vectors, dtype=np.float32)
        q = np.asarray(query_vector, dtype=np.float32)
        dense = matrix @ q / np.maximum(np.linalg.norm(matrix, axis=1) * np.linalg.norm(q), 1e-12)
        score = score + dense_weight * _z(dense.astype(np.float64))
    return [(int(i), round(float(score[i]), 6)) for i in np.argsort(-score, kind="stable")]
