"""Keeping a Delta Sync index on a chunks table up to date, and watching it get there: what
``brickyard ingest --index`` does after writing the chunks. The same steps run against this process's
workspace (:class:`LocalIndexes`) or, when a server holds the home, against that server's REST API (the
CLI's client), so only one process ever writes an index."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..catalog import Principal
from ..core.errors import InvalidState, NotFound


class Indexes(Protocol):
    def endpoint_exists(self, name: str) -> bool: ...
    def create_endpoint(self, name: str) -> None: ...
    def index_exists(self, name: str) -> bool: ...
    def create_index(self, body: dict[str, Any]) -> None: ...
    def sync(self, name: str) -> None: ...
    def status(self, name: str) -> dict[str, Any]: ...


@dataclass
class Target:
    index: str  # catalog.schema.name
    endpoint: str  # the vector search endpoint (created if missing)
    embedding_endpoint: str  # the serving endpoint that embeds the text column
    primary_key: str = "chunk_id"
    text_column: str = "text"


def index_body(source_table: str, target: Target) -> dict[str, Any]:
    return {"name": target.index, "endpoint_name": target.endpoint, "primary_key": target.primary_key,
            "index_type": "DELTA_SYNC",
            "delta_sync_index_spec": {
                "source_table": source_table, "pipeline_type": "TRIGGERED",
                "embedding_source_columns": [{"name": target.text_column,
                                              "embedding_model_endpoint_name": target.embedding_endpoint}]}}


def follow(indexes: Indexes, source_table: str, target: Target, *,
           progress: Callable[[dict[str, Any]], None] | None = None, poll_seconds: float = 0.2,
           timeout_seconds: float = 24 * 3600) -> dict[str, Any]:
    """Create ``target`` on ``source_table`` (and its endpoint) if missing, else sync it; return its status once
    it is ready with no sync running. ``progress`` sees every status polled on the way."""
    if not indexes.endpoint_exists(target.endpoint):
        indexes.create_endpoint(target.endpoint)
    if indexes.index_exists(target.index):
        try:
            indexes.sync(target.index)
        except InvalidState:  # a sync is already running (the initial snapshot, resumed): follow that one
            pass
    else:
        indexes.create_index(index_body(source_table, target))
    deadline = time.monotonic() + timeout_seconds
    while True:
        status = indexes.status(target.index)
        if progress is not None:
            progress(status)
        if status.get("detailed_state") == "OFFLINE_FAILED" or (
                not status.get("sync_progress") and str(status.get("message", "")).startswith("sync failed")):
            raise InvalidState(f"index {target.index}: {status.get('message')}")
        if status.get("ready") and not status.get("sync_progress"):
            return status
        if time.monotonic() > deadline:
            raise InvalidState(f"index {target.index} was not ready after {timeout_seconds:.0f} s: "
                               f"{status.get('message')}")
        time.sleep(poll_seconds)


class LocalIndexes:
    """:class:`Indexes` on this process's :class:`~brickyard.vectorsearch.VectorSearch`, as ``p``."""

    def __init__(self, vectorsearch: Any, p: Principal) -> None:
        self.vs = vectorsearch
        self.p = p

    def endpoint_exists(self, name: str) -> bool:
        try:
            self.vs.get_endpoint(self.p, name)
        except NotFound:
            return False
        return True

    def create_endpoint(self, name: str) -> None:
        self.vs.create_endpoint(self.p, {"name": name, "endpoint_type": "STANDARD"})

    def index_exists(self, name: str) -> bool:
        try:
            self.vs.get_index(self.p, name)
        except NotFound:
            return False
        return True

    def create_index(self, body: dict[str, Any]) -> None:
        self.vs.create_index(self.p, body)

    def sync(self, name: str) -> None:
        self.vs.sync(self.p, name)

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.vs.get_index(self.p, name)["status"])
