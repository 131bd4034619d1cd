"""The vector index steps of ``brickyard ingest --index`` through the REST API of the server that holds the
home, so the server stays the only process that writes its indexes."""

from __future__ import annotations

from typing import Any

import httpx

from ..core.errors import BrickyardError, InvalidState, NotFound

BASE = "/api/2.0/vector-search"


class RemoteIndexes:
    """:class:`brickyard.vectorsearch.Indexes` over HTTP, with a short-lived token of the acting user."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=60.0)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.http.request(method, BASE + path, json=body)
        if r.status_code == 404:
            raise NotFound(r.json().get("message", path) if r.content else path)
        if r.status_code >= 400:
            try:
                payload = r.json()
            except ValueError:
                payload = {"message": r.text[:300]}
            message = str(payload.get("message") or r.reason_phrase)
            if "RUNNING" in message:
                raise InvalidState(message)
            raise BrickyardError(f"the server answered {r.status_code}: {message}",
                                 error_code=str(payload.get("error_code") or "INTERNAL_ERROR"))
        return r.json() if r.content else {}

    def endpoint_exists(self, name: str) -> bool:
        try:
            self._call("GET", f"/endpoints/{name}")
        except NotFound:
            return False
        return True

    def create_endpoint(self, name: str) -> None:
        self._call("POST", "/endpoints", {"name": name, "endpoint_type": "STANDARD"})

    def index_exists(self, name: str) -> bool:
        try:
            self._call("GET", f"/indexes/{name}")
        except NotFound:
            return False
        return True

    def create_index(self, body: dict[str, Any]) -> None:
        self._call("POST", "/indexes", body)

    def sync(self, name: str) -> None:
        self._call("POST", f"/indexes/{name}/sync")

    def status(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/indexes/{name}").get("status") or {})
