"""Securables: the kinds of object Unity Catalog governs, how their names and properties are checked, and
the row type the metastore returns for them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import InvalidParameterValue
from ._db import Row
from ._privileges import Node

#: kind -> (levels of its full name, kind of its parent)
KINDS: dict[str, tuple[int, str | None]] = {
    "metastore": (0, None),
    "catalog": (1, "metastore"),
    "schema": (2, "catalog"),
    "table": (3, "schema"),
    "volume": (3, "schema"),
    "function": (3, "schema"),
    "registered_model": (3, "schema"),
    "connection": (1, "metastore"),
}
CREATE_PRIVILEGE = {
    "catalog": "CREATE_CATALOG",
    "schema": "CREATE_SCHEMA",
    "table": "CREATE_TABLE",
    "volume": "CREATE_VOLUME",
    "function": "CREATE_FUNCTION",
    "registered_model": "CREATE_MODEL",
    "connection": "CREATE_CONNECTION",
}
_ALIASES = {
    "model": "registered_model",
    "registered-model": "registered_model",
    "registeredmodel": "registered_model",
    "view": "table",
    "materialized_view": "table",
}
METASTORE = "metastore"
#: what every user may do in ``main.default`` (as in a new Databricks workspace's default schema)
DEFAULT_SCHEMA_GRANTS = ("USE_SCHEMA", "CREATE_TABLE", "CREATE_VOLUME", "CREATE_MODEL", "CREATE_FUNCTION")
DEFAULT_PAGE = 1000


def securable_kind(value: str) -> str:
    """Normalize a securable type as written in REST paths (``TABLE``, ``table``, ``registered-model``)."""
    if not isinstance(value, str):
        raise InvalidParameterValue("securable type must be a string")
    kind = value.strip().lower().replace("-", "_")
    kind = _ALIASES.get(kind, kind)
    if kind not in KINDS:
        raise InvalidParameterValue(
            f"unknown securable type {value[:40]!r}; use one of {', '.join(k for k in KINDS)}"
        )
    return kind


@dataclass(frozen=True)
class Securable:
    id: str
    kind: str
    full_name: str
    parent_id: str | None
    owner: str
    comment: str | None
    properties: dict[str, str]
    spec: dict[str, Any]
    created_at: int
    created_by: str
    updated_at: int
    updated_by: str
    chain: tuple[Node, ...] = field(default=(), compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.full_name.rsplit(".", 1)[-1]

    @property
    def parts(self) -> list[str]:
        return self.full_name.split(".")

    @classmethod
    def from_row(cls, row: Row, chain: tuple[Node, ...] = ()) -> Securable:
        return cls(
            id=row["id"],
            kind=row["kind"],
            full_name=row["full_name"],
            parent_id=row["parent_id"],
            owner=row["owner"],
            comment=row["comment"],
            properties=json.loads(row["properties"] or "{}"),
            spec=json.loads(row["spec"] or "{}"),
            created_at=row["created_at"],
            created_by=row["created_by"],
            updated_at=row["updated_at"],
            updated_by=row["updated_by"],
            chain=chain,
        )


def _namespace(kind: str) -> str:
    return kind


def _check_props(properties: Any) -> dict[str, str]:
    if properties is None:
        return {}
    if not isinstance(properties, dict) or not all(isinstance(k, str) for k in properties):
        raise InvalidParameterValue("properties must be an object of string keys and values")
    if len(properties) > 1000:
        raise InvalidParameterValue("at most 1000 properties are allowed")
    return {k: str(v) for k, v in properties.items()}


def _check_comment(comment: Any) -> str | None:
    if comment is None:
        return None
    if not isinstance(comment, str) or len(comment) > 4096:
        raise InvalidParameterValue("comment must be a string of at most 4096 characters")
    return comment
