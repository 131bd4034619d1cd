"""Files API: ``/api/2.0/fs/files/<path>`` and ``/api/2.0/fs/directories/<path>`` over volumes (``/Volumes/...``)
and MLflow artifacts (``/WorkspaceInternal/Mlflow/Artifacts/...``)."""

from __future__ import annotations

import secrets
from email.utils import formatdate
from typing import Any

from starlette.responses import FileResponse, Response

from ..core.errors import InvalidParameterValue, NotSupported
from ._http import Api, Req

FS = "/api/2.0/fs"


def _headers(info: Any) -> dict[str, str]:
    return {"last-modified": formatdate(info.last_modified / 1000, usegmt=True)}


def register(api: Api, ws: Any) -> None:
    vol = ws.files

    def path_of(req: Req) -> str:
        return "/" + req.path["path"]

    # HEAD routes come before GET routes on the same path (Starlette answers HEAD on a GET route too).
    @api.route("HEAD", FS + "/files/{path:path}", policy="authenticated", body="none")
    def head_file(req: Req) -> Response:
        info = vol.stat(req.user, path_of(req), directory=False)
        return Response(status_code=200, headers={**_headers(info), "content-length": str(info.file_size),
                                                  "content-type": "application/octet-stream"})

    @api.route("GET", FS + "/files/{path:path}", policy="authenticated", body="none")
    def download(req: Req) -> Response:
        info, target = vol.open(req.user, path_of(req))
        return FileResponse(target, media_type="application/octet-stream", headers=_headers(info),
                            stat_result=None)

    @api.route("PUT", FS + "/files/{path:path}", policy="authenticated", body="file")
    def upload(req: Req) -> Response:
        vol.upload(req.user, path_of(req), req.file, overwrite=req.bool_arg("overwrite", False))
        return Response(status_code=204)

    @api.route("POST", FS + "/files/{path:path}", policy="authenticated", body="none")
    def upload_action(req: Req) -> dict[str, Any]:
        # The SDK starts uploads over 50 MiB with action=initiate-upload and then asks for presigned part
        # URLs. Brickyard answers the first step and refuses the second, which makes the SDK fall back
        # to one streamed PUT (handled above, spooled to disk).
        action = req.query.get("action")
        if action != "initiate-upload":
            raise InvalidParameterValue(f"unsupported files action {str(action)[:40]!r}; upload with PUT")
        vol.check_writable(req.user, path_of(req))
        return {"multipart_upload": {"session_token": secrets.token_hex(16)}}

    @api.route("POST", FS + "/create-upload-part-urls", policy="authenticated")
    @api.route("POST", FS + "/create-abort-upload-url", policy="authenticated")
    @api.route("POST", FS + "/create-resumable-upload-url", policy="authenticated")
    @api.route("POST", FS + "/create-download-url", policy="authenticated")
    def presigned_urls(req: Req) -> dict[str, Any]:
        raise NotSupported("presigned URLs are not offered by Brickyard; use the Files API directly "
                           "(the SDK falls back to it by itself)")

    @api.route("DELETE", FS + "/files/{path:path}", policy="authenticated", body="none")
    def delete_file(req: Req) -> Response:
        vol.delete(req.user, path_of(req))
        return Response(status_code=204)

    @api.route("HEAD", FS + "/directories/{path:path}", policy="authenticated", body="none")
    def head_directory(req: Req) -> Response:
        vol.stat(req.user, path_of(req), directory=True)
        return Response(status_code=200)

    @api.route("GET", FS + "/directories/{path:path}", policy="authenticated", body="none")
    def list_directory(req: Req) -> dict[str, Any]:
        items, token = vol.list(req.user, path_of(req), page_token=req.query.get("page_token") or None,
                                page_size=req.int_arg("page_size"))
        out: dict[str, Any] = {"contents": [i.to_dict() for i in items]}
        if token:
            out["next_page_token"] = token
        return out

    @api.route("PUT", FS + "/directories/{path:path}", policy="authenticated", body="none")
    def create_directory(req: Req) -> Response:
        vol.mkdirs(req.user, path_of(req))
        return Response(status_code=204)

    @api.route("DELETE", FS + "/directories/{path:path}", policy="authenticated", body="none")
    def delete_directory(req: Req) -> Response:
        vol.rmdir(req.user, path_of(req))
        return Response(status_code=204)
