"""Deploy the two example apps with the official clients only, the way you would on Databricks:

1. starts ``brickyard serve`` on a fresh workspace (in ``$BRICKYARD_APPS_DEMO_HOME``, default ``.brickyard-apps``);
2. uploads ``examples/apps/chat`` (a Gradio chat app) and ``examples/apps/mcp_server`` (a custom MCP server) to
   the workspace with ``w.workspace``;
3. creates the chat app with a serving endpoint as its declared resource (app authorization: its own service
   principal may query that endpoint and nothing else), deploys it with ``w.apps.deploy_and_wait`` and asks it a
   question through the workspace at ``/apps/docs-chat/`` with Gradio's own client;
4. creates the MCP server app with user authorization (``user_api_scopes: [sql]``), deploys it, and calls its
   tools through ``databricks-mcp`` at ``/apps/docs-tools/mcp``: first as the admin, then as bob, who must be
   given CAN_USE first and whose SQL sees only what bob may read.

Run: ``.venv/bin/python examples/deploy_apps.py``."""

from __future__ import annotations

import io
import os
import shutil
from datetime import timedelta
from pathlib import Path

from _demo import cli, server, step
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import apps as a
from databricks.sdk.service.workspace import ImportFormat

HERE = Path(__file__).resolve().parent
HOME = Path(os.environ.get("BRICKYARD_APPS_DEMO_HOME", ".brickyard-apps")).resolve()
CHAT_ENDPOINT = "databricks-meta-llama-3-3-70b-instruct"  # served offline by SmolLM2-135M-Instruct
WAIT = timedelta(minutes=3)


def upload(w: WorkspaceClient, source: Path, folder: str) -> None:
    w.workspace.mkdirs(folder)
    for path in sorted(source.iterdir()):
        if path.is_file():
            w.workspace.upload(f"{folder}/{path.name}", io.BytesIO(path.read_bytes()), format=ImportFormat.AUTO,
                               overwrite=True)
    print(f"uploaded {source.relative_to(HERE.parent)} to {folder}")


def main() -> int:
    shutil.rmtree(HOME, ignore_errors=True)
    admin_token = cli("token", "create", "--home", str(HOME), "--user", "admin@example.com", "--admin")
    bob_token = cli("token", "create", "--home", str(HOME), "--user", "bob@example.com")
    with server(HOME) as host:
        admin = WorkspaceClient(host=host, token=admin_token)
        bob = WorkspaceClient(host=host, token=bob_token)
        me = admin.current_user.me().user_name
        upload(admin, HERE / "apps" / "chat", f"/Users/{me}/apps/chat")
        upload(admin, HERE / "apps" / "mcp_server", f"/Users/{me}/apps/mcp_server")

        step("The chat app: app authorization, with the chat endpoint as its one resource")
        admin.apps.create_and_wait(a.App(name="docs-chat", description="Gradio chat over a serving endpoint",
                                         resources=[a.AppResource(name="serving-endpoint",
                                                                  serving_endpoint=a.AppResourceServingEndpoint(
                                                                      name=CHAT_ENDPOINT,
                                                                      permission=a.AppResourceServingEndpointServingEndpointPermission.CAN_QUERY))]),
                                   timeout=WAIT)
        deployment = admin.apps.deploy_and_wait("docs-chat", a.AppDeployment(
            source_code_path=f"/Workspace/Users/{me}/apps/chat"), timeout=WAIT)
        app = admin.apps.get("docs-chat")
        print(f"deployment {deployment.deployment_id}: {deployment.status.state.value}; app {app.app_status.state.value}"
              f" at {app.url}; service principal {app.service_principal_client_id}")
        from gradio_client import Client

        chat = Client(app.url, headers={"Authorization": f"Bearer {admin_token}"}, verbose=False)
        question = "In one sentence: what is a lakehouse?"
        print(f"asked {question!r} through /apps/docs-chat/ ->", repr(chat.predict(question, api_name="/chat")[:200]))
        chat.close()

        step("The MCP server app: user authorization (the sql scope), reached by agents at /apps/docs-tools/mcp")
        admin.apps.create_and_wait(a.App(name="docs-tools", description="a custom MCP server",
                                         user_api_scopes=["sql"]), timeout=WAIT)
        admin.apps.deploy_and_wait("docs-tools", a.AppDeployment(
            source_code_path=f"/Workspace/Users/{me}/apps/mcp_server"), timeout=WAIT)
        for text in ("CREATE SCHEMA main.demo", "CREATE TABLE main.demo.notes (line STRING)",
                     "INSERT INTO main.demo.notes VALUES ('one'), ('two'), ('three')"):
            admin.statement_execution.execute_statement(statement=text, warehouse_id="brickyard")
        from databricks_mcp import DatabricksMCPClient

        url = f"{host}/apps/docs-tools/mcp"
        tools = DatabricksMCPClient(server_url=url, workspace_client=admin)
        print("tools:", ", ".join(t.name for t in tools.list_tools()))
        for name, args in (("whoami", {}), ("word_count", {"text": "Brickyard runs fully offline"}),
                           ("count_rows", {"table": "main.demo.notes"})):
            print(f"admin calls {name}({args}) ->", tools.call_tool(name, args).content[0].text)
        as_bob = DatabricksMCPClient(server_url=url, workspace_client=bob)
        try:
            as_bob.list_tools()
            raise SystemExit("bob reached the app without CAN_USE")
        except Exception as exc:  # noqa: BLE001 - the MCP client wraps the HTTP error in task groups
            print("bob, before CAN_USE:", type(exc).__name__, "(the workspace answers 404 for the app)")
        admin.apps.update_permissions("docs-tools", access_control_list=[a.AppAccessControlRequest(
            user_name="bob@example.com", permission_level=a.AppPermissionLevel.CAN_USE)])
        print("bob calls whoami ->", as_bob.call_tool("whoami", {}).content[0].text)
        print("bob calls count_rows(main.demo.notes) ->",
              as_bob.call_tool("count_rows", {"table": "main.demo.notes"}).content[0].text)
        print(f"\nThe apps run while a server runs on this home: brickyard serve --home {HOME}, then open "
              f"{app.url} in a browser signed in at {host}/login (the port may differ)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
