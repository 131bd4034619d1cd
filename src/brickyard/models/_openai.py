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


def check_url(url: str, allowed_hosts: frozenset[str]) -> tuple[str, str, str]:
    """Validate ``url`` for outbound model calls; returns (scheme, host:port, the IP address to use).

    The address is resolved here, once, and the caller connects to that address (DNS pinning): a name
    that resolves to an allowed address now cannot be rebound to a private one for the connection."""
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
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidParameterValue(f"cannot resolve model host {host!r}") from None
    if not infos:
        raise InvalidParameterValue(f"cannot resolve model host {host!r}")
    pinned = str(infos[0][4][0])
    if hostport in allowed_hosts or host in allowed_hosts:
        return parts.scheme, hostport, pinned
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast \
                or ip.is_unspecified:
            raise InvalidParameterValue(
                f"model host {host!r} resolves to a private or local address ({ip}); add {hostport!r} to "
                "BRICKYARD_ALLOWED_MODEL_HOSTS if you mean it")
    return parts.scheme, hostport, pinned


class OpenAICompatible:
    """Talks to the upstream with a pooled urllib3 client: measured here, httpx spent about 1.4 ms of CPU
    per proxied request, which is most of a gateway hop's budget."""

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
        # Connect to the address resolved above; TLS still verifies the certificate for the host name.
        if scheme == "https":
            self._pool: Any = urllib3.HTTPSConnectionPool(ip, int(port), maxsize=32, retries=False,
                                                          timeout=self._timeout, server_hostname=host,
                                                          assert_hostname=host)
        else:
            self._pool = urllib3.HTTPConnectionPool(ip, int(port), maxsize=32, retries=False, timeout=self._timeout)

    def close(self) -> None:
        self._pool.close()

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
                self._raise_for(r.status, r.headers, r.data)
                return json.loads(r.data)
            except (RateLimited, TemporarilyUnavailable, UpstreamError) as exc:
                error: BrickyardError = exc
            except ValueError:
                error = UpstreamError("the upstream model answered with invalid JSON")
            if attempt == self.retries:
                raise error
            wait = min(float(getattr(error, "retry_after", delay) or delay), 2.0) if isinstance(error, RateLimited) \
                else delay
            time.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

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
        r = self._request("/chat/completions", body, stream=True)
        try:
            if r.status >= 300:
                self._raise_for(r.status, r.headers, r.read())
            buffer = b""
            for block in r.stream(8192):
                buffer += block
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    line = line.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        return
                    yield json.loads(data)
        except urllib3.exceptions.HTTPError as exc:
            raise UpstreamError(f"the upstream stream broke: {type(exc).__name__}") from None
        finally:
            r.release_conn()

    def embed_raw(self, texts: list[str]) -> dict[str, Any]:
        return dict(self._post("/embeddings", {"model": self.model, "input": texts}))

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        data = self.embed_raw(texts)["data"]
        return np.array([d["embedding"] for d in sorted(data, key=lambda d: d["index"])], dtype=np.float32)
