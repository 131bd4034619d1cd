"""Workspace files and notebooks (issue 23): ``w.workspace`` unchanged against Brickyard — folders, SOURCE /
JUPYTER / AUTO / RAW imports and exports, upload and download, home folders, inherited permissions, refusals
(traversal, oversize, missing parent, overwrite), and everything still there after a restart."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    BadRequest,
    DatabricksError,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
)
from databricks.sdk.service.workspace import (
    ExportFormat,
    ImportFormat,
    Language,
    ObjectType,
    WorkspaceObjectAccessControlRequest,
)
from databricks.sdk.service.workspace import WorkspaceObjectPermissionLevel as Level

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

ANN, BOB = "ann@example.com", "bob@example.com"
NOTEBOOK = "# Databricks notebook source\nprint('hello')\n\n# COMMAND ----------\n\n# MAGIC %md\n# MAGIC # Title\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("wsfs") / "home"
    ws = Workspace(Settings(home=home, access_log="off", monitor_interval_seconds=0))
    tokens = {"ann": ws.create_token(ANN), "bob": ws.create_token(BOB), "admin": ws.create_token("root@example.com",
                                                                                              admin=True)}
    with serve(ws) as url:
        yield {"url": url, "home": home, "ws": ws,
               **{name: WorkspaceClient(host=url, token=token) for name, token in tokens.items()}}
    ws.close()


def test_folders_notebooks_and_files_through_the_sdk(env: dict[str, Any]) -> None:
    ann: WorkspaceClient = env["ann"]
    base = f"/Users/{ANN}/project"
    ann.workspace.mkdirs(base + "/lib")
    ann.workspace.upload(base + "/lib/util.py", io.BytesIO(b"def twice(x):\n    return 2 * x\n"),
                         format=ImportFormat.AUTO)
    ann.workspace.import_(base + "/etl", content=base64.b64encode(NOTEBOOK.encode()).decode(),
                          format=ImportFormat.SOURCE, language=Language.PYTHON)
    notebook = ann.workspace.get_status(base + "/etl")
    assert notebook.object_type == ObjectType.NOTEBOOK and notebook.language == Language.PYTHON
    util = ann.workspace.get_status(base + "/lib/util.py")
    assert util.object_type == ObjectType.FILE and util.size == 31
    listed = sorted((o.path, o.object_type) for o in ann.workspace.list(base))
    assert listed == [(base + "/etl", ObjectType.NOTEBOOK), (base + "/lib", ObjectType.DIRECTORY)]
    assert ann.workspace.download(base + "/lib/util.py").read() == b"def twice(x):\n    return 2 * x\n"
    assert ann.workspace.download(base + "/etl").read().decode() == NOTEBOOK
    exported = ann.workspace.export(base + "/etl", format=ExportFormat.JUPYTER)
    doc = json.loads(base64.b64decode(exported.content))
    assert [c["cell_type"] for c in doc["cells"]] == ["code", "markdown"] and doc["cells"][1]["source"] == ["# Title"]
    # a Jupyter notebook uploaded with AUTO becomes a notebook without its extension
    ann.workspace.upload(base + "/explore.ipynb", io.BytesIO(json.dumps(doc).encode()), format=ImportFormat.AUTO)
    assert ann.workspace.get_status(base + "/explore").object_type == ObjectType.NOTEBOOK
    assert "print('hello')" in ann.workspace.download(base + "/explore").read().decode()
    with pytest.raises(ResourceAlreadyExists):
        ann.workspace.upload(base + "/lib/util.py", io.BytesIO(b"x"), format=ImportFormat.AUTO)
    ann.workspace.upload(base + "/lib/util.py", io.BytesIO(b"x = 1\n"), format=ImportFormat.AUTO, overwrite=True)
    assert ann.workspace.download(base + "/lib/util.py").read() == b"x = 1\n"
    with pytest.raises(BadRequest, match="not empty"):
        ann.workspace.delete(base + "/lib")
    ann.workspace.delete(base + "/lib", recursive=True)
    with pytest.raises(NotFound):
        ann.workspace.get_status(base + "/lib/util.py")


@pytest.mark.parametrize("path", ["/Users/ann@example.com/../bob@example.com/x", "relative/path", "/Users//x",
                                  "/Users/ann@example.com/./x", "/Users/ann@example.com/a\x00b"])
def test_paths_that_could_escape_are_refused(env: dict[str, Any], path: str) -> None:
    with pytest.raises(BadRequest):
        env["ann"].workspace.mkdirs(path)


def test_oversize_missing_parent_and_bad_formats(env: dict[str, Any]) -> None:
    ann: WorkspaceClient = env["ann"]
    # upload() re-raises INVALID_PARAMETER_VALUE as a plain DatabricksError with a hint of its own
    with pytest.raises(DatabricksError, match="larger than 10 MB"):
        ann.workspace.upload(f"/Users/{ANN}/big.bin", io.BytesIO(b"x" * (10 * 2**20 + 1)), format=ImportFormat.RAW)
    with pytest.raises(NotFound, match="parent folder"):
        ann.workspace.upload(f"/Users/{ANN}/nope/x.py", io.BytesIO(b"x"), format=ImportFormat.AUTO)
    with pytest.raises(DatabricksError, match="not a Jupyter notebook"):
        ann.workspace.upload(f"/Users/{ANN}/bad.ipynb", io.BytesIO(b"{not json"), format=ImportFormat.JUPYTER)
    with pytest.raises(DatabricksError, match="DBC"):
        ann.workspace.upload(f"/Users/{ANN}/a.dbc", io.BytesIO(b"x"), format=ImportFormat.DBC)


def test_home_folders_and_inherited_permissions(env: dict[str, Any]) -> None:
    ann, bob = env["ann"], env["bob"]
    ann.workspace.mkdirs(f"/Users/{ANN}/shared-with-bob")
    ann.workspace.upload(f"/Users/{ANN}/shared-with-bob/notes.txt", io.BytesIO(b"for bob"), format=ImportFormat.AUTO)
    bob.workspace.mkdirs(f"/Users/{BOB}/mine")
    homes = {o.path for o in bob.workspace.list("/Users")}
    assert f"/Users/{BOB}" in homes and f"/Users/{ANN}" not in homes  # only what bob may read
    with pytest.raises(NotFound):
        bob.workspace.download(f"/Users/{ANN}/shared-with-bob/notes.txt")
    with pytest.raises((NotFound, PermissionDenied)):
        bob.workspace.mkdirs(f"/Users/{ANN}/intruder")
    folder = ann.workspace.get_status(f"/Users/{ANN}/shared-with-bob")
    ann.workspace.set_permissions("directories", str(folder.object_id), access_control_list=[
        WorkspaceObjectAccessControlRequest(user_name=BOB, permission_level=Level.CAN_READ)])
    assert bob.workspace.download(f"/Users/{ANN}/shared-with-bob/notes.txt").read() == b"for bob"  # inherited
    note = bob.workspace.get_status(f"/Users/{ANN}/shared-with-bob/notes.txt")
    acl = bob.workspace.get_permissions("files", str(note.object_id)).access_control_list
    inherited = next(a for a in acl if a.user_name == BOB).all_permissions[0]
    assert inherited.inherited and inherited.permission_level == Level.CAN_READ
    with pytest.raises(PermissionDenied):
        bob.workspace.upload(f"/Users/{ANN}/shared-with-bob/notes.txt", io.BytesIO(b"changed"),
                             format=ImportFormat.AUTO, overwrite=True)
    with pytest.raises(PermissionDenied):
        bob.workspace.set_permissions("directories", str(folder.object_id), access_control_list=[])
    levels = bob.workspace.get_permission_levels("files", str(note.object_id)).permission_levels
    assert [lv.permission_level for lv in levels] == [Level.CAN_READ, Level.CAN_RUN, Level.CAN_EDIT, Level.CAN_MANAGE]
    # /Shared is everyone's
    ann.workspace.mkdirs("/Shared/team")
    bob.workspace.upload("/Shared/team/readme.md", io.BytesIO(b"# team"), format=ImportFormat.AUTO)
    assert ann.workspace.download("/Shared/team/readme.md").read() == b"# team"
    # an admin sees every home
    assert f"/Users/{ANN}" in {o.path for o in env["admin"].workspace.list("/Users")}


def test_everything_survives_a_restart(env: dict[str, Any], tmp_path: Path) -> None:
    ann: WorkspaceClient = env["ann"]
    ann.workspace.mkdirs(f"/Users/{ANN}/durable")
    ann.workspace.upload(f"/Users/{ANN}/durable/keep.txt", io.BytesIO(b"kept"), format=ImportFormat.AUTO)
    again = Workspace(Settings(home=env["home"], access_log="off", monitor_interval_seconds=0))
    try:
        info, data = again.workspace_files.read(again.principal(ANN), f"/Users/{ANN}/durable/keep.txt")
        assert data == b"kept" and info["object_type"] == "FILE"
    finally:
        again.close()
