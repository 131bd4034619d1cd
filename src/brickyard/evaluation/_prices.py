"""What model calls cost: a price table per serving endpoint, in dollars per million input and output tokens.

The table is a small JSON file a user edits (``brickyard prices set NAME --input 0.5 --output 1.5``, or by
hand): ``{"endpoint-name": {"input_per_1m": 0.5, "output_per_1m": 1.5}, ...}``. A workspace keeps its own at
``<home>/prices.json``; the ``token_cost`` scorer also takes a mapping or a path. Writes are atomic (a
temporary file renamed over the old one), so a crash leaves the old table or the new one, never half of one.
Brickyard ships no prices: what a model costs is the user's to say.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import InvalidParameterValue


@dataclass(frozen=True)
class Price:
    input_per_1m: float
    output_per_1m: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_1m + output_tokens * self.output_per_1m) / 1_000_000


def _number(name: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise InvalidParameterValue(f"price of {name!r}: {field} must be a number >= 0 (dollars per 1M tokens)")
    return float(value)


def parse(table: Any) -> dict[str, Price]:
    """A validated price table from its JSON form."""
    if not isinstance(table, Mapping):
        raise InvalidParameterValue("a price table is an object of endpoint name -> "
                                    '{"input_per_1m": ..., "output_per_1m": ...}')
    out = {}
    for name, entry in table.items():
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidParameterValue("a price table's keys are endpoint names")
        if not isinstance(entry, Mapping) or set(entry) - {"input_per_1m", "output_per_1m"}:
            raise InvalidParameterValue(f"price of {name!r} must be {{\"input_per_1m\": ..., \"output_per_1m\": ...}}")
        out[name] = Price(_number(name, "input_per_1m", entry.get("input_per_1m", 0)),
                          _number(name, "output_per_1m", entry.get("output_per_1m", 0)))
    return out


class PriceTable:
    """The price table stored in one JSON file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Price]:
        if not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text())
        except ValueError as exc:
            raise InvalidParameterValue(f"the price table {self.path} is not valid JSON: {exc}") from None
        return parse(raw)

    def set(self, name: str, input_per_1m: float, output_per_1m: float) -> Price:
        prices = self.load()
        price = parse({name: {"input_per_1m": input_per_1m, "output_per_1m": output_per_1m}})[name]
        prices[name] = price
        self._write(prices)
        return price

    def delete(self, name: str) -> bool:
        prices = self.load()
        if prices.pop(name, None) is None:
            return False
        self._write(prices)
        return True

    def _write(self, prices: dict[str, Price]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {n: {"input_per_1m": p.input_per_1m, "output_per_1m": p.output_per_1m} for n, p in sorted(prices.items())}
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".prices-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(body, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def load_prices(prices: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Price]:
    """A price table from a mapping (JSON form or ``Price`` values) or a JSON file's path."""
    if isinstance(prices, str | os.PathLike):
        return PriceTable(prices).load()
    if isinstance(prices, Mapping) and prices and all(isinstance(v, Price) for v in prices.values()):
        return dict(prices)
    return parse(prices)
