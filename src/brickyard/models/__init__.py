"""Model providers behind the ``ChatModel`` / ``Embedder`` protocols: the offline defaults that ship in
packages, OpenAI-compatible servers, and deterministic fakes for tests."""

from ._fakes import HashEmbedder, QueueChat
from ._tokens import count_messages, count_tokens

__all__ = ["HashEmbedder", "LlamaCppChat", "MiniLMEmbedder", "QueueChat", "count_messages", "count_tokens"]


def __getattr__(name: str) -> object:
    if name == "LlamaCppChat":
        from ._llamacpp import LlamaCppChat

        return LlamaCppChat
    if name == "MiniLMEmbedder":
        from ._minilm import MiniLMEmbedder

        return MiniLMEmbedder
    raise AttributeError(name)
