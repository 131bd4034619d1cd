"""Files -> parsed elements -> chunks -> a Delta table (change data feed on, so a Delta Sync index
follows it). Re-ingesting a file replaces its chunks in one commit (an overwrite with a predicate on
``source``), so an index never sees a half-replaced document."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..catalog import Principal
from ..core.errors import IngestionError, InvalidParameterValue
from ..tables import Tables
from ._chunk import Options, chunk
from ._parse import FORMATS
from ._sandbox import parse_file

CHUNK_SCHEMA = pa.schema([
    ("chunk_id", pa.string()),
    ("source", pa.string()),
    ("chunk_index", pa.int32()),
    ("text", pa.string()),
    ("start", pa.int64()),
    ("end", pa.int64()),
    ("page", pa.int32()),
    ("section_path", pa.string()),
])


@dataclass
class Report:
    files: int = 0
    chunks: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "chunks": self.chunks, "failed": self.failed, "table_version": self.version}


def files_under(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """(file, source name) for the supported files named by ``paths``. Directories are walked (hidden
    entries skipped) and their files are named relative to the directory given."""
    out: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out += [(p, p.relative_to(path).as_posix()) for p in sorted(path.rglob("*"))
                    if p.is_file() and p.suffix.lower() in FORMATS
                    and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        elif path.is_file():
            out.append((path, path.name))
        else:
            raise InvalidParameterValue(f"{path} does not exist")
    return out


def ingest(tables: Tables, p: Principal, paths: Iterable[str | Path], table: str, *,
           options: Options | None = None, embed: Callable[[list[str]], np.ndarray] | None = None,
           progress: Callable[[str, int], None] | None = None) -> Report:
    """Parse and chunk every file and write the chunks of each into ``table`` (created if missing).
    A file that cannot be parsed is reported in ``failed`` and does not stop the others."""
    opts = (options or Options()).check()
    files = files_under(paths)
    if not files:
        raise InvalidParameterValue("no supported files found (PDF, DOCX, PPTX, HTML, Markdown, text)")
    if not tables.catalog.exists("table", table):
        tables.create(p, table, schema=CHUNK_SCHEMA, comment="Document chunks written by brickyard ingest")
    obj = tables.catalog.require(p, "MODIFY", "table", table, action="ingest")
    report = Report()
    for path, source in files:
        try:
            parsed = parse_file(path)
            rows = [c.to_row() for c in chunk(parsed, source, opts, embed)]
        except IngestionError as exc:
            report.failed.append({"source": source, "kind": exc.kind, "message": exc.message})
            if progress:
                progress(source, 0)
            continue
        data = pa.Table.from_pylist(rows, schema=CHUNK_SCHEMA)
        quoted = source.replace("'", "''")
        result = tables.write_authorized(obj, data, mode="overwrite", predicate=f"source = '{quoted}'")
        report.files += 1
        report.chunks += len(rows)
        report.version = result.version
        if progress:
            progress(source, len(rows))
    return report
