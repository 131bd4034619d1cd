"""T09: steady load and overload against a server in its own process. Under a steady load every request
succeeds; past an endpoint's rate limit the excess is shed with 429 and Retry-After, never a 5xx or a
dropped connection; the process stays up and its memory does not grow from one round to the next."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import rss_mb, scaled, serve_process


def test_steady_load_succeeds_and_overload_is_shed(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = Workspace(Settings(home=home, enable_fake_models=1))
    admin = ws.ensure_user("admin@example.com", admin=True)
    token = ws.create_token("admin@example.com", admin=True)
    for name, limits in (("steady", []), ("limited", [{"key": "endpoint", "calls": 60, "renewal_period": "minute"}])):
        ws.serving.create(admin, {"name": name, "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
                                  "ai_gateway": {"rate_limits": limits}})
    ws.close()
    headers = {"authorization": f"Bearer {token}"}
    body = {"messages": [{"role": "user", "content": "hello"}]}
    rounds, per_round = scaled(3, 10), scaled(600, 5000)
    with serve_process(home, env={"BRICKYARD_ENABLE_FAKE_MODELS": "1", "BRICKYARD_ACCESS_LOG": "off"}) as (url, proc), \
            httpx.Client(base_url=url, headers=headers, timeout=30,
                         limits=httpx.Limits(max_connections=16)) as client:
        deadline = time.monotonic() + 30
        while client.get("/api/2.0/serving-endpoints/limited").json()["state"]["ready"] != "READY":
            assert time.monotonic() < deadline
            time.sleep(0.05)

        def call(i: int) -> tuple[int, str | None]:
            name = "limited" if i % 3 == 0 else "steady"
            r = client.post(f"/serving-endpoints/{name}/invocations", json=body)
            return (r.status_code if name == "steady" else 1000 + r.status_code), r.headers.get("retry-after")

        memory = []
        for _ in range(rounds):
            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(call, range(per_round)))
            counts = Counter(status for status, _ in answers)
            assert set(counts) <= {200, 1200, 1429}, counts  # steady: all 200; limited: 200 or 429, nothing else
            assert counts[200] == sum(1 for i in range(per_round) if i % 3), counts
            assert counts[1429] > 0 and all(int(ra) >= 1 for status, ra in answers if status == 1429)
            assert proc.poll() is None
            memory.append(rss_mb(proc.pid))
        assert memory[-1] - memory[1 if len(memory) > 2 else 0] < 40, memory  # flat after the first round's warm-up
