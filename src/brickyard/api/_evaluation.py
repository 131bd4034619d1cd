"""Evaluation routes as ``databricks-agents`` calls them: the managed-evals datasets, synthetic questions and
answers (``generate-questions``, ``generate-answer``), ``/api/2.0/agents/chat-assessments`` (the built-in
judges), ``/api/2.0/agents/chat-completions`` (custom judges' prompts) and the client's usage-event posts, which are accepted and dropped (nothing leaves the machine)."""

from __future__ import annotations

from typing import Any

from ._http import Api, Req


def register(api: Api, ws: Any) -> None:
    ds = ws.datasets
    DS = "/api/2.0/managed-evals/datasets"

    @api.route("POST", DS, policy="authenticated")
    def create_dataset(req: Req) -> dict[str, Any]:
        return ds.create(req.user, req.body, req.query.get("experiment_ids"))  # type: ignore[no-any-return]

    @api.route("GET", DS + "/{dataset_id}", policy="authenticated")
    def get_dataset(req: Req) -> dict[str, Any]:
        return ds.get(req.user, req.path["dataset_id"], req.query.get("version"))  # type: ignore[no-any-return]

    @api.route("PATCH", DS + "/{dataset_id}", policy="authenticated")
    def update_dataset(req: Req) -> dict[str, Any]:
        return ds.update(req.user, req.path["dataset_id"], req.body, req.query.get("update_mask"))  # type: ignore[no-any-return]

    @api.route("POST", DS + "/{dataset_id}/records/{record_id}/expectations", policy="authenticated")
    def upsert_record_expectations(req: Req) -> dict[str, Any]:
        return ds.upsert_expectations(req.user, req.path["dataset_id"], req.path["record_id"],  # type: ignore[no-any-return]
                                      req.body)

    @api.route("DELETE", DS + "/{dataset_id}", policy="authenticated")
    def delete_dataset(req: Req) -> dict[str, Any]:
        ds.delete(req.user, req.path["dataset_id"])
        return {}

    @api.route("GET", DS + "/{dataset_id}/versions", policy="authenticated")
    def dataset_versions(req: Req) -> dict[str, Any]:
        return ds.versions(req.user, req.path["dataset_id"])  # type: ignore[no-any-return]

    @api.route("GET", DS + "/{dataset_id}/records", policy="authenticated")
    def dataset_records(req: Req) -> dict[str, Any]:
        return ds.records(req.user, req.path["dataset_id"], version=req.query.get("version"),  # type: ignore[no-any-return]
                          page_token=req.query.get("page_token"), page_size=req.query.get("page_size"))

    @api.route("POST", DS + "/{dataset_id}/records:batchCreate", policy="authenticated")
    def create_dataset_records(req: Req) -> dict[str, Any]:
        return ds.create_records(req.user, req.path["dataset_id"], req.body)  # type: ignore[no-any-return]

    @api.route("POST", DS + "/{dataset_id}/records:batchUpdate", policy="authenticated")
    def update_dataset_records(req: Req) -> dict[str, Any]:
        return ds.update_records(req.user, req.path["dataset_id"], req.body)  # type: ignore[no-any-return]

    @api.route("POST", DS + "/{dataset_id}/records:batchDelete", policy="authenticated")
    def delete_dataset_records(req: Req) -> dict[str, Any]:
        return ds.delete_records(req.user, req.path["dataset_id"], req.body)  # type: ignore[no-any-return]

    @api.route("POST", "/api/2.0/managed-evals/generate-questions", policy="authenticated")
    def generate_questions(req: Req) -> dict[str, Any]:
        return ws.evaluations.generate_questions(req.user, req.body)  # type: ignore[no-any-return]

    @api.route("POST", "/api/2.0/managed-evals/generate-answer", policy="authenticated")
    def generate_answer(req: Req) -> dict[str, Any]:
        return ws.evaluations.generate_answer(req.user, req.body)  # type: ignore[no-any-return]

    SS = "/api/2.0/managed-evals/scheduled-scorers/{experiment_id}"
    sched = ws.scheduled_scorers

    @api.route("GET", SS, policy="authenticated")
    def list_scheduled_scorers(req: Req) -> dict[str, Any]:
        return sched.get(req.user, req.path["experiment_id"])  # type: ignore[no-any-return]

    @api.route("POST", SS, policy="authenticated")
    def create_scheduled_scorers(req: Req) -> dict[str, Any]:
        return sched.create(req.user, req.path["experiment_id"], req.body)  # type: ignore[no-any-return]

    @api.route("PATCH", SS, policy="authenticated")
    def update_scheduled_scorers(req: Req) -> dict[str, Any]:
        return sched.update(req.user, req.path["experiment_id"], req.body)  # type: ignore[no-any-return]

    @api.route("DELETE", SS, policy="authenticated")
    def delete_scheduled_scorers(req: Req) -> dict[str, Any]:
        sched.delete(req.user, req.path["experiment_id"])
        return {}

    @api.route("POST", SS + "/backfill", policy="authenticated")
    def backfill_scheduled_scorers(req: Req) -> dict[str, Any]:
        return sched.backfill(req.user, req.path["experiment_id"], req.body)  # type: ignore[no-any-return]

    @api.route("POST", "/api/2.0/managed-evals/monitors", policy="authenticated")
    def list_monitors(req: Req) -> dict[str, Any]:
        experiment = (req.body or {}).get("experiment_id") if isinstance(req.body, dict) else None
        if not isinstance(experiment, str) or not experiment:
            from ..core.errors import InvalidParameterValue

            raise InvalidParameterValue("experiment_id is required")
        return sched.monitors(req.user, experiment)  # type: ignore[no-any-return]

    def monitoring(req: Req, default: str) -> Any:
        from starlette.responses import Response

        from ..core.errors import InvalidParameterValue
        from ..evaluation._report import render_html, render_png

        hours = req.query.get("hours") or "168"
        try:
            window = float(hours)
        except ValueError:
            raise InvalidParameterValue("hours must be a number") from None
        report = sched.report(req.user, req.path["endpoint"], hours=window)
        kind = req.query.get("format") or default
        if kind == "json":
            return report
        headers = {"Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'",
                   "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store", "X-Frame-Options": "DENY"}
        if kind == "html":
            return Response(render_html(report), media_type="text/html; charset=utf-8", headers=headers)
        if kind == "png":
            return Response(render_png(report), media_type="image/png", headers=headers)
        raise InvalidParameterValue("format must be json, html or png")

    @api.route("GET", "/api/2.0/brickyard/monitoring/{endpoint}", policy="authenticated")
    def monitoring_report(req: Req) -> Any:
        """The endpoint's monitoring summary: JSON, or ``?format=html`` a page of plots, ``png`` the plots."""
        return monitoring(req, "json")

    @api.route("GET", "/ml/endpoints/{endpoint}/monitoring", policy="browser")
    def monitoring_page(req: Req) -> Any:
        """The same summary as a page, for a browser signed in at /login."""
        return monitoring(req, "html")

    @api.route("POST", "/api/2.0/agents/chat-assessments", policy="authenticated")
    def chat_assessments(req: Req) -> dict[str, Any]:
        return ws.assess(req.user, req.body)  # type: ignore[no-any-return]

    @api.route("POST", "/api/2.0/agents/chat-completions", policy="authenticated")
    def chat_completions(req: Req) -> dict[str, Any]:
        return ws.judge_chat(req.user, req.body)  # type: ignore[no-any-return]

    @api.route("POST", "/api/2.0/agents/chat-assessment-usage-events", policy="authenticated")
    def chat_assessment_usage_events(req: Req) -> dict[str, Any]:
        return {}

    @api.route("POST", "/api/2.0/agents/evaluation-client-usage-events", policy="authenticated")
    def evaluation_client_usage_events(req: Req) -> dict[str, Any]:
        return {}
