"""Chunking strategies over parsed documents. Every chunk keeps its source, its position (index in the
document, start and end offsets into the document's text), its page, and its section path (the
headers above it), and consecutive chunks overlap by ``overlap`` characters or tokens.

* ``fixed``      windows of ``size`` characters (``unit="chars"``) or tokens (``unit="tokens"``, cl100k);
* ``recursive``  split on paragraphs, then lines, then sentences, then words, until pieces fit in ``size``
                 characters, then pack pieces into chunks;
* ``structure``  one chunk per section (header and its body); long sections are split recursively;
* ``semantic``   break between sentences where the embedding similarity of neighbours drops below the
                 ``breakpoint`` percentile; chunks never exceed ``size`` characters.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..core.errors import InvalidParameterValue

STRATEGIES = ("fixed", "recursive", "structure", "semantic")
_SEPARATORS = ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")


@dataclass
class Chunk:
    chunk_id: str
    source: str
    chunk_index: int
    text: str
    start: int
    end: int
    page: int
    section_path: str

    def to_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Options:
    strategy: str = "recursive"
    size: int = 1000
    overlap: int = 100
    unit: str = "chars"
    breakpoint: float = 10.0  # semantic: percentile of neighbour similarity that marks a break

    def check(self) -> Options:
        if self.strategy not in STRATEGIES:
            raise InvalidParameterValue(f"chunking strategy must be one of {', '.join(STRATEGIES)}")
        if not 1 <= self.size <= 100_000:
            raise InvalidParameterValue("chunk size must be 1..100000")
        if not 0 <= self.overlap < self.size:
            raise InvalidParameterValue("overlap must be at least 0 and smaller than the chunk size")
        if self.unit not in ("chars", "tokens"):
            raise InvalidParameterValue("unit must be chars or tokens")
        if not 0 < self.breakpoint < 100:
            raise InvalidParameterValue("breakpoint must be a percentile between 0 and 100")
        return self


def _sections(parsed: dict[str, Any]) -> list[tuple[str, int, int, int, str]]:
    """(section path, start, end, page, text) runs of the document: a new run at every header."""
    runs: list[tuple[str, int, int, int, str]] = []
    path: list[tuple[int, str]] = []
    current: list[dict[str, Any]] = []

    def close() -> None:
        if current:
            text = "\n\n".join(e["content"] for e in current)
            runs.append((" > ".join(t for _, t in path), current[0]["start"], current[-1]["end"],
                         current[0]["page_id"], text))
            current.clear()

    for element in parsed["document"]["elements"]:
        if element["type"] in ("page_header", "page_footer"):
            continue
        if element["type"] in ("title", "section_header"):
            close()
            level = 0 if element["type"] == "title" else int(element.get("level") or 1)
            path = [(lv, t) for lv, t in path if lv < level] + [(level, element["content"])]
        current.append(element)
    close()
    return runs


def _split(text: str, size: int, separators: tuple[str, ...] = _SEPARATORS) -> list[tuple[int, int]]:
    """Spans of ``text`` of at most ``size`` characters, cut at the coarsest separator that works."""
    if len(text) <= size:
        return [(0, len(text))] if text.strip() else []
    for i, sep in enumerate(separators):
        if sep not in text:
            continue
        spans: list[tuple[int, int]] = []
        pos = 0
        for piece in text.split(sep):
            end = pos + len(piece) + len(sep)
            piece_end = min(end, len(text))
            if piece_end - pos > size:
                spans += [(pos + a, pos + b) for a, b in _split(text[pos:piece_end], size, separators[i + 1:])]
            elif text[pos:piece_end].strip():
                spans.append((pos, piece_end))
            pos = end
        return spans
    return [(s, min(s + size, len(text))) for s in range(0, len(text), size)]


def _pack(text: str, spans: list[tuple[int, int]], size: int, overlap: int) -> list[tuple[int, int]]:
    """Merge consecutive spans into chunks of at most ``size`` characters; each chunk after the first
    starts ``overlap`` characters (at most) before the previous one ended."""
    out: list[tuple[int, int]] = []
    start = end = None
    for a, b in spans:
        if start is None:
            start, end = a, b
        elif b - start <= size:
            end = b
        else:
            out.append((start, end))  # type: ignore[arg-type]
            assert end is not None
            previous_end = end
            start, end = max(a - overlap, end - overlap, start), b
            if end - start > size:
                start = end - size
            start = _word_start(text, start, min(a, previous_end))
    if start is not None:
        out.append((start, end))  # type: ignore[arg-type]
    return out


def _word_start(text: str, pos: int, limit: int) -> int:
    """Move an overlap's start forward to the start of a sentence in it, else of a word, never past ``limit``
    (where the new content begins): an overlap never starts mid-word."""
    if pos <= 0 or pos >= limit or text[pos - 1].isspace():
        return pos
    window = text[pos:limit]
    sentence = _SENTENCE.search(window)
    if sentence is not None:
        return pos + sentence.end()
    space = re.search(r"\s+", window)
    return pos + space.end() if space is not None else limit


def chunk(parsed: dict[str, Any], source: str, options: Options | None = None,
          embed: Callable[[list[str]], np.ndarray] | None = None) -> list[Chunk]:
    opts = (options or Options()).check()
    runs = _sections(parsed) if opts.strategy == "structure" else \
        [("", 0, 0, 0, "\n\n".join(e["content"] for e in parsed["document"]["elements"]))]
    elements = parsed["document"]["elements"]
    chunks: list[Chunk] = []

    def section_at(offset: int) -> tuple[str, int]:
        path: list[tuple[int, str]] = []
        page = 0
        for e in elements:
            if e["start"] > offset:
                break
            page = e["page_id"]
            if e["type"] in ("title", "section_header"):
                level = 0 if e["type"] == "title" else int(e.get("level") or 1)
                path = [(lv, t) for lv, t in path if lv < level] + [(level, e["content"])]
        return " > ".join(t for _, t in path), page

    for section, base, _, page, text in runs:
        if opts.strategy == "fixed":
            spans = _fixed(text, opts)
        elif opts.strategy == "semantic":
            if embed is None:
                raise InvalidParameterValue("semantic chunking needs an embedding model")
            spans = _semantic(text, opts, embed)
        else:
            spans = _pack(text, _split(text, opts.size), opts.size, opts.overlap)
        for a, b in spans:
            piece = text[a:b].strip()
            if not piece:
                continue
            lead = len(text[a:b]) - len(text[a:b].lstrip())
            start = base + a + lead
            where, at_page = (section, page) if opts.strategy == "structure" else section_at(start)
            chunks.append(Chunk(f"{source}#{len(chunks)}", source, len(chunks), piece, start, start + len(piece),
                                at_page, where))
    return chunks


def _fixed(text: str, opts: Options) -> list[tuple[int, int]]:
    if opts.unit == "chars":
        step = opts.size - opts.overlap
        return [(s, min(s + opts.size, len(text))) for s in range(0, max(len(text) - opts.overlap, 1), step)]
    from ..models._tokens import _encoding

    enc = _encoding()
    if enc is None:
        raise InvalidParameterValue("token-based chunking needs tiktoken (the 'local' extra); use unit='chars'")
    tokens = enc.encode(text, disallowed_special=())
    spans = []
    step = opts.size - opts.overlap
    offsets = [0]
    for tok in tokens:  # character offset after each token
        offsets.append(offsets[-1] + len(enc.decode_single_token_bytes(tok).decode("utf-8", "replace")))
    for s in range(0, max(len(tokens) - opts.overlap, 1), step):
        e = min(s + opts.size, len(tokens))
        spans.append((min(offsets[s], len(text)), min(offsets[e], len(text))))
    return spans


def _semantic(text: str, opts: Options, embed: Callable[[list[str]], np.ndarray]) -> list[tuple[int, int]]:
    sentences: list[tuple[int, int]] = []
    pos = 0
    for match in _SENTENCE.finditer(text):
        sentences.append((pos, match.start()))
        pos = match.end()
    sentences.append((pos, len(text)))
    sentences = [(a, b) for a, b in sentences if text[a:b].strip()]
    if len(sentences) < 3:
        return _pack(text, _split(text, opts.size), opts.size, opts.overlap)
    vectors = np.asarray(embed([text[a:b] for a, b in sentences]), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = (vectors[:-1] * vectors[1:]).sum(axis=1)
    cut = float(np.percentile(similarity, opts.breakpoint))
    groups: list[tuple[int, int]] = []
    start = sentences[0][0]
    for i, (_, b) in enumerate(sentences[:-1]):
        next_end = sentences[i + 1][1]
        if similarity[i] <= cut or next_end - start > opts.size:
            groups.append((start, b))
            start = sentences[i + 1][0]
    groups.append((start, sentences[-1][1]))
    out: list[tuple[int, int]] = []
    for a, b in groups:  # a single long sentence still respects the size
        out += [(a + x, a + y) for x, y in _pack(text[a:b], _split(text[a:b], opts.size), opts.size, 0)]
    if opts.overlap:
        out = [(max(0, a - opts.overlap) if i else a, b) for i, (a, b) in enumerate(out)]
    return out
