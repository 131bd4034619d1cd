"""Jobs and workspace files in the browser: the jobs the user may see with their schedules and runs, a job's
settings with a Run-now button, a run's tasks with their state, output and log (refreshed while it runs, with
a Cancel button), and the workspace's folders, notebooks and files."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from .._http import Req
from ._pages import Pages, redirect
from ._render import render

LOG_TAIL = 64 << 10


def register(pages: Pages, ws: Any) -> None:
    jobs, files = ws.jobs, ws.workspace_files

    @pages.get("/jobs", "jobs")
    def job_list(req: Req, ctx: dict[str, Any]) -> Response:
        listed = jobs.list(req.user, limit=100)["jobs"]
        runs = jobs.list_runs(req.user, limit=25)["runs"]
        return render("jobs.html", **ctx, title="Jobs", jobs=listed, runs=runs)

    @pages.get("/jobs/{job_id}", "jobs")
    def job(req: Req, ctx: dict[str, Any]) -> Response:
        found = jobs.get(req.user, req.path["job_id"])
        runs = jobs.list_runs(req.user, job_id=found["job_id"], limit=50)["runs"]
        return render("job.html", **{**ctx, "crumbs": [("/jobs", "Jobs")]}, title=found["settings"]["name"],
                      job=found, runs=runs, settings=json.dumps(found["settings"], indent=2))

    @pages.post("/jobs/{job_id}/run-now", "jobs")
    def run_now(req: Req, ctx: dict[str, Any]) -> Response:
        started = jobs.run_now(req.user, req.path["job_id"])
        return redirect(f"/jobs/runs/{started['run_id']}", "run started")

    @pages.get("/jobs/runs/{run_id}", "jobs")
    def run(req: Req, ctx: dict[str, Any]) -> Response:
        found = jobs.get_run(req.user, req.path["run_id"])
        outputs = {}
        for task in found["tasks"]:
            out = jobs.get_output(req.user, task["run_id"])
            outputs[task["task_key"]] = {"logs": out.get("logs", "")[-LOG_TAIL:], "error": out.get("error"),
                                         "result": (out.get("notebook_output") or {}).get("result")}
        crumbs = [("/jobs", "Jobs")] + ([(f"/jobs/{found['job_id']}", str(found["run_name"]))]
                                        if found.get("job_id") else [])
        return render("job_run.html", **{**ctx, "crumbs": crumbs}, title=f"Run {found['run_id']}", run=found,
                      outputs=outputs, active=found["state"]["life_cycle_state"] in ("PENDING", "RUNNING"))

    @pages.post("/jobs/runs/{run_id}/cancel", "jobs")
    def cancel(req: Req, ctx: dict[str, Any]) -> Response:
        jobs.cancel(req.user, req.path["run_id"])
        return redirect(f"/jobs/runs/{quote(req.path['run_id'], safe='')}", "cancel requested")

    @pages.get("/workspace", "workspace")
    def browse(req: Req, ctx: dict[str, Any]) -> Response:
        path = files.normalize(req.query.get("path") or f"/Users/{req.user.name}")
        info = files.get_status(req.user, path)
        if info["object_type"] == "DIRECTORY":
            return render("workspace.html", **ctx, title=path, info=info, entries=files.list(req.user, path),
                          parent=path.rsplit("/", 1)[0] or "/" if path != "/" else None, text=None)
        _info, data = files.read(req.user, path)
        text = data[:200_000].decode("utf-8", "replace")
        return render("workspace.html", **ctx, title=path, info=info, entries=[], text=text,
                      parent=path.rsplit("/", 1)[0] or "/")
