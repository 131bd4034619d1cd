"""Managed volumes and the Files API: ``/Volumes/<catalog>/<schema>/<volume>/<path>``.

Paths are checked part by part (no ``..``, ``.``, empty parts, NUL, backslashes or control
characters) and resolved without following symlinks, so nothing outside the volume's directory can be
read or written. Uploads go to a temporary file that is fsynced and renamed into place: a reader sees
the old file or the new one, never half of it.
"""

from __future__ import annotations

import fnmatch
import os
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..catalog import Catalog, Principal, Securable
from ..core.errors import AlreadyExists, InvalidParameterValue, InvalidState, NotFound
from ..core.names import parse_name
from ._storage import managed_path

MAX_PATH = 4096
MAX_PART = 255


@dataclass(frozen=True)
class FileInfo:
    path: str
    is_directory: bool
    file_size: int
    last_modified: int

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "is_directory": self.is_directory, "name": self.name,
                             "last_modified": self.last_modified}
        if not self.is_directory:
            d["file_size"] = self.file_size
        return d


def split_volume_path(path: str) -> tuple[str, list[str]]:
    """``/Volumes/c/s/v/a/b.txt`` -> (``c.s.v``, ``["a", "b.txt"]``), or a 400 saying what is wrong."""
    if not isinstance(path, str) or not path:
        raise InvalidParameterValue("a path like /Volumes/<catalog>/<schema>/<volume>/<file> is required")
    if len(path) > MAX_PATH:
        raise InvalidParameterValue(f"path is longer than {MAX_PATH} characters")
    if not path.startswith("/Volumes/"):
        raise InvalidParameterValue(f"path {path[:100]!r} must start with /Volumes/<catalog>/<schema>/<volume>/")
    parts = path[len("/Volumes/"):].split("/")
    if parts and parts[-1] == "":
        parts = parts[:-1]
    if len(parts) < 3:
        raise InvalidParameterValue(f"path {path[:100]!r} must name /Volumes/<catalog>/<schema>/<volume>")
    volume = parse_name(".".join(parts[:3]), 3, what="volume name")
    rest = parts[3:]
    check_parts(path, rest)
    return str(volume), rest


def check_parts(path: str, parts: list[str]) -> None:
    """Refuse path parts that could leave a directory or confuse a file system."""
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidParameterValue(f"path {path[:100]!r} has an empty, '.' or '..' part")
        if len(part) > MAX_PART or any(ord(c) < 32 or c in "\\\x7f" for c in part):
            raise InvalidParameterValue(f"path {path[:100]!r} has a part that is too long or holds control characters or '\\'")


def below(base: Path, rest: list[str], path: str) -> Path:
    """``base/rest...``, refusing a symbolic link anywhere below ``base`` (a planted link must not lead out)."""
    probe = base
    for part in rest:
        probe = probe / part
        try:
            if stat.S_ISLNK(os.lstat(probe).st_mode):
                raise InvalidParameterValue(f"path {path[:100]!r} goes through a symbolic link")
        except (FileNotFoundError, NotADirectoryError):  # the rest does not exist (yet)
            break
    return base.joinpath(*rest)


class FileTree(ABC):
    """Files API operations over one kind of path (volumes, MLflow artifacts, model files). A subclass says
    which paths it owns (``prefix``) and how a path maps to a directory after the caller's permission
    is checked (``_resolve``); writes go to a temporary file that is fsynced and renamed into place."""

    prefix = "/"
    what = "tree"

    @abstractmethod
    def _resolve(self, p: Principal, path: str, *, write: bool, action: str) -> tuple[Path, list[str]]:
        """The directory ``path`` maps to (after checking ``p`` may read or write it), and the parts of
        ``path`` below the tree's own root."""

    def _refuse_file_parents(self, target: Path, rest: list[str], path: str) -> None:
        """A write below a path that is a file ("ok.txt/child") is the caller's mistake, not a server error."""
        probe = target
        for _ in rest[:-1]:
            probe = probe.parent
            if probe.is_file():
                raise AlreadyExists(f"{path}: {probe.name} is a file, so nothing can be created inside it")

    def owns(self, path: str) -> bool:
        return isinstance(path, str) and (path + "/").startswith(self.prefix)

    # -- files ----------------------------------------------------------------------------------
    def upload(self, p: Principal, path: str, chunks: Iterator[bytes] | bytes | BinaryIO, *,
               overwrite: bool = True) -> FileInfo:
        target, rest = self._resolve(p, path, write=True, action="writeVolumeFile")
        if not rest:
            raise InvalidParameterValue(f"the path names the {self.what} itself; add a file name")
        if target.is_dir():
            raise AlreadyExists(f"{path} is a directory")
        self._refuse_file_parents(target, rest, path)
        if not overwrite and target.exists():
            raise AlreadyExists(f"{path} already exists; pass overwrite=true to replace it")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                if isinstance(chunks, bytes | bytearray):
                    fh.write(chunks)
                elif hasattr(chunks, "read"):
                    while block := chunks.read(1 << 20):  # type: ignore[union-attr]
                        fh.write(block)
                else:
                    for block in chunks:  # type: ignore[union-attr]
                        fh.write(block)
                fh.flush()
                os.fsync(fh.fileno())
            if not overwrite and target.exists():
                raise AlreadyExists(f"{path} already exists; pass overwrite=true to replace it")
            os.replace(tmp, target)
            dfd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return self._info(path, target)

    def check_writable(self, p: Principal, path: str) -> None:
        """Raise unless ``p`` may write ``path`` (used before a multi-step upload starts)."""
        target, rest = self._resolve(p, path, write=True, action="writeVolumeFile")
        if not rest or target.is_dir():
            raise InvalidParameterValue(f"{path} does not name a file")

    def open(self, p: Principal, path: str) -> tuple[FileInfo, Path]:
        target, _rest = self._resolve(p, path, write=False, action="readVolumeFile")
        if not target.is_file():
            if target.is_dir():
                raise InvalidState(f"{path} is a directory; list it with /api/2.0/fs/directories{path}")
            raise NotFound(f"file {path} does not exist", error_code="NOT_FOUND")
        return self._info(path, target), target

    def stat(self, p: Principal, path: str, *, directory: bool) -> FileInfo:
        target, _rest = self._resolve(p, path, write=False, action="getVolumeFileMetadata")
        if (directory and not target.is_dir()) or (not directory and not target.is_file()):
            raise NotFound(f"{'directory' if directory else 'file'} {path} does not exist", error_code="NOT_FOUND")
        return self._info(path, target)

    def delete(self, p: Principal, path: str) -> None:
        target, rest = self._resolve(p, path, write=True, action="deleteVolumeFile")
        if not rest or not target.is_file():
            raise NotFound(f"file {path} does not exist", error_code="NOT_FOUND")
        target.unlink()

    def mkdirs(self, p: Principal, path: str) -> None:
        target, rest = self._resolve(p, path, write=True, action="createVolumeDirectory")
        if target.is_file():
            raise AlreadyExists(f"{path} is a file")
        self._refuse_file_parents(target, rest, path)
        target.mkdir(parents=True, exist_ok=True)

    def rmdir(self, p: Principal, path: str) -> None:
        target, rest = self._resolve(p, path, write=True, action="deleteVolumeDirectory")
        if not rest:
            raise InvalidParameterValue(f"the root of the {self.what} cannot be deleted through the Files API")
        if not target.is_dir():
            raise NotFound(f"directory {path} does not exist", error_code="NOT_FOUND")
        try:
            target.rmdir()
        except OSError:
            raise InvalidState(f"directory {path} is not empty") from None

    def list(self, p: Principal, path: str, *, page_token: str | None = None, page_size: int | None = None
             ) -> tuple[list[FileInfo], str | None]:
        target, _rest = self._resolve(p, path, write=False, action="listVolumeDirectory")
        if not target.is_dir():
            raise NotFound(f"directory {path} does not exist", error_code="NOT_FOUND")
        size = 1000 if not page_size or page_size <= 0 else min(int(page_size), 1000)
        names = sorted(n for n in os.listdir(target) if not n.startswith(".upload-"))
        if page_token:
            names = [n for n in names if n > page_token]
        page = names[:size]
        base = path.rstrip("/")
        out = [self._info(f"{base}/{n}", target / n) for n in page]
        return out, (page[-1] if len(names) > size else None)

    def walk(self, p: Principal, path: str, *, recursive: bool = True, pattern: str | None = None,
             limit: int = 100_000) -> list[tuple[FileInfo, Path]]:
        """The files at or below ``path`` (a file, or a directory and, with ``recursive``, its subdirectories), in
        name order, whose names match the glob ``pattern``; symbolic links are not followed."""
        target, _rest = self._resolve(p, path, write=False, action="listVolumeDirectory")
        if target.is_file():
            return [(self._info(path, target), target)]
        if not target.is_dir():
            raise NotFound(f"{path} does not exist", error_code="NOT_FOUND")
        out: list[tuple[FileInfo, Path]] = []
        base = path.rstrip("/")
        for root, dirs, names in os.walk(target, followlinks=False):
            dirs[:] = sorted(d for d in dirs if recursive and not d.startswith(".upload-"))
            rel = os.path.relpath(root, target)
            for name in sorted(names):
                local = Path(root) / name
                if name.startswith(".upload-") or local.is_symlink() or (pattern and not fnmatch.fnmatch(name, pattern)):
                    continue
                out.append((self._info(f"{base}/{name}" if rel == "." else f"{base}/{rel}/{name}", local), local))
                if len(out) > limit:
                    raise InvalidParameterValue(f"{path} holds more than {limit} files; read a narrower path")
        return out

    @staticmethod
    def _info(path: str, target: Path) -> FileInfo:
        st = os.lstat(target)
        is_dir = stat.S_ISDIR(st.st_mode)
        return FileInfo(path=path.rstrip("/") + ("/" if is_dir else ""), is_directory=is_dir,
                        file_size=0 if is_dir else st.st_size, last_modified=int(st.st_mtime * 1000))



class Volumes(FileTree):
    prefix = "/Volumes/"
    what = "volume"

    def __init__(self, catalog: Catalog, home: Path) -> None:
        self.catalog = catalog
        self.home = home
        self.root = home / "volumes"

    def create(self, p: Principal, full_name: str, *, comment: str | None = None,
               volume_type: str = "MANAGED", storage_location: str | None = None) -> Securable:
        fn = parse_name(full_name, 3, what="volume name")
        if str(volume_type or "MANAGED").upper() != "MANAGED" or storage_location:
            raise InvalidParameterValue("only MANAGED volumes are supported; leave storage_location empty")

        def prepare(_parent: Securable | None, sid: str) -> dict[str, Any]:
            path = managed_path(self.root, list(fn.parts), sid, self.catalog.storage_in_use)
            path.mkdir(parents=True, exist_ok=False)
            return {"storage_location": str(path), "volume_type": "MANAGED"}

        return self.catalog.create(p, "volume", str(fn), comment=comment, prepare=prepare)

    # -- resolution -----------------------------------------------------------------------------
    def _resolve(self, p: Principal, path: str, *, write: bool, action: str) -> tuple[Path, list[str]]:
        volume, rest = split_volume_path(path)
        obj = self.catalog.require(p, "WRITE_VOLUME" if write else "READ_VOLUME", "volume", volume, action=action)
        return below(Path(obj.spec["storage_location"]), rest, path), rest


class Files:
    """What the Files API serves: each :class:`FileTree` owns the paths under its prefix (``/Volumes/``,
    MLflow's ``/WorkspaceInternal/Mlflow/Artifacts/``, model files under ``/Models/``)."""

    def __init__(self, *trees: FileTree) -> None:
        self.trees = list(trees)

    def add(self, tree: FileTree) -> None:
        self.trees.append(tree)

    def tree(self, path: str) -> FileTree:
        if not isinstance(path, str) or len(path) > MAX_PATH:
            raise InvalidParameterValue(f"a path of at most {MAX_PATH} characters is required")
        for tree in self.trees:
            if tree.owns(path):
                return tree
        roots = ", ".join(t.prefix for t in self.trees)
        raise InvalidParameterValue(f"path {path[:100]!r} is not served here; paths start with {roots}")

    def upload(self, p: Principal, path: str, chunks: Iterator[bytes] | bytes | BinaryIO, *,
               overwrite: bool = True) -> FileInfo:
        return self.tree(path).upload(p, path, chunks, overwrite=overwrite)

    def check_writable(self, p: Principal, path: str) -> None:
        self.tree(path).check_writable(p, path)

    def open(self, p: Principal, path: str) -> tuple[FileInfo, Path]:
        return self.tree(path).open(p, path)

    def stat(self, p: Principal, path: str, *, directory: bool) -> FileInfo:
        return self.tree(path).stat(p, path, directory=directory)

    def delete(self, p: Principal, path: str) -> None:
        self.tree(path).delete(p, path)

    def mkdirs(self, p: Principal, path: str) -> None:
        self.tree(path).mkdirs(p, path)

    def rmdir(self, p: Principal, path: str) -> None:
        self.tree(path).rmdir(p, path)

    def list(self, p: Principal, path: str, *, page_token: str | None = None, page_size: int | None = None
             ) -> tuple[list[FileInfo], str | None]:
        return self.tree(path).list(p, path, page_token=page_token, page_size=page_size)
