"""The data plane: a request planned onto a served entity (traffic split, fallbacks), local models behind
their queue slots, external models, agents in their workers, streams guarded so a slot is always given
back, and the request and answer shapes of chat, completions, embeddings and rerank."""

from __future__ import annotations

import base64
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from ..catalog import ADMINS, Principal
from ..catalog._db import Row
from ..catalog._secrets import is_reference
from ..core.errors import (
    BrickyardError,
    InvalidParameterValue,
    NotFound,
    PermissionDenied,
    RateLimited,
    TemporarilyUnavailable,
)
from ..models._openai import UpstreamError
from ..models._tokens import count_messages, count_tokens
from ._catalog import CHAT, COMPLETIONS, EMBEDDINGS, LOCAL_MODELS, RERANK, TASKS
from ._common import LEVELS, Invocation, Plan, Slot, _name
from ._gguf import is_gguf, is_gguf_entity
from ._ray import RAY_KINDS, in_batch


class DataPlane:
    """Methods of :class:`Serving` (mixed in there; they use its endpoints, models and queue slots)."""

    # -- data plane ---------------------------------------------------------------------------------
    def task_of(self, p: Principal, name: str) -> str:
        """The task of an endpoint ``p`` may query (``llm/v1/chat``, ``agent/v1/responses``, ...)."""
        return str(self.endpoint_for_query(p, name)["task"])

    def endpoint_for_query(self, p: Principal, name: str) -> Row:
        """The endpoint row for a data-plane call by ``p`` (CAN_QUERY checked). Rows and ACLs are cached for
        CACHE_SECONDS: changes in this process are seen at once, other processes' within that bound."""
        row = self.endpoint_if_cached(p, name)
        if row is not None:
            return row
        now = time.monotonic()
        hot = self._hot.get(name)
        if hot is None or now - hot[0] > self.CACHE_SECONDS:
            with self.db.tx(write=False) as tx:
                found = tx.one("SELECT * FROM serving_endpoints WHERE name = ?", (_name(name),))
                acl = [] if found is None else tx.all(
                    "SELECT principal, level FROM endpoint_acl WHERE endpoint_id = ?", (found["id"],))
            if found is None:
                raise NotFound(f"Endpoint '{name}' does not exist.")
            hot = (now, found, acl)
            if len(self._hot) > 1000:
                self._hot.clear()
            self._hot[name] = hot
        return self._check_query(p, name, hot[1], hot[2])

    def endpoint_if_cached(self, p: Principal, name: str) -> Row | None:
        """:meth:`endpoint_for_query` when the endpoint's view is fresh in the cache (no database, so the
        event loop may call it); None when it has to be read."""
        hot = self._hot.get(name)
        if hot is None or time.monotonic() - hot[0] > self.CACHE_SECONDS:
            return None
        return self._check_query(p, name, hot[1], hot[2])

    @staticmethod
    def _check_query(p: Principal, name: str, row: Row, acl: list[Row]) -> Row:
        if p.scope is not None and f"serving_endpoint:{row['name']}" not in p.scope:
            raise PermissionDenied(f"this credential is scoped to the model's declared resources; serving endpoint "
                                   f"'{name}' is not one of them")
        level = LEVELS["CAN_MANAGE"] if p.is_admin or row["creator"] == p.name else 0
        names = p.names
        for entry in acl:
            if entry["principal"] in names:
                level = max(level, LEVELS[entry["level"]])
        if level == 0:
            raise NotFound(f"Endpoint '{name}' does not exist.")
        if level < LEVELS["CAN_QUERY"]:
            raise PermissionDenied(f"{p.name} lacks CAN_QUERY on serving endpoint '{name}'")
        if row["config_version"] == 0:
            raise TemporarilyUnavailable(f"Endpoint '{name}' is not ready yet (config_update "
                                         f"{row['state_update']}); retry shortly", retry_after=2)
        return row

    def config_of(self, row: Row) -> dict[str, Any]:
        """The parsed config of an endpoint row, parsed once per config version."""
        key = (row["id"], row["config_version"])
        cached = self._configs.get(key)
        if cached is None:
            if len(self._configs) > 1000:
                self._configs.clear()
            cached = self._configs[key] = json.loads(row["config"])
        return cached

    def pick(self, row: Row, rng: random.Random | None = None) -> dict[str, Any]:
        """The served entity that takes this request, by the traffic split."""
        config = self.config_of(row)
        routes = [r for r in config["traffic_config"]["routes"] if r["traffic_percentage"] > 0]
        chosen = (rng or random).choices(routes, weights=[r["traffic_percentage"] for r in routes])[0]
        return next(e for e in config["served_entities"] if e["name"] == chosen["served_entity_name"])

    def model_for(self, row: Row, entity: dict[str, Any]) -> tuple[Any, Slot | None]:
        """(model object, its queue slot or None) for a served entity; local models load once and are shared."""
        if "external_model" in entity:
            key = (row["id"], row["config_version"], entity["name"])
            with self._lock:
                provider = self._providers.get(key)
                if provider is None:
                    provider = self._providers[key] = self._external(entity["external_model"])
            return provider, None
        return self._local_model(entity)

    def _local_model(self, entity: dict[str, Any]) -> tuple[Any, Slot | None]:
        """A model loaded in this process (a local stand-in, or a GGUF from a volume), shared by every endpoint
        that serves it with the same settings; for batch work with a Ray cluster, the model on the cluster's
        workers (see :mod:`._ray`)."""
        ray = getattr(self, "ray", None)
        if ray is not None and in_batch() and not is_gguf(entity) and entity["entity_name"] not in self._factories:
            local = LOCAL_MODELS.get(entity["entity_name"])
            if local is not None and local.kind in RAY_KINDS:
                return ray.model(local.kind), None
        key = _local_key(entity)
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = self._models[key] = self._load_local(entity)
                self._slots[key] = Slot(self.queue_size)
            return model, self._slots[key]

    def _free_unused(self) -> None:
        """Let go of GGUF models no endpoint config (live or pending) serves any more: they hold gigabytes."""
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT config, pending_config FROM serving_endpoints")
        used = {_local_key(e) for r in rows for raw in (r["config"], r["pending_config"]) if raw
                for e in json.loads(raw).get("served_entities") or [] if "external_model" not in e}
        with self._lock:
            for key in [k for k in self._models if k.startswith("{") and k not in used]:
                model = self._models.pop(key)
                self._slots.pop(key, None)
                close = getattr(model, "close", None)
                if close is not None:
                    close()

    def release_memory(self) -> None:
        """After a large job: local models give back their working memory, then the C heap is trimmed."""
        from ..core.memory import trim

        with self._lock:
            models = list(self._models.values())
        for model in models:
            release = getattr(model, "release", None)
            if release is not None:
                release()
        trim()

    def _load_local(self, entity: dict[str, Any]) -> Any:
        entity_name = entity["entity_name"]
        if is_gguf(entity):
            from ._gguf import load

            system = Principal(id="", kind="user", name="system", groups=frozenset({ADMINS}))
            registered = None if is_gguf_entity(entity_name) else self._describe(entity).gguf
            return load(self.volumes, system, entity, registered)
        if entity_name in self._factories:
            return self._factories[entity_name]()
        kind = LOCAL_MODELS[entity_name].kind
        if kind == "llamacpp":
            from ..models._llamacpp import LlamaCppChat

            return LlamaCppChat()
        if kind == "minilm":
            from ..models._minilm import MiniLMEmbedder

            return MiniLMEmbedder(precision=self.model_precision)
        from ..models._fakes import HashEmbedder, ObedientChat, QueueChat

        if kind == "fake-obedient":
            return ObedientChat()
        return QueueChat(model_id="fake-chat") if kind == "fake-chat" else HashEmbedder(384)

    def _external(self, ext: dict[str, Any]) -> Any:
        from ..models._openai import OpenAICompatible

        system = Principal(id="", kind="user", name="system", groups=frozenset({ADMINS}))
        base, key = self._external_target(system, ext, trusted=True)
        secret = self.secrets.resolve(key) if key is not None else None
        return OpenAICompatible(base, model=ext["name"], api_key=secret, allowed_hosts=self.allowed_hosts)

    def invoke(self, p: Principal, name: str, body: dict[str, Any], *, route: str, row: Row | None = None,
               fallback: bool = False, served: str | None = None) -> Invocation:
        """Run one request. ``route`` is chat | completions | embeddings | invocations (task decides).
        ``row`` is the endpoint as already loaded (and permission-checked) by the caller. With ``fallback``,
        a served entity that fails with a retriable upstream error hands the request to the next one. ``served``
        names the one served entity to use, bypassing the traffic split."""
        plan = self.plan(p, name, body, route=route, row=row, fallback=fallback, served=served)
        failure: BrickyardError | None = None
        for entity in plan.candidates:
            try:
                return self._invoke_entity(plan.row, entity, dict(plan.request), plan.route, plan.stream, name,
                                           plan.task, p)
            except (RateLimited, TemporarilyUnavailable, UpstreamError) as exc:
                failure = exc  # retriable upstream trouble: the next entity may answer
        assert failure is not None
        raise failure

    async def ainvoke(self, p: Principal, name: str, body: dict[str, Any], *, route: str, row: Row | None = None,
                      fallback: bool = False, served: str | None = None) -> Invocation:
        """:meth:`invoke` for the event loop. Non-streaming calls to external models are awaited on the loop
        (pooled aiohttp, no thread); local models and streams run in a worker thread as before."""
        import anyio

        plan = self.plan(p, name, body, route=route, row=row, fallback=fallback, served=served)
        failure: BrickyardError | None = None
        for entity in plan.candidates:
            try:
                if plan.stream or "external_model" not in entity:
                    return await anyio.to_thread.run_sync(self._invoke_entity, plan.row, entity, dict(plan.request),
                                                          plan.route, plan.stream, name, plan.task, p)
                return await self._ainvoke_external(plan, entity, dict(plan.request), name)
            except (RateLimited, TemporarilyUnavailable, UpstreamError) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def _ainvoke_external(self, plan: Plan, entity: dict[str, Any], request: dict[str, Any],
                                name: str) -> Invocation:
        import anyio

        key = (plan.row["id"], plan.row["config_version"], entity["name"])
        model = self._providers.get(key)
        if model is None:  # the first call resolves and checks the host: not on the event loop
            model, _ = await anyio.to_thread.run_sync(self.model_for, plan.row, entity)
        if plan.route == "rerank":
            return Invocation(name, entity["name"], plan.task, await model.arerank(request))
        if plan.route == "embeddings":
            texts, fmt = _embed_input(request)
            raw = await model.aembed_raw(texts)
            result = _embed_output(raw, texts, fmt, name)
        elif plan.route == "completions":
            result = await model.acomplete({**request, "prompt": _prompt_of(request)})
        else:
            result = await model.achat(request)
        result["model"] = name
        return Invocation(name, entity["name"], plan.task, result)

    def plan(self, p: Principal, name: str, body: dict[str, Any], *, route: str, row: Row | None = None,
             fallback: bool = False, served: str | None = None) -> Plan:
        """Check a request against the endpoint's task and decide who may serve it, in which order."""
        row = row or self.endpoint_for_query(p, name)
        task = row["task"]
        if served is None:
            chosen = self.pick(row)  # by the traffic split
        else:
            found = next((e for e in self.config_of(row)["served_entities"] if e["name"] == served), None)
            if found is None:
                raise NotFound(f"Endpoint '{name}' has no served entity '{served[:80]}'")
            chosen = found
        if task not in TASKS or _serves_versions(self.config_of(row)):  # registered model versions (agents or any pyfunc model)
            fits = {"invocations", "responses", "chat"} | {COMPLETIONS: {"completions"},
                                                           EMBEDDINGS: {"embeddings"}}.get(task, set())
            if route not in fits:
                raise InvalidParameterValue(f"Endpoint '{name}' serves a {task} model; query it through "
                                            "/serving-endpoints/{name}/invocations"
                                            + ("" if task in (COMPLETIONS, EMBEDDINGS) else " or the responses API"))
            request = {k: v for k, v in body.items() if k not in ("model", "client_request_id", "usage_context")}
            stream = bool(request.pop("stream", False))
            return Plan(row, task, "agent", request, stream, [chosen])
        if route == "invocations":
            route = {CHAT: "chat", COMPLETIONS: "completions", EMBEDDINGS: "embeddings", RERANK: "rerank"}[task]
            if task == CHAT and "messages" not in body and "prompt" in body:
                route = "completions"
        expected = {"chat": CHAT, "completions": CHAT, "embeddings": EMBEDDINGS, "rerank": RERANK}[route]
        if task != expected and not (route == "completions" and task == COMPLETIONS):
            raise InvalidParameterValue(f"Endpoint '{name}' serves {task}; it cannot answer a {route} request")
        request = {k: v for k, v in body.items() if k not in ("model", "client_request_id", "usage_context",
                                                               "extra_params")}
        if isinstance(body.get("extra_params"), dict):
            request.update(body["extra_params"])
        stream = bool(request.pop("stream", False))
        if route == "chat":
            _check_chat(request)
        if route == "rerank":
            _check_rerank(request)
            stream = False
        candidates = [chosen]
        if fallback and served is None:  # then every other served entity, in the order of the config
            candidates += [e for e in self.config_of(row)["served_entities"] if e["name"] != chosen["name"]]
        return Plan(row, task, route, request, stream, candidates)

    def _invoke_entity(self, row: Row, entity: dict[str, Any], request: dict[str, Any], route: str, stream: bool,
                       name: str, task: str, p: Principal | None = None) -> Invocation:
        if route == "agent":
            return self._invoke_agent(row, entity, request, stream, name, task, p)
        model, slot = self.model_for(row, entity)
        if route == "rerank":
            return Invocation(name, entity["name"], task, model.rerank(request))
        if route == "embeddings":
            return Invocation(name, entity["name"], task, self._embed(model, slot, request, name))
        if route == "completions":
            return Invocation(name, entity["name"], task, self._complete(model, slot, request, name))
        if stream:
            return Invocation(name, entity["name"], task, self._stream(model, slot, request, name), stream=True)
        if slot is None:
            result = model.chat(request)
        else:
            with slot:
                result = model.chat(request)
        result["model"] = name
        return Invocation(name, entity["name"], task, result)

    def _invoke_agent(self, row: Row, entity: dict[str, Any], request: dict[str, Any], stream: bool, name: str,
                      task: str, p: Principal | None) -> Invocation:
        """Run a registered model version on a worker of its pool, as ``p`` (the worker's token acts as ``p``
        meanwhile)."""
        assert self.agents is not None and p is not None
        pool = self._pool_for(row, entity)
        worker, cold, waited = pool.acquire()
        label = f"{entity['entity_name']} v{entity['entity_version']}"
        if stream:
            def record(trace: Any) -> None:
                if trace:
                    self.agents.record_trace(self._experiment_of(entity), trace, name, row["creator"])

            events = worker.stream(p, request, record, lambda: pool.release(worker))
            return Invocation(name, entity["name"], task, events, stream=True, cold_start=cold, queued=waited)
        try:
            output, trace = worker.predict(p, request)
        finally:
            pool.release(worker)
        trace_id = self.agents.record_trace(self._experiment_of(entity), trace, name, row["creator"]) if trace else None
        result = dict(output) if isinstance(output, dict) else {"predictions": output}
        extra: dict[str, Any] = {"served_entity": label}
        if trace_id:
            extra["trace_id"] = trace_id
        if isinstance(request.get("databricks_options"), dict) and request["databricks_options"].get("return_trace"):
            extra["trace"] = trace
        result["databricks_output"] = extra
        return Invocation(name, entity["name"], task, result, cold_start=cold, queued=waited)

    def _pool_for(self, row: Row, entity: dict[str, Any], config_version: int | None = None) -> Any:
        """The worker pool of a served model version under one config of an endpoint."""
        assert self.agents is not None
        version = row["config_version"] if config_version is None else config_version
        key = (row["id"], version, entity["name"])
        pool = self.agents.pool_if_any(key)
        if pool is not None:
            return pool
        described = self._describe(entity)
        env = {k: (self.secrets.resolve(v) if is_reference(v) else v)
               for k, v in (entity.get("environment_vars") or {}).items() if k != "MLFLOW_EXPERIMENT_ID"}
        label = f"{entity['entity_name']} v{entity['entity_version']}"
        policy = described.declared.policy
        system = None
        if policy != "caller":  # the endpoint's creator, restricted to what the model declares
            creator = self.agents.identity.by_name(row["creator"])
            if creator is None or not creator.active:
                raise PermissionDenied(f"the creator of endpoint '{row['name']}' no longer exists or is inactive, so "
                                       f"{label} has no identity to act as")
            system = replace(creator, scope=described.declared.scope)
        return self.agents.pool(key, label, described.model_dir, entity, env, policy=policy, system=system)

    def _describe(self, entity: dict[str, Any]) -> Any:
        assert self.agents is not None
        key = (entity["entity_name"], entity["entity_version"])
        described = self._described.get(key)
        if described is None:  # checked for the endpoint's creator when the config was given
            system = Principal(id="", kind="user", name="system", groups=frozenset({ADMINS}))
            described = self._described[key] = self.agents.describe(system, *key)
        return described

    def _experiment_of(self, entity: dict[str, Any]) -> str | None:
        """Where a served version's traces go: the endpoint's MLFLOW_EXPERIMENT_ID (as databricks.agents.deploy
        sets it), else the experiment of the run the version was logged from."""
        chosen = (entity.get("environment_vars") or {}).get("MLFLOW_EXPERIMENT_ID")
        if chosen:
            return str(chosen)
        described = self._described.get((entity["entity_name"], entity["entity_version"]))
        return described.experiment_id if described else None

    def _stream(self, model: Any, slot: Slot | None, request: dict[str, Any], name: str) -> Iterator[dict[str, Any]]:
        """The chunks, with the model's queue slot taken now and given back when the stream ends or is
        dropped. The first chunk is fetched before returning, so errors still become HTTP errors."""
        if slot is not None:
            slot.__enter__()
        stream = _Guarded(model.stream(request), (lambda: slot.__exit__(None, None, None)) if slot else None, name)
        try:
            first = next(stream)
        except StopIteration:
            return iter(())
        except BaseException:
            stream.close()
            raise
        return _chain(first, stream)

    def _complete(self, model: Any, slot: Slot | None, request: dict[str, Any], name: str) -> dict[str, Any]:
        prompt = _prompt_of(request)
        if hasattr(model, "complete"):
            result = model.complete({**request, "prompt": prompt})
        else:
            chat = {**request, "messages": [{"role": "user", "content": prompt}]}
            with slot if slot is not None else _nullcontext():
                answer = model.chat(chat)
            choice = answer["choices"][0]
            result = {"id": answer["id"].replace("chatcmpl", "cmpl"), "object": "text_completion",
                      "created": answer["created"], "model": name,
                      "choices": [{"index": 0, "text": choice["message"].get("content") or "",
                                   "finish_reason": choice.get("finish_reason"), "logprobs": None}],
                      "usage": answer.get("usage")}
        result["model"] = name
        return result

    def _embed(self, model: Any, slot: Slot | None, request: dict[str, Any], name: str) -> dict[str, Any]:
        texts, fmt = _embed_input(request)
        if hasattr(model, "embed_raw"):
            return _embed_output(model.embed_raw(texts), texts, fmt, name)
        with slot if slot is not None else _nullcontext():
            vectors = np.asarray(model.embed(texts), dtype=np.float32)
        return _embed_result(vectors, sum(count_tokens(t) for t in texts), fmt, name)


def _prompt_of(request: dict[str, Any]) -> str:
    """Take the completion prompt out of ``request`` (one string, or a list of one)."""
    prompt = request.pop("prompt", None)
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidParameterValue("prompt must be a string")
    return prompt


def _embed_input(request: dict[str, Any]) -> tuple[list[str], str]:
    """(texts, encoding format) of an embeddings request, checked."""
    texts = request.get("input")
    if texts is None:
        texts = _dataframe_texts(request)
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidParameterValue("input must be a string or a non-empty list of strings")
    if len(texts) > 2048:
        raise InvalidParameterValue("at most 2048 inputs per request")
    fmt = request.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise InvalidParameterValue("encoding_format must be float or base64")
    return texts, fmt


def _embed_output(raw: dict[str, Any], texts: list[str], fmt: str, name: str) -> dict[str, Any]:
    """An upstream provider's embeddings answer, re-encoded as asked."""
    vectors = np.array([d["embedding"] for d in sorted(raw["data"], key=lambda d: d["index"])], dtype=np.float32)
    tokens = (raw.get("usage") or {}).get("prompt_tokens") or sum(count_tokens(t) for t in texts)
    return _embed_result(vectors, tokens, fmt, name)


def _embed_result(vectors: np.ndarray, tokens: int, fmt: str, name: str) -> dict[str, Any]:
    data = []
    for i, vec in enumerate(vectors):
        emb: Any = base64.b64encode(vec.astype("<f4").tobytes()).decode() if fmt == "base64" else vec.tolist()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {"object": "list", "data": data, "model": name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


class _Guarded:
    """An iterator that runs ``release`` exactly once: at its end, on close(), or when collected."""

    def __init__(self, inner: Iterator[dict[str, Any]], release: Callable[[], None] | None, name: str) -> None:
        self._inner = inner
        self._release = release
        self._name = name

    def __iter__(self) -> _Guarded:
        return self

    def __next__(self) -> dict[str, Any]:
        try:
            chunk = next(self._inner)
        except BaseException:
            self.close()
            raise
        chunk["model"] = self._name
        return chunk

    def close(self) -> None:
        release, self._release = self._release, None
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
        if release is not None:
            release()

    def __del__(self) -> None:
        self.close()


def _chain(first: dict[str, Any], rest: _Guarded) -> Iterator[dict[str, Any]]:
    try:
        yield first
        yield from rest
    finally:
        rest.close()


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _check_chat(request: dict[str, Any]) -> None:
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidParameterValue("messages must be a non-empty list of {role, content}")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool", "developer"):
            raise InvalidParameterValue("each message needs a role: system, user, assistant, tool or developer")
    if request.get("n") not in (None, 1):
        raise InvalidParameterValue("only n=1 is supported")
    mt = request.get("max_tokens")
    if mt is not None and (not isinstance(mt, int) or mt <= 0):
        raise InvalidParameterValue("max_tokens must be a positive integer")
    request.setdefault("max_tokens", 512)
    if count_messages(messages) > 200_000:
        raise InvalidParameterValue("the conversation is too long")


def _check_rerank(request: dict[str, Any]) -> None:
    query, documents = request.get("query"), request.get("documents")
    if not isinstance(query, str) or not query:
        raise InvalidParameterValue("a rerank request needs query: a non-empty string")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        raise InvalidParameterValue("a rerank request needs documents: a non-empty list of strings")
    if len(documents) > 1000:
        raise InvalidParameterValue("at most 1000 documents per rerank request")


def _dataframe_texts(request: dict[str, Any]) -> Any:
    if "inputs" in request:
        return request["inputs"]
    if "instances" in request:
        return request["instances"]
    split = request.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("data"), list):
        return [row[0] if isinstance(row, list) and row else row for row in split["data"]]
    records = request.get("dataframe_records")
    if isinstance(records, list):
        return [next(iter(r.values())) if isinstance(r, dict) and r else r for r in records]
    return None


def _local_key(entity: dict[str, Any]) -> str:
    """What identifies an in-process model: a stand-in's name, or a GGUF entity's file and settings."""
    if not is_gguf(entity):
        return str(entity.get("entity_name"))
    return json.dumps({"path": entity["entity_name"], "version": entity.get("entity_version"),
                       "config": entity.get("gguf_config") or {}}, sort_keys=True)


def _serves_versions(config: dict[str, Any]) -> bool:
    """Whether an endpoint config serves registered model versions (run in their workers), whatever task their
    MLmodel declares: an ``llm/v1/chat`` pyfunc model is still run by its own code, never by a local model."""
    return any(e.get("entity_version") is not None and "external_model" not in e
               and e.get("entity_name") not in LOCAL_MODELS and not is_gguf(e)
               for e in config.get("served_entities") or [])
