"""Any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI, a Databricks workspace's
``/serving-endpoints``) as a ``ChatModel`` and ``Embedder``.

Base URLs are checked against an allow-list before any connection: a provider key is never sent to a
host that was not allowed, redirects are not followed, and the address a name resolves to must not be
private or loopback unless that exact host is allow-listed.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from ..core.errors import BrickyardError, InvalidParameterValue, RateLimited, TemporarilyUnavailable


class UpstreamError(BrickyardError):
    error_code = "BAD_GATEWAY"
    http_status = 502


def check_url(url: str, allowed_hosts: frozenset[str]) -> tuple[str, str]:
    """Validate ``url`` for outbound model calls; returns (scheme, host:port)."""
    if not isinstance(url, str) or len(url) > 2048:
        raise InvalidParameterValue("the model base URL must be a string of at most 2048 characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterValue("the model base URL must be http(s)://host[:port]/...")
    if parts.username or parts.password:
        raise InvalidParameterValue("the model base URL must not carry credentials; use the api key field")
    host = parts.hostname.lower()
    port = parts.port or (443 if parts.scheme == "https" else 80)
    hostport = f"{host}:{port}"
    if hostport in allowed_hosts or host in allowed_hosts:
        return parts.scheme, hostport
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidParameterValue(f"cannot resolve model host {host!r}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast \
                or ip.is_unspecified:
            raise InvalidParameterValue(
                f"model host {host!r} resolves to a private or local address ({ip}); add {hostport!r} to "
                "BRICKYARD_ALLOWED_MODEL_HOSTS if you mean it")
    return parts.scheme, hostport


class OpenAICompatible:
    def __init__(self, base_url: str, *, model: str, api_key: str | None = None, timeout: float = 120.0,
                 allowed_hosts: frozenset[str] = frozenset(), headers: dict[str, str] | None = None,
                 model_id: str | None = None, retries: int = 2) -> None:
        import httpx

        check_url(base_url, allowed_hosts)
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_id = model_id or model
        self.retries = retries
        self.dimension = 0
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, headers={**auth, **(headers or {})},
                                    trust_env=False)

    def close(self) -> None:
        self._client.close()

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        """POST with up to ``retries`` retries on 429/5xx/timeouts, backing off (and honouring a short
        ``Retry-After``); 4xx answers are final."""
        import httpx

        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                r = self._client.post(self.base_url + path, json=body)
                self._raise_for(r)
                return r.json()
            except httpx.TimeoutException:
                error: BrickyardError = TemporarilyUnavailable("the upstream model timed out", retry_after=1)
            except httpx.HTTPError as exc:
                error = UpstreamError(f"cannot reach the upstream model: {type(exc).__name__}")
            except (RateLimited, TemporarilyUnavailable, UpstreamError) as exc:
                error = exc
            if attempt == self.retries:
                raise error
            wait = min(float(getattr(error, "retry_after", delay) or delay), 2.0) if isinstance(error, RateLimited) \
                else delay
            time.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

    @staticmethod
    def _raise_for(r: Any) -> None:
        if r.status_code < 300:
            return
        retry = float(r.headers.get("retry-after", "1") or 1)
        text = r.text[:300]
        if r.status_code == 429:
            raise RateLimited(f"the upstream model is rate limited: {text}", retry_after=retry)
        if r.status_code in (502, 503, 504):
            raise TemporarilyUnavailable(f"the upstream model is unavailable ({r.status_code})", retry_after=retry)
        if 300 <= r.status_code < 400:
            raise UpstreamError(f"the upstream model redirected ({r.status_code}); redirects are not followed")
        if r.status_code in (400, 404, 422):
            raise InvalidParameterValue(f"the upstream model rejected the request ({r.status_code}): {text}")
        raise UpstreamError(f"the upstream model failed ({r.status_code})")

    def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict(self._post("/chat/completions", {**request, "model": self.model, "stream": False}))

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        return dict(self._post("/completions", {**request, "model": self.model, "stream": False}))

    def stream(self, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
        import httpx

        body = {**request, "model": self.model, "stream": True, "stream_options": {"include_usage": True}}
        try:
            with self._client.stream("POST", self.base_url + "/chat/completions", json=body) as r:
                if r.status_code >= 300:
                    r.read()
                    self._raise_for(r)
                for line in r.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    yield json.loads(data)
        except httpx.HTTPError as exc:
            raise UpstreamError(f"the upstream stream broke: {type(exc).__name__}") from None

    def embed_raw(self, texts: list[str]) -> dict[str, Any]:
        return dict(self._post("/embeddings", {"model": self.model, "input": texts}))

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        data = self.embed_raw(texts)["data"]
        return np.array([d["embedding"] for d in sorted(data, key=lambda d: d["index"])], dtype=np.float32)
