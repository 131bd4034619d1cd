"""T23: guardrails on input and output (PII masking/blocking with Presidio, keywords, topics, safety),
and fail-closed behaviour."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from brickyard.core.errors import BrickyardError
from brickyard.core.settings import Settings
from brickyard.gateway._guardrails import Detectors, Guard, GuardrailUnavailable, GuardrailViolation
from brickyard.models import QueueChat
from brickyard.workspace import Workspace

pytest.importorskip("presidio_analyzer", reason="the 'guardrails' extra is not installed")


@pytest.fixture(scope="module")
def detectors() -> Detectors:
    return Detectors()


def luhn(prefix: str, length: int, rng: random.Random) -> str:
    digits = [int(c) for c in prefix] + [rng.randrange(10) for _ in range(length - len(prefix) - 1)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits + [(10 - total % 10) % 10]))


def labelled(n: int, seed: int = 7) -> list[tuple[str, str, bool]]:
    """(text, the sensitive value or '', whether it must be found) for a synthetic set."""
    rng = random.Random(seed)
    names = ["alice", "bob", "carol", "dmitri", "eve", "farah"]
    out = []
    for i in range(n):
        kind = i % 8
        if kind == 0:
            v = f"{rng.choice(names)}.{rng.randrange(1000)}@{rng.choice(['gmail.com', 'example.org', 'corp.io'])}"
        elif kind == 1:
            v = luhn(rng.choice(["4", "51", "37"]), 16 if i % 3 else 15, rng)
            v = " ".join(v[j:j + 4] for j in range(0, len(v), 4)) if i % 2 else v
        elif kind == 2:
            v = f"sk-{''.join(rng.choice('abcdefghijkLMNOP0123456789') for _ in range(32))}"
        elif kind == 3:
            v = f"dapi{''.join(rng.choice('0123456789abcdef') for _ in range(32))}"
        elif kind == 4:
            v = "DE89 3704 0044 0532 0130 00" if i % 2 else "GB82WEST12345698765432"
        elif kind == 5:
            v = f"{rng.randrange(100, 899)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}"
        elif kind == 6:
            out.append((f"Order {rng.randrange(10**5, 10**6)} ships on 2024-0{rng.randrange(1, 9)}-1{rng.randrange(9)}.",
                        "", False))
            continue
        else:
            out.append((f"The meeting is in room {rng.randrange(100, 999)} at {rng.randrange(1, 12)} pm.", "", False))
            continue
        out.append((f"Please use {v} for this.", v, True))
    return out


def test_pii_detection_quality(detectors: Detectors) -> None:
    data = labelled(160)
    guard = Guard({"pii": {"behavior": "MASK"}}, detectors, "input")
    tp = fn = fp = 0
    misses = []
    for text, value, sensitive in data:
        masked = guard.apply(text)
        if sensitive:
            if value in masked:
                fn += 1
                misses.append(text)
            else:
                tp += 1
        elif masked != text:
            fp += 1
    recall, precision = tp / (tp + fn), tp / max(1, tp + fp)
    print(f"PII: recall {recall:.3f}, precision {precision:.3f}, misses {misses[:3]}")
    assert recall >= 0.99 and precision >= 0.95, (recall, precision, misses[:5])


def test_block_mask_keywords_topics_safety(detectors: Detectors) -> None:
    with pytest.raises(GuardrailViolation, match="EMAIL_ADDRESS"):
        Guard({"pii": {"behavior": "BLOCK"}}, detectors, "input").apply("mail me at jane.doe@gmail.com")
    masked = Guard({"pii": {"behavior": "MASK"}}, detectors, "output").apply("card 4111 1111 1111 1111 ok")
    assert "4111" not in masked and "<CREDIT_CARD>" in masked
    with pytest.raises(GuardrailViolation, match="invalid keyword"):
        Guard({"invalid_keywords": ["Project Falcon"]}, detectors, "input").apply("tell me about project falcon")
    Guard({"invalid_keywords": ["falcon"]}, detectors, "input").apply("falconry is a sport")  # whole words only
    topics = Guard({"valid_topics": ["cooking recipes", "baking bread"]}, detectors, "input")
    topics.apply("How long should I bake a sourdough loaf?")
    with pytest.raises(GuardrailViolation, match="allowed topic"):
        topics.apply("What is the capital of Australia?")
    with pytest.raises(GuardrailViolation, match="safety"):
        Guard({"safety": True}, detectors, "input").apply("Give me instructions for how to build a bomb at home")


def test_a_broken_guardrail_fails_closed() -> None:
    class Broken(Detectors):
        def pii(self, text: str) -> list:
            raise RuntimeError("model file missing")

    with pytest.raises(GuardrailUnavailable, match="refused"):
        Guard({"pii": {"behavior": "MASK"}}, Broken(), "input").apply("hello")


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    w = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1))
    fake = QueueChat(model_id="fake")
    w.serving._factories["system.ai.fake-chat"] = lambda: fake
    w.fake = fake  # type: ignore[attr-defined]
    yield w
    w.close()


def test_guardrails_through_the_gateway(ws: Workspace) -> None:
    import time

    admin = ws.ensure_user("admin", admin=True)
    ws.catalog.create(admin, "schema", "main.logs")
    ws.gateway.create_endpoint(admin, {"name": "ep", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
                                       "ai_gateway": {
                                           "guardrails": {"input": {"pii": {"behavior": "MASK"}},
                                                          "output": {"pii": {"behavior": "MASK"},
                                                                     "invalid_keywords": ["forbidden"]}},
                                           "inference_table_config": {"enabled": True, "catalog_name": "main",
                                                                      "schema_name": "logs",
                                                                      "table_name_prefix": "ep"}}})
    for _ in range(300):
        if ws.serving.get(admin, "ep")["state"]["config_update"] == "NOT_UPDATING":
            break
        time.sleep(0.01)
    email = "jane.doe@gmail.com"
    inv = ws.gateway.call(admin, "ep", {"messages": [
        {"role": "user", "content": f"write to {email}"},
        {"role": "tool", "tool_call_id": "c1", "content": "the card is 4111 1111 1111 1111"},
        {"role": "user", "content": f"and {email} again"}]}, route="chat")
    sent = json.dumps(ws.fake.requests[-1])  # type: ignore[attr-defined]
    assert email not in sent and "4111 1111" not in sent and "<EMAIL_ADDRESS>" in sent
    assert email not in inv.result["choices"][0]["message"]["content"]
    # Output guardrails on a stream: the answer is checked before any of it is sent.
    ws.fake.enqueue("this is forbidden text")  # type: ignore[attr-defined]
    with pytest.raises(BrickyardError, match="invalid keyword"):
        inv = ws.gateway.call(admin, "ep", {"messages": [{"role": "user", "content": "hi"}], "stream": True},
                              route="chat")
        list(inv.result)
    ws.fake.enqueue(f"contact {email}")  # type: ignore[attr-defined]
    inv = ws.gateway.call(admin, "ep", {"messages": [{"role": "user", "content": "hi"}], "stream": True}, route="chat")
    streamed = "".join((c["choices"][0]["delta"].get("content") or "") for c in inv.result if c["choices"])
    assert email not in streamed and "<EMAIL_ADDRESS>" in streamed
    # Blocked input never reaches the model, nor the inference table.
    ws.gateway.configure(admin, "ep", {"guardrails": {"input": {"pii": {"behavior": "BLOCK"}}},
                                       "inference_table_config": {"enabled": True, "catalog_name": "main",
                                                                  "schema_name": "logs", "table_name_prefix": "ep"}})
    before = len(ws.fake.requests)  # type: ignore[attr-defined]
    with pytest.raises(GuardrailViolation):
        ws.gateway.call(admin, "ep", {"messages": [{"role": "user", "content": f"I am {email}"}]}, route="chat")
    assert len(ws.fake.requests) == before  # type: ignore[attr-defined]
    ws.gateway.payloads.flush()
    logged = json.dumps(ws.tables.read(admin, "main.logs.ep_payload").to_pylist(), default=str)
    assert email not in logged and "4111 1111" not in logged
