"""Files -> parsed elements -> chunks -> a Delta table (change data feed on, so a Delta Sync index
follows it).

Ingesting a folder works like a file-arrival pipeline and is idempotent:

* a file's ``source`` is its path relative to the folder given (``library/functools.html``), or to
  ``root`` when one is named, so two pages with one name never collide and one file can be re-ingested
  on its own;
* every chunk carries the SHA-256 of its file's bytes: a file whose hash is already in the table is
  skipped without being parsed, a changed file's chunks are replaced, and with ``delete_missing`` the
  chunks of files that are gone (or no longer selected) are removed;
* the whole run is one Delta commit (an overwrite whose predicate names exactly the sources that change),
  so a crash leaves the table as it was and an index never sees half a run.

Which files are taken: the supported formats, minus hidden files and folders, minus build artefacts
(``_sources``, ``_static``, ``__pycache__``, ``node_modules``, ...), filtered by ``include`` / ``exclude``
globs on the relative path. Everything left out is counted in the report with its reason.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..catalog import Principal
from ..core.digest import file_sha256
from ..core.errors import IngestionError, InvalidParameterValue
from ..tables import Tables
from ._chunk import Options, chunk
from ._parse import FORMATS
from ._sandbox import parse_many

CHUNK_SCHEMA = pa.schema([
    ("chunk_id", pa.string()),
    ("source", pa.string()),
    ("chunk_index", pa.int32()),
    ("text", pa.string()),
    ("start", pa.int64()),
    ("end", pa.int64()),
    ("page", pa.int32()),
    ("section_path", pa.string()),
    ("content_hash", pa.string()),
])

#: folders that hold build output or copies rather than documents (skipped unless ``include`` names them)
BUILD_FOLDERS = frozenset({"_sources", "_static", "_images", "_downloads", "__pycache__", "node_modules",
                           "site-packages", "venv", "_build", "build", "dist"})
SAMPLES_PER_REASON = 5


@dataclass
class Selection:
    files: list[tuple[Path, str]] = field(default_factory=list)  # (file, source)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count
    samples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few relative paths

    def skip(self, reason: str, rel: str) -> None:
        self.skipped[reason] += 1
        examples = self.samples.setdefault(reason, [])
        if len(examples) < SAMPLES_PER_REASON:
            examples.append(rel)


@dataclass
class Report:
    files: int = 0  # parsed and written
    chunks: int = 0
    unchanged: int = 0  # skipped: the same bytes are already in the table
    deleted: int = 0  # sources removed (``delete_missing``)
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)  # reason -> {count, examples}
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"files": self.files, "chunks": self.chunks, "unchanged": self.unchanged, "deleted": self.deleted,
                "failed": self.failed, "skipped": self.skipped, "table_version": self.version}


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob over ``/``-separated relative paths: ``*`` and ``?`` stay within a folder, ``**`` spans
    folders, ``[...]`` is a class. A pattern without ``/`` matches the file name in any folder."""
    if not isinstance(pattern, str) or not pattern.strip() or len(pattern) > 1000:
        raise InvalidParameterValue("a glob must be a non-empty string of at most 1000 characters")
    pat = pattern.strip().lstrip("/")
    if "/" not in pat.rstrip("/"):
        pat = "**/" + pat
    if pat.endswith("/"):
        pat += "**"
    out, i = [], 0
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = pat.find("]", i + 2)
            if end < 0:
                raise InvalidParameterValue(f"glob {pattern!r} has an unclosed '['")
            body = pat[i + 1:end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def select_files(paths: Iterable[str | Path], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
                 root: str | Path | None = None) -> Selection:
    """The files ``paths`` name, each with its source key, and what was left out and why."""
    inc = [glob_regex(g) for g in include]
    exc = [glob_regex(g) for g in exclude]
    base = Path(root).resolve() if root is not None else None
    if base is not None and not base.is_dir():
        raise InvalidParameterValue(f"--root {root} is not a folder")
    sel = Selection()
    seen: set[str] = set()

    def consider(path: Path, rel: str, key: str, explicit: bool) -> None:
        if path.suffix.lower() not in FORMATS:
            if not explicit:
                sel.skip("unsupported type", rel)
                return
        if inc and not any(r.match(rel) for r in inc):
            sel.skip("not included", rel)
        elif any(r.match(rel) for r in exc):
            sel.skip("excluded", rel)
        elif key in seen:
            sel.skip("named twice", rel)
        else:
            seen.add(key)
            sel.files.append((path, key))

    def keyed(path: Path, default_base: Path) -> str:
        anchor = base or default_base
        try:
            return path.resolve().relative_to(anchor).as_posix()
        except ValueError:
            raise InvalidParameterValue(f"{path} is not inside --root {anchor}") from None

    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            top = path.resolve()
            for folder, dirs, names in os.walk(top):
                here = Path(folder)
                rel_dir = here.relative_to(top).as_posix()
                keep = []
                for d in sorted(dirs):
                    rel = d if rel_dir == "." else f"{rel_dir}/{d}"
                    named = any(d in g.strip().split("/") for g in include)  # an include glob names it
                    if d.startswith("."):
                        sel.skip("hidden", rel + "/")
                    elif d in BUILD_FOLDERS and not named:
                        sel.skip("build folder", rel + "/")
                    elif (here / d).is_symlink():
                        sel.skip("symbolic link", rel + "/")
                    else:
                        keep.append(d)
                dirs[:] = keep
                for name in sorted(names):
                    file = here / name
                    rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if name.startswith("."):
                        sel.skip("hidden", rel)
                    elif file.is_symlink() or not file.is_file():
                        sel.skip("symbolic link" if file.is_symlink() else "not a regular file", rel)
                    else:
                        consider(file, rel, keyed(file, top), False)
        elif path.is_file():
            consider(path, path.name, keyed(path, path.resolve().parent), True)
        else:
            raise InvalidParameterValue(f"{path} does not exist")
    return sel


def files_under(paths: Iterable[str | Path], **kw: Any) -> list[tuple[Path, str]]:
    """(file, source) for the files ``paths`` name (see :func:`select_files`)."""
    return select_files(paths, **kw).files


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _stored_hashes(tables: Tables, obj: Any) -> tuple[dict[str, set[str]], bool]:
    """source -> content hashes in the table, and whether the table has the hash column at all."""
    dataset = tables.dataset(obj)
    has_hash = "content_hash" in dataset.schema.names
    columns = ["source", "content_hash"] if has_hash else ["source"]
    data = dataset.to_table(columns=columns)
    if data.num_rows == 0:
        return {}, has_hash
    pairs = data.group_by(columns).aggregate([]).to_pylist()
    out: dict[str, set[str]] = {}
    for row in pairs:
        out.setdefault(row["source"], set()).add(row.get("content_hash") or "")
    return out, has_hash


def ingest(tables: Tables, p: Principal, paths: Iterable[str | Path], table: str, *,
           options: Options | None = None, embed: Callable[[list[str]], np.ndarray] | None = None,
           progress: Callable[[str, int], None] | None = None, include: Sequence[str] = (),
           exclude: Sequence[str] = (), root: str | Path | None = None, delete_missing: bool = False,
           selection: Selection | None = None) -> Report:
    """Bring ``table`` (created if missing) up to date with the files ``paths`` name, in one commit.
    A file that cannot be parsed is reported in ``failed``; its chunks already in the table are kept."""
    opts = (options or Options()).check()
    sel = selection or select_files(paths, include=include, exclude=exclude, root=root)
    report = Report(skipped={reason: {"count": n, "examples": sel.samples.get(reason, [])}
                             for reason, n in sorted(sel.skipped.items())})
    if not sel.files and not delete_missing:
        raise InvalidParameterValue("no supported files found (PDF, DOCX, PPTX, HTML, Markdown, text)"
                                    + (f"; skipped: {_summary(sel.skipped)}" if sel.skipped else ""))
    if not tables.catalog.exists("table", table):
        tables.create(p, table, schema=CHUNK_SCHEMA, comment="Document chunks written by brickyard ingest")
    obj = tables.catalog.require(p, "MODIFY", "table", table, action="ingest")
    stored, has_hash = _stored_hashes(tables, obj)
    batches: list[pa.Table] = []
    replace: list[str] = []
    todo: list[tuple[Path, str]] = []
    digests: dict[str, str] = {}
    for path, source in sel.files:
        try:
            digest = file_sha256(path)
        except OSError as exc:
            report.failed.append({"source": source, "kind": "UNREADABLE", "message": str(exc.strerror)})
            continue
        if has_hash and stored.get(source) == {digest}:
            report.unchanged += 1
            if progress:
                progress(source, -1)
            continue
        digests[source] = digest
        todo.append((path, source))
    for _path, source, parsed in parse_many(todo):
        try:
            if isinstance(parsed, IngestionError):
                raise parsed
            rows = [c.to_row() | {"content_hash": digests[source]} for c in chunk(parsed, source, opts, embed)]
        except IngestionError as exc:
            report.failed.append({"source": source, "kind": exc.kind, "message": exc.message})
            if progress:
                progress(source, 0)
            continue
        batches.append(pa.Table.from_pylist(rows, schema=CHUNK_SCHEMA))
        replace.append(source)
        report.files += 1
        report.chunks += len(rows)
        if progress:
            progress(source, len(rows))
    if delete_missing:
        kept = {source for _, source in sel.files}
        gone = sorted(set(stored) - kept)
        replace += gone
        report.deleted = len(gone)
    if replace:
        data = pa.concat_tables(batches) if batches else CHUNK_SCHEMA.empty_table()
        if not has_hash:  # a table written before content hashes: every file counts as changed
            data = data.drop_columns(["content_hash"])
        predicate = f"source IN ({', '.join(_quote(s) for s in replace)})"
        report.version = tables.write_authorized(obj, data, mode="overwrite", predicate=predicate).version
    return report


def _summary(skipped: Counter[str]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
