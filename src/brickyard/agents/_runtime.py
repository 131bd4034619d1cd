"""The agent runtime: a tool-calling agent that implements MLflow's ``ResponsesAgent``, and the tools it uses.

Everything here talks to the workspace through its public REST APIs with the official clients (the
OpenAI client for chat models, MCP for Unity Catalog functions and external servers, the Vector Search
API for retrieval), so an agent built with it runs the same against a Brickyard server and against
Databricks. The credentials are the Databricks SDK's default ones (``DATABRICKS_HOST`` and
``DATABRICKS_TOKEN``, a profile, ...). Deployed behind a serving endpoint they are what the model declared
(see ``brickyard.tracking._resources``): with a *user* auth policy, the caller's identity, so every tool call
and retrieval runs with that user's grants (on-behalf-of-user); with declared resources only, the model's own
credential scoped to them; with nothing declared, Brickyard acts as the caller.

The loop, in :meth:`ToolCallingAgent.predict_stream`:

1. send the conversation and the tools' JSON schemas to the chat model;
2. if it asks for tools, run each (a failing tool answers with its error, so the model can adapt),
   append the calls and their outputs to the conversation, and go back to 1;
3. otherwise stream its answer and stop.

Two budgets bound the loop: ``max_steps`` model calls and ``max_seconds`` of wall time. When either runs
out, the agent says so in its answer and in ``custom_outputs["stopped"]`` instead of looping on.
Every step is traced with MLflow: AGENT at the root, CHAT_MODEL for each model call (with token usage),
TOOL for each tool call and RETRIEVER inside retrieval tools.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities import SpanType
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse, ResponsesAgentStreamEvent


def _workspace_client(client: Any = None) -> Any:
    """The given client, or the SDK's default one -- except in a served model with a user auth policy (the
    serving environment gave it the invoker's token): then every tool and model call acts as the caller."""
    if client is not None:
        return client
    import threading

    from databricks.sdk import WorkspaceClient

    if threading.main_thread().__dict__.get("invokers_token"):
        from databricks.sdk.credentials_provider import ModelServingUserCredentials

        return WorkspaceClient(credentials_strategy=ModelServingUserCredentials())
    return WorkspaceClient()


@contextlib.contextmanager
def _within(span: Any) -> Generator[None, None, None]:
    """Make ``span`` the current one for a block that does not yield (so its child spans nest under it)."""
    from mlflow.tracing.provider import detach_span_from_context, set_span_in_context

    if getattr(span, "_span", None) is None:  # tracing is off: a no-op span
        yield
        return
    token = set_span_in_context(span)
    try:
        yield
    finally:
        detach_span_from_context(token)


def _run(coro: Any) -> Any:
    """Run a coroutine from synchronous code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# -- tools -----------------------------------------------------------------------------------------------
@dataclass
class Tool:
    """A tool the model may call: a name, a description and a JSON schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., str]
    span_type: str = SpanType.TOOL

    def spec(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    def __call__(self, **arguments: Any) -> str:
        with mlflow.start_span(self.name, span_type=self.span_type) as span:
            span.set_inputs(arguments)
            out = self.fn(**arguments)
            span.set_outputs(out)
            return out


class MCPServer:
    """The tools of one MCP server (managed: ``/api/2.0/mcp/functions/{catalog}/{schema}``,
    ``/api/2.0/mcp/vector-search/...``; external: ``/api/2.0/mcp/external/{connection}``), reached with the
    official ``mcp`` SDK over streamable HTTP with the workspace's credentials."""

    def __init__(self, url: str, *, workspace_client: Any = None) -> None:
        self._client = workspace_client
        self._url = url

    @property
    def client(self) -> Any:  # made on first use: an agent module imports without credentials
        self._client = _workspace_client(self._client)
        return self._client

    @property
    def url(self) -> str:
        return self._url if self._url.startswith("http") else self.client.config.host.rstrip("/") + self._url

    def _headers(self) -> dict[str, str]:
        return dict(self.client.config.authenticate())

    async def _session(self, action: Callable[[Any], Any]) -> Any:
        import httpx
        from mcp.client.session import ClientSession
        from mcp.client.streamable_http import streamable_http_client

        async with httpx.AsyncClient(headers=self._headers(), timeout=httpx.Timeout(60.0)) as http:
            async with streamable_http_client(self.url, http_client=http) as (read, write, _):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    return await action(session)

    def tools(self) -> list[Tool]:
        listed = _run(self._session(lambda s: s.list_tools())).tools
        return [Tool(name=t.name, description=t.description or t.name, parameters=t.inputSchema,
                     fn=self._caller(t.name)) for t in listed]

    def _caller(self, name: str) -> Callable[..., str]:
        def call(**arguments: Any) -> str:
            result = _run(self._session(lambda s: s.call_tool(name, arguments)))
            text = "\n".join(getattr(c, "text", "") for c in result.content)
            return f"ERROR: {text}" if result.isError else text

        return call


class VectorSearchRetrieverTool(Tool):
    """Retrieval from a vector index, the shape of databricks-langchain's ``VectorSearchRetrieverTool``:
    ``index_name``, ``num_results``, ``columns``, ``filters``, and an optional ``tool_name`` /
    ``tool_description``. Queries run as whoever the credentials belong to (the caller, when deployed):
    HYBRID on indexes that embed text themselves, FULL_TEXT on indexes of your own vectors."""

    def __init__(self, index_name: str, *, num_results: int = 5, columns: list[str] | None = None,
                 filters: dict[str, Any] | None = None, tool_name: str | None = None,
                 tool_description: str | None = None, workspace_client: Any = None) -> None:
        self.index_name = index_name
        self.num_results = num_results
        self.columns = columns
        self.filters = filters
        self._client = workspace_client
        super().__init__(
            name=tool_name or index_name.replace(".", "__"),
            description=tool_description or f"Search the {index_name} index for passages relevant to a question.",
            parameters={"type": "object", "properties": {"query": {"type": "string",
                                                                    "description": "What to look for"}},
                        "required": ["query"]},
            fn=self._search)
        self.span_type = SpanType.TOOL

    @property
    def client(self) -> Any:
        self._client = _workspace_client(self._client)
        return self._client

    def _search(self, query: str) -> str:
        docs = self.retrieve(query)
        return json.dumps([{"page_content": d["page_content"], "metadata": d["metadata"]} for d in docs])

    def retrieve(self, query: str) -> list[dict[str, Any]]:
        with mlflow.start_span("retrieve " + self.index_name, span_type=SpanType.RETRIEVER) as span:
            span.set_inputs({"query": query, "index": self.index_name})
            index = self.client.api_client.do("GET", f"/api/2.0/vector-search/indexes/{self.index_name}")
            spec = index.get("delta_sync_index_spec") or index.get("direct_access_index_spec") or {}
            managed = bool(spec.get("embedding_source_columns"))
            text_column = (spec.get("embedding_source_columns") or [{}])[0].get("name") if managed else None
            if text_column is None and spec.get("schema_json"):
                schema = json.loads(spec["schema_json"])
                text_column = next((c for c, t in schema.items() if c != index["primary_key"] and t == "string"), None)
            columns = self.columns or [c for c in (index["primary_key"], text_column,
                                                   *(spec.get("columns_to_sync") or [])) if c]
            columns = list(dict.fromkeys(columns))
            body: dict[str, Any] = {"query_text": query, "query_type": "HYBRID" if managed else "FULL_TEXT",
                                    "columns": columns, "num_results": self.num_results}
            if self.filters:
                body["filters_json"] = json.dumps(self.filters)
            result = self.client.api_client.do("POST", f"/api/2.0/vector-search/indexes/{self.index_name}/query",
                                               body=body)
            names = [c["name"] for c in result["manifest"]["columns"]]
            docs = []
            for row in result.get("result", {}).get("data_array") or []:
                record = dict(zip(names, row, strict=True))
                text = record.pop(text_column, None) if text_column else None
                docs.append({"page_content": "" if text is None else str(text), "metadata": record,
                             "id": str(record.get(index["primary_key"], ""))})
            span.set_outputs([{"page_content": d["page_content"], "metadata": d["metadata"], "id": d["id"]}
                              for d in docs])
            return docs


def uc_function_tools(catalog: str, schema: str, function: str | None = None, *,
                      workspace_client: Any = None) -> MCPServer:
    """Unity Catalog functions as tools, through the workspace's managed MCP server. Give the result to an
    agent: it lists the tools at each request, as the caller, so each user sees the functions they may run."""
    path = f"/api/2.0/mcp/functions/{catalog}/{schema}" + (f"/{function}" if function else "")
    return MCPServer(path, workspace_client=workspace_client)


# -- the agent ---------------------------------------------------------------------------------------------
@dataclass
class Budget:
    max_steps: int = 8
    max_seconds: float = 60.0
    started: float = field(default_factory=time.monotonic)
    steps: int = 0

    def exhausted(self) -> str | None:
        if self.steps >= self.max_steps:
            return f"the step budget of {self.max_steps} model calls"
        if time.monotonic() - self.started >= self.max_seconds:
            return f"the time budget of {self.max_seconds:g} s"
        return None


class ToolCallingAgent(ResponsesAgent):
    """A ``ResponsesAgent`` that answers with a chat model served at ``llm_endpoint`` and the given tools."""

    def __init__(self, *, llm_endpoint: str, tools: Iterable[Tool | MCPServer] = (), system_prompt: str | None = None,
                 max_steps: int = 8, max_seconds: float = 60.0, temperature: float | None = 0.0,
                 max_tokens: int | None = None, workspace_client: Any = None) -> None:
        self.llm_endpoint = llm_endpoint
        self.max_tokens = max_tokens
        self.toolkit = list(tools)  # Tools, and MCP servers whose tools are listed at each request
        self.tools: dict[str, Tool] = {}
        self.system_prompt = system_prompt
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.temperature = temperature
        self._client = workspace_client

    # The client is made on first use, so an agent module can be imported (and logged) without credentials.
    def _openai(self) -> Any:
        """An OpenAI client on the workspace's ``/serving-endpoints``, with the credentials of this moment."""
        from openai import OpenAI

        client = self._client = _workspace_client(self._client)
        auth = dict(client.config.authenticate()).get("Authorization", "")
        return OpenAI(base_url=client.config.host.rstrip("/") + "/serving-endpoints",
                      api_key=auth.split(" ", 1)[1] if " " in auth else "none", max_retries=2)

    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:
        output, custom = [], {}
        for event in self.predict_stream(request):
            if event.type == "response.output_item.done":
                output.append(event.item)
            if event.custom_outputs:
                custom.update(event.custom_outputs)
        return ResponsesAgentResponse(output=output, custom_outputs=custom or request.custom_inputs)

    def _tools_now(self) -> dict[str, Tool]:
        found: dict[str, Tool] = {}
        for item in self.toolkit:
            for tool in (item.tools() if isinstance(item, MCPServer) else [item]):
                found[tool.name] = tool
        return found

    def predict_stream(self, request: ResponsesAgentRequest) -> Generator[ResponsesAgentStreamEvent, None, None]:
        # Spans are opened without touching the tracing context: this is a generator, and a context
        # attached before a ``yield`` would leak into the consumer. Tool calls, which do not yield, run
        # with the agent span attached, so their spans (and a retriever's inside them) nest under it.
        budget = Budget(self.max_steps, self.max_seconds)
        inputs = [i.model_dump() for i in request.input]
        root = mlflow.start_span_no_context("agent", span_type=SpanType.AGENT,
                                            parent_span=mlflow.get_current_active_span(), inputs={"input": inputs})
        final, status = "", "OK"
        try:
            with _within(root):
                self.tools = self._tools_now()
            messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt else []) + \
                self.prep_msgs_for_cc_llm(inputs)
            while True:
                stopped = budget.exhausted()
                if stopped:
                    final = f"I stopped before finishing: I reached {stopped}."
                    item_id = str(uuid.uuid4())
                    yield ResponsesAgentStreamEvent(**self.create_text_delta(final, item_id))
                    yield ResponsesAgentStreamEvent(type="response.output_item.done",
                                                    item=self.create_text_output_item(final, item_id),
                                                    custom_outputs={"stopped": stopped})
                    break
                budget.steps += 1
                item_id = str(uuid.uuid4())
                chat = self._chat(messages, root)
                try:
                    while True:  # the model's words are passed on as they arrive
                        yield ResponsesAgentStreamEvent(**self.create_text_delta(next(chat), item_id))
                except StopIteration as done:
                    reply = done.value
                calls = reply.get("tool_calls") or []
                text = reply.get("content") or ""
                if text or not calls:
                    yield ResponsesAgentStreamEvent(type="response.output_item.done",
                                                    item=self.create_text_output_item(text, item_id))
                if not calls:
                    final = text
                    break
                messages.append({"role": "assistant", "content": text, "tool_calls": calls})
                for call in calls:
                    fn = call["function"]
                    yield ResponsesAgentStreamEvent(type="response.output_item.done", item=self.create_function_call_item(
                        str(uuid.uuid4()), call["id"], fn["name"], fn.get("arguments") or "{}"))
                    with _within(root):
                        output = self._run_tool(fn["name"], fn.get("arguments") or "{}")
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
                    yield ResponsesAgentStreamEvent(type="response.output_item.done",
                                                    item=self.create_function_call_output_item(call["id"], output))
        except BaseException:
            status = "ERROR"
            raise
        finally:
            root.end(outputs=final, status=status)

    def _chat(self, messages: list[dict[str, Any]], parent: Any) -> Generator[str, None, dict[str, Any]]:
        """Stream one model call: yields the text as it comes, returns {"content", "tool_calls"}."""
        request: dict[str, Any] = {"model": self.llm_endpoint, "messages": messages, "stream": True,
                                   "stream_options": {"include_usage": True}}
        if self.tools:
            request["tools"] = [t.spec() for t in self.tools.values()]
        if self.temperature is not None:
            request["temperature"] = self.temperature
        if self.max_tokens is not None:
            request["max_tokens"] = self.max_tokens
        span = mlflow.start_span_no_context(self.llm_endpoint, span_type=SpanType.CHAT_MODEL, parent_span=parent,
                                            inputs={k: v for k, v in request.items() if k != "stream_options"})
        content: list[str] = []
        calls: dict[int, dict[str, Any]] = {}
        usage: dict[str, Any] = {}
        try:
            for chunk in self._openai().chat.completions.create(**request):
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump()
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                if delta.content:
                    content.append(delta.content)
                    yield delta.content
                for tc in delta.tool_calls or []:
                    slot = calls.setdefault(tc.index if tc.index is not None else len(calls),
                                            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                    if tc.id:
                        slot["id"] = tc.id
                    if tc.function is not None:
                        slot["function"]["name"] += tc.function.name or ""
                        slot["function"]["arguments"] += tc.function.arguments or ""
        except BaseException as exc:
            span.end(status="ERROR", attributes={"error": f"{type(exc).__name__}: {exc}"[:500]})
            raise
        reply = {"content": "".join(content) or None,
                 "tool_calls": [{**c, "id": c["id"] or f"call_{uuid.uuid4().hex[:12]}"} for _, c in sorted(calls.items())]}
        attributes = {}
        if usage:
            attributes["mlflow.chat.tokenUsage"] = {
                "input_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("total_tokens", 0)}
        span.end(outputs=reply, attributes=attributes)
        return reply

    def _run_tool(self, name: str, arguments: str) -> str:
        tool = self.tools.get(name)
        if tool is None:
            return f"ERROR: there is no tool called {name!r}; the tools are {', '.join(sorted(self.tools))}"
        try:
            args = json.loads(arguments) if arguments.strip() else {}
            if not isinstance(args, dict):
                raise ValueError("the arguments must be a JSON object")
        except ValueError as exc:
            return f"ERROR: the arguments for {name} are not a JSON object: {exc}"
        try:
            return tool(**args)
        except Exception as exc:  # noqa: BLE001 - the model reads the failure and may try otherwise
            return f"ERROR: {name} failed: {type(exc).__name__}: {str(exc)[:500]}"
