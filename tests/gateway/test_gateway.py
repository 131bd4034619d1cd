"""T21 (exact rate limits under concurrency, across connections and processes' stores) and usage tracking."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from brickyard.catalog import Principal
from brickyard.core.errors import RateLimited
from brickyard.core.settings import Settings
from brickyard.models import QueueChat
from brickyard.workspace import Workspace
from tests.conftest import scaled, serve

MSG = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000 - 1_800_000_000_000 % 60_000 + 5_000

    def __call__(self) -> int:
        return self.now


def make_ws(home: Path, metastore_url: str | None = None) -> Workspace:
    ws = Workspace(Settings(home=home, enable_fake_models=1, metastore_url=metastore_url, serving_queue_size=10_000))
    ws.serving._factories["system.ai.fake-chat"] = lambda: QueueChat(model_id="fake")
    return ws


@pytest.fixture
def gw(tmp_path: Path, metastore_url: str | None) -> Iterator[tuple[Workspace, Clock]]:
    ws = make_ws(tmp_path / "home", metastore_url)
    clock = Clock()
    ws.gateway.limiter.clock = clock
    admin = ws.ensure_user("admin", admin=True)
    ws.serving.create(admin, {"name": "ep", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
                              "ai_gateway": {"usage_tracking_config": {"enabled": True}, "rate_limits": [
                                  {"key": "user", "calls": 50, "renewal_period": "minute"},
                                  {"key": "user", "principal": "bob", "calls": 10, "renewal_period": "minute"},
                                  {"key": "user_group", "principal": "g", "calls": 70, "renewal_period": "minute"},
                                  {"key": "endpoint", "calls": 500, "renewal_period": "minute"}]}})
    for _ in range(500):
        if ws.serving.get(admin, "ep")["state"]["config_update"] == "NOT_UPDATING":
            break
        time.sleep(0.01)
    g = ws.identity.create("group", "g")
    for name in ("alice", "bob", "carol", "dave"):
        user = ws.ensure_user(name)
        ws.serving.set_acl(admin, ws.serving.get(admin, "ep")["id"],
                           [{"user_name": name, "permission_level": "CAN_QUERY"}], replace=False)
        if name in ("carol", "dave"):
            ws.identity.add_member(g.id, user.id)
    yield ws, clock
    ws.close()


def fire(ws: Workspace, p: Principal, n: int, endpoint: str = "ep", body: dict[str, Any] | None = None
         ) -> tuple[int, list[RateLimited]]:
    def one(_: int) -> Any:
        try:
            return ws.gateway.call(p, endpoint, dict(body or MSG), route="chat")
        except RateLimited as exc:
            return exc

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(n)))
    refused = [r for r in results if isinstance(r, RateLimited)]
    return len(results) - len(refused), refused


def test_t21_exact_limits_under_concurrency(gw: tuple[Workspace, Clock]) -> None:
    ws, clock = gw
    trials = scaled(5, 20)
    for trial in range(trials):
        accepted, refused = fire(ws, ws.principal("alice"), 500 if trial == 0 else 120)
        assert accepted == 50, (trial, accepted)
        assert refused and all(r.retry_after >= 1 for r in refused)
        assert fire(ws, ws.principal("bob"), 30)[0] == 10  # bob's own limit replaces the default
        got = fire(ws, ws.principal("carol"), 60)[0] + fire(ws, ws.principal("dave"), 60)[0]
        assert got == 70  # the group's shared limit is stricter than two users' 50 each
        clock.now += 60_000  # the next minute starts fresh


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "group-commit"])
def test_t21_exact_limits_on_the_event_loop(gw: tuple[Workspace, Clock], inline: bool) -> None:
    """The server's path (``acall``): 500 concurrent requests on one event loop. Inline commits (SQLite, writer
    lock free) and group commits from a worker thread (PostgreSQL, or a busy writer) both accept exactly 50."""
    ws, clock = gw
    ws.gateway.admission.inline = inline
    alice = ws.principal("alice")

    async def burst(n: int) -> list[Any]:
        async def one() -> Any:
            try:
                return await ws.gateway.acall(alice, "ep", dict(MSG), route="chat")
            except RateLimited as exc:
                return exc

        return await asyncio.gather(*(one() for _ in range(n)))

    for _ in range(scaled(3, 20)):
        commits = ws.gateway.admission.commits
        results = asyncio.run(burst(500))
        refused = [r for r in results if isinstance(r, RateLimited)]
        assert len(results) - len(refused) == 50
        assert all(r.retry_after >= 1 for r in refused)
        if not inline:  # concurrent requests shared transactions
            assert ws.gateway.admission.commits - commits < 500
        clock.now += 60_000


def test_endpoint_and_token_limits(gw: tuple[Workspace, Clock]) -> None:
    ws, clock = gw
    admin = ws.principal("admin")
    ws.serving.set_ai_gateway(admin, "ep", {"rate_limits": [
        {"key": "endpoint", "calls": 30, "renewal_period": "minute"},
        {"key": "user", "tokens": 400, "renewal_period": "minute"}]})
    alice, bob = ws.principal("alice"), ws.principal("bob")
    body = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 50}
    a, _ = fire(ws, alice, 40, body=body)
    b, _ = fire(ws, bob, 40, body=body)
    assert a + b <= 30 and a >= 1 and b >= 1
    # tokens: every accepted call reserved prompt + max_tokens; the settled total stays within the limit
    with ws._counters.tx(write=False) as tx:
        rows = tx.all("SELECT scope, calls, tokens FROM rate_counters WHERE scope LIKE ?", ("user:%",))
    assert rows and all(r["tokens"] <= 400 for r in rows)
    clock.now += 60_000
    assert fire(ws, alice, 1, body=body)[0] == 1


def test_usage_rows_land_in_the_system_table(gw: tuple[Workspace, Clock]) -> None:
    ws, _clock = gw
    alice = ws.principal("alice")
    for i in range(5):
        ws.gateway.call(alice, "ep", {**MSG, "client_request_id": f"req-{i}", "usage_context": {"app": "demo"}},
                        route="chat")
    ws.gateway.usage.flush()
    rows = ws.sql.execute(ws.principal("admin"), "SELECT requester, endpoint_name, status_code, input_token_count,"
                          " output_token_count, client_request_id, usage_context['app'] AS app"
                          " FROM system.serving.endpoint_usage ORDER BY client_request_id").table.to_pylist()
    assert [r["client_request_id"] for r in rows] == [f"req-{i}" for i in range(5)]
    assert all(r["requester"] == "alice" and r["status_code"] == 200 and r["input_token_count"] > 0
               and r["output_token_count"] > 0 and r["app"] == "demo" for r in rows)
    # Ordinary users cannot read system tables or drop them.
    from brickyard.core.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        ws.sql.execute(alice, "SELECT * FROM system.serving.endpoint_usage")


def test_a_failing_usage_sink_never_fails_requests(gw: tuple[Workspace, Clock]) -> None:
    ws, _clock = gw

    def broken(rows: list[dict[str, Any]], txn: Any = None) -> None:
        raise OSError(28, "No space left on device")

    ws.gateway.usage._write = broken
    before = ws.gateway.usage.dropped
    for _ in range(3):
        ws.gateway.call(ws.principal("alice"), "ep", dict(MSG), route="chat")
    ws.gateway.usage.flush()
    assert ws.gateway.usage.dropped - before == 3


def test_bad_gateway_configs_are_refused(gw: tuple[Workspace, Clock]) -> None:
    from brickyard.core.errors import InvalidParameterValue

    ws, _clock = gw
    for bad in ({"guardrails": {"input": {"pii": {"behavior": "SHRED"}}}},
                {"guardrails": {"input": {"invalid_keywords": "not a list"}}},
                {"rate_limits": [{"key": "planet", "calls": 1}]},
                {"rate_limits": [{"key": "user", "calls": -1}]},
                {"rate_limits": [{"key": "user_group", "calls": 1}]},
                {"inference_table_config": {"enabled": True, "catalog_name": "../x", "schema_name": "s"}},
                {"fallback_config": {"enabled": "yes"}}):
        with pytest.raises(InvalidParameterValue):
            ws.gateway.configure(ws.principal("admin"), "ep", bad)


def test_limits_hold_across_two_workspace_processes(tmp_path: Path, metastore_url: str | None) -> None:
    """Two server processes share the counter store (same home): together they accept exactly the limit."""
    first = make_ws(tmp_path / "home", metastore_url)
    second = make_ws(tmp_path / "home", metastore_url)
    clock = Clock()  # a real minute boundary during the test would (rightly) open a new window
    first.gateway.limiter.clock = second.gateway.limiter.clock = clock
    try:
        admin = first.ensure_user("admin", admin=True)
        first.serving.create(admin, {"name": "ep", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
                                     "ai_gateway": {"rate_limits": [{"key": "endpoint", "calls": 40,
                                                                     "renewal_period": "minute"}]}})
        for _ in range(500):
            if first.serving.get(admin, "ep")["state"]["config_update"] == "NOT_UPDATING":
                break
            time.sleep(0.01)
        with ThreadPoolExecutor(2) as pool:
            counts = list(pool.map(lambda w: fire(w, w.principal("admin"), 100)[0], [first, second]))
        assert sum(counts) == 40, counts
    finally:
        second.close()
        first.close()


def test_429_over_http_carries_retry_after(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / "home")
    ws.gateway.limiter.clock = Clock()
    token = ws.create_token("a@example.com", admin=True)
    admin = ws.principal("a@example.com")
    ws.serving.create(admin, {"name": "ep", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
                              "ai_gateway": {"rate_limits": [{"key": "user", "calls": 3, "renewal_period": "minute"}]}})
    time.sleep(0.3)
    with serve(ws) as url:
        codes = [httpx.post(url + "/serving-endpoints/chat/completions", headers={"authorization": f"Bearer {token}"},
                            json={"model": "ep", **MSG}) for _ in range(5)]
    assert [c.status_code for c in codes] == [200, 200, 200, 429, 429]
    assert int(codes[-1].headers["retry-after"]) >= 1
    assert codes[-1].json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    ws.close()


def test_inference_table_logs_payloads_without_secrets(gw: tuple[Workspace, Clock]) -> None:
    ws, _clock = gw
    admin, alice = ws.principal("admin"), ws.principal("alice")
    ws.catalog.create(admin, "schema", "main.logs")
    canary = "sk-canary-0a1b2c3d4e5f60718293"
    ws.secrets.create_scope(admin, "llm")
    ws.secrets.put(admin, "llm", "key", canary)
    from brickyard.core.errors import PermissionDenied

    with pytest.raises(PermissionDenied):  # alice may query the endpoint but not manage it
        ws.gateway.configure(alice, "ep", {"inference_table_config": {
            "enabled": True, "catalog_name": "main", "schema_name": "logs", "table_name_prefix": "ep"}})
    ws.gateway.configure(admin, "ep", {"inference_table_config": {
        "enabled": True, "catalog_name": "main", "schema_name": "logs", "table_name_prefix": "ep"}})
    ws.gateway.call(alice, "ep", {"messages": [{"role": "user", "content": f"my key is {canary}"}],
                                  "api_key": "sk-canary-in-body-1234567", "client_request_id": "r1"}, route="chat")
    stream = ws.gateway.call(alice, "ep", {**MSG, "stream": True, "client_request_id": "r2"}, route="chat")
    assert "".join((c["choices"][0]["delta"].get("content") or "") for c in stream.result if c["choices"])
    huge = "x" * (1024 * 1024 + 10)
    ws.gateway.call(alice, "ep", {"messages": [{"role": "user", "content": huge}], "client_request_id": "r3"},
                    route="chat")
    ws.gateway.payloads.flush()
    rows = {r["client_request_id"]: r for r in ws.tables.read(admin, "main.logs.ep_payload").to_pylist()}
    assert set(rows) == {"r1", "r2", "r3"}
    assert rows["r1"]["status_code"] == 200 and "echo: my key is [REDACTED]" in rows["r1"]["response"]
    assert canary not in str(rows) and "sk-canary-in-body" not in str(rows)
    assert "echo:" in rows["r2"]["response"]
    assert rows["r3"]["request"] is None and rows["r3"]["response"] is None  # the echo model repeats it
    assert rows["r3"]["logging_error_codes"] == ["MAX_REQUEST_SIZE_EXCEEDED", "MAX_RESPONSE_SIZE_EXCEEDED"]
    assert rows["r1"]["requester"] == "alice"


def test_sdk_put_ai_gateway_and_legacy_rate_limits(tmp_path: Path) -> None:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.serving import (
        AiGatewayRateLimit,
        AiGatewayRateLimitKey,
        AiGatewayRateLimitRenewalPeriod,
        AiGatewayUsageTrackingConfig,
    )

    ws = make_ws(tmp_path / "home")
    token = ws.create_token("a@example.com", admin=True)
    ws.serving.create(ws.principal("a@example.com"), {
        "name": "ep", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]}})
    with serve(ws) as url:
        w = WorkspaceClient(host=url, token=token)
        w.serving_endpoints.wait_get_serving_endpoint_not_updating("ep")
        out = w.serving_endpoints.put_ai_gateway(
            "ep", usage_tracking_config=AiGatewayUsageTrackingConfig(enabled=True),
            rate_limits=[AiGatewayRateLimit(calls=7, key=AiGatewayRateLimitKey.ENDPOINT,
                                            renewal_period=AiGatewayRateLimitRenewalPeriod.MINUTE)])
        assert out.usage_tracking_config.enabled and out.rate_limits[0].calls == 7
        got = w.serving_endpoints.get("ep").ai_gateway
        assert got.rate_limits[0].key == AiGatewayRateLimitKey.ENDPOINT
        r = httpx.put(url + "/api/2.0/serving-endpoints/ep/rate-limits", headers={"authorization": f"Bearer {token}"},
                      json={"rate_limits": [{"calls": 3, "key": "user", "renewal_period": "minute"}]})
        assert r.status_code == 200 and w.serving_endpoints.get("ep").ai_gateway.rate_limits[0].calls == 3
    ws.close()


class Flaky:
    """A chat model that fails every 10th call and reports usage on every other call."""

    model_id = "flaky"

    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        from brickyard.models._fakes import completion
        from brickyard.models._openai import UpstreamError

        with self.lock:
            self.n += 1
            n = self.n
        if n % 10 == 0:
            raise UpstreamError("upstream failed")
        text = request["messages"][-1]["content"]
        answer = completion("flaky", f"answer {text}", prompt_tokens=7)
        if n % 2:
            answer.pop("usage")
        return answer

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        from brickyard.models._fakes import chunks_of

        yield from chunks_of(self.chat(request))


def test_t22_usage_rows_match_calls_exactly(tmp_path: Path) -> None:
    """1,000 requests (20% streamed, 10% upstream failures, usage reported on half): one row per request,
    tokens as reported or (len + 1) // 4 when not."""
    ws = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1, serving_queue_size=10_000))
    flaky = Flaky()
    ws.serving._factories["system.ai.fake-chat"] = lambda: flaky
    admin = ws.ensure_user("admin", admin=True)
    ws.serving.create(admin, {"name": "ep", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
                              "ai_gateway": {"usage_tracking_config": {"enabled": True}}})
    time.sleep(0.3)
    expected: dict[str, tuple[int, int, int]] = {}
    for i in range(scaled(1000, 5000)):
        rid = f"r{i}"
        body = {"messages": [{"role": "user", "content": f"question {i}"}], "client_request_id": rid,
                "stream": i % 5 == 0}
        try:
            inv = ws.gateway.call(admin, "ep", body, route="chat")
            chunks = list(inv.result) if inv.stream else None
            result = inv.result if not inv.stream else None
            if chunks is not None:
                usage = next((c["usage"] for c in chunks if c.get("usage")), None)
                text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])
            else:
                usage, text = result.get("usage"), result["choices"][0]["message"]["content"]
            if usage:
                expected[rid] = (200, usage["prompt_tokens"], usage["completion_tokens"])
            else:
                expected[rid] = (200, (len(f"question {i}") + 1) // 4, (len(text) + 1) // 4)
        except Exception as exc:  # noqa: BLE001 - the failures are part of the mix
            expected[rid] = (getattr(exc, "http_status", 500), 0, 0)
    ws.gateway.usage.flush()
    rows = ws.sql.execute(admin, "SELECT client_request_id, status_code, input_token_count, output_token_count"
                                 " FROM system.serving.endpoint_usage").table.to_pylist()
    got = {r["client_request_id"]: (r["status_code"], r["input_token_count"], r["output_token_count"]) for r in rows}
    assert len(rows) == len(expected) and got == expected
    assert sum(1 for v in expected.values() if v[0] != 200) > 0
    ws.close()
