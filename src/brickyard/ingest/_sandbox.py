"""Run the parser on an untrusted file in a subprocess with hard limits: address space, CPU time,
file size, wall time, and a scratch working directory. A file that breaks the parser, loops or
explodes ends as a typed ``IngestionError``; the server process never touches its bytes."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..core.errors import IngestionError
from ..core.settings import Settings

MEMORY_BYTES = 512 << 20
CPU_SECONDS = 10
WALL_SECONDS = 10.0
MAX_FILE_BYTES = 100 << 20
WRITE_BYTES = 50 << 20


def limit_self() -> None:
    """Called first thing by the worker (not via preexec_fn, which is unsafe in a threaded server)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_FSIZE, (WRITE_BYTES, WRITE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def parse_file(path: str | os.PathLike[str], name: str | None = None) -> dict[str, Any]:
    """Parse one file (``name`` decides the format, default the file name) in the sandbox."""
    path = Path(path)
    name = name or path.name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise IngestionError("UNSUPPORTED", f"cannot read {name}: {exc.strerror}") from None
    if not path.is_file():
        raise IngestionError("UNSUPPORTED", f"{name} is not a regular file")
    if size > MAX_FILE_BYTES:
        raise IngestionError("TOO_LARGE", f"{name} is {size >> 20} MiB; at most {MAX_FILE_BYTES >> 20} MiB")
    if size == 0:
        raise IngestionError("CORRUPT", f"{name} is empty")
    env = Settings.sandbox_environ(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    with tempfile.TemporaryDirectory(prefix="brickyard-parse-") as scratch:
        try:
            done = subprocess.run([sys.executable, "-m", "brickyard.ingest._worker", str(path.resolve()), name],
                                  capture_output=True, timeout=WALL_SECONDS, cwd=scratch, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise IngestionError("TIMEOUT", f"parsing {name} took longer than {WALL_SECONDS:.0f} s") from None
    if done.returncode != 0 or not done.stdout:
        if done.returncode in (-9, -24):  # SIGKILL / SIGXCPU: the CPU limit
            raise IngestionError("TIMEOUT", f"parsing {name} used more than {CPU_SECONDS} s of CPU")
        raise IngestionError("TOO_LARGE" if b"MemoryError" in done.stderr else "CORRUPT",
                             f"the parser stopped on {name} (exit {done.returncode})")
    try:
        out = json.loads(done.stdout)
    except ValueError:
        raise IngestionError("CORRUPT", f"the parser gave no answer for {name}") from None
    if "error" in out:
        raise IngestionError(out["error"]["kind"], out["error"]["message"])
    return dict(out["ok"])


def parse_bytes(data: bytes, name: str) -> dict[str, Any]:
    """Parse uploaded content: written to a private temporary file, then parsed in the sandbox."""
    if len(data) > MAX_FILE_BYTES:
        raise IngestionError("TOO_LARGE", f"the content is {len(data) >> 20} MiB; at most {MAX_FILE_BYTES >> 20}")
    with tempfile.NamedTemporaryFile(prefix="brickyard-upload-", suffix=Path(name).suffix[:10]) as fh:
        fh.write(data)
        fh.flush()
        return parse_file(fh.name, name)
