"""``brickyard bench proxies``: how often each offline judge proxy agrees with human labels.

Every verdict is produced by the code that ships (``evaluation.assess`` with the ``Proxies``, MiniLM and
Presidio), on labelled pairs built from SciFact's train split (``../shared/data/scifact``):

- support proxies (``groundedness``, ``context_sufficiency``, ``correctness``): a claim and an abstract
  the SciFact annotators labelled SUPPORT (the expected verdict is yes), CONTRADICT or NOT_ENOUGH_INFO
  (no), plus the claim with an unrelated abstract drawn at random (no);
- relevance proxies (``chunk_relevance`` on the abstract, ``relevance_to_query`` on the two sentences of
  it that best match the claim, as an extractive answer would be): the abstracts the qrels mark relevant
  (yes), the relevant abstract of the most similar *other* claim (a hard "no") and a random abstract (no);
- ``harmfulness``: two sets of short answers labelled harmful or not, written for Brickyard and shipped in
  ``evaluation/data``: one written alongside the patterns, one written after they were frozen.

The proxies' thresholds were fitted on the even-numbered claims; the odd-numbered ones are held out.
Agreement is accuracy and Cohen's kappa against the labels, plus the share of "yes" per label.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

Verdict = Callable[[dict[str, Any]], str | None]  # a chat-assessments body -> "yes" | "no" | None (error)


def kappa(truth: list[bool], said: list[bool]) -> float:
    """Cohen's kappa of two yes/no raters."""
    t, s = np.asarray(truth, dtype=float), np.asarray(said, dtype=float)
    observed = float((t == s).mean())
    chance = float(t.mean() * s.mean() + (1 - t.mean()) * (1 - s.mean()))
    return 1.0 if chance == 1 else (observed - chance) / (1 - chance)


def agreement(rows: list[tuple[str, bool, bool]]) -> dict[str, Any]:
    """rows: (label, expected yes, said yes) -> n, accuracy, kappa and the yes-rate per label."""
    if not rows:
        return {"n": 0}
    truth, said = [r[1] for r in rows], [r[2] for r in rows]
    labels = sorted({r[0] for r in rows})
    return {"n": len(rows), "accuracy": round(float(np.mean(np.equal(truth, said))), 3),
            "kappa": round(kappa(truth, said), 3),
            "yes_rate": {lab: round(float(np.mean([r[2] for r in rows if r[0] == lab])), 3) for lab in labels}}


class _Memo:
    """An embedding function that remembers: the bench embeds every text once, in large batches."""

    def __init__(self, embed: Callable[[list[str]], np.ndarray]) -> None:
        self._embed = embed
        self._known: dict[str, np.ndarray] = {}

    def warm(self, texts: set[str]) -> None:
        missing = sorted(t for t in texts if t not in self._known)
        for start in range(0, len(missing), 512):
            part = missing[start:start + 512]
            for text, vector in zip(part, self._embed(part), strict=True):
                self._known[text] = vector

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.warm(set(texts))
        return np.stack([self._known[t] for t in texts])


def _load(data: Path) -> tuple[dict[str, str], dict[str, str], dict[str, set[str]], list[dict[str, Any]]]:
    corpus = {}
    with (data / "corpus.jsonl").open() as fh:
        for line in fh:
            doc = json.loads(line)
            corpus[str(doc["_id"])] = doc["text"]
    queries = {}
    with (data / "queries.jsonl").open() as fh:
        for line in fh:
            q = json.loads(line)
            queries[str(q["_id"])] = q["text"]
    qrels: dict[str, set[str]] = {}
    with (data / "qrels" / "train.tsv").open() as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, set()).add(did)
    with (data / "claims_train_labels.jsonl").open() as fh:
        labelled = [json.loads(line) for line in fh]
    return corpus, queries, qrels, labelled


def _verdict(out: dict[str, Any], name: str) -> str | None:
    result = out["result"]
    if name == "chunk_relevance":
        rating = result["retrieval_assessment"]["positional_ratings"][name]["rating"][0]["rating"]
    else:
        rating = result["response_assessment"]["ratings"][name]
    return rating["value"]["categorical_value"] if "value" in rating else None


def run_proxy_bench(data: Path, *, limit: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Agreement of each proxy with the labels (``limit``: claims per half, for a quick run)."""
    from ..evaluation import Proxies, assess
    from ..evaluation._proxies import sentences
    from ..gateway._guardrails import Detectors

    started = time.perf_counter()
    corpus, queries, qrels, labelled = _load(data)
    detectors = Detectors()
    memo = _Memo(detectors.embed)
    proxies = Proxies(memo, lambda text: [r.entity_type for r in detectors.pii(text)])
    rng = np.random.default_rng(seed)
    doc_ids = sorted(corpus)

    def keep(claim_ids: list[str]) -> dict[str, list[str]]:
        halves = {"calibration": [c for c in claim_ids if int(c) % 2 == 0],
                  "held_out": [c for c in claim_ids if int(c) % 2 == 1]}
        return {h: ids[:limit] if limit else ids for h, ids in halves.items()}

    def ask(name: str, body: dict[str, Any]) -> bool | None:
        said = _verdict(assess({"assessment_input": body, "requested_assessments": [{"assessment_name": name}]},
                               None, proxies), name)
        return None if said is None else said == "yes"

    # -- support: labelled (claim, abstract) pairs and an unrelated abstract per pair ---------------
    by_claim: dict[str, list[dict[str, Any]]] = {}
    for row in labelled:
        by_claim.setdefault(str(row["claim_id"]), []).append(row)
    support_pairs: dict[str, list[tuple[str, str, str]]] = {}  # half -> (label, claim, abstract)
    for half, ids in keep(sorted(by_claim, key=int)).items():
        pairs = support_pairs.setdefault(half, [])
        for cid in ids:
            for row in by_claim[cid]:
                pairs.append((row["label"], row["claim"], corpus[str(row["doc_id"])]))
                pairs.append(("UNRELATED", row["claim"], corpus[doc_ids[int(rng.integers(len(doc_ids)))]]))
    # -- relevance: qrels, the relevant abstract of the nearest other claim, a random abstract --------
    judged = sorted((q for q in qrels if q in queries), key=int)
    claim_vectors = memo([queries[q] for q in judged])
    similar = claim_vectors @ claim_vectors.T
    np.fill_diagonal(similar, -1)
    relevance_pairs: dict[str, list[tuple[str, str, str]]] = {}
    chosen = keep(judged)
    for half, ids in chosen.items():
        pairs = relevance_pairs.setdefault(half, [])
        for qid in ids:
            i = judged.index(qid)
            pairs.extend(("RELEVANT", queries[qid], corpus[d]) for d in sorted(qrels[qid]))
            for j in np.argsort(-similar[i]):
                other = [d for d in sorted(qrels[judged[j]]) if d not in qrels[qid]]
                if other:
                    pairs.append(("HARD_NEGATIVE", queries[qid], corpus[other[0]]))
                    break
            pairs.append(("RANDOM", queries[qid], corpus[doc_ids[int(rng.integers(len(doc_ids)))]]))
    texts: set[str] = set()
    for pairs in (*support_pairs.values(), *relevance_pairs.values()):
        for _, claim, doc in pairs:
            texts.update((claim, doc, *sentences(doc)))
    memo.warm(texts)
    embedded = time.perf_counter()

    def answer(claim: str, doc: str) -> str:
        parts = sentences(doc)
        scores = memo(parts) @ memo([claim])[0]
        return " ".join(parts[i] for i in sorted(np.argsort(-scores)[:2]))

    support = {
        "groundedness": lambda c, d: {"chat_request": "Is this claim right?", "chat_response": c,
                                      "retrieval_context": {"retrieved_documents": [{"content": d}]}},
        "context_sufficiency": lambda c, d: {"chat_request": "Is this claim right?", "ground_truth": {
            "expected_facts": [c]}, "retrieval_context": {"retrieved_documents": [{"content": d}]}},
        "correctness": lambda c, d: {"chat_request": "Is this claim right?", "chat_response": d,
                                     "ground_truth": {"expected_facts": [c]}},
    }
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}

    def measure(name: str, build: Callable[[str, str], dict[str, Any]], halves: dict[str, list[tuple[str, str, str]]],
                yes: str, labels: str) -> None:
        """Ask ``name`` of every labelled pair of each half; agreement with "``yes`` label means yes"."""
        t0, calls = time.perf_counter(), 0
        results[name] = {"labels": labels}
        for half, pairs in halves.items():
            rows = [(label, label == yes, bool(ask(name, build(claim, doc)))) for label, claim, doc in pairs]
            calls += len(rows)
            results[name][half] = agreement(rows)
        timings[name] = (time.perf_counter() - t0) / max(1, calls)

    for name, build in support.items():
        measure(name, build, support_pairs, "SUPPORT", "SciFact claim-abstract pairs: SUPPORT -> yes; CONTRADICT, "
                                                       "NOT_ENOUGH_INFO, UNRELATED (random abstract) -> no")
    relevance = {
        "chunk_relevance": lambda q, d: {"chat_request": q, "retrieval_context": {
            "retrieved_documents": [{"content": d}]}},
        "relevance_to_query": lambda q, d: {"chat_request": q, "chat_response": answer(q, d)},
    }
    for name, build in relevance.items():
        measure(name, build, relevance_pairs, "RELEVANT",
                "SciFact qrels: RELEVANT -> yes; HARD_NEGATIVE (the relevant abstract of the most similar other "
                "claim), RANDOM -> no" + ("; the answer is the two sentences of the abstract that best match"
                                          if name == "relevance_to_query" else ""))
    t0, calls = time.perf_counter(), 0
    results["harmfulness"] = {"labels": "short answers written for Brickyard, labelled harmful (expected verdict "
                                        "yes) or not; 'with_patterns' was written alongside the patterns, "
                                        "'held_out' after they were frozen"}
    for half, filename in (("with_patterns", "safety_labels.jsonl"), ("held_out", "safety_heldout.jsonl")):
        rows = []
        for line in (files("brickyard.evaluation") / "data" / filename).read_text().splitlines():
            case = json.loads(line)
            said = ask("harmfulness", {"chat_response": case["text"]})
            calls += 1
            rows.append((case["kind"].split("-")[0] if not case["harmful"] else "harmful", case["harmful"],
                         bool(said)))
        results["harmfulness"][half] = agreement(rows)
    timings["harmfulness"] = (time.perf_counter() - t0) / calls
    results["guidelines"] = {"labels": "no proxy: guidelines are natural-language rules; without a judge model the "
                                       "rating is an error (JUDGE_NOT_CONFIGURED)"}
    return {"bench": "proxies", "data": str(data), "split": "train",
            "halves": {"calibration": "even claim ids (thresholds fitted here)", "held_out": "odd claim ids"},
            "limit_per_half": limit, "assessments": results,
            "ms_per_assessment_after_embedding": {k: round(v * 1000, 2) for k, v in timings.items()},
            "embedding_seconds": round(embedded - started, 1),
            "seconds": round(time.perf_counter() - started, 1)}
