"""YAML that remembers where each value came from, so a bundle's errors name the file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..core.errors import InvalidParameterValue


class BundleError(InvalidParameterValue):
    """A problem in a bundle's configuration, at ``file:line`` when known, under a dotted ``key``."""

    def __init__(self, message: str, *, where: tuple[str, int] | None = None, key: str | None = None) -> None:
        prefix = f"{where[0]}:{where[1]}: " if where else ""
        suffix = f" (at {key})" if key else ""
        super().__init__(prefix + message + suffix)
        self.where = where
        self.key = key


class Map(dict):  # type: ignore[type-arg]
    """A mapping from a bundle file: ``at`` is its own position, ``pos[key]`` each key's."""

    at: tuple[str, int] | None = None
    pos: dict[str, tuple[str, int]]

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.pos = {}


class Seq(list):  # type: ignore[type-arg]
    at: tuple[str, int] | None = None


def where(value: Any, key: str | None = None) -> tuple[str, int] | None:
    if isinstance(value, Map) and key is not None and key in value.pos:
        return value.pos[key]
    return getattr(value, "at", None)


def load(path: Path, shown: str) -> Any:
    """Parse ``path`` (named ``shown`` in errors) into :class:`Map`/:class:`Seq`/scalars with positions."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise BundleError(f"cannot read {shown}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BundleError(f"{shown} is not UTF-8 text") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BundleError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                          where=(shown, mark.line + 1) if mark is not None else (shown, 1)) from None
    if node is None:
        return Map()
    return _convert(node, shown)


def _convert(node: yaml.Node, shown: str) -> Any:
    at = (shown, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out = Map()
        out.at = at
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise BundleError("YAML merge keys (<<) are not supported in bundle files", where=at)
            key = _scalar(key_node)
            if not isinstance(key, str):
                key = str(key)
            if key in out:
                raise BundleError(f"the key {key!r} appears twice", where=(shown, key_node.start_mark.line + 1))
            out[key] = _convert(value_node, shown)
            out.pos[key] = (shown, key_node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = Seq(_convert(item, shown) for item in node.value)
        seq.at = at
        return seq
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    return yaml.SafeLoader("").construct_object(node, deep=True)  # type: ignore[no-untyped-call]
