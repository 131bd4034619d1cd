"""What the parts of the vector search service share: an open index (:class:`Live`) and the limits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..catalog import Principal
from ._engine import Engine
from ._store import RowStore

Embed = Callable[[Principal, str, list[str]], np.ndarray]
RRF_K = 60  # Reciprocal Rank Fusion constant (Cormack et al. 2009), score = sum 1 / (RRF_K + rank)
MAX_TEXT_RESULTS = 200  # HYBRID and FULL_TEXT return at most 200 rows, as on Databricks
MAX_ANN_RESULTS = 10_000
EMBED_BATCH = 64
SCHEMA_TYPES = {"integer", "long", "int", "bigint", "string", "float", "double", "boolean", "date", "timestamp",
                "array<float>", "array<double>", "array<string>", "short", "smallint", "tinyint", "byte"}


@dataclass
class Live:
    """An open index: its row store, engine and pipeline state."""

    spec: dict[str, Any]
    store: RowStore
    engine: Engine
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    state: str = "ONLINE"
    message: str = ""
    syncing: bool = False
    sync_thread: threading.Thread | None = None
    initial_sync: bool = False  # the sync in progress takes the first snapshot of the source
    rows_done: int = 0  # of the sync in progress: rows embedded and prepared ...
    rows_total: int | None = None  # ... of this many (None: still reading the source)
    last_error: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    changes_since_save: int = 0
    saved_at: float = field(default_factory=time.monotonic)
    known: frozenset[str] | None = None  # the columns queries may name; reset when a sync lands
    schemas: dict[int, dict[str, str]] = field(default_factory=dict)  # source version -> its columns
    #: the row store position (generation, sequence number) the engine reflects; another server process's
    #: commits move the store ahead and the next query catches the engine up (see VectorSearch.current)
    applied: tuple[int, int] = (0, 0)
