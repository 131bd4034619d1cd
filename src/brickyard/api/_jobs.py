"""Jobs API 2.2 (``/api/2.2/jobs/...``, and the same under 2.1), as ``w.jobs`` calls it."""

from __future__ import annotations

from typing import Any

from ._http import Api, Req
from ._permissions import level_list, permission_routes


def _page(req: Req) -> tuple[int, int]:
    token = req.query.get("page_token")
    offset = int(token) if token and token.isdigit() else req.int_arg("offset") or 0
    return offset, req.int_arg("limit") or 25


def register(api: Api, ws: Any) -> None:
    jobs = ws.jobs
    destinations = ws.notification_destinations
    nd = "/api/2.0/notification-destinations"

    @api.route("POST", nd, policy="authenticated")
    def create_destination(req: Req) -> dict[str, Any]:
        return destinations.create(req.user, req.body or {})  # type: ignore[no-any-return]

    @api.route("GET", nd, policy="authenticated")
    def list_destinations(req: Req) -> dict[str, Any]:
        return {"results": destinations.list(req.user)}

    @api.route("GET", nd + "/{id}", policy="authenticated")
    def get_destination(req: Req) -> dict[str, Any]:
        return destinations.get(req.user, req.path["id"])  # type: ignore[no-any-return]

    @api.route("PATCH", nd + "/{id}", policy="authenticated")
    def update_destination(req: Req) -> dict[str, Any]:
        return destinations.update(req.user, req.path["id"], req.body or {})  # type: ignore[no-any-return]

    @api.route("DELETE", nd + "/{id}", policy="authenticated")
    def delete_destination(req: Req) -> dict[str, Any]:
        destinations.delete(req.user, req.path["id"])
        return {}

    def job_levels(p: Any, job_id: Any) -> dict[str, Any]:
        jobs.permissions(p, job_id)  # 404 unless the caller may see the job
        return level_list(*((name, "") for name in ("CAN_VIEW", "CAN_MANAGE_RUN", "IS_OWNER", "CAN_MANAGE")))

    permission_routes(api, "jobs", "job_id", get=jobs.permissions, set_=jobs.set_permissions, levels=job_levels)

    for version in ("2.1", "2.2"):
        base = f"/api/{version}/jobs"

        def create(req: Req) -> dict[str, Any]:
            return jobs.create(req.user, req.body or {})  # type: ignore[no-any-return]

        def get(req: Req) -> dict[str, Any]:
            return jobs.get(req.user, req.query.get("job_id"))  # type: ignore[no-any-return]

        def list_(req: Req) -> dict[str, Any]:
            offset, limit = _page(req)
            return jobs.list(req.user, name=req.query.get("name"), offset=offset, limit=limit)  # type: ignore[no-any-return]

        def reset(req: Req) -> dict[str, Any]:
            jobs.reset(req.user, req.require("job_id"), req.require("new_settings"))
            return {}

        def update(req: Req) -> dict[str, Any]:
            jobs.update(req.user, req.require("job_id"), req.arg("new_settings") or {}, req.arg("fields_to_remove"))
            return {}

        def delete(req: Req) -> dict[str, Any]:
            jobs.delete(req.user, req.require("job_id"))
            return {}

        def run_now(req: Req) -> dict[str, Any]:
            return jobs.run_now(req.user, req.require("job_id"),  # type: ignore[no-any-return]
                                job_parameters=req.arg("job_parameters"), notebook_params=req.arg("notebook_params"),
                                python_params=req.arg("python_params"))

        def submit(req: Req) -> dict[str, Any]:
            return jobs.submit(req.user, req.body or {})  # type: ignore[no-any-return]

        def get_run(req: Req) -> dict[str, Any]:
            return jobs.get_run(req.user, req.query.get("run_id"))  # type: ignore[no-any-return]

        def list_runs(req: Req) -> dict[str, Any]:
            offset, limit = _page(req)
            return jobs.list_runs(req.user, job_id=req.query.get("job_id"),  # type: ignore[no-any-return]
                                  active_only=req.query.get("active_only") == "true",
                                  completed_only=req.query.get("completed_only") == "true", offset=offset, limit=limit)

        def cancel(req: Req) -> dict[str, Any]:
            jobs.cancel(req.user, req.require("run_id"))
            return {}

        def repair(req: Req) -> dict[str, Any]:
            return jobs.repair(req.user, req.require("run_id"), rerun_tasks=req.arg("rerun_tasks"),  # type: ignore[no-any-return]
                               rerun_all_failed_tasks=req.arg("rerun_all_failed_tasks") is True,
                               rerun_dependent_tasks=req.arg("rerun_dependent_tasks") is True)

        def get_output(req: Req) -> dict[str, Any]:
            return jobs.get_output(req.user, req.query.get("run_id"))  # type: ignore[no-any-return]

        for method, path, fn in (("POST", "/create", create), ("GET", "/get", get), ("GET", "/list", list_),
                                 ("POST", "/reset", reset), ("POST", "/update", update), ("POST", "/delete", delete),
                                 ("POST", "/run-now", run_now), ("POST", "/runs/submit", submit),
                                 ("GET", "/runs/get", get_run), ("GET", "/runs/list", list_runs),
                                 ("POST", "/runs/cancel", cancel), ("GET", "/runs/get-output", get_output),
                                 ("POST", "/runs/repair", repair)):
            fn.__name__ = f"jobs_{version.replace('.', '_')}_{path.strip('/').replace('/', '_').replace('-', '_')}"
            api.route(method, base + path, policy="authenticated")(fn)
