"""Run the parser on an untrusted file in a subprocess with hard limits: address space, CPU time,
file size, wall time, and a scratch working directory. A file that breaks the parser, loops or
explodes ends as a typed ``IngestionError``; the server process never touches its bytes."""

from __future__ import annotations

import json
import os
import queue
import resource
import select
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..core.errors import IngestionError
from ..core.settings import Settings

MEMORY_BYTES = 512 << 20
CPU_SECONDS = 10
WALL_SECONDS = 10.0
MAX_FILE_BYTES = 100 << 20
WRITE_BYTES = 50 << 20
FILES_PER_WORKER = 200  # a pool worker is replaced after this many files
MAX_ANSWER_BYTES = 256 << 20


def limit_self(*, files: int = 1) -> None:
    """Called first thing by the worker (not via preexec_fn, which is unsafe in a threaded server). A worker
    that parses ``files`` files gets CPU_SECONDS for each (the soft limit is moved per file)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS * files + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (WRITE_BYTES, WRITE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def parse_file(path: str | os.PathLike[str], name: str | None = None) -> dict[str, Any]:
    """Parse one file (``name`` decides the format, default the file name) in the sandbox."""
    path = Path(path)
    name = name or path.name
    _check(path, name)
    env = _environ()
    with tempfile.TemporaryDirectory(prefix="brickyard-parse-") as scratch:
        try:
            done = subprocess.run([sys.executable, "-m", "brickyard.ingest._worker", str(path.resolve()), name],
                                  capture_output=True, timeout=WALL_SECONDS, cwd=scratch, env=env, check=False)
        except subprocess.TimeoutExpired:
            raise IngestionError("TIMEOUT", f"parsing {name} took longer than {WALL_SECONDS:.0f} s") from None
    if done.returncode != 0 or not done.stdout:
        raise _stopped(name, done.returncode, done.stderr)
    return _answer(name, done.stdout)


def _check(path: Path, name: str) -> None:
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


def _environ() -> dict[str, str]:
    return Settings.sandbox_environ(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")


def _stopped(name: str, returncode: int | None, stderr: bytes) -> IngestionError:
    if returncode in (-9, -24):  # SIGKILL / SIGXCPU: the CPU limit
        return IngestionError("TIMEOUT", f"parsing {name} used more than {CPU_SECONDS} s of CPU")
    return IngestionError("TOO_LARGE" if b"MemoryError" in stderr else "CORRUPT",
                          f"the parser stopped on {name} (exit {returncode})")


def _answer(name: str, raw: bytes) -> dict[str, Any]:
    try:
        out = json.loads(raw)
    except ValueError:
        raise IngestionError("CORRUPT", f"the parser gave no answer for {name}") from None
    if "error" in out:
        raise IngestionError(out["error"]["kind"], out["error"]["message"])
    return dict(out["ok"])


class _Worker:
    """A ``--serve`` parsing subprocess (same limits as the one-shot one, a CPU budget per file)."""

    def __init__(self, scratch: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "brickyard.ingest._worker", "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     cwd=scratch, env=_environ())
        self.files = 0

    def parse(self, path: Path, name: str) -> dict[str, Any]:
        """Parse one file; on a timeout, a crash or an oversized answer the worker is stopped (and raises)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.files += 1
        try:
            self.proc.stdin.write(json.dumps({"path": str(path.resolve()), "name": name}).encode() + b"\n")
            self.proc.stdin.flush()
        except OSError:
            raise self._dead(name) from None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + WALL_SECONDS
        parts: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.stop()
                raise IngestionError("TIMEOUT", f"parsing {name} took longer than {WALL_SECONDS:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            block = os.read(fd, 1 << 20)
            if not block:
                raise self._dead(name)
            parts.append(block)
            size += len(block)
            if size > MAX_ANSWER_BYTES:
                self.stop()
                raise IngestionError("TOO_LARGE", f"the parsed form of {name} is over {MAX_ANSWER_BYTES >> 20} MiB")
            if block.endswith(b"\n"):
                return _answer(name, b"".join(parts))

    def _dead(self, name: str) -> IngestionError:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        stderr = self.proc.stderr.read() if self.proc.stderr is not None else b""
        return _stopped(name, self.proc.returncode, stderr)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and self.files < FILES_PER_WORKER

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def parse_many(files: Iterable[tuple[Path, str]], *, workers: int | None = None
               ) -> Iterator[tuple[Path, str, dict[str, Any] | IngestionError]]:
    """Parse ``(path, name)`` pairs on a pool of sandboxed worker processes (one per CPU by default) and
    yield ``(path, name, parsed or the error)`` in the order given."""
    items = list(files)
    count = max(1, min(workers or os.cpu_count() or 1, len(items) or 1))
    with tempfile.TemporaryDirectory(prefix="brickyard-parse-") as scratch:
        idle: queue.SimpleQueue[_Worker | None] = queue.SimpleQueue()
        for _ in range(count):
            idle.put(None)  # started on first use
        started: list[_Worker] = []

        def one(item: tuple[Path, str]) -> dict[str, Any] | IngestionError:
            path, name = item
            worker = idle.get()
            try:
                _check(path, name)
                if worker is None or not worker.alive:
                    if worker is not None:
                        worker.stop()
                    worker = _Worker(scratch)
                    started.append(worker)
                return worker.parse(path, name)
            except IngestionError as exc:
                return exc
            finally:
                idle.put(worker)

        try:
            with ThreadPoolExecutor(count, thread_name_prefix="parse") as pool:
                ahead: deque[Future[dict[str, Any] | IngestionError]] = deque()
                pending = iter(items)
                for item in items:  # a bounded window of parses runs ahead of the consumer
                    while len(ahead) < 4 * count:
                        nxt = next(pending, None)
                        if nxt is None:
                            break
                        ahead.append(pool.submit(one, nxt))
                    yield item[0], item[1], ahead.popleft().result()
        finally:
            for worker in started:
                worker.stop()


def parse_bytes(data: bytes, name: str) -> dict[str, Any]:
    """Parse uploaded content: written to a private temporary file, then parsed in the sandbox."""
    if len(data) > MAX_FILE_BYTES:
        raise IngestionError("TOO_LARGE", f"the content is {len(data) >> 20} MiB; at most {MAX_FILE_BYTES >> 20}")
    with tempfile.NamedTemporaryFile(prefix="brickyard-upload-", suffix=Path(name).suffix[:10]) as fh:
        fh.write(data)
        fh.flush()
        return parse_file(fh.name, name)


def parse_blobs(blobs: list[bytes | None], *, workers: int | None = None) -> list[dict[str, Any] | None]:
    """Parse documents given as bytes (SQL's ``ai_parse_document`` over ``read_files``), their format told from
    their content, on the pool of sandboxed workers. A document that cannot be parsed answers the same shape
    with its reason in ``error_status`` (as Databricks does), so one bad file does not fail the rest."""
    out: list[dict[str, Any] | None] = [None] * len(blobs)
    with tempfile.TemporaryDirectory(prefix="brickyard-blobs-") as scratch:
        files = []
        for i, blob in enumerate(blobs):
            if blob is None:
                continue
            path = Path(scratch) / f"{i}"
            path.write_bytes(blob)
            files.append((path, "document"))
        for path, _, parsed in parse_many(files, workers=workers):
            i = int(path.name)
            if isinstance(parsed, IngestionError):
                parsed = {"document": {"pages": [], "elements": []},
                          "error_status": [{"error_message": parsed.message, "page_id": None}],
                          "metadata": {"version": "2.0"}}
            out[i] = parsed
    return out

