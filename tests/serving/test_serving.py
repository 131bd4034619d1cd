"""Model serving through the official clients (openai, databricks-sdk, mlflow) against a live server."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput
from openai import APIStatusError

from brickyard.core.settings import Settings
from brickyard.models import QueueChat
from brickyard.workspace import Workspace
from tests.conftest import serve
from tests.serving.conftest import CANARY, Env, Upstream


def test_chat_stream_completions_and_invocations(env: Env) -> None:
    client = env.openai()
    r = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hello"}])
    assert r.choices[0].message.content == "echo: hello" and r.usage.total_tokens > 0 and r.model == "echo"
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "streamed"}], stream=True) if c.choices)
    assert text == "echo: streamed"
    raw = httpx.post(env.url + "/serving-endpoints/echo/invocations", timeout=30,
                     headers={"authorization": f"Bearer {env.admin_token}"},
                     json={"messages": [{"role": "user", "content": "x"}], "stream": True})
    events = [line for line in raw.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert raw.headers["served-model-name"] == "system-ai-fake-chat"
    c = client.completions.create(model="echo", prompt="complete me")
    assert c.choices[0].text == "echo: complete me"
    from databricks.sdk.service.serving import ChatMessage, ChatMessageRole

    q = env.admin.serving_endpoints.query(name="echo", messages=[ChatMessage(role=ChatMessageRole.USER, content="sdk")])
    assert q.choices[0].message.content == "echo: sdk"


def test_bad_requests_get_clear_4xx(env: Env) -> None:
    client = env.openai()
    with pytest.raises(APIStatusError) as e:
        client.chat.completions.create(model="echo", messages=[])
    assert e.value.status_code == 400 and "messages" in str(e.value)
    with pytest.raises(APIStatusError) as e:
        client.embeddings.create(model="echo", input=["x"])
    assert e.value.status_code == 400 and "cannot answer" in str(e.value)
    with pytest.raises(APIStatusError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404
    for config, fragment in [
        ({"served_entities": [{"entity_name": "system.ai.unknown"}]}, "unknown entity"),
        ({"served_entities": [{"entity_name": "system.ai.fake-chat", "name": "a"},
                              {"entity_name": "system.ai.fake-chat", "name": "b"}],
          "traffic_config": {"routes": [{"served_entity_name": "a", "traffic_percentage": 60},
                                        {"served_entity_name": "b", "traffic_percentage": 30}]}}, "add up to 100"),
        ({"served_entities": [{"entity_name": "system.ai.fake-chat"}, {"entity_name": "system.ai.fake-chat"}]},
         "appears twice"),
        ({"served_entities": [{"entity_name": "system.ai.fake-chat", "name": "c"},
                              {"entity_name": "system.ai.fake-embedding", "name": "d"}],
          "traffic_config": {"routes": [{"served_entity_name": "c", "traffic_percentage": 50},
                                        {"served_entity_name": "d", "traffic_percentage": 50}]}}, "one task"),
    ]:
        r = httpx.post(env.url + "/api/2.0/serving-endpoints", headers={"authorization": f"Bearer {env.admin_token}"},
                       json={"name": "bad", "config": config})
        assert r.status_code == 400 and fragment in r.json()["message"], r.text


def test_traffic_split(env: Env) -> None:
    env.admin.api_client.do("POST", "/api/2.0/serving-endpoints", body={"name": "split", "config": {
        "served_entities": [{"entity_name": "system.ai.fake-chat", "name": "a"},
                            {"entity_name": "system.ai.fake-chat", "name": "b"}],
        "traffic_config": {"routes": [{"served_entity_name": "a", "traffic_percentage": 25},
                                      {"served_entity_name": "b", "traffic_percentage": 75}]}}})
    env.admin.serving_endpoints.wait_get_serving_endpoint_not_updating("split")
    counts = {"a": 0, "b": 0}
    for _ in range(200):
        r = httpx.post(env.url + "/serving-endpoints/split/invocations", headers={"authorization": f"Bearer {env.admin_token}"},
                       json={"messages": [{"role": "user", "content": "x"}]})
        counts[r.headers["served-model-name"]] += 1
    assert 25 <= counts["a"] <= 75, counts


def test_permissions_on_endpoints(env: Env) -> None:
    bob_token = env.ws.create_token("bob@example.com")
    bob = env.openai(bob_token)
    with pytest.raises(APIStatusError) as e:
        bob.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 404  # a stranger cannot tell that the endpoint exists
    # Foundation-model stand-ins are open to every user, as on Databricks.
    listed = [x["name"] for x in httpx.get(env.url + "/api/2.0/serving-endpoints",
                                            headers={"authorization": f"Bearer {bob_token}"}).json()["endpoints"]]
    assert "databricks-meta-llama-3-3-70b-instruct" in listed and "echo" not in listed
    eid = env.admin.serving_endpoints.get("echo").id
    env.admin.api_client.do("PATCH", f"/api/2.0/permissions/serving-endpoints/{eid}", body={
        "access_control_list": [{"user_name": "bob@example.com", "permission_level": "CAN_VIEW"}]})
    with pytest.raises(APIStatusError) as e:
        bob.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 403 and "CAN_QUERY" in str(e.value)
    env.admin.api_client.do("PATCH", f"/api/2.0/permissions/serving-endpoints/{eid}", body={
        "access_control_list": [{"user_name": "bob@example.com", "permission_level": "CAN_QUERY"}]})
    assert bob.chat.completions.create(model="echo", messages=[{"role": "user", "content": "x"}]).choices
    r = httpx.delete(env.url + "/api/2.0/serving-endpoints/echo", headers={"authorization": f"Bearer {bob_token}"})
    assert r.status_code == 403


def test_external_openai_compatible_model_with_a_secret(env: Env, upstream: Upstream) -> None:
    env.admin.secrets.create_scope("llm")
    env.admin.secrets.put_secret("llm", "key", string_value=CANARY)
    config = {"served_entities": [{"name": "gpt", "external_model": {
        "name": "gpt-test", "provider": "openai", "task": "llm/v1/chat",
        "openai_config": {"openai_api_base": upstream.url, "openai_api_key": "{{secrets/llm/key}}"}}}]}
    env.admin.api_client.do("POST", "/api/2.0/serving-endpoints", body={"name": "ext", "config": config})
    ep = env.admin.serving_endpoints.wait_get_serving_endpoint_not_updating("ext")
    assert CANARY not in json.dumps(ep.as_dict())
    r = env.openai().chat.completions.create(model="ext", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "from upstream" and r.model == "ext"
    assert upstream.seen[-1]["auth"] == f"Bearer {CANARY}" and upstream.seen[-1]["body"]["model"] == "gpt-test"
    upstream.status = 429
    try:
        resp = httpx.post(env.url + "/serving-endpoints/chat/completions",
                          headers={"authorization": f"Bearer {env.admin_token}"},
                          json={"model": "ext", "messages": [{"role": "user", "content": "x"}]})
        assert resp.status_code == 429 and resp.headers["retry-after"] == "7"
        upstream.status = 500
        resp = httpx.post(env.url + "/serving-endpoints/chat/completions",
                          headers={"authorization": f"Bearer {env.admin_token}"},
                          json={"model": "ext", "messages": [{"role": "user", "content": "x"}]})
        assert resp.status_code == 502 and CANARY not in resp.text
    finally:
        upstream.status = 200
    # Without the allow-list, a private or loopback address is refused before any connection.
    bad = dict(config)
    bad["served_entities"] = [{"name": "gpt", "external_model": {
        "name": "m", "provider": "openai", "task": "llm/v1/chat",
        "openai_config": {"openai_api_base": "http://10.0.0.1:8000/v1", "openai_api_key_plaintext": "x"}}}]
    r = httpx.post(env.url + "/api/2.0/serving-endpoints", headers={"authorization": f"Bearer {env.admin_token}"},
                   json={"name": "ssrf", "config": bad})
    assert r.status_code == 400 and "a private-use address" in r.json()["message"]
    # Someone who cannot read the secret cannot point an endpoint at it.
    carol = env.ws.create_token("carol@example.com")
    r = httpx.post(env.url + "/api/2.0/serving-endpoints", headers={"authorization": f"Bearer {carol}"},
                   json={"name": "steal", "config": config})
    assert r.status_code == 403


def test_failed_update_keeps_the_old_config(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.admin.api_client.do("POST", "/api/2.0/serving-endpoints", body={"name": "upd", "config": {
        "served_entities": [{"entity_name": "system.ai.fake-chat"}]}})
    env.admin.serving_endpoints.wait_get_serving_endpoint_not_updating("upd")
    from brickyard.core.errors import InvalidParameterValue

    def broken(entity: dict[str, Any]) -> None:
        raise InvalidParameterValue("model files for the new version are missing")

    monkeypatch.setattr(env.ws.serving, "_check_deployable", broken)
    env.admin.api_client.do("PUT", "/api/2.0/serving-endpoints/upd/config", body={
        "served_entities": [{"entity_name": "system.ai.fake-chat", "name": "v2"}]})
    for _ in range(500):
        ep = env.admin.serving_endpoints.get("upd")
        if ep.state.config_update.value != "IN_PROGRESS":
            break
        time.sleep(0.01)
    assert ep.state.config_update.value == "UPDATE_FAILED"
    assert ep.config.config_version == 1 and ep.config.served_entities[0].name == "system-ai-fake-chat"
    assert "missing" in env.admin.api_client.do("GET", "/api/2.0/serving-endpoints/upd")["state"]["message"]
    r = env.openai().chat.completions.create(model="upd", messages=[{"role": "user", "content": "still"}])
    assert r.choices[0].message.content == "echo: still"
    monkeypatch.undo()
    env.admin.api_client.do("PUT", "/api/2.0/serving-endpoints/upd/config", body={
        "served_entities": [{"entity_name": "system.ai.fake-chat", "name": "v2"}]})
    ep = env.admin.serving_endpoints.wait_get_serving_endpoint_not_updating("upd")
    assert ep.config.config_version == 2 and ep.config.served_entities[0].name == "v2"


def test_local_model_queue_applies_back_pressure(tmp_path: Path) -> None:
    slow = QueueChat(model_id="slow", delay=0.4)
    ws = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1, serving_queue_size=1))
    ws.serving._factories["system.ai.fake-chat"] = lambda: slow
    token = ws.create_token("a@example.com", admin=True)
    with serve(ws) as url:
        WorkspaceClient(host=url, token=token).serving_endpoints.create_and_wait(
            name="slow", config=EndpointCoreConfigInput(name="slow", served_entities=[
                ServedEntityInput(entity_name="system.ai.fake-chat")]))

        def call(_: int) -> httpx.Response:
            return httpx.post(url + "/serving-endpoints/slow/invocations", timeout=30,
                              headers={"authorization": f"Bearer {token}"},
                              json={"messages": [{"role": "user", "content": "x"}]})

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(call, range(4)))
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) >= 1 and set(codes) <= {200, 503}
    assert all(r.headers.get("retry-after") for r in results if r.status_code == 503)
    assert len(slow.requests) == codes.count(200)  # nothing accepted was lost, nothing refused ran
    ws.close()


def test_offline_local_models_answer(env: Env) -> None:
    """The real default models: SmolLM2 chat (with JSON-schema output) and MiniLM embeddings."""
    client = env.openai()
    r = client.chat.completions.create(model="databricks-meta-llama-3-3-70b-instruct", max_tokens=24, temperature=0,
                                       messages=[{"role": "user", "content": "Name a color."}])
    assert r.choices[0].message.content and r.usage.completion_tokens > 0
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    r = client.chat.completions.create(model="databricks-meta-llama-3-3-70b-instruct", max_tokens=40, temperature=0,
                                       messages=[{"role": "user", "content": "Which city is the capital of France?"}],
                                       response_format={"type": "json_schema",
                                                        "json_schema": {"name": "a", "schema": schema}})
    assert isinstance(json.loads(r.choices[0].message.content)["city"], str)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                               "parameters": schema}}]
    r = client.chat.completions.create(model="databricks-meta-llama-3-3-70b-instruct", max_tokens=40, temperature=0,
                                       messages=[{"role": "user", "content": "Weather in Paris?"}], tools=tools,
                                       tool_choice="required")
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    e = client.embeddings.create(model="databricks-gte-large-en",
                                 input=["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell."])
    v = np.array([d.embedding for d in e.data])
    assert v.shape == (3, 384) and v[0] @ v[1] > v[0] @ v[2]
    b64 = client.embeddings.create(model="databricks-gte-large-en", input="A cat sits on the mat.")
    assert np.allclose(np.array(b64.data[0].embedding), v[0], atol=1e-5)


def test_retries_and_fallback_across_served_entities(env: Env, upstream: Upstream) -> None:
    config = {"served_entities": [
        {"name": "primary", "external_model": {"name": "m", "provider": "custom", "task": "llm/v1/chat",
                                               "custom_provider_config": {"custom_provider_url": upstream.url}}},
        {"name": "backup", "entity_name": "system.ai.fake-chat"}],
        "traffic_config": {"routes": [{"served_entity_name": "primary", "traffic_percentage": 100},
                                      {"served_entity_name": "backup", "traffic_percentage": 0}]}}
    env.admin.api_client.do("POST", "/api/2.0/serving-endpoints", body={"name": "fb", "config": config})
    env.admin.serving_endpoints.wait_get_serving_endpoint_not_updating("fb")
    client = env.openai()
    hits = len(upstream.seen)
    upstream.fail_next = 1  # one transient 503: the provider retries and succeeds
    r = client.chat.completions.create(model="fb", messages=[{"role": "user", "content": "a"}])
    assert r.choices[0].message.content == "from upstream" and len(upstream.seen) == hits + 2
    upstream.status = 500  # the upstream is down: without fallback the caller sees 502
    try:
        with pytest.raises(APIStatusError) as e:
            client.chat.completions.create(model="fb", messages=[{"role": "user", "content": "b"}])
        assert e.value.status_code == 502
        env.admin.api_client.do("PUT", "/api/2.0/serving-endpoints/fb/ai-gateway",
                                body={"fallback_config": {"enabled": True}})
        raw = httpx.post(env.url + "/serving-endpoints/fb/invocations", headers={"authorization": f"Bearer {env.admin_token}"},
                         json={"messages": [{"role": "user", "content": "c"}]})
        assert raw.status_code == 200 and raw.headers["served-model-name"] == "backup"
        assert raw.json()["choices"][0]["message"]["content"] == "echo: c"
    finally:
        upstream.status = 200


def test_responses_api(env: Env) -> None:
    client = env.openai()
    r = client.responses.create(model="echo", input="hello responses", instructions="be brief")
    assert r.output_text == "echo: hello responses" and r.usage.total_tokens > 0
    r = client.responses.create(model="echo", input=[{"role": "user", "content": [{"type": "input_text", "text": "parts"}]}])
    assert r.output_text == "echo: parts"
    events = list(client.responses.create(model="echo", input="streamed", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "echo: streamed"
    assert events[-1].response.output_text == "echo: streamed"


def test_plaintext_keys_become_encrypted_secrets_and_cannot_be_borrowed(env: Env, upstream: Upstream) -> None:
    key = "sk-canary-plaintext-5566778899aabb"
    config = {"served_entities": [{"name": "plain", "external_model": {
        "name": "m", "provider": "openai", "task": "llm/v1/chat",
        "openai_config": {"openai_api_base": upstream.url, "openai_api_key_plaintext": key}}}]}
    env.admin.api_client.do("POST", "/api/2.0/serving-endpoints", body={"name": "plain", "config": config})
    env.admin.serving_endpoints.wait_get_serving_endpoint_not_updating("plain")
    ep = env.admin.api_client.do("GET", "/api/2.0/serving-endpoints/plain")
    ref = ep["config"]["served_entities"][0]["external_model"]["openai_config"]["openai_api_key"]
    assert ref.startswith("{{secrets/__brickyard/") and key not in json.dumps(ep)
    env.openai().chat.completions.create(model="plain", messages=[{"role": "user", "content": "x"}])
    assert upstream.seen[-1]["auth"] == f"Bearer {key}"
    # The key is in no metastore table, and not in the key file's neighbour either.
    import sqlite3

    con = sqlite3.connect(env.ws.settings.metastore_target)
    dump = "\n".join(con.iterdump())
    con.close()
    assert key not in dump
    # Another user cannot point their own endpoint at the stored key.
    dana = env.ws.create_token("dana@example.com")
    stolen = {"served_entities": [{"name": "s", "external_model": {
        "name": "m", "provider": "openai", "task": "llm/v1/chat",
        "openai_config": {"openai_api_base": upstream.url, "openai_api_key": ref}}}]}
    r = httpx.post(env.url + "/api/2.0/serving-endpoints", headers={"authorization": f"Bearer {dana}"},
                   json={"name": "borrow", "config": stolen})
    assert r.status_code == 400 and "reserved" in r.json()["message"]
    # The owner can send back what GET showed (an update keeps the stored key).
    env.admin.api_client.do("PUT", "/api/2.0/serving-endpoints/plain/config",
                            body={"served_entities": ep["config"]["served_entities"]})
    env.admin.serving_endpoints.wait_get_serving_endpoint_not_updating("plain")


def test_dns_is_pinned_for_external_models(upstream: Upstream, monkeypatch: pytest.MonkeyPatch) -> None:
    """T14: a name checked once cannot be rebound to another address for the connection."""
    import socket

    from brickyard.core.errors import InvalidParameterValue
    from brickyard.models._openai import OpenAICompatible

    port = int(upstream.url.split(":")[2].split("/")[0])
    answers = {"pinned.test": ["127.0.0.1", "10.0.0.1"], "evil.test": ["10.0.0.1"]}
    real = socket.getaddrinfo

    def fake(host: str, p: Any, *args: Any, **kwargs: Any) -> Any:
        if host in answers:
            ip = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, p))]
        return real(host, p, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    model = OpenAICompatible(f"http://pinned.test:{port}/v1", model="m",
                             allowed_hosts=frozenset({f"pinned.test:{port}"}))
    for _ in range(3):  # later lookups would say 10.0.0.1; the connection keeps the checked address
        assert model.chat({"messages": [{"role": "user", "content": "x"}]})["choices"]
    model.close()
    with pytest.raises(InvalidParameterValue, match="a (private-use|loopback) address"):
        OpenAICompatible(f"http://evil.test:{port}/v1", model="m")
