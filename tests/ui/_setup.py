"""A workspace with something on every page, for the UI tests: a table with hostile text, a volume with a file,
a SQL function, a chat endpoint on the test model, a Vector Search index, an experiment with a run and a trace.
ADMIN owns everything; BOB is a plain user with no grants."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from brickyard.workspace import Workspace
from tests.sql._shared import ADMIN, BOB, synced_index, workspace  # noqa: F401 - BOB for the tests

HOSTILE = "<script>document.title='pwned'</script>"
IMG = "<img src=x onerror=\"document.title='pwned'\">"


def build(home: Path) -> Workspace:
    ws = workspace(home, enable_fake_models=1)
    admin = ws.principal(ADMIN)
    run = lambda sql: ws.sql.execute(admin, sql)  # noqa: E731
    run(f"CREATE TABLE main.default.fruit (id INT, name STRING COMMENT 'the name') COMMENT \"{HOSTILE}\"")
    ws.sql.execute(admin, "INSERT INTO main.default.fruit VALUES (1, 'apple'), (2, 'banana'), (3, :img)",
                   parameters=[{"name": "img", "value": IMG, "type": "STRING"}])
    run("INSERT INTO main.default.fruit VALUES (4, 'cherry')")
    run("CREATE FUNCTION main.default.greet(name STRING COMMENT 'who') RETURNS STRING COMMENT 'Says hi.' "
        "RETURN concat('hi ', name)")
    ws.volumes.create(admin, "main.default.files")
    ws.volumes.upload(admin, "/Volumes/main/default/files/notes.txt", b"hello from a volume")
    ws.serving.create(admin, {"name": "echo", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
                              "ai_gateway": {"usage_tracking_config": {"enabled": True}}})
    ws.serving.create(admin, {"name": "obedient", "config": {"served_entities": [
        {"entity_name": "system.ai.fake-obedient"}]}})
    synced_index(ws, admin, "main.default.fruit_index", "main.default.fruit", "name")
    ws.prompts.create(admin, "main.default.greeting", description="How we greet")
    ws.prompts.create_version(admin, "main.default.greeting", {"template": "Hello {{name}}.\nHave a nice day."})
    ws.prompts.create_version(admin, "main.default.greeting", {"template": f"Hi {{{{name}}}}!\nHave a nice day.\n{HOSTILE}"})
    models = ws.tracking.create_experiment(admin, f"/Users/{ADMIN}/models")
    ws.logged_models.create(admin, models, name="fruit-classifier")
    return ws


def wait_ready(ws: Workspace, seconds: float = 60) -> None:
    admin = ws.principal(ADMIN)
    deadline = time.monotonic() + seconds
    for endpoint in ("echo", "obedient"):
        while ws.serving.get(admin, endpoint)["state"]["ready"] != "READY":
            assert time.monotonic() < deadline, f"the endpoint {endpoint} did not become ready"
            time.sleep(0.1)


def sign_in(url: str, token: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
    done = client.post("/login", data={"token": token, "next": "/"})
    assert done.status_code == 303, done.text[:500]
    return client


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def log_run(url: str, token: str) -> tuple[str, str]:
    """A run logged by mlflow against the server, with a metric history: (experiment id, run id)."""
    import mlflow

    from tests.conftest import mlflow_against

    with mlflow_against(url, token, f"/Users/{ADMIN}/ui-test"):
        with mlflow.start_run(run_name="first") as active:
            mlflow.log_param("lr", "0.1")
            for step in range(5):
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        with mlflow.start_run(run_name="second"):
            mlflow.log_param("lr", "0.2")
            mlflow.log_metric("loss", 0.5)
        return active.info.experiment_id, active.info.run_id



