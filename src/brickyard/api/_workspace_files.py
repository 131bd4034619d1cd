"""Workspace API (``/api/2.0/workspace/...``) and the permissions of folders, notebooks and files
(``/api/2.0/permissions/{directories,notebooks,files}/{id}``), as ``w.workspace`` calls them."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from starlette.responses import Response

from ..core.errors import BadRequest, InvalidParameterValue
from ..wsfs._tree import MAX_IMPORT_BYTES
from ._http import Api, Req
from ._permissions import permission_routes

BASE = "/api/2.0/workspace"


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _import_body(req: Req) -> dict[str, Any]:
    """The import request: JSON (``content`` base64) from ``w.workspace.import_``, or multipart form data (the file
    as ``content``) from ``w.workspace.upload``."""
    from ..wsfs import MAX_IMPORT_BYTES

    ctype = req.headers.get("content-type", "")
    raw = req.file.read(MAX_IMPORT_BYTES * 2 + 1_000_000)
    if len(raw) > MAX_IMPORT_BYTES * 2 + 900_000:
        raise InvalidParameterValue(f"the import is larger than {MAX_IMPORT_BYTES >> 20} MB",
                              error_code="MAX_NOTEBOOK_SIZE_EXCEEDED")
    if ctype.startswith("multipart/form-data"):
        import io

        from python_multipart import parse_form

        fields: dict[str, Any] = {}

        def on_field(field: Any) -> None:
            fields[field.field_name.decode()] = (field.value or b"").decode("utf-8", "replace")

        def on_file(file: Any) -> None:
            file.file_object.seek(0)
            fields[file.field_name.decode()] = file.file_object.read()

        try:
            parse_form({"Content-Type": ctype.encode(), "Content-Length": str(len(raw)).encode()}, io.BytesIO(raw),
                       on_field, on_file)
        except Exception as exc:  # noqa: BLE001 - the parser's own errors: a malformed upload is the caller's
            raise BadRequest(f"the multipart body could not be read: {type(exc).__name__}") from None
        content = fields.get("content", b"")
        return {**fields, "content": content if isinstance(content, bytes) else content.encode()}
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise BadRequest("the request body must be JSON or multipart form data") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        body["content"] = base64.b64decode(str(body.get("content") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameterValue("content must be base64") from None
    return body


def register(api: Api, ws: Any) -> None:
    files = ws.workspace_files

    @api.route("POST", BASE + "/mkdirs", policy="authenticated")
    def mkdirs(req: Req) -> dict[str, Any]:
        files.mkdirs(req.user, req.require("path"))
        return {}

    @api.route("POST", BASE + "/import", policy="authenticated", body="file")
    def import_(req: Req) -> dict[str, Any]:
        body = _import_body(req)
        files.import_(req.user, body.get("path"), body["content"], fmt=body.get("format"),
                      language=body.get("language"), overwrite=_truthy(body.get("overwrite")))
        return {}

    @api.route("POST", "/api/2.0/workspace-files/import-file/{path:path}", policy="authenticated", body="file")
    def import_file(req: Req) -> dict[str, Any]:
        """The Databricks CLI's upload (bundle sync, deployment state): the raw body is the file, missing parent
        folders are made, a source file with the notebook header becomes a notebook."""
        path = files.normalize("/" + req.path["path"])
        assert req.file is not None
        content = req.file.read(MAX_IMPORT_BYTES + 1)
        parent = path.rsplit("/", 1)[0] or "/"
        if parent != "/":
            files.mkdirs(req.user, parent)
        files.import_(req.user, path, content, fmt="AUTO", overwrite=_truthy(req.query.get("overwrite")))
        return {}

    @api.route("GET", BASE + "/export", policy="authenticated")
    def export(req: Req) -> Any:
        data, file_type = files.export(req.user, req.query.get("path"), req.query.get("format"))
        if _truthy(req.query.get("direct_download")):
            return Response(data, media_type="application/octet-stream")
        return {"content": base64.b64encode(data).decode(), "file_type": file_type}

    @api.route("GET", BASE + "/list", policy="authenticated")
    def list_(req: Req) -> dict[str, Any]:
        after = req.int_arg("notebooks_modified_after")
        return {"objects": files.list(req.user, req.query.get("path"), modified_after=after)}

    @api.route("GET", BASE + "/get-status", policy="authenticated")
    def get_status(req: Req) -> dict[str, Any]:
        return files.get_status(req.user, req.query.get("path"))  # type: ignore[no-any-return]

    @api.route("POST", BASE + "/delete", policy="authenticated")
    def delete(req: Req) -> dict[str, Any]:
        files.delete(req.user, req.require("path"), recursive=_truthy(req.arg("recursive")))
        return {}

    for kind in ("directories", "notebooks", "files"):
        permission_routes(
            api, kind, "object_id",
            get=lambda p, object_id, kind=kind: files.permissions(p, kind, object_id),
            set_=lambda p, object_id, acl, *, replace, kind=kind: files.set_permissions(p, kind, object_id, acl,
                                                                                        replace=replace),
            levels=lambda p, object_id, kind=kind: files.permission_levels(p, kind, object_id))
