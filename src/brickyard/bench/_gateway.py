"""``brickyard bench gateway``: the AI Gateway hop against calling the upstream directly, in one run.

A fixed-answer upstream (aiohttp) and a Brickyard server run as separate processes on loopback; an
asyncio load generator sends chat completions to each in turn, at concurrency C and at 1. The gateway
path does everything a production request does: token auth, CAN_QUERY, rate limits (exact, committed
per request; inline on SQLite), usage tracking and inference-table rows, a no-op guardrail, and the proxy call.
Reported: requests/s, p50/p99 latency, server CPU seconds per request, and the added p50 at c=1.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REQUEST = {"messages": [{"role": "user", "content": "Say something short."}], "max_tokens": 16}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early")
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - loopback only
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def _load(url: str, headers: dict[str, str], body: dict[str, Any] | list[dict[str, Any]], concurrency: int,
                seconds: float) -> dict[str, Any]:
    """``concurrency`` workers posting for ``seconds``; a list of bodies is sent in turn."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    payloads = [json.dumps(b).encode() for b in (body if isinstance(body, list) else [body])]
    sent = 0
    async with aiohttp.ClientSession(headers={**headers, "content-type": "application/json"},
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal errors, sent
            while time.perf_counter() < stop:
                payload = payloads[sent % len(payloads)]
                sent += 1
                t = time.perf_counter()
                async with session.post(url, data=payload) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                latencies.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 3) if latencies else 0.0

    return {"requests": len(latencies), "errors": errors, "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def run_gateway_bench(*, seconds: float = 5.0, concurrency: int = 32) -> dict[str, Any]:
    up_port, port = _free_port(), _free_port()
    home = Path(tempfile.mkdtemp(prefix="brickyard-bench-"))
    from ..core.settings import Settings

    env = Settings.child_environ(allowed_model_hosts=f"127.0.0.1:{up_port}", log_level="warning")
    upstream = subprocess.Popen([sys.executable, "-m", "brickyard.bench._upstream", str(up_port)], env=env)
    server = None
    try:
        from ..workspace import Workspace

        ws = Workspace(Settings.from_env(env, home=home))
        token = ws.create_token("bench@example.com", admin=True)
        admin = ws.principal("bench@example.com")
        ws.catalog.create(admin, "catalog", "bench")
        ws.catalog.create(admin, "schema", "bench.logs")
        ws.gateway.create_endpoint(admin, {"name": "bench", "config": {"served_entities": [{
            "name": "up", "external_model": {"name": "m", "provider": "custom", "task": "llm/v1/chat",
                                             "custom_provider_config": {
                                                 "custom_provider_url": f"http://127.0.0.1:{up_port}/v1"}}}]},
            "ai_gateway": {"usage_tracking_config": {"enabled": True},
                           "rate_limits": [{"key": "user", "calls": 10_000_000, "renewal_period": "minute"}],
                           "inference_table_config": {"enabled": True, "catalog_name": "bench",
                                                      "schema_name": "logs", "table_name_prefix": "bench"},
                           "guardrails": {"input": {"pii": {"behavior": "NONE"}}}}})
        ws.close()
        server = subprocess.Popen([sys.executable, "-m", "brickyard.cli", "serve", "--home", str(home), "--port",
                                   str(port), "--log-level", "warning"], env=env)
        _wait(f"http://127.0.0.1:{port}/health", server)
        _wait(f"http://127.0.0.1:{up_port}/", upstream)
        auth = {"authorization": f"Bearer {token}"}
        direct_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
        gw_url = f"http://127.0.0.1:{port}/serving-endpoints/chat/completions"
        body = {"model": "bench", **REQUEST}
        for _ in range(2):  # warm up both paths (connections, model pool, imports)
            asyncio.run(_load(gw_url, auth, body, 4, 0.5))
            asyncio.run(_load(direct_url, {}, body, 4, 0.5))
        results: dict[str, Any] = {}
        for label, url, headers in (("direct", direct_url, {}), ("gateway", gw_url, auth)):
            pid = (upstream if label == "direct" else server).pid
            cpu0 = _cpu_seconds(pid)
            loaded = asyncio.run(_load(url, headers, body, concurrency, seconds))
            cpu = _cpu_seconds(pid) - cpu0
            loaded["server_cpu_ms_per_request"] = round(cpu / max(1, loaded["requests"]) * 1000, 3)
            loaded["rps_per_server_cpu_second"] = round(loaded["requests"] / cpu, 1) if cpu else None
            single = asyncio.run(_load(url, headers, body, 1, max(1.0, seconds / 2)))
            results[label] = {f"c{concurrency}": loaded, "c1": single}
        results["added_p50_ms_c1"] = round(results["gateway"]["c1"]["p50_ms"] - results["direct"]["c1"]["p50_ms"], 3)
        results["config"] = {"seconds": seconds, "concurrency": concurrency, "cpus": os.cpu_count(),
                             "path": "token auth + CAN_QUERY + exact rate limit + usage + inference table + "
                                     "no-op guardrail + proxy (pooled aiohttp client) to an aiohttp upstream"}
        return results
    finally:
        for proc in (server, upstream):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
