"""AI functions over documents: ``POST /api/2.0/ai-functions/ai-parse-document``."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ..core.errors import InvalidParameterValue
from ._http import Api, Req


def register(api: Api, ws: Any) -> None:
    from ..ingest import parse_bytes, parse_file

    @api.route("POST", "/api/2.0/ai-functions/ai-parse-document", policy="authenticated")
    def ai_parse_document(req: Req) -> dict[str, Any]:
        """Parse a document given as base64 ``content`` (with ``options.file_name`` naming its format) or as
        a volume ``path`` (``/Volumes/...``, needs READ VOLUME). Parsing runs in a limited subprocess."""
        body = req.body or {}
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        path = body.get("path") or options.get("path")
        if isinstance(path, str) and path:
            _, local = ws.volumes.open(req.user, path)
            return parse_file(local, path.rsplit("/", 1)[-1])
        content = body.get("content")
        if not isinstance(content, str) or not content:
            raise InvalidParameterValue("give content (base64 of the file) or path (/Volumes/...)")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidParameterValue("content must be base64") from None
        name = options.get("file_name") or body.get("file_name") or "document"
        if not isinstance(name, str):
            raise InvalidParameterValue("options.file_name must be a string")
        return parse_bytes(data, name)
