"""Asset Bundles (issue 23): ``brickyard bundle`` over the REST API — the example bundle deployed to its dev
target end to end (ingest -> chunks and index -> sync -> agent registered and served -> evaluation -> chat app),
idempotent deploys, updates and deletions by the configuration, the deploy lock, destroy removing what the
bundle made and nothing else; and errors that name the file, line and key."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from brickyard.bundles import BundleError, load_bundle
from brickyard.cli import app
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin@example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("bundles") / "home", access_log="off",
                            monitor_interval_seconds=0, enable_fake_models=1))
    token = ws.create_token(ADMIN, admin=True)
    with serve(ws) as url:
        yield {"ws": ws, "url": url, "token": token}
    ws.close()


def bundle(server: dict[str, Any], folder: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["bundle", *args, "--bundle-dir", str(folder)],
                                env={"DATABRICKS_HOST": server["url"], "DATABRICKS_TOKEN": server["token"]})
    assert result.exit_code == code, result.output
    return result.output


def test_the_example_bundle_deploys_to_dev_end_to_end(server: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("gradio", reason="the chat app runs on Gradio (the dev group)")
    pytest.importorskip("databricks.agents", reason="the pipeline serves the agent with databricks-agents")
    shutil.copytree(ROOT / "examples" / "bundle", tmp_path / "examples" / "bundle")
    shutil.copytree(ROOT / "examples" / "apps" / "chat", tmp_path / "examples" / "apps" / "chat")
    folder = tmp_path / "examples" / "bundle"
    ws, me = server["ws"], server["ws"].principal(ADMIN)
    ws.sql.execute(me, "CREATE SCHEMA main.keep")  # not the bundle's: destroy must leave it
    kept_job = ws.jobs.create(me, {"name": "not the bundle's", "tasks": [
        {"task_key": "t", "sql_task": {"file": {"path": "/Shared/none.sql"}}}]})["job_id"]

    assert "Validation OK!" in bundle(server, folder, "validate")
    first = bundle(server, folder, "deploy")
    assert "Uploaded 11 file(s)" in first and "Created jobs.pipeline" in first
    assert "Waiting: apps.docs_chat declares the serving endpoint docs-agent-admin" in first
    run = bundle(server, folder, "run", "pipeline")
    for task in ("ingest", "sync_index", "serve_agent", "evaluate"):
        assert f"  {task}: SUCCESS" in run, run
    second = bundle(server, folder, "deploy")
    assert "Created apps.docs_chat (docs-chat)" in second and second.count("Created") == 1
    started = bundle(server, folder, "run", "docs_chat")
    assert "SUCCEEDED" in started and f"App URL: {server['url']}/apps/docs-chat/" in started
    from gradio_client import Client

    chat = Client(f"{server['url']}/apps/docs-chat/", headers={"Authorization": f"Bearer {server['token']}"},
                  verbose=False)
    assert len(chat.predict("What does the pipeline job do after the index is synced?", api_name="/chat")) > 10
    chat.close()
    # the agent's answers were evaluated into the bundle's experiment; the chat went through the agent's endpoint
    summary = json.loads(bundle(server, folder, "summary", "-o", "json"))
    resources = summary["resources"]
    assert resources["jobs"]["pipeline"]["name"] == "[dev admin] docs-rag pipeline"
    assert resources["schemas"]["docs"]["id"] == "main.dev_admin_docs_rag"
    experiment = resources["experiments"]["evaluation"]["id"]
    runs, _ = ws.tracking.search_runs(me, [experiment])
    assert any(r["info"]["run_name"] == "pipeline evaluation" for r in runs)
    # a deploy with no change changes nothing
    again = bundle(server, folder, "deploy")
    assert "Uploaded 0 file(s)" in again and "Created" not in again and "Updated" not in again
    # destroy: what the bundle made, and nothing else
    gone = bundle(server, folder, "destroy", "--auto-approve")
    assert gone.count("Deleted ") == 7  # six resources and the bundle's folder
    schemas = [s.name for s in ws.catalog.list(me, "schema", "main")[0]]
    assert "keep" in schemas and not [s for s in schemas if s.startswith("dev_admin")]
    assert ws.jobs.get(me, kept_job)["job_id"] == kept_job
    assert ws.apps.list(me)["apps"] == []
    with pytest.raises(Exception, match="doesn't exist|does not exist"):
        ws.workspace_files.get_status(me, f"/Users/{ADMIN}/.bundle/docs-rag/dev")


SMALL = """bundle:
  name: small
targets:
  dev:
    mode: development
    default: true
resources:
  jobs:
    nightly:
      name: nightly
      schedule:
        quartz_cron_expression: "0 0 1 * * ?"
        timezone_id: UTC
      tasks:
        - task_key: hello
          notebook_task:
            notebook_path: ./hello.py
"""
NOTEBOOK = "# Databricks notebook source\ndbutils.notebook.exit('hi')\n"


def test_updates_deletions_and_the_lock(server: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "databricks.yml").write_text(SMALL)
    (tmp_path / "hello.py").write_text(NOTEBOOK)
    out = bundle(server, tmp_path, "deploy")
    assert "Created jobs.nightly" in out
    ws, me = server["ws"], server["ws"].principal(ADMIN)
    job_id = json.loads(bundle(server, tmp_path, "summary", "-o", "json"))["resources"]["jobs"]["nightly"]["id"]
    job = ws.jobs.get(me, job_id)
    assert job["settings"]["name"] == "[dev admin] nightly"
    assert job["settings"]["schedule"]["pause_status"] == "PAUSED"  # development mode runs nothing by itself
    assert job["settings"]["tasks"][0]["notebook_task"]["notebook_path"] == \
        f"/Workspace/Users/{ADMIN}/.bundle/small/dev/files/hello"  # the notebook loses its .py, as on Databricks
    assert "SUCCESS" in bundle(server, tmp_path, "run", "nightly")
    (tmp_path / "databricks.yml").write_text(SMALL.replace("name: nightly", "name: nightly two"))
    assert f"Updated jobs.nightly ({job_id})" in bundle(server, tmp_path, "deploy")
    assert ws.jobs.get(me, job_id)["settings"]["name"] == "[dev admin] nightly two"
    # a second deploy waits for the first: the lock
    state = f"/Users/{ADMIN}/.bundle/small/dev/state"
    ws.workspace_files.import_(me, f"{state}/deploy.lock", b'{"user": "carol@example.com", "time": 0}', fmt="AUTO")
    assert "locked by a deploy of carol@example.com" in bundle(server, tmp_path, "deploy", code=2)
    assert "Deployment complete" in bundle(server, tmp_path, "deploy", "--force-lock")
    # a resource taken out of the configuration is deleted; the files that went are removed
    (tmp_path / "databricks.yml").write_text(SMALL.split("resources:")[0])
    (tmp_path / "hello.py").unlink()
    out = bundle(server, tmp_path, "deploy")
    assert "Deleted jobs.nightly" in out and "1 removed" in out
    with pytest.raises(Exception, match="does not exist"):
        ws.jobs.get(me, job_id)


def test_init_creates_a_bundle_that_deploys(server: dict[str, Any], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bundle", "init", str(tmp_path / "proj"), "--name", "starter"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "proj"
    assert "Validation OK!" in bundle(server, folder, "validate")
    assert "Created jobs.starter_job" in bundle(server, folder, "deploy")
    assert "Run " in bundle(server, folder, "run", "starter_job")
    assert "Deleted schemas.starter_schema" in bundle(server, folder, "destroy", "--auto-approve")


def load(tmp_path: Path, files: dict[str, str], **kw: Any) -> Any:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return load_bundle(tmp_path, target=kw.pop("target", None), variables=kw.pop("variables", {}),
                       environ=kw.pop("environ", {}), user=ADMIN, **kw)


@pytest.mark.parametrize(("files", "message"), [
    ({"databricks.yml": "bundle:\n  name: b\nresources:\n  jobs:\n    j:\n      nmae: x\n"},
     "databricks.yml:6: unknown key 'nmae'"),
    ({"databricks.yml": "bundle:\n  name: b\ninclude: [res/*.yml]\n",
      "res/a.yml": "resources:\n  widgets:\n    w: {}\n"},
     "res/a.yml:2: unknown resource type 'widgets'"),
    ({"databricks.yml": "bundle:\n  name: b\nresources:\n  quality_monitors:\n    m: {}\n"},
     "databricks.yml:4: resources of type quality_monitors are not supported"),
    ({"databricks.yml": "bundle:\n  name: b\nvariables:\n  catalog:\n    description: where\n"},
     "databricks.yml:5: variable 'catalog' has no value"),
    ({"databricks.yml": "bundle:\n  name: b\nresources:\n  schemas:\n    s:\n      catalog_name: ${var.nope}\n"},
     "databricks.yml:6: unknown reference ${var.nope} (no such variable)"),
    ({"databricks.yml": "bundle:\n  name: b\ntargets:\n  prod:\n    mode: production\n"},
     "databricks.yml:5: target 'prod' is in production mode: set workspace.root_path"),
    ({"databricks.yml": "bundle:\n  name: b\nresources:\n  jobs:\n    j:\n      tasks: [1\n"},
     "databricks.yml:7: not valid YAML"),
    ({"databricks.yml": "bundle:\n  name: b\nresources:\n  jobs:\n    j:\n      tasks:\n        - task_key: t\n"
                        "          notebook_task: {notebook_path: ./missing.py}\n"},
     "notebook_task.notebook_path './missing.py' does not exist"),
    ({"databricks.yml": "bundle:\n  name: b\nartifacts:\n  whl: {}\n"}, "databricks.yml:3: 'artifacts' is not supported"),
    ({"databricks.yml": "resources: {}\n"}, "bundle.name is required"),
])
def test_errors_name_the_file_line_and_key(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(BundleError) as caught:
        load(tmp_path, files)
    assert message in caught.value.message


def test_targets_variables_and_modes(tmp_path: Path) -> None:
    text = """bundle:
  name: b
variables:
  catalog:
    default: main
  owner:
    description: who gets the job
targets:
  dev:
    mode: development
    default: true
    variables:
      owner: ${workspace.current_user.short_name}
  prod:
    mode: production
    workspace:
      root_path: /Shared/.bundle/${bundle.name}
    variables:
      catalog: prod_catalog
      owner: ops
    resources:
      jobs:
        j:
          max_concurrent_runs: 3
resources:
  schemas:
    s:
      name: data
      catalog_name: ${var.catalog}
  jobs:
    j:
      name: job of ${var.owner}
      schedule: {quartz_cron_expression: "0 0 1 * * ?", timezone_id: UTC}
"""
    dev = load(tmp_path, {"databricks.yml": text})
    assert dev.target == "dev" and dev.root_path == f"/Workspace/Users/{ADMIN}/.bundle/b/dev"
    assert dev.resources["jobs"]["j"]["name"] == "[dev admin] job of admin"
    assert dev.resources["jobs"]["j"]["schedule"]["pause_status"] == "PAUSED"
    assert dev.resources["schemas"]["s"]["name"] == "dev_admin_data"
    prod = load(tmp_path, {}, target="prod")
    assert prod.root_path == "/Workspace/Shared/.bundle/b" and prod.file_path == "/Workspace/Shared/.bundle/b/files"
    assert prod.resources["jobs"]["j"]["name"] == "job of ops" and "pause_status" not in prod.resources["jobs"]["j"][
        "schedule"]
    assert prod.resources["jobs"]["j"]["max_concurrent_runs"] == 3
    assert prod.resources["schemas"]["s"] == {"name": "data", "catalog_name": "prod_catalog"}
    # --var beats BUNDLE_VAR_ beats the target beats the default
    assert load(tmp_path, {}, target="prod", environ={"BUNDLE_VAR_owner": "env"}).variables["owner"] == "env"
    assert load(tmp_path, {}, target="prod", environ={"BUNDLE_VAR_owner": "env"},
                variables={"owner": "flag"}).variables["owner"] == "flag"
    with pytest.raises(BundleError, match="no target 'staging'; the bundle has dev, prod"):
        load(tmp_path, {}, target="staging")
    with pytest.raises(BundleError, match="variable 'colour' is not declared"):
        load(tmp_path, {}, variables={"colour": "red"})
    looked = load(tmp_path, {"databricks.yml": text.replace("    description: who gets the job",
                                                            "    lookup: {service_principal: deployer}")},
                  target="dev", lookup=lambda kind, name: f"{kind}:{name}")
    assert looked.variables["owner"] == "admin"  # the target's value wins over the lookup


def test_a_failed_deploy_keeps_what_it_made_and_says_where(server: dict[str, Any], tmp_path: Path) -> None:
    text = """bundle:
  name: halfway
resources:
  schemas:
    s:
      name: halfway
      catalog_name: main
  jobs:
    loop:
      name: loop
      tasks:
        - task_key: a
          depends_on: [{task_key: b}]
          notebook_task: {notebook_path: ./hello.py}
        - task_key: b
          depends_on: [{task_key: a}]
          notebook_task: {notebook_path: ./hello.py}
"""
    (tmp_path / "databricks.yml").write_text(text)
    (tmp_path / "hello.py").write_text(NOTEBOOK)
    failed = bundle(server, tmp_path, "deploy", code=2)
    assert "databricks.yml:9: deploying jobs.loop failed" in failed and "cycle" in failed
    assert "Created schemas.s (main.halfway)" in failed
    (tmp_path / "databricks.yml").write_text(text.replace("          depends_on: [{task_key: a}]\n", ""))
    fixed = bundle(server, tmp_path, "deploy")
    assert "Created jobs.loop" in fixed and "schemas.s" not in fixed  # the schema was recorded, not made twice
    assert "Deleted schemas.s" in bundle(server, tmp_path, "destroy", "--auto-approve")


def test_serving_endpoints_and_permissions(server: dict[str, Any], tmp_path: Path) -> None:
    text = """bundle:
  name: served
targets:
  prod:
    mode: production
    workspace:
      root_path: /Workspace/Shared/.bundle/served
resources:
  model_serving_endpoints:
    echo:
      name: bundle-echo
      config:
        served_entities:
          - entity_name: system.ai.fake-chat
      permissions:
        - level: CAN_QUERY
          user_name: bob@example.com
  jobs:
    report:
      name: report
      tasks:
        - task_key: t
          notebook_task: {notebook_path: ./hello.py}
      permissions:
        - level: CAN_MANAGE_RUN
          user_name: bob@example.com
"""
    (tmp_path / "databricks.yml").write_text(text)
    (tmp_path / "hello.py").write_text(NOTEBOOK)
    ws, me = server["ws"], server["ws"].principal(ADMIN)
    ws.ensure_user("bob@example.com")
    out = bundle(server, tmp_path, "deploy")
    assert "Created model_serving_endpoints.echo (bundle-echo)" in out  # production: no name prefix
    bob = ws.principal("bob@example.com")
    assert ws.serving.get(bob, "bundle-echo")["name"] == "bundle-echo"  # bob may query it
    summary = json.loads(bundle(server, tmp_path, "summary", "-o", "json"))
    job_id = summary["resources"]["jobs"]["report"]["id"]
    levels = {e.get("user_name"): e["all_permissions"][0]["permission_level"]
              for e in ws.jobs.permissions(me, job_id)["access_control_list"]}
    assert levels["bob@example.com"] == "CAN_MANAGE_RUN"
    (tmp_path / "databricks.yml").write_text(text.replace("system.ai.fake-chat", "system.ai.fake-obedient"))
    assert "Updated model_serving_endpoints.echo" in bundle(server, tmp_path, "deploy")
    served = ws.serving.get(me, "bundle-echo")
    assert "fake-obedient" in json.dumps(served.get("pending_config") or served.get("config"))
    out = bundle(server, tmp_path, "destroy", "--auto-approve")
    assert "Deleted model_serving_endpoints.echo" in out and "Deleted /Workspace/Shared/.bundle/served" in out
    with pytest.raises(Exception, match="does not exist"):
        ws.serving.get(me, "bundle-echo")
