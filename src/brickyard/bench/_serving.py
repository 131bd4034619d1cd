"""``brickyard bench serving``: the local models through a serving endpoint against calling them in-process.

Same requests, same machine, one run: chat generation tokens/s (SmolLM2 on llama.cpp) and embedding
passages/s (MiniLM). The endpoint path adds HTTP, auth, the gateway and JSON; the target is to lose at
most 10 % of the in-process throughput.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._gateway import _free_port, _wait

PROMPT = ("Delta Lake keeps a transaction log next to the data files. Every write adds a commit that lists "
          "the files it added and removed, so readers always see a consistent snapshot. Explain this briefly.")
PASSAGES = [("Vector search indexes embed each chunk of a document and answer nearest-neighbour queries; "
             "hybrid search adds keyword matching and merges both rankings. ") * 2 + str(i) for i in range(32)]


def run_serving_bench(*, rounds: int = 3, max_tokens: int = 64) -> dict[str, Any]:
    from openai import OpenAI

    from ..core.settings import Settings
    from ..models._llamacpp import LlamaCppChat
    from ..models._minilm import MiniLMEmbedder
    from ..workspace import Workspace

    request = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens, "temperature": 0}
    results: dict[str, Any] = {}
    # In-process first, then the server (each side alone on the machine while it runs).
    chat = LlamaCppChat()
    chat.chat(request)
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        r = chat.chat(request)
        rates.append(r["usage"]["completion_tokens"] / (time.perf_counter() - t))
    results["chat_in_process_tokens_per_s"] = round(statistics.median(rates), 1)
    del chat
    embedder = MiniLMEmbedder()
    embedder.embed(PASSAGES[:4])
    t = time.perf_counter()
    for _ in range(rounds):
        embedder.embed(PASSAGES)
    results["embed_in_process_passages_per_s"] = round(rounds * len(PASSAGES) / (time.perf_counter() - t), 1)
    del embedder

    home = Path(tempfile.mkdtemp(prefix="brickyard-bench-"))
    ws = Workspace(Settings(home=home))
    token = ws.create_token("bench@example.com", admin=True)
    ws.close()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "brickyard.cli", "serve", "--home", str(home), "--port",
                               str(port), "--log-level", "warning"])
    try:
        _wait(f"http://127.0.0.1:{port}/health", server)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/serving-endpoints", api_key=token, max_retries=0)
        model = "databricks-meta-llama-3-3-70b-instruct"
        client.chat.completions.create(model=model, **request)
        rates = []
        for _ in range(rounds):
            t = time.perf_counter()
            r = client.chat.completions.create(model=model, **request)
            rates.append(r.usage.completion_tokens / (time.perf_counter() - t))
        results["chat_endpoint_tokens_per_s"] = round(statistics.median(rates), 1)
        client.embeddings.create(model="databricks-gte-large-en", input=PASSAGES[:4])
        t = time.perf_counter()
        for _ in range(rounds):
            client.embeddings.create(model="databricks-gte-large-en", input=PASSAGES)
        results["embed_endpoint_passages_per_s"] = round(rounds * len(PASSAGES) / (time.perf_counter() - t), 1)
    finally:
        server.terminate()
        server.wait(timeout=10)
    results["chat_ratio"] = round(results["chat_endpoint_tokens_per_s"] / results["chat_in_process_tokens_per_s"], 3)
    results["embed_ratio"] = round(results["embed_endpoint_passages_per_s"]
                                   / results["embed_in_process_passages_per_s"], 3)
    results["config"] = {"rounds": rounds, "max_tokens": max_tokens, "passages": len(PASSAGES)}
    return results
