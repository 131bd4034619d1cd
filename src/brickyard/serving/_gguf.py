"""Your own weights: a GGUF file in a Unity Catalog volume served on llama.cpp as a chat endpoint.

A served entity names the file instead of a registered model::

    {"name": "qwen", "entity_name": "/Volumes/main/llm/weights/qwen2.5-7b-instruct-q4_k_m.gguf",
     "gguf_config": {"n_ctx": 8192, "threads": 4,
                     "lora_adapters": [{"path": "/Volumes/main/llm/weights/support-tone.gguf", "scale": 1.0}]}}

Whoever gives the config must be able to read every file (READ VOLUME); the files must be GGUF (their magic
number is checked). The model is loaded when the config deploys -- a file llama.cpp cannot load fails the
update (UPDATE_FAILED with llama.cpp's reason), never the first request -- and is freed when no endpoint
serves it any more. LoRA adapters (GGUF, as llama.cpp's convert_lora_to_gguf.py writes them) are applied at
load; a runtime without LoRA support refuses them with a reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..catalog import Principal
from ..core.errors import InvalidParameterValue

GGUF_MAGIC = b"GGUF"
MAX_ADAPTERS = 8


def is_gguf_entity(entity_name: Any) -> bool:
    return isinstance(entity_name, str) and entity_name.startswith("/Volumes/")


def _readable_gguf(volumes: Any, p: Principal, path: Any, what: str) -> Path:
    if not isinstance(path, str) or not path.startswith("/Volumes/") or not path.lower().endswith(".gguf"):
        raise InvalidParameterValue(f"{what} must be a .gguf file in a volume (/Volumes/catalog/schema/volume/...)")
    _info, local = volumes.open(p, path)  # READ VOLUME checked; 404 if missing
    with open(local, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise InvalidParameterValue(f"{path} is not a GGUF file (llama.cpp serves GGUF; convert the weights "
                                        "with llama.cpp's convert_hf_to_gguf.py)")
    return Path(local)


def is_gguf(entity: dict[str, Any]) -> bool:
    """Whether a (checked) served entity runs on llama.cpp in the server: a GGUF from a volume, or a registered
    version logged with :mod:`brickyard.models.gguf_model`."""
    return "gguf_config" in entity


def check_entity(volumes: Any, p: Principal, ent: dict[str, Any], where: str) -> dict[str, Any]:
    """A GGUF served entity, checked for ``p`` (who gives the config)."""
    if volumes is None:
        raise InvalidParameterValue("this workspace has no volumes to serve GGUF files from")
    path = ent["entity_name"]
    _readable_gguf(volumes, p, path, f"{where}.entity_name")
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", Path(path).stem)[:63].strip("-") or "gguf"
    return {"name": ent.get("name") or stem, "entity_name": path,
            "gguf_config": check_config(volumes, p, ent.get("gguf_config"), where)}


def check_config(volumes: Any, p: Principal, raw: Any, where: str) -> dict[str, Any]:
    """A served GGUF entity's ``gguf_config`` (n_ctx, threads, LoRA adapters from volumes), checked for ``p``."""
    raw = raw or {}
    if not isinstance(raw, dict) or set(raw) - {"n_ctx", "threads", "lora_adapters"}:
        raise InvalidParameterValue(f"{where}.gguf_config takes n_ctx, threads and lora_adapters")
    cpus = os.cpu_count() or 1
    n_ctx, threads = raw.get("n_ctx", 4096), raw.get("threads", min(4, cpus))
    if not isinstance(n_ctx, int) or isinstance(n_ctx, bool) or not 256 <= n_ctx <= 131072:
        raise InvalidParameterValue(f"{where}.gguf_config.n_ctx must be an integer from 256 to 131072")
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= cpus:
        raise InvalidParameterValue(f"{where}.gguf_config.threads must be from 1 to {cpus} (this machine's CPUs)")
    adapters = raw.get("lora_adapters") or []
    if not isinstance(adapters, list) or len(adapters) > MAX_ADAPTERS:
        raise InvalidParameterValue(f"{where}.gguf_config.lora_adapters must be a list of at most {MAX_ADAPTERS} "
                                    "{path, scale}")
    clean_adapters = []
    for n, adapter in enumerate(adapters):
        if not isinstance(adapter, dict):
            raise InvalidParameterValue(f"{where}.gguf_config.lora_adapters[{n}] must be {{path, scale}}")
        _readable_gguf(volumes, p, adapter.get("path"), f"{where}.gguf_config.lora_adapters[{n}].path")
        scale = adapter.get("scale", 1.0)
        if not isinstance(scale, int | float) or isinstance(scale, bool) or not 0 < scale <= 4:
            raise InvalidParameterValue(f"{where}.gguf_config.lora_adapters[{n}].scale must be in (0, 4]")
        clean_adapters.append({"path": adapter["path"], "scale": float(scale)})
    return {"n_ctx": n_ctx, "threads": threads, "lora_adapters": clean_adapters}


def load(volumes: Any, system: Principal, entity: dict[str, Any], path: Path | None = None) -> Any:
    """The llama.cpp model of a GGUF entity: ``path`` (a registered version's file) or its volume file, resolved
    again (it may have been removed)."""
    from ..models._llamacpp import LlamaCppChat

    cfg = entity.get("gguf_config") or {}
    if path is None:
        path = _readable_gguf(volumes, system, entity["entity_name"], "entity_name")
    lora = [(str(_readable_gguf(volumes, system, a["path"], "lora adapter")), a["scale"])
            for a in cfg.get("lora_adapters") or []]
    try:
        return LlamaCppChat(path, model_id=entity["name"], n_ctx=cfg.get("n_ctx", 4096),
                            threads=cfg.get("threads", 1), batch_threads=cfg.get("threads", 1), lora=lora)
    except (RuntimeError, ValueError) as exc:
        hint = (" with its LoRA adapters (each must be a LoRA GGUF made for this very base model)" if lora else "")
        raise InvalidParameterValue(f"llama.cpp could not load {entity['entity_name']}{hint}: {exc}") from None
