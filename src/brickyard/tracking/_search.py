"""MLflow's search syntax for runs, experiments and traces: ``filter_string`` and ``order_by``.

A filter is comparisons joined by ``AND`` (MLflow has no ``OR``)::

    metrics.accuracy > 0.9 AND params.model = 'mini' AND tags.`team name` LIKE 'rag%'
    attributes.status = 'FINISHED' AND run_name IN ('a', 'b')

An identifier is ``metrics.<key>``, ``params.<key>``, ``tags.<key>``, ``metadata.<key>`` (traces) or an attribute (``attributes.`` /
``attribute.`` / ``run.`` prefix, or none); a key with spaces or dots is written in backticks or quotes.
Metrics compare as numbers; everything else as strings, where ``LIKE`` / ``ILIKE`` take ``%`` and ``_``.
A compiled filter is a predicate over an :class:`Entity`. Order keys take the same identifiers plus
``ASC`` / ``DESC``; rows without the key sort last, as MLflow sorts them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import InvalidParameterValue

_TOKEN = re.compile(r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<backtick>`[^`]*`)
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.])
  | (?P<word>[A-Za-z_][A-Za-z0-9_\-:/]*)
)""", re.VERBOSE)

PREFIXES = {"metric": "metrics", "metrics": "metrics", "param": "params", "params": "params",
            "parameter": "params", "parameters": "params", "tag": "tags", "tags": "tags",
            "attribute": "attributes", "attributes": "attributes", "attr": "attributes", "run": "attributes",
            "trace": "attributes", "metadata": "metadata", "request_metadata": "metadata"}


@dataclass
class Entity:
    """What a filter sees of a run, experiment or trace."""

    attributes: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)  # traces' request metadata

    def get(self, kind: str, key: str) -> Any:
        return getattr(self, kind).get(key)


Predicate = Callable[[Entity], bool]


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise InvalidParameterValue(f"cannot parse the filter near {text[pos:pos + 30]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", r"\1", body) if token[0] in "'\"" else body


class _Parser:
    def __init__(self, text: str, attributes: Sequence[str]) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.attributes = set(attributes)

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise InvalidParameterValue("the filter ends too early")
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].upper() == word:
            self.i += 1
            return True
        return False

    def identifier(self) -> tuple[str, str]:
        kind, value = self.take()
        if kind in ("backtick", "string"):
            return self._attribute(_unquote(value))
        if kind != "word":
            raise InvalidParameterValue(f"expected a name such as metrics.accuracy, got {value!r}")
        nxt = self.peek()
        if value.lower() in PREFIXES and nxt == ("punct", "."):
            self.i += 1
            kind2, key = self.take()
            if kind2 in ("backtick", "string"):
                key = _unquote(key)
            elif kind2 != "word":
                raise InvalidParameterValue(f"expected a key after {value}., got {key!r}")
            while self.peek() == ("punct", ".") and PREFIXES[value.lower()] != "attributes":
                self.i += 1  # dotted keys such as metrics.val.loss
                key += "." + self.take()[1]
            prefix = PREFIXES[value.lower()]
            return self._attribute(key) if prefix == "attributes" else (prefix, key)
        return self._attribute(value)

    def _attribute(self, name: str) -> tuple[str, str]:
        if name not in self.attributes:
            raise InvalidParameterValue(f"unknown attribute {name!r}; attributes are {', '.join(sorted(self.attributes))} "
                                        "(or use metrics.<key>, params.<key>, tags.<key>)")
        return "attributes", name

    def value(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return _unquote(value)
        if kind == "number":
            return float(value)
        if kind == "word" and value.upper() in ("TRUE", "FALSE"):
            return value.upper() == "TRUE"
        raise InvalidParameterValue(f"expected a quoted string or a number, got {value!r}")

    def comparison(self) -> Predicate:
        kind, key = self.identifier()
        negate = self.keyword("NOT")
        if self.keyword("IN"):
            if self.take() != ("punct", "("):
                raise InvalidParameterValue("IN takes a parenthesised list: IN ('a', 'b')")
            values = [self.value()]
            while self.peek() == ("punct", ","):
                self.i += 1
                values.append(self.value())
            if self.take() != ("punct", ")"):
                raise InvalidParameterValue("close the IN list with ')'")
            wanted = {str(v) if kind != "metrics" else float(v) for v in values}

            def member(e: Entity) -> bool:
                got = e.get(kind, key)
                return got is not None and ((float(got) if kind == "metrics" else str(got)) in wanted) != negate

            return member
        if negate:
            raise InvalidParameterValue("NOT is only allowed as NOT IN")
        if self.keyword("LIKE") or self.keyword("ILIKE"):
            op = self.tokens[self.i - 1][1].upper()
            pattern = self.value()
            if not isinstance(pattern, str):
                raise InvalidParameterValue(f"{op} takes a quoted pattern")
            rx = re.compile("^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
                            + "$", re.IGNORECASE | re.DOTALL if op == "ILIKE" else re.DOTALL)
            return lambda e: (v := e.get(kind, key)) is not None and rx.match(str(v)) is not None
        op_kind, op = self.take()
        if op_kind != "op":
            raise InvalidParameterValue(f"expected a comparison (=, !=, <, <=, >, >=, LIKE, IN) after {key!r}")
        wanted = self.value()
        compare = _COMPARE[op]
        numeric = kind == "metrics" or (kind == "attributes" and isinstance(wanted, float))

        def test(e: Entity) -> bool:
            got = e.get(kind, key)
            if got is None:
                return False
            try:
                return compare(float(got), float(wanted)) if numeric else compare(str(got), str(wanted))
            except (TypeError, ValueError):
                return False

        return test

    def parse(self) -> Predicate:
        if not self.tokens:
            return lambda _e: True
        parts = [self.comparison()]
        while self.keyword("AND"):
            parts.append(self.comparison())
        if self.peek() is not None:
            extra = self.peek()[1]  # type: ignore[index]
            raise InvalidParameterValue(f"unexpected {extra!r} in the filter (MLflow filters join comparisons "
                                        "with AND only)")
        return lambda e: all(p(e) for p in parts)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def compile_filter(text: str | None, attributes: Sequence[str]) -> Predicate:
    if text is not None and not isinstance(text, str):
        raise InvalidParameterValue("filter must be a string")
    if text and len(text) > 10_000:
        raise InvalidParameterValue("filter is longer than 10000 characters")
    return _Parser(text or "", attributes).parse()


def sort_entities(items: list[Any], entity: Callable[[Any], Entity], order_by: Sequence[str] | None,
                  attributes: Sequence[str], default: list[tuple[str, str, bool]]) -> list[Any]:
    """Sort by ``order_by`` (MLflow spelling), then by ``default`` keys; missing values go last."""
    keys: list[tuple[str, str, bool]] = []
    for clause in order_by or []:
        if not isinstance(clause, str):
            raise InvalidParameterValue("order_by entries must be strings")
        text = clause.strip()
        descending = False
        m = re.search(r"\s+(ASC|DESC)\s*$", text, re.IGNORECASE)
        if m:
            descending = m.group(1).upper() == "DESC"
            text = text[:m.start()]
        parser = _Parser(text, attributes)
        kind, key = parser.identifier()
        if parser.peek() is not None:
            raise InvalidParameterValue(f"cannot order by {clause!r}")
        keys.append((kind, key, descending))
    keys += [k for k in default if (k[0], k[1]) not in {(a, b) for a, b, _ in keys}]
    out = list(items)
    for kind, key, descending in reversed(keys):
        present = [x for x in out if entity(x).get(kind, key) is not None]
        missing = [x for x in out if entity(x).get(kind, key) is None]

        def value(x: Any, kind: str = kind, key: str = key) -> Any:
            v = entity(x).get(kind, key)
            return (0, float(v), "") if isinstance(v, int | float) and not isinstance(v, bool) else (1, 0.0, str(v))

        present.sort(key=value, reverse=descending)
        out = present + missing
    return out
