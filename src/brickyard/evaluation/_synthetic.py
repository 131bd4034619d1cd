"""Synthetic evaluation sets: questions a document answers, and the facts a right answer must hold.

``databricks-agents``' ``generate_evals_df`` posts each document to ``/managed-evals/generate-questions``
(``{doc_content, num_questions, agent_description, question_guidelines}`` -> ``{"questions_with_context":
[{"question", "context"}]}``) and each question to ``/managed-evals/generate-answer`` (``{question, context,
answer_types}`` -> ``{"synthetic_minimal_facts": [...], "synthetic_ground_truth": ...}``). Both are asked of
the workspace's judge model with prompts of Brickyard's own; without one they are refused (the bundled 135M
model cannot write a useful evaluation set, and nothing is invented in its place). ``Synthesizer.from_table``
does the whole flow server-side from a chunks table into an evaluation dataset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ..core.errors import BrickyardError, InvalidParameterValue

Complete = Callable[[list[dict[str, str]]], str]
MAX_DOC = 20_000  # characters of a document put into a prompt
MAX_QUESTIONS = 20
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)

SYSTEM = ("You write evaluation data for a question-answering assistant. Use only the document you are given. "
          "Answer with one JSON object and nothing else.")


class SynthesisFailed(BrickyardError):
    """The judge model's answer could not be used (the client retries, then skips the document)."""

    error_code = "TEMPORARILY_UNAVAILABLE"
    http_status = 503


def not_configured() -> InvalidParameterValue:
    return InvalidParameterValue("synthetic evaluation data needs a judge model: an admin sets BRICKYARD_JUDGE_ENDPOINT "
                                 "to a chat serving endpoint that can write it (the bundled 135M chat model cannot)",
                                 error_code="JUDGE_NOT_CONFIGURED")


def _json(text: str, what: str) -> dict[str, Any]:
    match = _OBJECT.search(text or "")
    try:
        value = json.loads(match.group(0)) if match else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise SynthesisFailed(f"the judge model's {what} was not a JSON object: {str(text)[:200]!r}")
    return value


def _text(body: dict[str, Any], key: str, *, required: bool = True, limit: int = MAX_DOC) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidParameterValue(f"{key} must be a non-empty string")
    return value[:limit]


def generate_questions(body: Any, complete: Complete | None) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidParameterValue("the body must be a JSON object")
    doc = _text(body, "doc_content")
    count = body.get("num_questions", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_QUESTIONS:
        raise InvalidParameterValue(f"num_questions must be a whole number from 1 to {MAX_QUESTIONS}")
    description = _text(body, "agent_description", required=False, limit=4000)
    guidelines = _text(body, "question_guidelines", required=False, limit=4000)
    if complete is None:
        raise not_configured()
    assert doc is not None
    prompt = (f"Document:\n{doc}\n\n"
              + (f"The assistant: {description}\n\n" if description else "")
              + (f"Guidelines for the questions:\n{guidelines}\n\n" if guidelines else "")
              + f"Write {count} different question(s) a user could ask that this document answers. For each, "
                "copy the passage of the document (verbatim, one to three sentences) that holds the answer. "
                'Answer as {"questions": [{"question": "...", "context": "..."}]}.')
    answer = _json(complete([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]),
                   "questions")
    items = answer.get("questions")
    if not isinstance(items, list):
        raise SynthesisFailed("the judge model's answer has no list of questions")
    out = []
    for item in items[:count]:
        if not isinstance(item, dict) or not isinstance(item.get("question"), str) or not item["question"].strip():
            continue
        context = item.get("context")
        # a passage that is not in the document is not evidence: fall back to the document itself
        if not isinstance(context, str) or not context.strip() or context.strip() not in doc:
            context = doc
        out.append({"question": item["question"].strip()[:2000], "context": context.strip()})
    if not out:
        raise SynthesisFailed("the judge model wrote no usable question")
    return {"questions_with_context": out}


def generate_answer(body: Any, complete: Complete | None) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidParameterValue("the body must be a JSON object")
    question = _text(body, "question", limit=4000)
    context = _text(body, "context")
    types = body.get("answer_types") or ["MINIMAL_FACTS"]
    known = {"MINIMAL_FACTS", "GROUND_TRUTH", "GRADING_NOTES"}
    if not isinstance(types, list) or not all(t in known for t in types):
        raise InvalidParameterValue(f"answer_types must be a list of {', '.join(sorted(known))}")
    if complete is None:
        raise not_configured()
    prompt = (f"Passage:\n{context}\n\nQuestion: {question}\n\nFrom the passage only: list the minimal facts a "
              "correct answer must state (short, one fact each), and write the correct answer in one or two "
              'sentences. Answer as {"facts": ["..."], "answer": "..."}.')
    answer = _json(complete([{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]),
                   "answer")
    facts = [str(f).strip()[:1000] for f in answer.get("facts") or [] if isinstance(f, str | int | float)
             and str(f).strip()]
    if not facts:
        raise SynthesisFailed("the judge model listed no facts")
    out: dict[str, Any] = {"synthetic_minimal_facts": facts}
    if isinstance(answer.get("answer"), str):
        out["synthetic_ground_truth"] = answer["answer"].strip()[:4000]
    return out


def records_from_chunks(chunks: list[dict[str, Any]], num_evals: int, complete: Complete,
                        *, agent_description: str | None = None, question_guidelines: str | None = None,
                        progress: Callable[[int], None] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Evaluation records ``{inputs, expectations, source}`` from chunks ``{doc_uri, content}``: questions spread
    over the chunks (one each, round-robin), each with its expected facts and the chunk as expected retrieved
    context. Returns the records and the problems met (a chunk the model failed on is skipped)."""
    usable = [c for c in chunks if str(c.get("content") or "").strip()]
    if not usable:
        raise InvalidParameterValue("the table has no text to write questions about")
    per_chunk = [0] * len(usable)
    for i in range(num_evals):
        per_chunk[i % len(usable)] += 1
    records, problems = [], []
    for chunk, count in zip(usable, per_chunk, strict=True):
        if not count:
            continue
        try:
            asked = generate_questions({"doc_content": chunk["content"], "num_questions": min(count, MAX_QUESTIONS),
                                        "agent_description": agent_description,
                                        "question_guidelines": question_guidelines}, complete)
            for q in asked["questions_with_context"]:
                facts = generate_answer({"question": q["question"], "context": q["context"]}, complete)
                records.append({
                    "inputs": {"question": q["question"]},
                    "expectations": {"expected_facts": facts["synthetic_minimal_facts"],
                                     "expected_retrieved_context": [{"doc_uri": chunk.get("doc_uri"),
                                                                     "content": q["context"]}]},
                    "source": {"document": {"doc_uri": chunk.get("doc_uri")}}})
                if progress is not None:
                    progress(1)
        except SynthesisFailed as exc:
            problems.append(f"{chunk.get('doc_uri')}: {exc.message}")
    return records, problems
