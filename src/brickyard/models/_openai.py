"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI, a Databricks workspace's
``/serving-endpoints``) as a ``ChatModel`` and ``Embedder``.

Base URLs are checked against an allow-list before any connection: a provider key is never sent to a
host that was not allowed, redirects are not followed, and no address a name resolves to may be in a
special-purpose block (private, loopback, carrier-grade NAT, link-local, IPv4-embedding IPv6 forms, ...:
:mod:`brickyard.core.addresses`) unless that exact host is allow-listed. The connection then goes to the
address that was checked (DNS pinning), so the name cannot be rebound between the check and the connect.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from ..core.addresses import refusal
from ..core.errors import BrickyardError, InvalidParameterValue, RateLimited, TemporarilyUnavailable


class UpstreamError(BrickyardError):
    error_code = "BAD_GATEWAY"
    http_status = 502


def check_url(url: str, allowed_hosts: frozenset[str]) -> tuple[str, str, str]:
    """Validate ``url`` for outbound model calls; returns (scheme, host:port, the IP address to use).

    The address is resolved here, once, and the caller connects to that address (DNS pinning): a name
    that resolves to an allowed address now cannot be rebound to a private one for the connection."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidParameterValue("the model base URL must be a string of at most 2048 characters")
    try:
        parts = urlsplit(url)
        port_given = parts.port
    except ValueError as exc:  # a port that is not a number or is beyond 65535
        raise InvalidParameterValue(f"the model base URL is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterValue("the model base URL must be http(s)://host[:port]/...")
    if parts.username or parts.password:
        raise InvalidParameterValue("the model base URL must not carry credentials; use the api key field")
    host = parts.hostname.lower()
    port = port_given or (443 if parts.scheme == "https" else 80)
    hostport = f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        raise InvalidParameterValue(f"cannot resolve model host {host!r}") from None
    if not infos:
        raise InvalidParameterValue(f"cannot resolve model host {host!r}")
    pinned = str(infos[0][4][0])
    if hostport in allowed_hosts or host in allowed_hosts:
        return parts.scheme, hostport, pinned
    for info in infos:  # every address the name has, not only the one used: the list may be rotated
        why = refusal(str(info[4][0]))
        if why is not None:
            raise InvalidParameterValue(
                f"model host {host!r} resolves to {info[4][0]}, a {why} address; add {hostport!r} to "
                "BRICKYARD_ALLOWED_MODEL_HOSTS if you mean it")
    return parts.scheme, hostport, pinned


def pinned_http_client(url: str, allowed_hosts: frozenset[str], *, timeout: Any) -> Any:
    """An ``httpx.Client`` for ``url`` that connects only to the address :func:`check_url` approved for its
    host (TLS still checks the certificate against the name), follows no redirects and reads no proxy
    settings from the environment."""
    import httpcore
    import httpx

    _scheme, _hostport, ip = check_url(url, allowed_hosts)
    checked = (urlsplit(url).hostname or "").lower()

    class Pinned(httpcore.SyncBackend):
        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Any = None) -> Any:
            if host.strip("[]").lower() != checked:
                raise httpcore.ConnectError(f"refusing to connect to {host!r}: only {checked!r} was checked")
            return super().connect_tcp(ip, port, timeout, local_address, socket_options)

    transport = httpx.HTTPTransport(retries=0)
    transport._pool._network_backend = Pinned()  # httpx 0.28 offers no public way to choose the backend
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)


class _PinnedResolver:
    """An aiohttp resolver that knows one name, and answers with the address checked by ``check_url``."""

    def __init__(self, host: str, ip: str) -> None:
        self._host = host
        self._ip = ip

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        if host != self._host:
            raise OSError(f"refusing to resolve {host!r}: only the checked model host may be reached")
        fam = socket.AF_INET6 if ":" in self._ip else socket.AF_INET
        return [{"hostname": host, "host": self._ip, "port": port, "family": fam, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        return None


class OpenAICompatible:
    """Talks to the upstream with pooled clients: urllib3 for blocking callers, aiohttp for the server's
    event loop. Measured here, httpx spent about 1.4 ms of CPU per proxied request, which is most of a
    gateway hop's budget; the async path also saves the hop to a worker thread."""

    def __init__(self, base_url: str, *, model: str, api_key: str | None = None, timeout: float = 120.0,
                 allowed_hosts: frozenset[str] = frozenset(), headers: dict[str, str] | None = None,
                 model_id: str | None = None, retries: int = 2) -> None:
        import urllib3

        scheme, hostport, ip = check_url(base_url, allowed_hosts)
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self._prefix = parts.path.rstrip("/")
        self.model = model
        self.model_id = model_id or model
        self.retries = retries
        self.dimension = 0
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = urllib3.Timeout(connect=min(10.0, timeout), read=timeout)
        host, port = hostport.rsplit(":", 1)
        self._headers["Host"] = host if port in ("80", "443") else hostport
        self._scheme, self._host, self._port, self._ip = scheme, host, int(port), ip
        self._read_timeout = timeout
        self._sessions: dict[int, Any] = {}  # event loop id -> its aiohttp session
        # Connect to the address resolved above; TLS still verifies the certificate for the host name.
        if scheme == "https":
            self._pool: Any = urllib3.HTTPSConnectionPool(ip, int(port), maxsize=32, retries=False,
                                                          timeout=self._timeout, server_hostname=host,
                                                          assert_hostname=host)
        else:
            self._pool = urllib3.HTTPConnectionPool(ip, int(port), maxsize=32, retries=False, timeout=self._timeout)

    def close(self) -> None:
        self._pool.close()

    async def aclose(self) -> None:
        """Close the aiohttp session of the running event loop (sessions of other loops stay)."""
        session = self._sessions.pop(id(asyncio.get_running_loop()), None)
        if session is not None:
            await session.close()

    def _session(self) -> Any:
        import aiohttp

        loop = asyncio.get_running_loop()
        session = self._sessions.get(id(loop))
        if session is None or session.closed or session._loop is not loop:  # noqa: SLF001 - a reused id
            connector = aiohttp.TCPConnector(limit=64, resolver=_PinnedResolver(self._host, self._ip),
                                             use_dns_cache=False)
            session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None, connect=min(10.0, self._read_timeout),
                                              sock_read=self._read_timeout))
            self._sessions[id(loop)] = session
        return session

    async def _arequest(self, path: str, body: dict[str, Any]) -> tuple[int, Any, bytes]:
        import aiohttp

        port = "" if (self._scheme, self._port) in (("http", 80), ("https", 443)) else f":{self._port}"
        url = f"{self._scheme}://{self._host}{port}{self._prefix}{path}"
        try:
            async with self._session().post(url, data=json.dumps(body).encode(), headers=self._headers,
                                            allow_redirects=False) as r:
                return r.status, r.headers, await r.read()
        except TimeoutError:
            raise TemporarilyUnavailable("the upstream model timed out", retry_after=1) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamError(f"cannot reach the upstream model: {type(exc).__name__}") from None

    async def _apost(self, path: str, body: dict[str, Any]) -> Any:
        """:meth:`_post` for the event loop: the same retries and back-off, without blocking it."""
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                status, headers, data = await self._arequest(path, body)
                return self._answer(status, headers, data)
            except (RateLimited, TemporarilyUnavailable, UpstreamError) as exc:
                if attempt == self.retries:
                    raise
                await asyncio.sleep(_backoff(exc, delay))
                delay *= 2
        raise AssertionError("unreachable")

    def _request(self, path: str, body: dict[str, Any], *, stream: bool = False) -> Any:
        import urllib3

        try:
            return self._pool.request("POST", self._prefix + path, body=json.dumps(body).encode(),
                                      headers=self._headers, redirect=False, preload_content=not stream)
        except urllib3.exceptions.TimeoutError:
            raise TemporarilyUnavailable("the upstream model timed out", retry_after=1) from None
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(f"cannot reach the upstream model: {type(exc).__name__}") from None

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        """POST with up to ``retries`` retries on 429/5xx/timeouts, backing off (and honouring a short
        ``Retry-After``); 4xx answers are final."""
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                r = self._request(path, body)
                return self._answer(r.status, r.headers, r.data)
            except (RateLimited, TemporarilyUnavailable, UpstreamError) as exc:
                if attempt == self.retries:
                    raise
                time.sleep(_backoff(exc, delay))
                delay *= 2
        raise AssertionError("unreachable")

    @classmethod
    def _answer(cls, status: int, headers: Any, data: bytes) -> Any:
        cls._raise_for(status, headers, data)
        try:
            return json.loads(data)
        except ValueError:
            raise UpstreamError("the upstream model answered with invalid JSON") from None

    @staticmethod
    def _raise_for(status: int, headers: Any, data: bytes) -> None:
        if status < 300:
            return
        try:
            retry = float(headers.get("retry-after", "1") or 1)
        except ValueError:
            retry = 1.0
        text = data[:300].decode("utf-8", "replace")
        if status == 429:
            raise RateLimited(f"the upstream model is rate limited: {text}", retry_after=retry)
        if status in (502, 503, 504):
            raise TemporarilyUnavailable(f"the upstream model is unavailable ({status})", retry_after=retry)
        if 300 <= status < 400:
            raise UpstreamError(f"the upstream model redirected ({status}); redirects are not followed")
        if status in (400, 404, 422):
            raise InvalidParameterValue(f"the upstream model rejected the request ({status}): {text}")
        raise UpstreamError(f"the upstream model failed ({status})")

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict(self._post("/chat/completions", {**request, "model": self.model, "stream": False}))

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict(self._post("/completions", {**request, "model": self.model, "stream": False}))

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        import urllib3

        body = {**request, "model": self.model, "stream": True, "stream_options": {"include_usage": True}}
        delay = 0.2
        for attempt in range(self.retries + 1):
            sent = 0  # chunks handed on: once one is, a failure can no longer be retried
            try:
                r = self._request("/chat/completions", body, stream=True)
            except (TemporarilyUnavailable, UpstreamError):
                if attempt == self.retries:
                    raise
                time.sleep(delay)
                delay *= 2
                continue
            try:
                if r.status >= 300:
                    self._raise_for(r.status, r.headers, r.read(64 * 1024))
                blocks = r.stream(64 * 1024)
                if str(r.headers.get("content-type", "")).startswith("application/json"):
                    yield _as_chunk(_read_capped(blocks))  # a server that ignored stream=true: one chunk
                    return
                for chunk in sse_events(blocks):
                    sent += 1
                    yield chunk
                return
            except urllib3.exceptions.HTTPError as exc:
                # a pooled connection the upstream had closed breaks before the first byte: send again
                if sent or attempt == self.retries:
                    raise UpstreamError(f"the upstream stream broke: {type(exc).__name__}") from None
                time.sleep(delay)
                delay *= 2
            finally:
                r.release_conn()

    def embed_raw(self, texts: list[str]) -> dict[str, Any]:
        return dict(self._post("/embeddings", {"model": self.model, "input": texts}))

    def rerank(self, request: dict[str, Any]) -> dict[str, Any]:
        return _rerank_answer(self._post("/rerank", _rerank_body(self.model, request)), len(request["documents"]))

    async def arerank(self, request: dict[str, Any]) -> dict[str, Any]:
        answer = await self._apost("/rerank", _rerank_body(self.model, request))
        return _rerank_answer(answer, len(request["documents"]))

    async def achat(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._apost("/chat/completions", {**request, "model": self.model, "stream": False}))

    async def acomplete(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._apost("/completions", {**request, "model": self.model, "stream": False}))

    async def aembed_raw(self, texts: list[str]) -> dict[str, Any]:
        return dict(await self._apost("/embeddings", {"model": self.model, "input": texts}))

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        data = self.embed_raw(texts)["data"]
        return np.array([d["embedding"] for d in sorted(data, key=lambda d: d["index"])], dtype=np.float32)


MAX_STREAM_BYTES = 64 << 20  # a whole streamed reply
MAX_EVENT_BYTES = 1 << 20  # one line of it


def sse_events(blocks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The JSON events of an OpenAI-style server-sent event stream, read incrementally (linear in its size,
    whatever its lines look like). A reply that is not such a stream, holds an event that is not a JSON
    object, an error event, a line over MAX_EVENT_BYTES or more than MAX_STREAM_BYTES in all, or that ends
    before any event, raises :class:`UpstreamError` with the reason (a 502 before the first chunk)."""
    buf = bytearray()
    total = events = 0

    def event(line: bytes) -> dict[str, Any] | None:
        line = line.strip()
        if not line or line.startswith(b":") or line.startswith((b"event:", b"id:", b"retry:")):
            return None
        if not line.startswith(b"data:"):
            raise UpstreamError("the upstream model answered a stream request with something that is not "
                                f"server-sent events ({line[:60].decode('utf-8', 'replace')!r}...)")
        data = line[5:].strip()
        if data == b"[DONE]":
            raise _Done
        try:
            chunk = json.loads(data)
        except ValueError:
            raise UpstreamError("the upstream stream holds an event that is not valid JSON") from None
        if not isinstance(chunk, dict):
            raise UpstreamError("the upstream stream holds an event that is not a JSON object")
        if "error" in chunk and "choices" not in chunk:
            detail = chunk["error"].get("message") if isinstance(chunk["error"], dict) else chunk["error"]
            raise UpstreamError(f"the upstream model failed during the stream: {str(detail)[:200]}")
        return chunk

    try:
        for block in blocks:
            total += len(block)
            if total > MAX_STREAM_BYTES:
                raise UpstreamError(f"the upstream stream is larger than {MAX_STREAM_BYTES} bytes")
            buf += block
            start = 0
            while (end := buf.find(b"\n", start)) >= 0:
                chunk = event(bytes(buf[start:end]))
                start = end + 1
                if chunk is not None:
                    events += 1
                    yield chunk
            del buf[:start]
            if len(buf) > MAX_EVENT_BYTES:
                raise UpstreamError(f"the upstream stream has a line longer than {MAX_EVENT_BYTES} bytes (it is "
                                    "not server-sent events, or an event is oversized)")
        chunk = event(bytes(buf))
        if chunk is not None:
            events += 1
            yield chunk
    except _Done:
        pass
    if events == 0:
        raise UpstreamError("the upstream stream ended without any event")


class _Done(Exception):
    pass


def _read_capped(blocks: Iterable[bytes]) -> Any:
    data = bytearray()
    for block in blocks:
        data += block
        if len(data) > MAX_STREAM_BYTES:
            raise UpstreamError(f"the upstream reply is larger than {MAX_STREAM_BYTES} bytes")
    try:
        return json.loads(data)
    except ValueError:
        raise UpstreamError("the upstream model answered with invalid JSON") from None


def _as_chunk(answer: Any) -> dict[str, Any]:
    """A chat completion as the one chunk of a stream."""
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
        raise UpstreamError("the upstream model answered a stream request with JSON that is not a chat completion")
    choices = []
    for i, choice in enumerate(answer["choices"]):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise UpstreamError("the upstream model's answer has a choice without a message")
        delta = {k: v for k, v in message.items() if k in ("role", "content", "tool_calls")}
        choices.append({"index": choice.get("index", i), "delta": delta, "finish_reason": choice.get("finish_reason")})
    return {"id": answer.get("id", "chatcmpl-upstream"), "object": "chat.completion.chunk",
            "created": answer.get("created", int(time.time())), "model": answer.get("model", ""),
            "choices": choices, **({"usage": answer["usage"]} if answer.get("usage") else {})}


def _backoff(error: BrickyardError, delay: float) -> float:
    """Seconds to wait before the next attempt: the back-off, or a rate limit's short Retry-After."""
    if isinstance(error, RateLimited):
        return min(float(error.retry_after or delay), 2.0)
    return delay


def _rerank_body(model: str, request: dict[str, Any]) -> dict[str, Any]:
    body = {"model": model, "query": request["query"], "documents": request["documents"]}
    if isinstance(request.get("top_n"), int):
        body["top_n"] = request["top_n"]
    return body


def _rerank_answer(answer: Any, count: int) -> dict[str, Any]:
    """The provider's answer as ``{"results": [{"index", "relevance_score"}]}``, best first (the shape of
    vLLM, TEI, Jina and Cohere's rerank APIs), checked."""
    results = answer.get("results") if isinstance(answer, dict) else answer
    if not isinstance(results, list):
        raise UpstreamError("the rerank provider answered without a results list")
    out = []
    for item in results:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score", item.get("score")) if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < count or not isinstance(score, int | float):
            raise UpstreamError("the rerank provider answered with an invalid result")
        out.append({"index": index, "relevance_score": float(score)})
    out.sort(key=lambda r: -r["relevance_score"])
    return {"object": "list", "results": out, "usage": answer.get("usage") if isinstance(answer, dict) else None}
