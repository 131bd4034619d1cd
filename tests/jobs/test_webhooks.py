"""Job webhooks (issue 23): notification destinations as admins manage them through the SDK (URL and password
never returned), a job's on_start / on_success / on_failure posts to a local receiver with basic auth, and the
refusals (a non-admin, an address not allowed, an unknown destination or event)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import BadRequest, PermissionDenied
from databricks.sdk.service import jobs as j
from databricks.sdk.service import settings as st

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import run_asgi, serve

ANN = "ann@example.com"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    received: list[dict[str, Any]] = []

    async def receiver(scope: Any, receive: Any, send: Any) -> None:
        import json

        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        received.append({"auth": dict(scope["headers"]).get(b"authorization", b"").decode(), **json.loads(body)})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with run_asgi(receiver) as hook_url:
        host = hook_url.split("//")[1]
        ws = Workspace(Settings(home=tmp_path_factory.mktemp("hooks") / "home", access_log="off",
                                monitor_interval_seconds=0, allowed_model_hosts=host))
        admin, ann = ws.create_token("root@example.com", admin=True), ws.create_token(ANN)
        with serve(ws) as url:
            yield {"ws": ws, "admin": WorkspaceClient(host=url, token=admin), "ann": WorkspaceClient(host=url, token=ann),
                   "hook": hook_url, "received": received}
        ws.close()


def test_destinations_are_admins_and_keep_their_secrets(env: dict[str, Any]) -> None:
    admin, ann = env["admin"], env["ann"]
    made = admin.notification_destinations.create(display_name="ops", config=st.Config(
        generic_webhook=st.GenericWebhookConfig(url=env["hook"] + "/hook", username="ops", password="s3cret")))
    got = ann.notification_destinations.get(made.id)
    assert got.display_name == "ops" and got.config.generic_webhook.url_set and got.config.generic_webhook.password_set
    assert got.config.generic_webhook.url is None and got.config.generic_webhook.password is None
    assert made.id in [d.id for d in ann.notification_destinations.list()]
    with pytest.raises(PermissionDenied):
        ann.notification_destinations.create(display_name="mine", config=st.Config(
            generic_webhook=st.GenericWebhookConfig(url=env["hook"])))
    with pytest.raises(BadRequest):
        admin.notification_destinations.create(display_name="inside", config=st.Config(
            generic_webhook=st.GenericWebhookConfig(url="http://10.1.2.3/hook")))


def test_runs_post_their_start_and_end(env: dict[str, Any]) -> None:
    import io

    from databricks.sdk.service.workspace import ImportFormat

    ann: WorkspaceClient = env["ann"]
    made = env["admin"].notification_destinations.create(display_name="runs", config=st.Config(
        generic_webhook=st.GenericWebhookConfig(url=env["hook"] + "/runs", username="ops", password="s3cret")))
    hook = [j.Webhook(id=made.id)]
    ann.workspace.mkdirs(f"/Users/{ANN}")
    ann.workspace.upload(f"/Users/{ANN}/ok.py", io.BytesIO(b"print('ok')\n"), format=ImportFormat.AUTO, overwrite=True)
    ann.workspace.upload(f"/Users/{ANN}/bad.py", io.BytesIO(b"raise SystemExit(3)\n"), format=ImportFormat.AUTO,
                         overwrite=True)
    job = ann.jobs.create(name="hooked", webhook_notifications=j.WebhookNotifications(
        on_start=hook, on_success=hook, on_failure=hook), tasks=[j.Task(
            task_key="t", spark_python_task=j.SparkPythonTask(python_file=f"/Users/{ANN}/ok.py"))])
    run = ann.jobs.run_now_and_wait(job.job_id)
    failed = ann.jobs.submit_and_wait(run_name="doomed", webhook_notifications=j.WebhookNotifications(on_failure=hook),
                                      tasks=[j.SubmitTask(task_key="t", spark_python_task=j.SparkPythonTask(
                                          python_file=f"/Users/{ANN}/bad.py"))])
    deadline = time.monotonic() + 20
    while len(env["received"]) < 3:
        assert time.monotonic() < deadline, env["received"]
        time.sleep(0.1)
    events = sorted((m["event_type"], m["run"]["run_id"]) for m in env["received"])
    assert events == sorted([("jobs.on_start", run.run_id), ("jobs.on_success", run.run_id),
                             ("jobs.on_failure", failed.run_id)])
    assert all(m["auth"] == "Basic " + base64.b64encode(b"ops:s3cret").decode() for m in env["received"])
    with pytest.raises(BadRequest, match="does not exist"):
        ann.jobs.create(name="x", webhook_notifications=j.WebhookNotifications(on_start=[j.Webhook(id="nope")]),
                        tasks=[j.Task(task_key="t", spark_python_task=j.SparkPythonTask(python_file="/x.py"))])
