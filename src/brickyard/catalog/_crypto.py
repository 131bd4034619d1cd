"""Encryption at rest for secret values (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The key lives in a file beside the workspace (``secrets.key``, mode 0600), not in the metastore: a copy
of the metastore, or a dump of the PostgreSQL database, does not reveal secrets. Whoever can read the
workspace directory can; protect it like any credential store.
"""

from __future__ import annotations

import os
from pathlib import Path

PREFIX = "fernet:"


class SecretBox:
    def __init__(self, key_file: Path) -> None:
        from cryptography.fernet import Fernet

        self.key_file = key_file
        self._fernet = Fernet(self._load_or_create())

    def _load_or_create(self) -> bytes:
        from cryptography.fernet import Fernet

        try:
            return self.key_file.read_bytes().strip()
        except FileNotFoundError:
            pass
        self.key_file.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        try:
            fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return self.key_file.read_bytes().strip()
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
            fh.flush()
            os.fsync(fh.fileno())
        return key

    def seal(self, value: str) -> str:
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored
        return self._fernet.decrypt(stored[len(PREFIX):].encode()).decode()

    def sign(self, payload: dict[str, object]) -> str:
        """A sealed, timestamped token for ``payload`` (URL-safe): signed URLs carry it."""
        import json

        return self._fernet.encrypt(json.dumps(payload, separators=(",", ":")).encode()).decode()

    def unsign(self, token: str, *, max_age_seconds: int) -> dict[str, object] | None:
        """The payload of a token :meth:`sign` made at most ``max_age_seconds`` ago, else None."""
        import json

        from cryptography.fernet import InvalidToken

        try:
            payload = json.loads(self._fernet.decrypt(token.encode(), ttl=max_age_seconds))
        except (InvalidToken, ValueError, TypeError):
            return None
        return payload if isinstance(payload, dict) else None

