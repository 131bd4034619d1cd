"""T20: canary secrets in every input path never reach a sink (tables, files, logs, responses)."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.serving.conftest import Env, Upstream

PROVIDER_KEY = "sk-canaryprovider-7c1e5a9f3b2d4e6f"
BODY_KEY = "sk-canarybody-0f9e8d7c6b5a4321"


def _needles(secret: str) -> list[str]:
    body = secret.split("-", 1)[-1]
    subs = {body[i:i + 12] for i in range(0, len(body) - 11)}
    return sorted({secret, quote(secret), base64.b64encode(secret.encode()).decode(), json.dumps(secret)[1:-1]} | subs)


def _hits(text: str, secret: str) -> list[str]:
    return [n for n in _needles(secret) if n in text]


def test_t20_canaries_never_reach_a_sink(env: Env, upstream: Upstream, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    admin, h = env.admin, {"authorization": f"Bearer {env.admin_token}"}
    admin.secrets.create_scope("canary")
    admin.secrets.put_secret("canary", "key", string_value=PROVIDER_KEY)
    admin.catalogs.create(name="canarycat")
    admin.schemas.create(name="logs", catalog_name="canarycat")
    config = {"served_entities": [{"name": "up", "external_model": {
        "name": "m", "provider": "openai", "task": "llm/v1/chat",
        "openai_config": {"openai_api_base": upstream.url, "openai_api_key": "{{secrets/canary/key}}"}}}]}
    gateway = {"usage_tracking_config": {"enabled": True},
               "inference_table_config": {"enabled": True, "catalog_name": "canarycat", "schema_name": "logs",
                                          "table_name_prefix": "c"},
               "guardrails": {"input": {"invalid_keywords": ["blockme"]}}}
    r = httpx.post(env.url + "/api/2.0/serving-endpoints", headers=h,
                   json={"name": "canary", "config": config, "ai_gateway": gateway})
    assert r.status_code == 200, r.text
    admin.serving_endpoints.wait_get_serving_endpoint_not_updating("canary")
    responses: list[httpx.Response] = [r]
    chat = env.url + "/serving-endpoints/chat/completions"
    scenarios = [
        {"messages": [{"role": "user", "content": f"my key is {PROVIDER_KEY}"}]},
        {"messages": [{"role": "user", "content": "hi"}], "api_key": BODY_KEY},
        {"messages": [{"role": "user", "content": "stream"}], "stream": True},
        {"messages": [{"role": "user", "content": "blockme please"}]},
        {"messages": "not a list"},
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": -5},
    ]
    for body in scenarios:
        responses.append(httpx.post(chat, headers=h, json={"model": "canary", **body}, timeout=30))
    for status in (401, 429, 500):
        upstream.status = status
        try:
            responses.append(httpx.post(chat, headers=h, timeout=30,
                                        json={"model": "canary", "messages": [{"role": "user", "content": "x"}]}))
        finally:
            upstream.status = 200
    responses.append(httpx.get(env.url + "/api/2.0/serving-endpoints/canary", headers=h))
    responses.append(httpx.get(env.url + "/api/2.0/secrets/list?scope=canary", headers=h))
    assert any(x.status_code == 200 for x in responses) and any(x.status_code >= 400 for x in responses)
    # The provider key reaches the provider, and only as the Authorization header.
    assert all(s["auth"] == f"Bearer {PROVIDER_KEY}" for s in upstream.seen[-3:])
    env.ws.gateway.usage.flush()
    env.ws.gateway.payloads.flush()

    sinks: dict[str, str] = {}
    for resp in responses:
        sinks[f"response {resp.request.url.path} {resp.status_code}"] = resp.text + json.dumps(dict(resp.headers))
    sinks["logs"] = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    home = Path(env.ws.home)
    for path in home.rglob("*"):
        if path.is_file() and path.name != "secrets.key" and path.stat().st_size < 50_000_000:
            sinks[str(path.relative_to(home))] = path.read_bytes().decode("latin-1")
    import sqlite3

    for db in ("metastore.db", "gateway.db"):
        con = sqlite3.connect(home / db)
        sinks[db + " dump"] = "\n".join(con.iterdump())
        con.close()
    root = env.ws.principal("admin@example.com")
    for full in ("system.serving.endpoint_usage", "canarycat.logs.c_payload", "system.access.audit"):
        table = env.ws.sql.execute(root, f"SELECT * FROM {full}").table  # noqa: S608 - fixed names
        assert table.num_rows > 0, full
        sinks[full] = json.dumps(table.to_pylist(), default=str)
    leaks = {name: _hits(text, secret) for name, text in sinks.items() for secret in (PROVIDER_KEY, BODY_KEY)
             if _hits(text, secret)}
    assert leaks == {}, leaks
