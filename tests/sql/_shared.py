"""What the SQL tests share: a quiet workspace with an admin and a second user, and rows read as a user."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace

ADMIN, BOB = "admin@example.com", "bob@example.com"


def workspace(home: Path, **settings: Any) -> Workspace:
    """A workspace with no access log and no scheduled scorers, where ADMIN is an admin and BOB a plain user."""
    w = Workspace(Settings(home=home, access_log="off", monitor_interval_seconds=0, **settings))
    w.ensure_user(ADMIN, admin=True)
    w.ensure_user(BOB)
    return w


def rows(ws: Workspace, sql: str, user: str = ADMIN, params: list[dict[str, Any]] | None = None
         ) -> list[dict[str, Any]]:
    """``sql``'s rows, run as ``user`` with statement ``params``."""
    return ws.sql.execute(ws.principal(user), sql, parameters=params).table.to_pylist()


def synced_index(ws: Workspace, owner: Any, name: str, source: str, column: str, endpoint: str = "vs") -> None:
    """A TRIGGERED Delta Sync index of ``source`` embedding ``column`` with the bundled model (the
    databricks-gte-large-en stand-in), on a new Vector Search endpoint, synced once."""
    ws.vectorsearch.create_endpoint(owner, {"name": endpoint})
    ws.vectorsearch.create_index(owner, {
        "name": name, "endpoint_name": endpoint, "primary_key": "id", "index_type": "DELTA_SYNC",
        "delta_sync_index_spec": {"source_table": source, "pipeline_type": "TRIGGERED", "embedding_source_columns": [
            {"name": column, "embedding_model_endpoint_name": "databricks-gte-large-en"}]}})
    ws.vectorsearch.sync_now(name)
