"""What the serving modules share: endpoint names and limits, and the shapes of a planned invocation."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from ..catalog._db import Row
from ..core.errors import (
    InvalidParameterValue,
    TemporarilyUnavailable,
)

LEVELS = {"CAN_VIEW": 1, "CAN_QUERY": 2, "CAN_MANAGE": 3}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
PROVIDERS = ("openai", "custom", "databricks-model-serving", "anthropic")
SECRET_FIELDS = ("openai_api_key", "databricks_api_token", "anthropic_api_key")


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _name(value: Any, what: str = "endpoint name") -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise InvalidParameterValue(f"{what} must be 1-63 letters, digits, '-' or '_', starting with a letter or digit")
    return value


@dataclass
class Invocation:
    """One model call's outcome, for the gateway: the entity that served it and the usage."""

    endpoint: str
    served_entity: str
    task: str
    result: Any  # dict, or an iterator of chunks when streaming
    stream: bool = False
    cold_start: bool = False  # a worker process had to be started for this request (scale from zero)
    queued: float | None = None  # seconds the request waited for a free worker of a served model version


@dataclass
class Plan:
    """A checked request and the served entities that may take it, first choice first."""

    row: Row
    task: str
    route: str
    request: dict[str, Any]
    stream: bool
    candidates: list[dict[str, Any]]

class Slot:
    """At most ``capacity`` calls in flight or waiting for one local model; more get a 503 with Retry-After."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Slot:
        with self._lock:
            if self._count >= self.capacity:
                raise TemporarilyUnavailable(
                    f"the local model is busy ({self._count} requests queued); retry shortly", retry_after=1)
            self._count += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._count -= 1
