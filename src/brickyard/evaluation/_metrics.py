"""The formulas behind the deterministic scorers, without mlflow: used by the ``scorers`` module (client side)
and by the evaluation harness the server runs (``brickyard eval run``, scheduled scorers)."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from functools import lru_cache
from typing import Any

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalise(text: Any) -> str:
    """Lower case, punctuation and English articles removed, spaces collapsed."""
    return " ".join(_ARTICLES.sub(" ", str(text).lower().translate(_PUNCT)).split())


def f1(predicted: Any, expected: Any) -> float:
    got, want = normalise(predicted).split(), normalise(expected).split()
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


def rouge(predicted: Any, expected: Any) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures."""
    scores = _rouge().score(str(expected), str(predicted))
    return {name: round(s.fmeasure, 6) for name, s in scores.items()}


def bleu_score(predicted: Any, expected: Any) -> float:
    """Sentence BLEU (0-100) with sacrebleu's defaults."""
    from sacrebleu.metrics import BLEU

    return round(float(BLEU(effective_order=True).sentence_score(str(predicted), [str(expected)]).score), 4)


def ranking_metrics(ranked: list[str], relevant: set[str], k: int) -> dict[str, float]:
    top = ranked[:k]
    hits = [d in relevant for d in top]
    dcg = sum(1 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    first = next((i for i, d in enumerate(ranked) if d in relevant), None)
    return {"precision": sum(hits) / k, "recall": sum(hits) / len(relevant) if relevant else 0.0,
            "mrr": 0.0 if first is None else 1 / (first + 1), "ndcg": dcg / idcg if idcg else 0.0}


def expected_ids(expectations: dict[str, Any] | None) -> set[str] | None:
    """The documents a row expects retrieved: ``expected_document_ids``, or the ``doc_uri`` of each
    ``expected_retrieved_context`` entry; None when the row names none."""
    expectations = expectations or {}
    if expectations.get("expected_document_ids") is not None:
        return {str(d) for d in expectations["expected_document_ids"]}
    context = expectations.get("expected_retrieved_context")
    if context is None:
        return None
    return {str(c.get("doc_uri") if isinstance(c, dict) else c) for c in context}


def tool_calls_match(made: list[tuple[str, Any]], expected: list[Any]) -> tuple[bool, str]:
    """Whether the calls ``made`` (name, arguments) include every expected call (``{"name", "arguments"?}`` or a
    name) in that order; other calls may come between, arguments are compared only where given."""
    position, missing = 0, []
    for call in expected:
        name = call.get("name") if isinstance(call, dict) else str(call)
        arguments = call.get("arguments") if isinstance(call, dict) else None
        found = next((i for i in range(position, len(made)) if made[i][0] == name
                      and (arguments is None or made[i][1] == arguments)), None)
        if found is None:
            missing.append(name)
        else:
            position = found + 1
    names = [n for n, _ in made]
    if missing:
        return False, f"expected calls not made in order: {missing}; made: {names}"
    return True, f"every expected call was made, in order; made: {names}"
