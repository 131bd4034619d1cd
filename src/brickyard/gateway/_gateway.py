"""The AI Gateway: policy around every call to a serving endpoint.

Order per request: endpoint permission (CAN_QUERY) -> rate limits (exact; tokens reserved) -> the model
-> token settlement -> usage row. Configuration is per endpoint (``PUT .../ai-gateway``); parts that
Brickyard does not enforce yet are refused with 501 rather than accepted and ignored.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from ..catalog import Principal
from ..core.errors import BrickyardError
from ..core.ids import new_uuid
from ..models._fakes import chunks_of
from ..models._tokens import count_messages, count_tokens
from ..serving import Invocation, Serving
from ..serving._aigateway import parse_limits, payload_table, validate_config
from ._guardrails import Detectors, Guard, GuardrailViolation, texts_of
from ._limits import GroupCommit, RateLimiter, applicable
from ._usage import PAYLOAD_SCHEMA, BufferedSink, payload_row, usage_row


class Gateway:
    def __init__(self, serving: Serving, limiter: RateLimiter, usage: BufferedSink, payloads: BufferedSink, *,
                 secret_values: Callable[[], frozenset[str]] = frozenset, tables: Any = None) -> None:
        self.serving = serving
        self.limiter = limiter
        self.usage = usage
        self.payloads = payloads
        self.tables = tables
        self._secret_values = secret_values
        self.detectors = Detectors()
        self._secrets_cache: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._configs: dict[str, tuple[dict[str, Any], list[Any]]] = {}
        self._applicable: dict[tuple[Any, ...], list[Any]] = {}
        self.admission = GroupCommit(limiter)

    def secrets(self) -> frozenset[str]:
        at, values = self._secrets_cache
        if time.monotonic() - at > 5:
            values = self._secret_values()
            self._secrets_cache = (time.monotonic(), values)
        return values

    def create_endpoint(self, p: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """Create a serving endpoint; its inference table (if configured) first, with ``p``'s rights."""
        clean = validate_config(body.get("ai_gateway"))
        self._prepare_table(p, clean, str(body.get("name")))
        return self.serving.create(p, body)

    def _prepare_table(self, p: Principal, clean: dict[str, Any], name: str) -> None:
        table = payload_table(clean)
        if table is not None and self.tables is not None:
            if not self.tables.catalog.exists("table", table):
                self.tables.create(p, table, schema=PAYLOAD_SCHEMA, comment=f"Inference table of endpoint {name}")
            else:
                self.tables.catalog.require(p, "MODIFY", "table", table, action="configureInferenceTable")

    def configure(self, p: Principal, name: str, config: Any) -> dict[str, Any]:
        """Set an endpoint's ``ai_gateway``. An inference table is created now, owned by ``p``, who must be
        able to create tables in its schema."""
        clean = validate_config(config)
        if self.serving.get(p, name)["permission_level"] != "CAN_MANAGE":
            from ..core.errors import PermissionDenied

            raise PermissionDenied(f"{p.name} lacks CAN_MANAGE on serving endpoint '{name}'")
        self._prepare_table(p, clean, name)
        return self.serving.set_ai_gateway(p, name, clean)

    def call(self, p: Principal, name: str, body: dict[str, Any], *, route: str, served: str | None = None
             ) -> Invocation:
        """One data-plane request through every policy, for a blocking caller."""
        call = self._open(p, self.serving.endpoint_for_query(p, name), name, body, route)
        try:
            call.window = self.limiter.acquire(call.row["id"], call.pairs, call.reserve)
        except BrickyardError as exc:  # a rate-limited call is usage too (status 429): monitoring counts it
            call.failed(exc)
            raise
        try:
            request = call.guard_input()
            inv = self.serving.invoke(p, name, request, route=route, row=call.row, fallback=call.fallback,
                                      served=served)
            inv = call.guard_output(inv)
        except BrickyardError as exc:
            call.failed(exc)
            self.limiter.settle(*call.settlement())
            raise
        if inv.stream:
            return call.watch(inv, lambda: self.limiter.settle(*call.settlement()))
        call.succeeded(inv)
        self.limiter.settle(*call.settlement())
        return inv

    async def acall(self, p: Principal, name: str, body: dict[str, Any], *, route: str, served: str | None = None
                    ) -> Invocation:
        """:meth:`call` for the event loop: the endpoint view comes from the cache, rate limits from a group
        commit, external models from an async client; only guardrails and local models use a thread."""
        import anyio

        row = self.serving.endpoint_if_cached(p, name) or \
            await anyio.to_thread.run_sync(self.serving.endpoint_for_query, p, name)
        call = self._open(p, row, name, body, route)
        try:
            call.window = await self.admission.acquire(row["id"], call.pairs, call.reserve)
        except BrickyardError as exc:
            call.failed(exc)
            raise
        try:
            request = await anyio.to_thread.run_sync(call.guard_input) if call.input_guarded else body
            inv = await self.serving.ainvoke(p, name, request, route=route, row=row, fallback=call.fallback,
                                             served=served)
            if call.output_guarded:
                inv = await anyio.to_thread.run_sync(call.guard_output, inv)
        except BrickyardError as exc:
            call.failed(exc)
            await self.admission.settle(*call.settlement())
            raise
        if inv.stream:  # the stream is read in a worker thread; it settles there when it ends
            return call.watch(inv, lambda: self.limiter.settle(*call.settlement()))
        call.succeeded(inv)
        await self.admission.settle(*call.settlement())
        return inv

    def _open(self, p: Principal, row: Any, name: str, body: dict[str, Any], route: str) -> _Call:
        config, limits = self._config(row["ai_gateway"])
        key = (row["ai_gateway"], p.name, p.kind, p.groups)
        pairs = self._applicable.get(key)
        if pairs is None:  # which limits bind this caller: the same until the config or the caller changes
            if len(self._applicable) > 10_000:
                self._applicable.clear()
            pairs = self._applicable[key] = applicable(limits, p)
        reserve = self._estimate(body) if any(lim.tokens is not None for _, lim in pairs) else 0
        guards = config.get("guardrails") or {}
        guarded = route in ("chat", "completions", "invocations") and row["task"] not in ("llm/v1/embeddings",
                                                                                        "llm/v1/rerank")
        return _Call(self, p, row, name, body, config, pairs, reserve, guarded,
                     Guard(guards.get("input") or {}, self.detectors, "input"),
                     Guard(guards.get("output") or {}, self.detectors, "output"))

    def _config(self, text: str | None) -> tuple[dict[str, Any], list[Any]]:
        """An endpoint's ``ai_gateway`` and its parsed limits, parsed once per distinct text."""
        cached = self._configs.get(text or "")
        if cached is None:
            if len(self._configs) > 1000:
                self._configs.clear()
            config = json.loads(text or "{}")
            cached = self._configs[text or ""] = (config, parse_limits(config.get("rate_limits")))
        return cached

    @staticmethod
    def _estimate(body: dict[str, Any], *, with_max: bool = True) -> int:
        if isinstance(body.get("messages"), list):
            tokens = count_messages(body["messages"])
        elif isinstance(body.get("prompt"), str):
            tokens = count_tokens(body["prompt"])
        elif isinstance(body.get("input"), list | str):
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            tokens = sum(count_tokens(t) for t in texts if isinstance(t, str))
        else:
            tokens = (len(json.dumps(body)) + 1) // 4
        if with_max:
            tokens += int(body.get("max_tokens") or 0) if isinstance(body.get("max_tokens"), int) else 0
        return tokens



class _Call:
    """One request's passage through the gateway: what applies to it, and what is recorded when it ends."""

    def __init__(self, gw: Gateway, p: Principal, row: Any, name: str, body: dict[str, Any],
                 config: dict[str, Any], pairs: list[Any], reserve: int, guarded: bool, in_guard: Guard,
                 out_guard: Guard) -> None:
        self.gw, self.p, self.row, self.name, self.body = gw, p, row, name, body
        self.pairs, self.reserve = pairs, reserve
        self.tracking = bool((config.get("usage_tracking_config") or {}).get("enabled"))
        self.table = payload_table(config)
        self.fallback = bool((config.get("fallback_config") or {}).get("enabled"))
        self.in_guard, self.out_guard = in_guard, out_guard
        self.input_guarded = guarded and in_guard.active
        self.output_guarded = guarded and out_guard.active
        self.started = time.time()
        self.request_id = new_uuid()
        self.window = 0
        self.used = reserve  # tokens to settle the reservation with; set when the call ends
        self.logged: Any = body  # what the inference table may see of the request

    def guard_input(self) -> dict[str, Any]:
        """The request as the model may see it: input guardrails applied (a copy; the body is untouched)."""
        if not self.input_guarded:
            return self.body
        body = copy.deepcopy(self.body)
        try:
            for holder, key in texts_of(body):
                holder[key] = self.in_guard.apply(holder[key])
        except BrickyardError as exc:
            self.logged = {"blocked_by_guardrail": exc.message}  # never the raw text that was refused
            raise
        self.logged = body
        return body

    def guard_output(self, inv: Invocation) -> Invocation:
        """Check (and mask) the answer. A stream is collected first, so nothing unchecked is sent."""
        if not self.output_guarded:
            return inv
        guard = self.out_guard
        try:
            return _guard_answer(inv, guard)
        except BrickyardError as exc:
            self._finish(inv.served_entity, exc.http_status, {}, inv.stream, exc.to_dict())
            self.finished = True
            raise

    finished = False

    blocked_by = ""  # "guardrail" when a guardrail refused the request or its answer

    def failed(self, exc: BrickyardError) -> None:
        if not self.finished:
            if isinstance(exc, GuardrailViolation):
                self.blocked_by = "guardrail"
            self._finish("", exc.http_status, {}, bool(self.body.get("stream")), exc.to_dict())

    def succeeded(self, inv: Invocation) -> None:
        self._finish(inv.served_entity, 200, inv.result.get("usage") if isinstance(inv.result, dict) else None,
                     False, inv.result)

    def settlement(self) -> tuple[str, list[Any], int, int, int]:
        """Arguments for the limiter's ``settle``: the reservation replaced by the tokens used."""
        return self.row["id"], self.pairs, self.window, self.reserve, self.used

    def watch(self, inv: Invocation, settle: Callable[[], None]) -> Invocation:
        def done(usage: dict[str, Any] | None, status: int, text: str) -> None:
            self._finish(inv.served_entity, status, usage, True, {"streamed_content": text, "usage": usage})
            settle()

        inv.result = _watch(inv.result, done)
        return inv

    def _finish(self, entity: str, status: int, usage: dict[str, Any] | None, streaming: bool,
                response: Any = None) -> None:
        body, gw = self.body, self.gw
        tokens_in = int((usage or {}).get("prompt_tokens") or 0)
        tokens_out = int((usage or {}).get("completion_tokens") or 0)
        if status == 200 and not usage:  # the provider reported nothing: (len + 1) // 4, as Databricks does
            tokens_in = (len(_request_text(body)) + 1) // 4
            tokens_out = (len(_response_text(response)) + 1) // 4
        self.used = tokens_in + tokens_out
        if self.tracking:
            gw.usage.record(usage_row(
                request_id=self.request_id, client_request_id=body.get("client_request_id"), requester=self.p.name,
                endpoint=self.name, endpoint_id=self.row["id"], entity=entity, status=status, tokens_in=tokens_in,
                tokens_out=tokens_out, started=self.started, streaming=streaming, context=body.get("usage_context"),
                blocked_by=self.blocked_by))
        if self.table is not None:
            gw.payloads.record(payload_row(
                request_id=self.request_id, client_request_id=body.get("client_request_id"), requester=self.p.name,
                entity=entity, status=status, started=self.started, request=self.logged, response=response,
                secrets=gw.secrets(), table=self.table))


def _guard_answer(inv: Invocation, guard: Guard) -> Invocation:
    """Apply ``guard`` to an answer's text and tool-call arguments; a stream is collected into one chunk
    sequence first."""
    if inv.stream:
        chunks = list(inv.result)
        text = "".join((c.get("delta") or {}).get("content") or "" for ch in chunks for c in ch.get("choices") or [])
        usage = next((ch["usage"] for ch in reversed(chunks) if ch.get("usage")), None)
        finish_reason = next((c.get("finish_reason") for ch in reversed(chunks) for c in ch.get("choices") or []
                              if c.get("finish_reason")), "stop")
        base = chunks[0] if chunks else {"id": "chatcmpl-guarded", "created": int(time.time())}
        answer = {"id": base.get("id"), "created": base.get("created"), "model": inv.endpoint,
                  "object": "chat.completion", "usage": usage or {},
                  "choices": [{"index": 0, "finish_reason": finish_reason,
                               "message": {"role": "assistant", "content": guard.apply(text)}}]}
        inv.result = chunks_of(answer)
        return inv
    for choice in inv.result.get("choices") or []:
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            message["content"] = guard.apply(message["content"])
        if isinstance(message, dict):
            for call in message.get("tool_calls") or []:
                fn = call.get("function") or {}
                if isinstance(fn.get("arguments"), str):
                    fn["arguments"] = guard.apply(fn["arguments"])
        if isinstance(choice.get("text"), str):
            choice["text"] = guard.apply(choice["text"])
    return inv


def _watch(chunks: Iterator[dict[str, Any]], done: Any) -> Iterator[dict[str, Any]]:
    usage: dict[str, Any] | None = None
    status = 200
    text: list[str] = []
    try:
        for chunk in chunks:
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                text.append((choice.get("delta") or {}).get("content") or "")
            yield chunk
    except BrickyardError as exc:
        status = exc.http_status
        raise
    except BaseException:
        status = 500
        raise
    finally:
        done(usage, status, "".join(text))


def _request_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [str(c.get("text", "")) for c in content if isinstance(c, dict)]
    for key in ("prompt", "input", "query", "documents"):
        value = body.get(key)
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            parts += [v for v in value if isinstance(v, str)]
    return "".join(parts)


def _response_text(response: Any) -> str:
    if not isinstance(response, dict):
        return ""
    if isinstance(response.get("streamed_content"), str):
        return response["streamed_content"]
    out = []
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        out.append(str(message.get("content") or choice.get("text") or ""))
    return "".join(out)
