"""The small interfaces that stages depend on. Requests and responses are the OpenAI wire shapes
(plain dicts), so what a provider receives is exactly what a client sent, visible in traces and logs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

__all__ = ["ChatModel", "Embedder"]


@runtime_checkable
class Embedder(Protocol):
    model_id: str
    dimension: int

    def embed(self, texts: list[str]) -> Any:
        """Vectors for ``texts``: an array-like of shape (len(texts), dimension), unit-normalised."""


@runtime_checkable
class ChatModel(Protocol):
    model_id: str

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        """An OpenAI ``chat.completion`` for an OpenAI chat request (``messages``, ``max_tokens``, ...)."""

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The same answer as ``chat.completion.chunk`` dicts, ending with one that has ``usage``."""
