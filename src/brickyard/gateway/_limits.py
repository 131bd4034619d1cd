"""Exact rate limits: calls and tokens per minute, keyed by endpoint, user, group or service principal.

Every request checks all the limits that apply to it and counts itself against all of them in one
serialised transaction, so concurrent requests can never overshoot a limit, also across server
processes that share the counter store (one SQLite file on a host, or the PostgreSQL metastore). The
most restrictive limit wins. Tokens are reserved before the call (prompt estimate + ``max_tokens``)
and settled with the real usage afterwards.

On SQLite the counters live in their own file with ``synchronous=NORMAL``: in WAL mode that survives a
killed process (a commit is in the WAL before the call returns) and costs 14 us instead of 330 us per
request; only a power cut could lose the last increments of the current minute.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..catalog import Principal
from ..catalog._db import Database
from ..core.errors import RateLimited
from ..core.ids import now_ms
from ..serving._aigateway import Limit

WINDOW_MS = 60_000
SCHEMA = """CREATE TABLE IF NOT EXISTS rate_counters (
    endpoint_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    tokens BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, scope, window_start))"""


def applicable(limits: list[Limit], p: Principal) -> list[tuple[str, Limit]]:
    """(counter scope, limit) pairs that apply to ``p``; a named user/SP limit replaces the default one."""
    out: list[tuple[str, Limit]] = []
    own = "service_principal" if p.kind == "service_principal" else "user"
    custom = [lim for lim in limits if lim.key == own and lim.principal == p.name]
    for lim in limits:
        if lim.key == "endpoint":
            out.append(("endpoint", lim))
        elif lim.key == "user_group" and lim.principal in p.groups:
            out.append((f"group:{lim.principal}", lim))
        elif lim.key == own and lim.principal == p.name:
            out.append((f"{own}:{p.name}", lim))
        elif lim.key == own and not lim.principal and not custom:
            out.append((f"{own}:{p.name}", lim))
    return out


class RateLimiter:
    def __init__(self, db: Database, *, clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.clock = clock
        self._swept: dict[str, int] = {}  # endpoint -> the window its old counters were last cleared for

        with self.db.tx() as tx:
            tx.execute(SCHEMA)

    def acquire(self, endpoint_id: str, pairs: list[tuple[str, Limit]], tokens: int) -> int:
        """Count one call and ``tokens`` against every pair, or raise ``RateLimited`` and count nothing.
        Returns the window the reservation belongs to (for :meth:`settle`)."""
        now = self.clock()
        window = now - now % WINDOW_MS
        if not pairs:
            return window
        retry = max(1, math.ceil((window + WINDOW_MS - now) / 1000))
        scopes = sorted({scope for scope, _ in pairs})
        with self.db.tx() as tx:
            current: dict[str, tuple[int, int]] = {}
            for scope in scopes:  # a stable order, so two writers never lock in opposite orders
                tx.execute("INSERT INTO rate_counters (endpoint_id, scope, window_start, calls, tokens)"
                           " VALUES (?, ?, ?, 0, 0) ON CONFLICT DO NOTHING", (endpoint_id, scope, window))
                row = tx.one(f"SELECT calls, tokens FROM rate_counters WHERE endpoint_id = ? AND scope = ?"  # noqa: S608
                             f" AND window_start = ?{tx.for_update}", (endpoint_id, scope, window))
                assert row is not None
                current[scope] = (row["calls"], row["tokens"])
            for scope, lim in pairs:
                calls, used = current[scope]
                if lim.calls is not None and calls + 1 > lim.calls:
                    raise RateLimited(f"rate limit of {lim.calls} calls per minute reached for {_label(scope)}",
                                      retry_after=retry)
                if lim.tokens is not None and used + tokens > lim.tokens:
                    raise RateLimited(f"rate limit of {lim.tokens} tokens per minute reached for {_label(scope)}",
                                      retry_after=retry)
            for scope in scopes:
                tx.execute("UPDATE rate_counters SET calls = calls + 1, tokens = tokens + ? WHERE endpoint_id = ?"
                           " AND scope = ? AND window_start = ?", (tokens, endpoint_id, scope, window))
            if self._swept.get(endpoint_id) != window:  # once per endpoint and minute is enough
                tx.execute("DELETE FROM rate_counters WHERE endpoint_id = ? AND window_start < ?",
                           (endpoint_id, window - WINDOW_MS))
                self._swept[endpoint_id] = window
        return window

    def settle(self, endpoint_id: str, pairs: list[tuple[str, Limit]], window: int, reserved: int, used: int) -> None:
        """Replace a token reservation by the tokens really used (never below zero)."""
        delta = used - reserved
        if not pairs or delta == 0 or all(lim.tokens is None for _, lim in pairs):
            return  # nothing to correct: no token limit counts this request's tokens
        with self.db.tx() as tx:
            for scope in sorted({scope for scope, _ in pairs}):
                tx.execute("UPDATE rate_counters SET tokens = CASE WHEN tokens + ? < 0 THEN 0 ELSE tokens + ? END"
                           " WHERE endpoint_id = ? AND scope = ? AND window_start = ?",
                           (delta, delta, endpoint_id, scope, window))


def _label(scope: str) -> str:
    kind, _, who = scope.partition(":")
    return {"endpoint": "the endpoint", "group": f"group {who}", "user": f"user {who}",
            "service_principal": f"service principal {who}"}.get(kind, scope)
