"""The OpenAI Responses API on top of chat endpoints: request -> chat messages, chat completion ->
``response`` object, chat chunks -> response stream events."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from ..core.errors import InvalidParameterValue


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    raise InvalidParameterValue("message content must be a string or a list of text parts")


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A chat request for a Responses API request (``input``, ``instructions``, ``tools``, ...)."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": _text(body["instructions"])})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise InvalidParameterValue("input must be a string or a non-empty list of items")
    for item in items:
        if not isinstance(item, dict):
            raise InvalidParameterValue("each input item must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            messages.append({"role": "system" if role == "developer" else role, "content": _text(item.get("content"))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": item.get("call_id"), "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "{}")}}]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(item.get("output"))})
        else:
            raise InvalidParameterValue(f"input items of type {str(kind)[:40]!r} are not supported")
    chat: dict[str, Any] = {"messages": messages}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    for key in ("temperature", "top_p", "stream"):
        if body.get(key) is not None:
            chat[key] = body[key]
    tools = body.get("tools")
    if tools:
        chat["tools"] = [{"type": "function", "function": {k: t[k] for k in ("name", "description", "parameters")
                                                           if k in t}}
                         for t in tools if isinstance(t, dict) and t.get("type") == "function"]
        if body.get("tool_choice") is not None:
            choice = body["tool_choice"]
            chat["tool_choice"] = ({"type": "function", "function": {"name": choice.get("name")}}
                                   if isinstance(choice, dict) else choice)
    for key in ("client_request_id", "usage_context"):
        if key in body:
            chat[key] = body[key]
    return chat


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    i, o = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"input_tokens": i, "output_tokens": o, "total_tokens": i + o,
            "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}


def _envelope(rid: str, model: str, created: int, status: str, output: list[dict[str, Any]],
              usage: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": rid, "object": "response", "created_at": created, "model": model, "status": status,
            "output": output, "usage": _usage(usage) if usage is not None else None, "error": None,
            "incomplete_details": None, "instructions": None, "metadata": {}, "parallel_tool_calls": False,
            "temperature": None, "tool_choice": "auto", "tools": [], "top_p": None}


def from_chat(result: dict[str, Any], model: str) -> dict[str, Any]:
    message = result["choices"][0]["message"]
    output: list[dict[str, Any]] = []
    for call in message.get("tool_calls") or []:
        output.append({"type": "function_call", "id": "fc_" + uuid.uuid4().hex[:24], "call_id": call["id"],
                       "name": call["function"]["name"], "arguments": call["function"].get("arguments", "{}"),
                       "status": "completed"})
    if message.get("content"):
        output.append({"type": "message", "id": "msg_" + uuid.uuid4().hex[:24], "role": "assistant",
                       "status": "completed",
                       "content": [{"type": "output_text", "text": message["content"], "annotations": []}]})
    return _envelope("resp_" + uuid.uuid4().hex[:24], model, int(result.get("created") or time.time()), "completed",
                     output, result.get("usage"))


def stream_events(chunks: Iterator[dict[str, Any]], model: str) -> Iterator[dict[str, Any]]:
    """Response stream events (``response.created`` ... ``response.completed``) from chat chunks."""
    rid, mid, created = "resp_" + uuid.uuid4().hex[:24], "msg_" + uuid.uuid4().hex[:24], int(time.time())
    seq = 0

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return {"type": kind, "sequence_number": seq, **fields}

    yield event("response.created", response=_envelope(rid, model, created, "in_progress", [], None))
    item = {"type": "message", "id": mid, "role": "assistant", "status": "in_progress", "content": []}
    yield event("response.output_item.added", output_index=0, item=item)
    yield event("response.content_part.added", output_index=0, item_id=mid, content_index=0,
                part={"type": "output_text", "text": "", "annotations": []})
    text: list[str] = []
    usage: dict[str, Any] | None = None
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = (choice.get("delta") or {}).get("content")
            if delta:
                text.append(delta)
                yield event("response.output_text.delta", output_index=0, item_id=mid, content_index=0, delta=delta,
                            logprobs=[])
    full = "".join(text)
    part = {"type": "output_text", "text": full, "annotations": []}
    yield event("response.output_text.done", output_index=0, item_id=mid, content_index=0, text=full, logprobs=[])
    yield event("response.content_part.done", output_index=0, item_id=mid, content_index=0, part=part)
    done_item = {**item, "status": "completed", "content": [part]}
    yield event("response.output_item.done", output_index=0, item=done_item)
    yield event("response.completed", response=_envelope(rid, model, created, "completed", [done_item], usage))


def dumps(event: dict[str, Any]) -> bytes:
    return (f"event: {event['type']}\n".encode() + b"data: " + json.dumps(event, separators=(",", ":")).encode()
            + b"\n\n")


# -- agent endpoints: their output already is Responses items -----------------------------------------------
def _complete_item(item: dict[str, Any]) -> dict[str, Any]:
    """An agent's output item as the OpenAI client expects it (ids, status, annotations)."""
    out = dict(item)
    out.setdefault("status", "completed")
    kind = out.get("type")
    if kind == "message":
        out.setdefault("id", "msg_" + uuid.uuid4().hex[:24])
        out.setdefault("role", "assistant")
        out["content"] = [{"annotations": [], **c} if isinstance(c, dict) and c.get("type") == "output_text" else c
                          for c in out.get("content") or []]
    elif kind == "function_call":
        out.setdefault("id", "fc_" + uuid.uuid4().hex[:24])
    elif kind == "function_call_output":
        out.setdefault("id", "fco_" + uuid.uuid4().hex[:24])
    return out


def from_agent(result: dict[str, Any], model: str) -> dict[str, Any]:
    """A ``ResponsesAgentResponse`` as a ``response`` object (custom and Databricks outputs kept)."""
    out = _envelope("resp_" + uuid.uuid4().hex[:24], model, int(time.time()), "completed",
                    [_complete_item(i) for i in result.get("output") or [] if isinstance(i, dict)], None)
    for key in ("custom_outputs", "databricks_output"):
        if result.get(key) is not None:
            out[key] = result[key]
    return out


def agent_stream_events(events: Iterator[dict[str, Any]], model: str) -> Iterator[dict[str, Any]]:
    """An agent's stream events, framed as a Responses stream: ``response.created`` first, numbered events,
    and ``response.completed`` with every finished output item last."""
    rid, created, seq = "resp_" + uuid.uuid4().hex[:24], int(time.time()), 0
    done: list[dict[str, Any]] = []
    custom: dict[str, Any] = {}

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return {**fields, "type": kind, "sequence_number": seq}

    yield event("response.created", response=_envelope(rid, model, created, "in_progress", [], None))
    for raw in events:
        kind = raw.get("type") if isinstance(raw, dict) else None
        if not kind:
            continue
        fields = {k: v for k, v in raw.items() if k not in ("type", "sequence_number")}
        if raw.get("custom_outputs"):
            custom.update(raw["custom_outputs"])
        if kind == "response.output_item.done" and isinstance(raw.get("item"), dict):
            fields["item"] = _complete_item(raw["item"])
            fields.setdefault("output_index", len(done))
            done.append(fields["item"])
        elif kind == "response.output_text.delta":
            fields.setdefault("output_index", len(done))
            fields.setdefault("content_index", 0)
            fields.setdefault("logprobs", [])
        elif kind == "error":
            yield event("error", code="AGENT_ERROR", message=str((raw.get("error") or {}).get("message", "failed")),
                        param=None)
            return
        yield event(kind, **fields)
    final = _envelope(rid, model, created, "completed", done, None)
    if custom:
        final["custom_outputs"] = custom
    yield event("response.completed", response=final)


def _message_text(item: dict[str, Any]) -> str:
    return "".join(str(c.get("text", "")) for c in item.get("content") or []
                   if isinstance(c, dict) and c.get("type") == "output_text")


def agent_to_chat(result: dict[str, Any], model: str) -> dict[str, Any]:
    """A ``ResponsesAgentResponse`` as a chat completion (the text of its messages; tool calls it ran are its own
    business), for a Chat Completions client of an agent endpoint."""
    text = "".join(_message_text(i) for i in result.get("output") or []
                   if isinstance(i, dict) and i.get("type") == "message")
    out: dict[str, Any] = {"id": "chatcmpl-" + uuid.uuid4().hex[:24], "object": "chat.completion",
                           "created": int(time.time()), "model": model,
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}
    for key in ("custom_outputs", "databricks_output"):
        if result.get(key) is not None:
            out[key] = result[key]
    return out


def agent_chat_chunks(events: Iterator[dict[str, Any]], model: str) -> Iterator[dict[str, Any]]:
    """An agent's stream events as chat completion chunks: text deltas as they come (or a finished message's text
    when the agent streamed none), then the closing chunk."""
    cid, created, streamed = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time()), False

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    for raw in events:
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind == "response.output_text.delta" and raw.get("delta"):
            streamed = True
            yield chunk({"content": str(raw["delta"])})
        elif kind == "response.output_item.done" and not streamed and isinstance(raw.get("item"), dict) \
                and raw["item"].get("type") == "message":
            yield chunk({"content": _message_text(raw["item"])})
        elif kind == "error":
            yield chunk({"content": f"[the agent failed: {(raw.get('error') or {}).get('message', 'error')}]"}, "stop")
            return
    yield chunk({}, "stop")
