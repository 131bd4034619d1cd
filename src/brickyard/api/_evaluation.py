"""Evaluation routes as ``databricks-agents`` calls them: ``/api/2.0/agents/chat-assessments`` (the built-in
judges), ``/api/2.0/agents/chat-completions`` (custom judges' prompts) and the client's usage-event posts, which are accepted and dropped (nothing leaves the machine)."""

from __future__ import annotations

from typing import Any

from ._http import Api, Req


def register(api: Api, ws: Any) -> None:
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
