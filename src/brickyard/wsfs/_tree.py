"""Folders, notebooks and files of the workspace, with Databricks' paths, formats and permissions.

Paths are absolute (``/Users/ann@example.com/project/etl``), at most 4096 characters, parts of at most 255,
with no ``.``/``..`` part, no empty part and no control character: anything else is refused before it can
name a file. Object kinds: ``DIRECTORY``, ``NOTEBOOK`` (with a language) and ``FILE``.

Formats. A notebook is kept as Databricks *source*: a header line (``# Databricks notebook source``, ``--`` for
SQL, ``//`` for Scala) and cells separated by ``COMMAND ----------`` lines; Markdown cells are ``MAGIC %md``
lines. ``SOURCE`` imports and exports that text; ``JUPYTER`` converts to and from ``.ipynb`` (version 4);
``AUTO`` decides by content and name (an ``.ipynb`` document or a source file with the header is a notebook,
anything else a file); ``RAW`` is a file's bytes. A notebook's name carries no extension.

Permissions (``CAN_READ`` < ``CAN_RUN`` < ``CAN_EDIT`` < ``CAN_MANAGE``). Admins manage everything. A user
manages their home folder ``/Users/<name>`` (made on first use) and everything they create; ``/Shared`` is
everyone's to manage, as on Databricks; ``/`` and ``/Users`` are listable by all, showing only what each
user may read. Grants on a folder are inherited by everything below it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..catalog import Principal, access_entries
from ..core.errors import AlreadyExists, InvalidParameterValue, NotFound, PermissionDenied
from ..core.ids import now_ms

LEVELS = {"CAN_READ": 1, "CAN_RUN": 2, "CAN_EDIT": 3, "CAN_MANAGE": 4}
MAX_IMPORT_BYTES = 10 << 20  # Databricks' import limit
MAX_PATH = 4096
MAX_PART = 255
MAX_LIST = 10_000
LANGUAGES = {"PYTHON": ("#", ".py"), "SQL": ("--", ".sql"), "SCALA": ("//", ".scala"), "R": ("#", ".r")}
EXTENSIONS = {ext: lang for lang, (_c, ext) in LANGUAGES.items()} | {".ipynb": "PYTHON"}
TYPES = {"directories": "DIRECTORY", "notebooks": "NOTEBOOK", "files": "FILE"}
ROOTS = ("/", "/Users", "/Shared")
_BAD = re.compile(r"[\x00-\x1f\x7f]")


def _header(language: str) -> str:
    return f"{LANGUAGES[language][0]} Databricks notebook source"


def _separator(language: str) -> str:
    return f"{LANGUAGES[language][0]} COMMAND ----------"


def notebook_cells(source: str, language: str = "PYTHON") -> list[tuple[str, str]]:
    """A source notebook's cells as (kind, text): kind ``code``, ``markdown`` (``%md``) or ``magic`` (any other
    ``%`` command, e.g. ``%sql``, kept with its text)."""
    comment = LANGUAGES.get(language, ("#", ""))[0]
    lines = source.splitlines()
    if lines and lines[0].strip() == _header(language):
        lines = lines[1:]
    cells: list[list[str]] = [[]]
    for line in lines:
        if line.strip() == _separator(language):
            cells.append([])
        else:
            cells[-1].append(line)
    out = []
    prefix = f"{comment} MAGIC"
    for cell in cells:
        text = "\n".join(cell).strip("\n")
        if not text.strip():
            continue
        body = [ln for ln in text.splitlines()]
        if body and all(ln.startswith(prefix) or not ln.strip() for ln in body):
            unmagicked = "\n".join(ln[len(prefix):].removeprefix(" ") for ln in body)
            if unmagicked.startswith("%md"):
                out.append(("markdown", unmagicked[3:].lstrip("-sandbox").strip("\n ")))
            else:
                out.append(("magic", unmagicked))
        else:
            out.append(("code", text))
    return out


def _source_of_cells(cells: list[tuple[str, str]], language: str) -> str:
    comment = LANGUAGES[language][0]
    parts = []
    for kind, text in cells:
        if kind == "markdown":
            parts.append("\n".join(f"{comment} MAGIC {ln}".rstrip() for ln in ["%md", *text.splitlines()]))
        elif kind == "magic":
            parts.append("\n".join(f"{comment} MAGIC {ln}".rstrip() for ln in text.splitlines()))
        else:
            parts.append(text)
    return _header(language) + "\n" + f"\n\n{_separator(language)}\n\n".join(parts) + "\n"


def _from_jupyter(data: bytes) -> tuple[str, str]:
    """(source, language) of an ``.ipynb`` document."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise InvalidParameterValue("the content is not a Jupyter notebook (not JSON)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
        raise InvalidParameterValue("the content is not a Jupyter notebook (no cells)")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    info = meta.get("language_info") if isinstance(meta.get("language_info"), dict) else {}
    language = str(info.get("name") or "python").upper()
    language = language if language in LANGUAGES else "PYTHON"
    cells = []
    for cell in doc["cells"]:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source")
        text = "".join(source) if isinstance(source, list) else str(source or "")
        if cell.get("cell_type") == "markdown":
            cells.append(("markdown", text))
        elif cell.get("cell_type") == "code":
            cells.append(("magic", text) if text.startswith("%") else ("code", text))
    return _source_of_cells(cells, language), language


def _to_jupyter(source: str, language: str, name: str) -> bytes:
    cells = []
    for kind, text in notebook_cells(source, language):
        lines = text.splitlines(keepends=True)
        if kind == "markdown":
            cells.append({"cell_type": "markdown", "metadata": {}, "source": lines})
        else:
            cells.append({"cell_type": "code", "metadata": {}, "source": lines, "outputs": [], "execution_count": None})
    doc = {"cells": cells, "metadata": {"language_info": {"name": language.lower()},
                                        "application/vnd.databricks.v1+notebook": {"notebookName": name,
                                                                                    "language": language.lower()}},
           "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(doc, indent=1).encode()


class WorkspaceFiles:
    def __init__(self, db: Any, home: Path, *, clock: Any = now_ms) -> None:
        self.db = db
        self.dir = home / "wsfs"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._roots_done = False
        self._lock = threading.Lock()

    def sweep(self, older_than_seconds: float = 3600.0) -> int:
        """Remove what a process killed mid-import left in ``<home>/wsfs``: staged bytes, and bytes whose row never
        committed. Only files older than ``older_than_seconds``, so another process's import in flight is never
        touched. The server calls it when it starts; returns how many files went."""
        cutoff = time.time() - older_than_seconds
        with self.db.tx(write=False) as tx:
            known = {str(r["object_id"]) for r in tx.all("SELECT object_id FROM workspace_objects")}
        removed = 0
        for path in self.dir.iterdir():
            try:
                stale = path.stat().st_mtime < cutoff
            except OSError:
                continue
            if stale and path.is_file() and (path.name.startswith(".staged-") or path.name not in known):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- paths -------------------------------------------------------------------------------------------------
    @staticmethod
    def normalize(path: Any) -> str:
        if not isinstance(path, str) or not path:
            raise InvalidParameterValue("path is required: an absolute workspace path such as /Users/you/folder")
        if len(path) > MAX_PATH or _BAD.search(path):
            raise InvalidParameterValue(f"path must be at most {MAX_PATH} printable characters")
        if not path.startswith("/"):
            raise InvalidParameterValue(f"path {path[:100]!r} must be absolute (start with /)")
        if path == "/Workspace" or path.startswith("/Workspace/"):
            path = path[len("/Workspace"):] or "/"  # the same object, as Databricks names it in the file system
        if path == "/":
            return path
        parts = path.rstrip("/").split("/")[1:]
        for part in parts:
            if part in ("", ".", "..") or len(part) > MAX_PART:
                raise InvalidParameterValue(f"path {path[:100]!r} has an empty, '.' or '..' part, or a part longer "
                                            f"than {MAX_PART} characters")
        return "/" + "/".join(parts)

    @staticmethod
    def _parent(path: str) -> str:
        return path.rsplit("/", 1)[0] or "/"

    @staticmethod
    def _chain(path: str) -> list[str]:
        """``path`` and its ancestors, root first."""
        if path == "/":
            return ["/"]
        parts = path.split("/")[1:]
        return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]

    # -- rows and access -----------------------------------------------------------------------------------
    def _ensure_roots(self, tx: Any) -> None:
        if self._roots_done:
            return
        now = self.clock()
        for root in ROOTS:
            if tx.one("SELECT 1 FROM workspace_objects WHERE path = ?", (root,)) is None:
                self._insert(tx, root, "DIRECTORY", None, "system", now, 0)
        self._roots_done = True

    def _insert(self, tx: Any, path: str, kind: str, language: str | None, owner: str, now: int, size: int) -> int:
        object_id = secrets.randbelow(2**52) + 1
        tx.execute("INSERT INTO workspace_objects (object_id, path, parent, object_type, language, owner, created_at, "
                   "modified_at, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (object_id, path, None if path == "/" else self._parent(path), kind, language, owner, now, now, size))
        return object_id

    def _home(self, tx: Any, p: Principal, path: str) -> None:
        """``/Users/<name>`` exists once its user (or an admin) touches anything in it."""
        parts = path.split("/")
        if len(parts) >= 3 and parts[1] == "Users" and parts[2]:
            home = f"/Users/{parts[2]}"
            if (parts[2] == p.name or p.is_admin) and tx.one(
                    "SELECT 1 FROM workspace_objects WHERE path = ?", (home,)) is None:
                self._insert(tx, home, "DIRECTORY", None, parts[2], self.clock(), 0)

    def _level(self, tx: Any, p: Principal, path: str) -> int:
        if p.is_admin:
            return LEVELS["CAN_MANAGE"]
        chain = self._chain(path)
        if len(chain) >= 3 and chain[1] == "/Users" and chain[2] == f"/Users/{p.name}":
            return LEVELS["CAN_MANAGE"]
        if len(chain) >= 2 and chain[1] == "/Shared":
            return LEVELS["CAN_MANAGE"]
        names = {p.name, *getattr(p, "groups", ()), "users"}
        marks = ",".join("?" * len(chain))
        best = LEVELS["CAN_READ"] if path in ("/", "/Users") else 0
        for row in tx.all(f"SELECT owner FROM workspace_objects WHERE path IN ({marks})", chain):  # noqa: S608
            if row["owner"] == p.name:
                best = LEVELS["CAN_MANAGE"]
        who = ",".join("?" * len(names))
        for row in tx.all(f"SELECT a.level FROM workspace_acl a JOIN workspace_objects o ON o.object_id = a.object_id "  # noqa: S608
                          f"WHERE o.path IN ({marks}) AND a.principal IN ({who})", [*chain, *names]):
            best = max(best, LEVELS.get(row["level"], 0))
        return best

    def _require(self, tx: Any, p: Principal, path: str, need: str) -> None:
        if self._level(tx, p, path) < LEVELS[need]:
            raise PermissionDenied(f"{p.name} lacks {need} on {path}")

    def _row(self, tx: Any, p: Principal, path: str, need: str) -> Any:
        self._ensure_roots(tx)
        self._home(tx, p, path)
        row = tx.one("SELECT * FROM workspace_objects WHERE path = ?", (path,))
        level = self._level(tx, p, path)
        if row is None or level == 0:
            raise NotFound(f"Path ({path}) doesn't exist.", error_code="RESOURCE_DOES_NOT_EXIST")
        if level < LEVELS[need]:
            raise PermissionDenied(f"{p.name} lacks {need} on {path}")
        return row

    @staticmethod
    def info(row: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"path": row["path"], "object_type": row["object_type"], "object_id": int(row["object_id"]),
                               "created_at": row["created_at"], "modified_at": row["modified_at"],
                               "resource_id": str(row["object_id"])}
        if row["object_type"] != "DIRECTORY":
            out["size"] = row["size"]
        if row["language"]:
            out["language"] = row["language"]
        return out

    # -- reading ----------------------------------------------------------------------------------------------
    def get_status(self, p: Principal, path: Any) -> dict[str, Any]:
        path = self.normalize(path)
        with self.db.tx() as tx:
            return self.info(self._row(tx, p, path, "CAN_READ"))

    def list(self, p: Principal, path: Any, *, modified_after: int | None = None) -> list[dict[str, Any]]:
        path = self.normalize(path)
        with self.db.tx() as tx:
            row = self._row(tx, p, path, "CAN_READ")
            if row["object_type"] != "DIRECTORY":
                return [self.info(row)]
            children = tx.all("SELECT * FROM workspace_objects WHERE parent = ? ORDER BY path", (path,))
            out = []
            for child in children[:MAX_LIST]:
                if self._level(tx, p, child["path"]) == 0:
                    continue
                if modified_after and child["object_type"] == "NOTEBOOK" and child["modified_at"] <= modified_after:
                    continue
                out.append(self.info(child))
            return out

    def read(self, p: Principal, path: Any, need: str = "CAN_READ") -> tuple[dict[str, Any], bytes]:
        """A notebook's source or a file's bytes, with its info."""
        path = self.normalize(path)
        with self.db.tx() as tx:
            row = self._row(tx, p, path, need)
        if row["object_type"] == "DIRECTORY":
            raise InvalidParameterValue(f"{path} is a directory; export a notebook or a file",
                                        error_code="INVALID_PARAMETER_VALUE")
        try:
            return self.info(row), (self.dir / str(row["object_id"])).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"the content of {path} is missing", error_code="RESOURCE_DOES_NOT_EXIST") from None

    def export(self, p: Principal, path: Any, fmt: Any = None) -> tuple[bytes, str]:
        """(bytes, file type) of ``path`` in ``fmt``: SOURCE (default), JUPYTER, AUTO or RAW."""
        fmt = str(fmt or "SOURCE").upper()
        if fmt not in ("SOURCE", "JUPYTER", "AUTO", "RAW"):
            raise InvalidParameterValue(f"export format {fmt} is not supported: SOURCE, JUPYTER, AUTO or RAW")
        info, data = self.read(p, path)
        if info["object_type"] == "FILE":
            return data, ""
        language = info.get("language") or "PYTHON"
        if fmt == "JUPYTER":
            return _to_jupyter(data.decode("utf-8", "replace"), language, info["path"].rsplit("/", 1)[-1]), "ipynb"
        return data, LANGUAGES[language][1].lstrip(".")

    # -- writing ----------------------------------------------------------------------------------------------
    def mkdirs(self, p: Principal, path: Any) -> None:
        path = self.normalize(path)
        with self.db.tx() as tx:
            self._ensure_roots(tx)
            self._home(tx, p, path)
            self._make_dirs(tx, p, path)

    def _make_dirs(self, tx: Any, p: Principal, path: str) -> None:
        now = self.clock()
        for prefix in self._chain(path):
            row = tx.one("SELECT object_type FROM workspace_objects WHERE path = ?", (prefix,))
            if row is None:
                self._require(tx, p, self._parent(prefix), "CAN_EDIT")
                self._insert(tx, prefix, "DIRECTORY", None, p.name, now, 0)
            elif row["object_type"] != "DIRECTORY":
                raise InvalidParameterValue(f"{prefix} exists and is not a directory",
                                            error_code="RESOURCE_ALREADY_EXISTS")

    def import_(self, p: Principal, path: Any, content: bytes, *, fmt: Any = None, language: Any = None,
                overwrite: bool = False) -> dict[str, Any]:
        """Put a notebook or a file at ``path`` (see the module's notes on formats)."""
        path = self.normalize(path)
        if path in ROOTS:
            raise InvalidParameterValue(f"{path} is a folder of the workspace itself")
        if len(content) > MAX_IMPORT_BYTES:
            raise InvalidParameterValue(f"the content is larger than {MAX_IMPORT_BYTES >> 20} MB",
                                  error_code="MAX_NOTEBOOK_SIZE_EXCEEDED")
        fmt = str(fmt or "SOURCE").upper()
        kind, lang, data = self._convert(path, content, fmt, language)
        if kind == "NOTEBOOK":
            stem, ext = os.path.splitext(path)
            if ext.lower() in EXTENSIONS and fmt in ("AUTO", "JUPYTER"):
                path = stem  # a notebook's name has no extension
        return self._write(p, path, kind, lang, data, overwrite=overwrite)

    def _convert(self, path: str, content: bytes, fmt: str, language: Any) -> tuple[str, str | None, bytes]:
        lang = str(language).upper() if language else None
        if lang is not None and lang not in LANGUAGES:
            raise InvalidParameterValue(f"language must be one of {', '.join(LANGUAGES)}")
        if fmt in ("DBC", "HTML", "R_MARKDOWN"):
            raise InvalidParameterValue(f"the {fmt} format is not supported: use SOURCE, JUPYTER, AUTO or RAW")
        if fmt == "RAW":
            return "FILE", None, content
        if fmt == "JUPYTER":
            source, found = _from_jupyter(content)
            return "NOTEBOOK", found, source.encode()
        if fmt == "SOURCE":
            if lang is None:
                raise InvalidParameterValue("a SOURCE import needs the notebook's language")
            text = self._text(content)
            if not text.startswith(_header(lang)):
                text = _header(lang) + "\n" + text
            return "NOTEBOOK", lang, text.encode()
        if fmt != "AUTO":
            raise InvalidParameterValue(f"unknown import format {fmt}: SOURCE, JUPYTER, AUTO or RAW")
        ext = os.path.splitext(path)[1].lower()
        if ext == ".ipynb":
            source, found = _from_jupyter(content)
            return "NOTEBOOK", found, source.encode()
        guess = EXTENSIONS.get(ext)
        if guess is not None:
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                return "FILE", None, content
            if text.startswith(_header(guess)):
                return "NOTEBOOK", guess, content
        return "FILE", None, content

    @staticmethod
    def _text(content: bytes) -> str:
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidParameterValue("a notebook's source must be UTF-8 text") from None

    def _write(self, p: Principal, path: str, kind: str, language: str | None, data: bytes, *,
               overwrite: bool) -> dict[str, Any]:
        staged = self.dir / f".staged-{secrets.token_hex(8)}"
        with open(staged, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            with self._lock, self.db.tx() as tx:
                self._ensure_roots(tx)
                self._home(tx, p, path)
                parent = tx.one("SELECT object_type FROM workspace_objects WHERE path = ?", (self._parent(path),))
                if parent is None or self._level(tx, p, self._parent(path)) == 0:
                    raise NotFound(f"The parent folder ({self._parent(path)}) does not exist.",
                                   error_code="RESOURCE_DOES_NOT_EXIST")
                if parent["object_type"] != "DIRECTORY":
                    raise InvalidParameterValue(f"{self._parent(path)} is not a directory")
                existing = tx.one("SELECT * FROM workspace_objects WHERE path = ?", (path,))
                now = self.clock()
                if existing is not None:
                    if not overwrite:
                        raise AlreadyExists(f"{path} already exists; import with overwrite to replace it",
                                            error_code="RESOURCE_ALREADY_EXISTS")
                    if existing["object_type"] == "DIRECTORY" or existing["object_type"] != kind:
                        raise InvalidParameterValue(f"{path} is a {existing['object_type'].lower()}; it cannot be "
                                                    f"overwritten by a {kind.lower()}")
                    self._require(tx, p, path, "CAN_EDIT")
                    object_id = int(existing["object_id"])
                    tx.execute("UPDATE workspace_objects SET language = ?, modified_at = ?, size = ? WHERE object_id = ?",
                               (language, now, len(data), object_id))
                else:
                    self._require(tx, p, self._parent(path), "CAN_EDIT")
                    object_id = self._insert(tx, path, kind, language, p.name, now, len(data))
                os.replace(staged, self.dir / str(object_id))  # in place before the row commits
                row = tx.one("SELECT * FROM workspace_objects WHERE object_id = ?", (object_id,))
                return self.info(row)
        finally:
            staged.unlink(missing_ok=True)

    def delete(self, p: Principal, path: Any, *, recursive: bool = False) -> None:
        path = self.normalize(path)
        if path in ROOTS:
            raise InvalidParameterValue(f"{path} cannot be deleted")
        with self._lock, self.db.tx() as tx:
            row = self._row(tx, p, path, "CAN_MANAGE")
            below = tx.all("SELECT object_id, path FROM workspace_objects WHERE path LIKE ?", (path + "/%",))
            below = [r for r in below if r["path"].startswith(path + "/")]
            if below and not recursive:
                raise InvalidParameterValue(f"Folder ({path}) is not empty; delete it with recursive",
                                            error_code="DIRECTORY_NOT_EMPTY")
            for r in below:
                self._require(tx, p, r["path"], "CAN_MANAGE")
            gone = [int(row["object_id"]), *(int(r["object_id"]) for r in below)]
            for object_id in gone:
                tx.execute("DELETE FROM workspace_acl WHERE object_id = ?", (object_id,))
                tx.execute("DELETE FROM workspace_objects WHERE object_id = ?", (object_id,))
        for object_id in gone:  # after the commit: an interrupted delete leaves unnamed bytes, never a dangling row
            (self.dir / str(object_id)).unlink(missing_ok=True)

    # -- permissions ------------------------------------------------------------------------------------------
    def _object(self, tx: Any, p: Principal, object_type: str, object_id: Any, need: str) -> Any:
        kind = TYPES.get(object_type)
        if kind is None:
            raise InvalidParameterValue("workspace object type must be directories, notebooks or files")
        try:
            ident = int(str(object_id))
        except ValueError:
            raise NotFound(f"{object_type} {str(object_id)[:40]} does not exist") from None
        row = tx.one("SELECT * FROM workspace_objects WHERE object_id = ?", (ident,))
        if row is None or row["object_type"] != kind or self._level(tx, p, row["path"]) == 0:
            raise NotFound(f"{object_type} {ident} does not exist", error_code="RESOURCE_DOES_NOT_EXIST")
        self._require(tx, p, row["path"], need)
        return row

    def permissions(self, p: Principal, object_type: str, object_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._object(tx, p, object_type, object_id, "CAN_READ")
            acl: dict[str, dict[str, Any]] = {}
            for ancestor in self._chain(row["path"]):
                for a in tx.all("SELECT a.principal, a.level FROM workspace_acl a JOIN workspace_objects o "
                                "ON o.object_id = a.object_id WHERE o.path = ?", (ancestor,)):
                    entry = acl.setdefault(a["principal"], {"all_permissions": []})
                    inherited = ancestor != row["path"]
                    entry["all_permissions"].append({"permission_level": a["level"], "inherited": inherited,
                                                     **({"inherited_from_object": [ancestor]} if inherited else {})})
        owner = row["owner"]
        out = [{"user_name": owner, "all_permissions": [{"permission_level": "CAN_MANAGE", "inherited": False}]}] \
            if owner != "system" else []
        for who, entry in sorted(acl.items()):
            key = "user_name" if "@" in who else "group_name"
            out.append({key: who, **entry})
        return {"object_id": f"/{object_type}/{row['object_id']}", "object_type": TYPES[object_type].lower(),
                "access_control_list": out}

    def set_permissions(self, p: Principal, object_type: str, object_id: Any, acl: Any, *,
                        replace: bool) -> dict[str, Any]:
        entries = access_entries(acl, LEVELS)
        with self.db.tx() as tx:
            row = self._object(tx, p, object_type, object_id, "CAN_MANAGE")
            if replace:
                tx.execute("DELETE FROM workspace_acl WHERE object_id = ?", (row["object_id"],))
            for who, level in entries:
                tx.execute("DELETE FROM workspace_acl WHERE object_id = ? AND principal = ?", (row["object_id"], who))
                tx.execute("INSERT INTO workspace_acl (object_id, principal, level) VALUES (?, ?, ?)",
                           (row["object_id"], who, level))
        return self.permissions(p, object_type, object_id)

    def permission_levels(self, p: Principal, object_type: str, object_id: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            self._object(tx, p, object_type, object_id, "CAN_READ")
        return {"permission_levels": [{"permission_level": name, "description": ""} for name in LEVELS]}

    def walk(self, p: Principal, path: Any) -> Iterator[dict[str, Any]]:
        """Every object at or below ``path`` the caller may read, parents before children."""
        path = self.normalize(path)
        for item in self.list(p, path):
            yield item
            if item["object_type"] == "DIRECTORY":
                yield from self.walk(p, item["path"])

