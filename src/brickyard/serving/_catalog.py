"""Which models Brickyard can serve without any configuration, and the Databricks foundation-model
endpoint names that stand in for them (so notebooks written for Databricks run unchanged)."""

from __future__ import annotations

from dataclasses import dataclass

CHAT, COMPLETIONS, EMBEDDINGS = "llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"
RERANK = "llm/v1/rerank"  # Brickyard's own: an external /rerank provider (vLLM, TEI, Jina, Cohere-compatible)
TASKS = (CHAT, COMPLETIONS, EMBEDDINGS, RERANK)


@dataclass(frozen=True)
class LocalModel:
    entity_name: str
    task: str
    display_name: str
    kind: str  # "llamacpp" | "minilm" | "fake-chat" | "fake-obedient" | "fake-embedding"


LOCAL_MODELS = {
    m.entity_name: m
    for m in (
        LocalModel("system.ai.smollm2-135m-instruct", CHAT, "SmolLM2-135M-Instruct (llama.cpp, offline)", "llamacpp"),
        LocalModel("system.ai.all-minilm-l6-v2", EMBEDDINGS, "all-MiniLM-L6-v2 (384-d, offline)", "minilm"),
        LocalModel("system.ai.fake-chat", CHAT, "Deterministic echo model for tests", "fake-chat"),
        LocalModel("system.ai.fake-obedient", CHAT, "Scripted model that obeys any CALL line (injection tests)",
                   "fake-obedient"),
        LocalModel("system.ai.fake-embedding", EMBEDDINGS, "Deterministic hash embeddings for tests", "fake-embedding"),
    )
}

_CHAT = "system.ai.smollm2-135m-instruct"
_EMBED = "system.ai.all-minilm-l6-v2"

#: Databricks pay-per-token endpoint names -> (local stand-in, the model Databricks serves under that name)
FOUNDATION_STANDINS: dict[str, tuple[str, str]] = {
    "databricks-meta-llama-3-3-70b-instruct": (_CHAT, "Meta Llama 3.3 70B Instruct"),
    "databricks-meta-llama-3-1-8b-instruct": (_CHAT, "Meta Llama 3.1 8B Instruct"),
    "databricks-meta-llama-3-1-405b-instruct": (_CHAT, "Meta Llama 3.1 405B Instruct"),
    "databricks-llama-4-maverick": (_CHAT, "Llama 4 Maverick"),
    "databricks-claude-sonnet-4": (_CHAT, "Claude Sonnet 4"),
    "databricks-claude-3-7-sonnet": (_CHAT, "Claude 3.7 Sonnet"),
    "databricks-gpt-oss-20b": (_CHAT, "GPT OSS 20B"),
    "databricks-gpt-oss-120b": (_CHAT, "GPT OSS 120B"),
    "databricks-gemma-3-12b": (_CHAT, "Gemma 3 12B"),
    "databricks-qwen3-next-80b-a3b-instruct": (_CHAT, "Qwen3 Next 80B A3B Instruct"),
    "databricks-gte-large-en": (_EMBED, "GTE Large (En)"),
    "databricks-bge-large-en": (_EMBED, "BGE Large (En)"),
}
