"""Notification destinations (``/api/2.0/notification-destinations``) and the job webhooks that use them.

A destination is a generic webhook: a URL and, optionally, a user name and password for basic auth, sealed
at rest with the workspace's secret key and never returned (only ``url_set``/``password_set``). Admins create
and change destinations; every user may list them to attach to a job. The URL is checked like an external
model's (no private or loopback address unless an admin allowed the host in
``BRICKYARD_ALLOWED_MODEL_HOSTS``) when it is saved and again, pinned to the checked address, when it is used.

A job's ``webhook_notifications`` (``on_start``, ``on_success``, ``on_failure``: up to three destination ids
each) get a JSON POST when a run starts and ends. Delivery is best effort, off the run's path: a receiver that
is down or slow never fails or delays a run; the failure is logged.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from ..catalog import Principal
from ..core.errors import InvalidParameterValue, NotFound, PermissionDenied
from ..core.ids import new_id, now_ms

log = logging.getLogger("brickyard.jobs.notify")

EVENTS = ("on_start", "on_success", "on_failure")
MAX_PER_EVENT = 3
SEND_SECONDS = 10.0


class Destinations:
    def __init__(self, db: Any, box: Any, allowed_hosts: frozenset[str], workspace_id: Any = None) -> None:
        self.db = db
        self.box = box
        self.allowed_hosts = allowed_hosts
        self.workspace_id = workspace_id

    @staticmethod
    def _admin(p: Principal) -> None:
        if not p.is_admin:
            raise PermissionDenied(f"{p.name} is not a workspace admin: only admins manage notification destinations")

    def _config(self, body: Any) -> dict[str, Any]:
        from ..models._openai import check_url

        config = (body or {}).get("config") if isinstance(body, dict) else None
        hook = config.get("generic_webhook") if isinstance(config, dict) else None
        if not isinstance(hook, dict) or not isinstance(hook.get("url"), str) or not hook["url"]:
            others = sorted(config) if isinstance(config, dict) else []
            raise InvalidParameterValue("a destination is a generic_webhook with a url"
                                        + (f"; {', '.join(others)} are not supported (Brickyard sends no e-mail, Slack "
                                           "or Teams messages)" if others else ""))
        check_url(hook["url"], self.allowed_hosts)
        for name in ("username", "password"):
            if hook.get(name) is not None and not isinstance(hook[name], str):
                raise InvalidParameterValue(f"{name} must be a string")
        return {"url": hook["url"], "username": hook.get("username"), "password": hook.get("password")}

    @staticmethod
    def _shape(row: Any, config: dict[str, Any]) -> dict[str, Any]:
        return {"id": row["id"], "display_name": row["display_name"], "destination_type": "WEBHOOK",
                "config": {"generic_webhook": {"url_set": bool(config.get("url")),
                                               "username_set": bool(config.get("username")),
                                               "password_set": bool(config.get("password"))}}}

    def _row(self, tx: Any, ident: Any) -> Any:
        row = tx.one("SELECT * FROM notification_destinations WHERE id = ?", (str(ident),))
        if row is None:
            raise NotFound(f"notification destination {str(ident)[:64]} does not exist",
                           error_code="RESOURCE_DOES_NOT_EXIST")
        return row

    def create(self, p: Principal, body: Any) -> dict[str, Any]:
        self._admin(p)
        name = (body or {}).get("display_name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name or len(name) > 200:
            raise InvalidParameterValue("display_name is required (at most 200 characters)")
        config = self._config(body)
        ident = new_id()
        with self.db.tx() as tx:
            tx.execute("INSERT INTO notification_destinations (id, display_name, config, created_by, created_at) "
                       "VALUES (?, ?, ?, ?, ?)", (ident, name, self.box.seal(json.dumps(config)), p.name, now_ms()))
            return self._shape(self._row(tx, ident), config)

    def get(self, p: Principal, ident: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            row = self._row(tx, ident)
        return self._shape(row, json.loads(self.box.open(row["config"])))

    def list(self, p: Principal) -> list[dict[str, Any]]:
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT * FROM notification_destinations ORDER BY display_name, id")
        return [{"id": r["id"], "display_name": r["display_name"], "destination_type": "WEBHOOK"} for r in rows]

    def update(self, p: Principal, ident: Any, body: Any) -> dict[str, Any]:
        self._admin(p)
        with self.db.tx() as tx:
            row = self._row(tx, ident)
            config = json.loads(self.box.open(row["config"]))
            if isinstance(body, dict) and body.get("config") is not None:
                config = self._config(body)
            name = body.get("display_name") if isinstance(body, dict) and body.get("display_name") else row["display_name"]
            tx.execute("UPDATE notification_destinations SET display_name = ?, config = ? WHERE id = ?",
                       (name, self.box.seal(json.dumps(config)), row["id"]))
            return self._shape(self._row(tx, ident), config)

    def delete(self, p: Principal, ident: Any) -> None:
        self._admin(p)
        with self.db.tx() as tx:
            row = self._row(tx, ident)
            tx.execute("DELETE FROM notification_destinations WHERE id = ?", (row["id"],))

    def check(self, hooks: Any) -> dict[str, Any] | None:
        """A job's ``webhook_notifications``, checked: known events, at most three known destinations each."""
        if hooks is None:
            return None
        if not isinstance(hooks, dict):
            raise InvalidParameterValue("webhook_notifications must be an object")
        unknown = sorted(set(hooks) - set(EVENTS))
        if unknown:
            raise InvalidParameterValue(f"webhook_notifications: {', '.join(unknown)} is not supported; use "
                                        f"{', '.join(EVENTS)}")
        with self.db.tx(write=False) as tx:
            for event, targets in hooks.items():
                if not isinstance(targets, list) or len(targets) > MAX_PER_EVENT or not all(
                        isinstance(t, dict) and isinstance(t.get("id"), str) for t in targets):
                    raise InvalidParameterValue(f"webhook_notifications.{event} must be a list of at most "
                                                f"{MAX_PER_EVENT} {{id}} of notification destinations")
                for target in targets:
                    if tx.one("SELECT 1 FROM notification_destinations WHERE id = ?", (target["id"],)) is None:
                        raise InvalidParameterValue(f"webhook_notifications.{event}: notification destination "
                                                    f"{target['id'][:64]} does not exist")
        return hooks

    def notify(self, hooks: dict[str, Any] | None, event: str, payload: dict[str, Any]) -> None:
        """POST ``payload`` to the destinations of ``event``, each in a thread of its own (best effort)."""
        for target in (hooks or {}).get(event) or []:
            threading.Thread(target=self._send, args=(target["id"], {**payload, "event_type": f"jobs.{event}",
                                                                      "workspace_id": self.workspace_id}),
                             name="job-webhook", daemon=True).start()

    def _send(self, ident: str, payload: dict[str, Any]) -> None:
        import httpx

        from ..models._openai import pinned_http_client

        try:
            with self.db.tx(write=False) as tx:
                row = self._row(tx, ident)
            config = json.loads(self.box.open(row["config"]))
            auth = (config["username"] or "", config["password"] or "") if config.get("password") else None
            with pinned_http_client(config["url"], self.allowed_hosts, timeout=SEND_SECONDS) as client:
                response = client.post(config["url"], json=payload, auth=auth)
            if response.status_code >= 300:
                log.warning("webhook %s answered %s", row["display_name"], response.status_code)
        except (httpx.HTTPError, InvalidParameterValue, NotFound, ValueError) as exc:
            log.warning("webhook %s could not be sent: %s", ident, type(exc).__name__)
