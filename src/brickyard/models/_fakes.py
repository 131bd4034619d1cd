"""Deterministic models for tests (public, so plugin authors can use them too)."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._tokens import count_messages, count_tokens


def completion(model: str, content: str | None, *, prompt_tokens: int, tool_calls: list[dict[str, Any]] | None = None,
               finish_reason: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    completion_tokens = count_tokens(content or "") + sum(count_tokens(str(t)) for t in tool_calls or [])
    return {
        "id": "chatcmpl-" + hashlib.sha1(f"{time.time_ns()}".encode()).hexdigest()[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop")}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def chunks_of(response: dict[str, Any], pieces: int = 4) -> Iterator[dict[str, Any]]:
    """Split a finished completion into stream chunks (role first, content in pieces, usage last)."""
    base = {"id": response["id"], "object": "chat.completion.chunk", "created": response["created"],
            "model": response["model"]}
    choice = response["choices"][0]
    yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    content = choice["message"].get("content") or ""
    step = max(1, -(-len(content) // pieces)) if content else 1
    for i in range(0, len(content), step):
        yield {**base, "choices": [{"index": 0, "delta": {"content": content[i:i + step]}, "finish_reason": None}]}
    for i, call in enumerate(choice["message"].get("tool_calls") or []):
        yield {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{**call, "index": i}]}, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}],
           "usage": response["usage"]}


class QueueChat:
    """Answers with queued replies (strings, or dicts with ``tool_calls``), then echoes the last user message
    (as it is when a ``response_format`` asks for JSON)."""

    def __init__(self, model_id: str = "fake-chat", replies: list[Any] | None = None, delay: float = 0.0) -> None:
        self.model_id = model_id
        self.replies: deque[Any] = deque(replies or [])
        self.requests: list[dict[str, Any]] = []
        self.delay = delay
        self._lock = threading.Lock()

    def enqueue(self, *replies: Any) -> None:
        self.replies.extend(replies)

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.requests.append(request)
            reply = self.replies.popleft() if self.replies else None
        if self.delay:
            time.sleep(self.delay)
        if isinstance(reply, BaseException):
            raise reply
        messages = request.get("messages") or []
        prompt_tokens = count_messages(messages)
        if isinstance(reply, dict):
            return completion(self.model_id, reply.get("content"), prompt_tokens=prompt_tokens,
                              tool_calls=reply.get("tool_calls"))
        if reply is None:
            last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
            # asked for JSON (response_format), it answers the user's words as they are, so a test controls the
            # JSON it gets back; otherwise it echoes them
            wants_json = str((request.get("response_format") or {}).get("type", "")).startswith("json")
            reply = str(last.get("content", "")) if wants_json else f"echo: {last.get('content', '')}"
        return completion(self.model_id, str(reply), prompt_tokens=prompt_tokens)

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from chunks_of(self.chat(request))


class ObedientChat:
    """A scripted model that does whatever any message tells it to (for prompt-injection tests, T15).

    A line ``CALL <tool> <json arguments>`` anywhere in the conversation (the user's words, a system
    prompt, a retrieved document, a tool's output) is obeyed once, in order of appearance, as a tool call.
    With nothing left to obey it answers with what the tools returned. So whatever an injected
    instruction can make a real model do, this one does; the platform around it must contain it."""

    DIRECTIVE = re.compile(r"CALL ([A-Za-z0-9_.\-]+) (\{.*?\})\s*(?:$|\n)", re.MULTILINE)

    def __init__(self, model_id: str = "fake-obedient") -> None:
        self.model_id = model_id

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        messages = request.get("messages") or []
        prompt_tokens = count_messages(messages)
        done = [(c["function"]["name"], c["function"].get("arguments") or "{}")
                for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []]
        for m in messages:
            for name, args in self.DIRECTIVE.findall(_readable(_text_of(m.get("content")))):
                if (name, args) in done:
                    done.remove((name, args))
                    continue
                call = {"id": "call_" + hashlib.sha1(f"{name}{args}{len(messages)}".encode()).hexdigest()[:12],
                        "type": "function", "function": {"name": name, "arguments": args}}
                return completion(self.model_id, None, prompt_tokens=prompt_tokens, tool_calls=[call])
        outputs = [_text_of(m.get("content")) for m in messages if m.get("role") == "tool"]
        if outputs:
            return completion(self.model_id, "ANSWER: " + " | ".join(o[:300] for o in outputs[-3:]),
                              prompt_tokens=prompt_tokens)
        last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
        return completion(self.model_id, f"ANSWER: {_text_of(last.get('content'))}", prompt_tokens=prompt_tokens)

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield from chunks_of(self.chat(request))


def _readable(text: str) -> str:
    """What a model reading ``text`` would read: a JSON document's strings, unescaped, one per line."""
    import json

    try:
        value = json.loads(text)
    except ValueError:
        return text
    found: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            found.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    return "\n".join(found) if found else text


def _text_of(content: Any) -> str:
    if isinstance(content, list):  # content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


class HashEmbedder:
    """Deterministic unit vectors from a hash of each text: equal texts, equal vectors."""

    def __init__(self, dimension: int = 64, model_id: str = "fake-embedding") -> None:
        self.dimension = dimension
        self.model_id = model_id

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out
