"""Bring your own weights: a GGUF file in a Unity Catalog volume served on llama.cpp as a chat endpoint, with a
LoRA adapter applied at load; reading the files is governed (READ VOLUME), a file that is not GGUF or that
llama.cpp cannot load fails the config, and the model is freed when no endpoint serves it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

pytest.importorskip("xllamacpp", reason="needs the 'local' extra (llama.cpp)")
gguf = pytest.importorskip("gguf", reason="needs the gguf package (dev dependency) to write a LoRA adapter")

WEIGHTS = "/Volumes/main/llm/weights"
QUESTION = {"messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 12, "temperature": 0}


def write_lora(base: Path, target: Path, *, rank: int = 4, seed: int = 0) -> None:
    """A LoRA adapter for ``base`` (random low-rank updates of every attention query projection), in the GGUF
    layout llama.cpp's convert_lora_to_gguf.py writes."""
    import numpy as np

    shapes = {t.name: [int(x) for x in t.shape] for t in gguf.GGUFReader(str(base)).tensors}
    writer = gguf.GGUFWriter(str(target), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(2 * rank))
    rng = np.random.default_rng(seed)
    for name, (n_in, n_out) in ((n, s) for n, s in shapes.items() if n.endswith("attn_q.weight")):
        writer.add_tensor(name + ".lora_a", (rng.standard_normal((rank, n_in)) * 0.5).astype(np.float32))
        writer.add_tensor(name + ".lora_b", (rng.standard_normal((n_out, rank)) * 0.5).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from brickyard.models._llamacpp import default_gguf

    tmp = tmp_path_factory.mktemp("gguf")
    ws = Workspace(Settings(home=tmp / "home", access_log="off", monitor_interval_seconds=0))
    ws.ensure_user("root@example.com", admin=True)
    root = ws.principal("root@example.com")
    tokens = {u: ws.create_token(f"{u}@example.com") for u in ("alice", "bob")}
    ws.catalog.create(root, "schema", "main.llm")
    ws.volumes.create(root, "main.llm.weights")
    ws.catalog.update_grants(root, "catalog", "main", [{"principal": "alice@example.com", "add": ["USE_CATALOG"]}])
    ws.catalog.update_grants(root, "schema", "main.llm", [{"principal": "alice@example.com",
                                                           "add": ["USE_SCHEMA", "READ_VOLUME", "CREATE_MODEL"]}])
    base = default_gguf()
    with base.open("rb") as f:
        ws.volumes.upload(root, f"{WEIGHTS}/smollm2.gguf", f)
    write_lora(base, tmp / "tone.gguf")
    ws.volumes.upload(root, f"{WEIGHTS}/tone.gguf", (tmp / "tone.gguf").read_bytes())
    ws.volumes.upload(root, f"{WEIGHTS}/notes.gguf", b"these are notes, not weights")
    with serve(ws) as url:
        yield {"ws": ws, "url": url, "tokens": tokens, "base": base}
    ws.close()


def _create(env: dict[str, Any], name: str, entity: dict[str, Any], user: str = "alice") -> httpx.Response:
    h = {"authorization": f"Bearer {env['tokens'][user]}"}
    created = httpx.post(env["url"] + "/api/2.0/serving-endpoints", headers=h,
                         json={"name": name, "config": {"served_entities": [entity]}})
    if created.status_code != 200:
        return created
    for _ in range(3000):
        shown = httpx.get(env["url"] + f"/api/2.0/serving-endpoints/{name}", headers=h)
        if shown.json()["state"]["config_update"] != "IN_PROGRESS":
            return shown
        time.sleep(0.05)
    raise AssertionError("not deployed")


def _chat(env: dict[str, Any], endpoint: str) -> str:
    from openai import OpenAI

    client = OpenAI(base_url=env["url"] + "/serving-endpoints", api_key=env["tokens"]["alice"])
    return str(client.chat.completions.create(model=endpoint, **QUESTION).choices[0].message.content)


def test_a_gguf_from_a_volume_answers_as_that_model(env: dict[str, Any]) -> None:
    from brickyard.models._llamacpp import LlamaCppChat

    shown = _create(env, "byo", {"entity_name": f"{WEIGHTS}/smollm2.gguf", "gguf_config": {"n_ctx": 2048,
                                                                                         "threads": 1}})
    assert shown.json()["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}, shown.text
    assert shown.json()["task"] == "llm/v1/chat"
    assert shown.json()["config"]["served_entities"][0]["name"] == "smollm2"
    expected = LlamaCppChat(env["base"], n_ctx=2048).chat(QUESTION)["choices"][0]["message"]["content"]
    assert _chat(env, "byo") == expected  # the very weights in the volume, greedy decoding


def test_a_lora_adapter_is_applied_at_load_and_the_model_is_freed_after(env: dict[str, Any]) -> None:
    from brickyard.models._llamacpp import LlamaCppChat

    plain = LlamaCppChat(env["base"], n_ctx=2048).chat(QUESTION)["choices"][0]["message"]["content"]
    shown = _create(env, "byo-tuned", {"entity_name": f"{WEIGHTS}/smollm2.gguf", "gguf_config": {
        "n_ctx": 2048, "threads": 1, "lora_adapters": [{"path": f"{WEIGHTS}/tone.gguf", "scale": 1.0}]}})
    assert shown.json()["state"]["config_update"] == "NOT_UPDATING", shown.text
    tuned = _chat(env, "byo-tuned")
    assert tuned and tuned != plain  # same base, same greedy decoding: only the adapter changed the answer
    loaded = [k for k in env["ws"].serving._models if "tone.gguf" in k]
    assert len(loaded) == 1
    httpx.delete(env["url"] + "/api/2.0/serving-endpoints/byo-tuned",
                 headers={"authorization": f"Bearer {env['tokens']['alice']}"})
    assert not [k for k in env["ws"].serving._models if "tone.gguf" in k]


def test_files_are_governed_and_checked(env: dict[str, Any]) -> None:
    refused = _create(env, "bobs", {"entity_name": f"{WEIGHTS}/smollm2.gguf"}, user="bob")
    assert refused.status_code == 403, refused.text
    notes = _create(env, "notes", {"entity_name": f"{WEIGHTS}/notes.gguf"})
    assert notes.status_code == 400 and "not a GGUF file" in notes.json()["message"]
    missing = _create(env, "missing", {"entity_name": f"{WEIGHTS}/absent.gguf"})
    assert missing.status_code == 404, missing.text
    too_many = _create(env, "threads", {"entity_name": f"{WEIGHTS}/smollm2.gguf", "gguf_config": {"threads": 999}})
    assert too_many.status_code == 400 and "threads" in too_many.json()["message"]
    wrong_adapter = _create(env, "wrong-adapter", {"entity_name": f"{WEIGHTS}/smollm2.gguf", "gguf_config": {
        "threads": 1, "lora_adapters": [{"path": f"{WEIGHTS}/smollm2.gguf"}]}})  # a model, not an adapter
    state = wrong_adapter.json()["state"]
    assert state["config_update"] == "UPDATE_FAILED" and "could not load" in state["message"], state


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_gguf_logged_as_a_model_is_registered_and_served(env: dict[str, Any]) -> None:
    """A fine-tuned or merged model as a Unity Catalog version: logged with brickyard.models.gguf_model, registered,
    served on llama.cpp in the server (no worker process), answering exactly as the file does."""
    import mlflow

    from brickyard.models import gguf_model
    from brickyard.models._llamacpp import LlamaCppChat
    from tests.conftest import mlflow_against

    with mlflow_against(env["url"], env["tokens"]["alice"], "/Users/alice@example.com/gguf"):
        with mlflow.start_run():
            gguf_model.log_model(env["base"], name="llm", registered_model_name="main.llm.smol")
    shown = _create(env, "smol", {"entity_name": "main.llm.smol", "entity_version": "1",
                                  "gguf_config": {"n_ctx": 2048, "threads": 1}})
    assert shown.json()["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}, shown.text
    assert shown.json()["task"] == "llm/v1/chat"
    assert env["ws"].serving.agents.pools_of(shown.json()["id"]) == []  # in the server, not a worker pool
    expected = LlamaCppChat(env["base"], n_ctx=2048).chat(QUESTION)["choices"][0]["message"]["content"]
    assert _chat(env, "smol") == expected
