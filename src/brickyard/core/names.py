"""Names of securables: parsing, validation and quoting.

Unity Catalog names are case-insensitive and stored lower-case. Brickyard accepts a part when it is 1-255
characters of ASCII letters, digits, ``_`` and ``-`` and does not start with ``-``. A part may be written
quoted with backticks (```my-schema```; a doubled backtick stands for one, but no accepted name
contains one). Because every accepted part is from that alphabet, a name can never carry a path
separator, ``..``, a quote or a control character into a file path or a SQL statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidParameterValue

__all__ = ["FullName", "parse_name", "quote_part", "quote_sql", "split_name", "validate_part"]

_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,254}")
MAX_PART = 255


def validate_part(part: str, what: str = "name") -> str:
    """Return the canonical (lower-case) form of one name part, or raise with the rule that was broken."""
    if not isinstance(part, str) or part == "":
        raise InvalidParameterValue(f"{what} must be a non-empty string")
    if len(part) > MAX_PART:
        raise InvalidParameterValue(f"{what} is {len(part)} characters long; the limit is {MAX_PART}")
    if not _PART.fullmatch(part):
        raise InvalidParameterValue(
            f"{what} {part[:64]!r} is not a valid name: use letters, digits, '_' and '-' "
            "(not first), up to 255 characters"
        )
    return part.lower()


def _split(text: str) -> list[str]:
    parts: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == "`":
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise InvalidParameterValue(f"unterminated backtick in name {text[:80]!r}")
                if text[j] == "`":
                    if j + 1 < n and text[j + 1] == "`":
                        buf.append("`")
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            parts.append("".join(buf))
            i = j + 1
        else:
            j = text.find(".", i)
            j = n if j < 0 else j
            if "`" in text[i:j]:
                raise InvalidParameterValue(f"misplaced backtick in name {text[:80]!r}")
            parts.append(text[i:j])
            i = j
        if i >= n:
            return parts
        if text[i] != ".":
            raise InvalidParameterValue(f"expected '.' after a quoted part in name {text[:80]!r}")
        i += 1
        if i >= n:
            raise InvalidParameterValue(f"name {text[:80]!r} ends with '.'")


@dataclass(frozen=True, order=True)
class FullName:
    """A validated one-, two- or three-level name such as ``main.default.docs``."""

    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.parts)

    @property
    def catalog(self) -> str:
        return self.parts[0]

    @property
    def schema(self) -> str:
        return self.parts[1]

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def parent(self) -> FullName | None:
        return FullName(self.parts[:-1]) if len(self.parts) > 1 else None

    def child(self, part: str) -> FullName:
        return FullName((*self.parts, validate_part(part)))

    def sql(self) -> str:
        """The name quoted for SQL (DuckDB/ANSI double quotes)."""
        return ".".join(quote_sql(p) for p in self.parts)


_LEVELS = {1: "catalog", 2: "schema", 3: "object"}


_PARSED: dict[tuple[str, int], FullName] = {}  # names parsed before (a hot route parses one per request)
_PARSED_MAX = 4096


def parse_name(text: str, levels: int = 3, *, what: str | None = None) -> FullName:
    """Parse ``catalog[.schema[.object]]`` with exactly ``levels`` parts. Valid names are remembered
    (the result is immutable and ``what`` only words the errors); an invalid one raises every time."""
    if type(text) is str and (hit := _PARSED.get((text, levels))) is not None:
        return hit
    parsed = _parse_name(text, levels, what)
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[(text, levels)] = parsed
    return parsed


def _parse_name(text: str, levels: int, what: str | None) -> FullName:
    label = what or {1: "catalog name", 2: "schema full name", 3: "full name"}[levels]
    if not isinstance(text, str) or not text:
        raise InvalidParameterValue(f"{label} is required")
    if len(text) > 3 * (MAX_PART + 2) + 2:
        raise InvalidParameterValue(f"{label} is too long ({len(text)} characters)")
    parts = _split(text)
    if len(parts) != levels:
        example = ".".join(["main", "default", "my_table"][:levels])
        raise InvalidParameterValue(
            f"{label} {text[:120]!r} must have {levels} part{'s' if levels > 1 else ''} separated by '.', "
            f"like {example!r}"
        )
    return FullName(tuple(validate_part(p, _LEVELS[i + 1] + " name") for i, p in enumerate(parts)))


def quote_sql(part: str) -> str:
    """Quote one validated name part for SQL. Parts never contain quotes, but double them anyway."""
    return '"' + part.replace('"', '""') + '"'


def split_name(text: str) -> list[str]:
    """Split a dotted name into its unquoted parts (1 or more), without checking how many there are."""
    if not isinstance(text, str) or not text:
        raise InvalidParameterValue("a name is required")
    if len(text) > 3 * (MAX_PART + 2) + 2:
        raise InvalidParameterValue(f"name is too long ({len(text)} characters)")
    return _split(text)


def quote_part(part: str) -> str:
    """Write one part so that :func:`parse_name` reads it back (backticks when it is not plain)."""
    return part if _PART.fullmatch(part) else "`" + part.replace("`", "``") + "`"
