"""Apps (issue 23): ``w.apps`` unchanged — create with declared resources, deploy from a workspace folder with
app.yaml, reach the app through ``/apps/<name>/`` behind the workspace's auth; app authorization (the app's own
service principal holds exactly its resources' grants) and user authorization (a token of the signed-in user
limited to the app's scopes); stop/start, crash and restart, failures with their log lines, permissions,
delete. (kill -9 of the server during a deployment: test_apps_crash.py.)"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound, OperationFailed
from databricks.sdk.service import apps as a
from databricks.sdk.service.workspace import ImportFormat

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import serve

ADMIN = "admin@example.com"
BOB = "bob@example.com"
WAIT = timedelta(seconds=60)

#: a small app on the standard library and the SDK: it answers with what it was sent, and runs SQL as its own
#: service principal (app authorization) or as the signed-in user (user authorization)
PROBE = '''import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def WorkspaceClient(**kw):  # the SDK is imported when first used: the app listens at once, even on a busy machine
    from databricks.sdk import WorkspaceClient as Client

    return Client(**kw)


def Config(**kw):
    from databricks.sdk.core import Config as Settings

    return Settings(**kw)


def sql(w, text):
    try:
        r = w.statement_execution.execute_statement(statement=text, warehouse_id="any", wait_timeout="30s")
    except Exception as exc:
        return {"error": str(exc)}
    if r.status.state.value != "SUCCEEDED":
        return {"error": r.status.error.message}
    return {"rows": r.result.data_array}


def as_user(headers):
    token = headers.get("X-Forwarded-Access-Token")
    return WorkspaceClient(config=Config(host=os.environ["DATABRICKS_HOST"], token=token, auth_type="pat"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        part = self.path.split("?")[0].strip("/").split("/")
        if part == [""]:
            out = {"app": os.environ["DATABRICKS_APP_NAME"], "path": self.path,
                   "headers": {k.lower(): v for k, v in self.headers.items()}, "table": os.environ.get("TABLE"),
                   "greeting": os.environ.get("GREETING"), "secret": os.environ.get("API_KEY")}
        elif part[0] == "app-sql":
            out = sql(WorkspaceClient(), "SELECT count(*) FROM " + part[1])
        elif part[0] == "app-me":
            out = {"me": WorkspaceClient().current_user.me().display_name}
        elif part[0] == "user-sql":
            out = sql(as_user(self.headers), "SELECT count(*) FROM " + part[1])
        elif part[0] == "user-me":
            out = {"me": as_user(self.headers).current_user.me().user_name}
        elif part[0] == "user-endpoints":
            try:
                out = {"endpoints": [e.name for e in as_user(self.headers).serving_endpoints.list()]}
            except Exception as exc:
                out = {"error": str(exc)}
        elif part[0] == "set-cookies":
            self.send_response(204)
            self.send_header("Set-Cookie", "brickyard_session=stolen; Path=/")
            self.send_header("Set-Cookie", "brickyard_app_session=stolen")
            self.send_header("Set-Cookie", "theme=dark; Path=/; HttpOnly")
            self.end_headers()
            return
        elif part[0] == "redirect":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.end_headers()
            return
        elif part[0] == "exit":
            print("exiting on request", flush=True)
            os._exit(7)
        else:
            self.send_error(404)
            return
        body = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"echo": data.decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


print("probe starting", flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["DATABRICKS_APP_PORT"])), Handler).serve_forever()
'''
PROBE_YAML = """command: ["python", "app.py"]
env:
  - name: GREETING
    value: hello from app.yaml
  - name: TABLE
    valueFrom: open-table
  - name: API_KEY
    valueFrom: api-key
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("apps") / "home", access_log="off",
                            monitor_interval_seconds=0, app_start_seconds=4))
    admin_token = ws.create_token(ADMIN, admin=True)
    bob_token = ws.create_token(BOB)
    with serve(ws) as url:
        w = WorkspaceClient(host=url, token=admin_token)
        for text in ("CREATE SCHEMA main.app", "CREATE TABLE main.app.open (x INT)",
                     "INSERT INTO main.app.open VALUES (1), (2)", "CREATE TABLE main.app.closed (x INT)",
                     "INSERT INTO main.app.closed VALUES (5)", f"GRANT USE SCHEMA ON SCHEMA main.app TO `{BOB}`",
                     f"GRANT SELECT ON TABLE main.app.closed TO `{BOB}`"):
            w.statement_execution.execute_statement(statement=text, warehouse_id="any")
        w.secrets.create_scope("app-keys")
        w.secrets.put_secret("app-keys", "upstream", string_value="s3cr3t-value")
        folder = f"/Users/{ADMIN}/probe"
        w.workspace.mkdirs(folder)
        w.workspace.upload(f"{folder}/app.py", io.BytesIO(PROBE.encode()), format=ImportFormat.AUTO)
        w.workspace.upload(f"{folder}/app.yaml", io.BytesIO(PROBE_YAML.encode()), format=ImportFormat.AUTO)
        app = w.apps.create_and_wait(a.App(
            name="probe", description="answers with what it gets",
            resources=[a.AppResource(name="open-table", uc_securable=a.AppResourceUcSecurable(
                securable_full_name="main.app.open", securable_type=a.AppResourceUcSecurableUcSecurableType.TABLE,
                permission=a.AppResourceUcSecurableUcSecurablePermission.SELECT)),
                a.AppResource(name="api-key", secret=a.AppResourceSecret(
                    scope="app-keys", key="upstream", permission=a.AppResourceSecretSecretPermission.READ))],
            user_api_scopes=["sql"]), timeout=WAIT)
        deployment = w.apps.deploy_and_wait("probe", a.AppDeployment(source_code_path=f"/Workspace{folder}"),
                                            timeout=WAIT)
        yield {"ws": ws, "url": url, "w": w, "admin": admin_token, "bob": bob_token, "app": app,
               "deployment": deployment, "folder": folder}
    ws.close()


def call(env: dict[str, Any], path: str, token: str | None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    return httpx.request(kw.pop("method", "GET"), env["url"] + path, headers=headers, timeout=60, **kw)


def grant_use(env: dict[str, Any], who: str, level: str = "CAN_USE") -> None:
    env["w"].apps.update_permissions("probe", access_control_list=[a.AppAccessControlRequest(
        user_name=who, permission_level=a.AppPermissionLevel(level))])


def test_deployed_app_runs_behind_the_workspace(env: dict[str, Any]) -> None:
    w = env["w"]
    assert env["deployment"].status.state == a.AppDeploymentState.SUCCEEDED
    app = w.apps.get("probe")
    assert app.compute_status.state == a.ComputeState.ACTIVE
    assert app.app_status.state == a.ApplicationState.RUNNING
    assert app.url == env["url"] + "/apps/probe/"
    assert app.active_deployment.deployment_id == env["deployment"].deployment_id
    assert app.service_principal_client_id and app.effective_user_api_scopes == \
        ["iam.access-control:read", "iam.current-user:read", "sql"]
    assert [x.name for x in w.apps.list()] == ["probe"]
    assert [d.deployment_id for d in w.apps.list_deployments("probe")] == [env["deployment"].deployment_id]
    # the app sees its path without the prefix, the caller by name, and no credential of the caller
    r = call(env, "/apps/probe/?q=1", env["admin"], headers={"X-Forwarded-Email": "mallory@example.com",
                                                            "Cookie": "theme=dark"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["path"] == "/?q=1" and got["greeting"] == "hello from app.yaml" and got["table"] == "main.app.open"
    assert got["secret"] == "s3cr3t-value"  # valueFrom a secret: read as the app's principal, which has READ
    headers = got["headers"]
    assert headers["x-forwarded-email"] == ADMIN and headers["x-forwarded-prefix"] == "/apps/probe"
    assert "authorization" not in headers and headers["cookie"] == "theme=dark"
    assert headers["x-forwarded-access-token"].startswith("dapi") is False  # not a personal access token
    # a POST body, a redirect kept under the prefix, /apps/probe without the slash
    assert call(env, "/apps/probe/echo", env["admin"], method="POST", content=b"abc").json() == {"echo": "abc"}
    assert call(env, "/apps/probe/redirect", env["admin"]).headers["location"] == "/apps/probe/elsewhere"
    assert call(env, "/apps/probe", env["admin"]).status_code == 307
    assert call(env, "/apps/probe/", None).status_code == 401
    page = call(env, "/apps/probe/", None, headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
    logs = call(env, "/api/2.0/apps/probe/logs", env["admin"])
    assert "probe starting" in logs.text


def test_app_authorization_reaches_only_declared_resources(env: dict[str, Any]) -> None:
    assert call(env, "/apps/probe/app-me", env["admin"]).json() == {"me": "app-probe"}
    assert call(env, "/apps/probe/app-sql/main.app.open", env["admin"]).json() == {"rows": [["2"]]}
    denied = call(env, "/apps/probe/app-sql/main.app.closed", env["admin"]).json()
    assert "error" in denied and "main.app.closed" in denied["error"]


def test_user_authorization_sees_what_the_user_sees(env: dict[str, Any]) -> None:
    assert call(env, "/apps/probe/", env["bob"]).status_code == 404  # no CAN_USE: the app is not there for bob
    grant_use(env, BOB)
    assert call(env, "/apps/probe/user-me", env["bob"]).json() == {"me": BOB}
    assert call(env, "/apps/probe/user-sql/main.app.closed", env["bob"]).json() == {"rows": [["1"]]}
    assert "error" in call(env, "/apps/probe/user-sql/main.app.open", env["bob"]).json()
    assert call(env, "/apps/probe/user-sql/main.app.open", env["admin"]).json() == {"rows": [["2"]]}
    # the forwarded token is limited to the app's scopes: no serving endpoints with only "sql"
    listed = call(env, "/apps/probe/user-endpoints", env["bob"]).json()
    assert "scopes" in listed["error"]
    # and it cannot manage the user's tokens or call apps
    token = call(env, "/apps/probe/", env["bob"]).json()["headers"]["x-forwarded-access-token"]
    assert call(env, "/api/2.0/token/list", token).status_code == 403
    assert call(env, "/apps/probe/", token).status_code == 403
    # nor become a browser session of bob's: not at /login, not as the session cookie
    assert httpx.post(env["url"] + "/login", data={"token": token, "next": "/"}).status_code == 401
    as_cookie = httpx.get(env["url"] + "/compute/apps", headers={"Cookie": f"brickyard_session={token}"})
    assert as_cookie.status_code == 303 and as_cookie.headers["location"].startswith("/login")
    # CAN_USE does not let bob manage the app
    bob = WorkspaceClient(host=env["url"], token=env["bob"])
    assert bob.apps.get("probe").name == "probe"
    with pytest.raises(Exception, match="CAN_MANAGE"):
        bob.apps.stop("probe")


def test_bad_input_is_a_clear_error(env: dict[str, Any]) -> None:
    w = env["w"]
    with pytest.raises(Exception, match="lowercase"):
        w.apps.create(a.App(name="Bad_Name"))
    with pytest.raises(Exception, match="exactly one of"):
        w.apps.create(a.App(name="nothing", resources=[a.AppResource(name="x")]))
    with pytest.raises(Exception, match="unknown user API scope"):
        w.apps.create(a.App(name="scopes", user_api_scopes=["everything"]))
    with pytest.raises(Exception, match="already exists"):
        w.apps.create(a.App(name="probe"))
    # bob may not give an app what he cannot manage; nothing is left behind
    bob = WorkspaceClient(host=env["url"], token=env["bob"])
    with pytest.raises(Exception, match="main.app.closed|MANAGE|permission"):
        bob.apps.create(a.App(name="grabby", resources=[a.AppResource(name="t", uc_securable=a.AppResourceUcSecurable(
            securable_full_name="main.app.closed", securable_type=a.AppResourceUcSecurableUcSecurableType.TABLE,
            permission=a.AppResourceUcSecurableUcSecurablePermission.SELECT))]))
    with pytest.raises(NotFound):
        w.apps.get("grabby")
    with pytest.raises(Exception, match="doesn't exist"):
        w.apps.deploy("probe", a.AppDeployment(source_code_path=f"/Workspace/Users/{ADMIN}/missing"))


def failing_app(env: dict[str, Any], name: str, files: dict[str, str]) -> a.AppDeployment:
    w = env["w"]
    folder = f"/Users/{ADMIN}/{name}"
    w.workspace.mkdirs(folder)
    for file, text in files.items():
        w.workspace.upload(f"{folder}/{file}", io.BytesIO(text.encode()), format=ImportFormat.AUTO, overwrite=True)
    w.apps.create_and_wait(a.App(name=name), timeout=WAIT)
    with pytest.raises(OperationFailed):
        w.apps.deploy_and_wait(name, a.AppDeployment(source_code_path=folder), timeout=WAIT)
    return next(iter(w.apps.list_deployments(name)))


def test_an_app_that_exits_at_once_is_crashed_with_its_last_lines(env: dict[str, Any]) -> None:
    dep = failing_app(env, "crashy", {"app.py": "import sys\nprint('boom: DATABASE_URL is not set')\nsys.exit(3)\n"})
    assert dep.status.state == a.AppDeploymentState.FAILED
    assert "code 3" in dep.status.message and "boom: DATABASE_URL is not set" in dep.status.message
    app = env["w"].apps.get("crashy")
    assert app.app_status.state == a.ApplicationState.CRASHED and "boom" in app.app_status.message
    assert call(env, "/apps/crashy/", env["admin"]).status_code == 503


def test_an_app_that_does_not_listen_fails_and_is_stopped(env: dict[str, Any]) -> None:
    dep = failing_app(env, "mute", {"app.py": "import time\nprint('thinking')\ntime.sleep(120)\n"})
    assert "did not listen" in dep.status.message and "thinking" in dep.status.message
    pid_gone = env["ws"].db.tx(write=False)
    with pid_gone as tx:
        assert tx.one("SELECT pid FROM app_deployments WHERE deployment_id = ?", (dep.deployment_id,))["pid"] is None


def test_a_missing_command_or_a_bad_app_yaml_fails_the_deployment(env: dict[str, Any]) -> None:
    dep = failing_app(env, "nocmd", {"app.yaml": "command: ['no-such-program', '--serve']\n", "app.py": ""})
    assert "'no-such-program' was not found" in dep.status.message
    dep = failing_app(env, "badenv", {"app.yaml": "command: ['python', 'app.py']\nenv:\n  - name: X\n"
                                                  "    valueFrom: nothing\n", "app.py": ""})
    assert "valueFrom 'nothing'" in dep.status.message
    dep = failing_app(env, "needy", {"requirements.txt": "no-such-package-xyz==1.0\n", "app.py": ""})
    assert "no-such-package-xyz" in dep.status.message


def test_stop_start_and_a_crash_while_running(env: dict[str, Any]) -> None:
    w = env["w"]
    w.apps.stop_and_wait("probe", timeout=WAIT)
    assert w.apps.get("probe").app_status.state == a.ApplicationState.UNAVAILABLE
    assert call(env, "/apps/probe/", env["admin"]).status_code == 503
    with pytest.raises(Exception, match="start it"):
        w.apps.deploy("probe", a.AppDeployment(source_code_path=env["folder"]))
    w.apps.start_and_wait("probe", timeout=WAIT)
    wait_state(w, "probe", a.ApplicationState.RUNNING)
    assert call(env, "/apps/probe/", env["admin"]).status_code == 200
    # the process dies: CRASHED with its last lines, then started again
    assert call(env, "/apps/probe/exit", env["admin"]).status_code == 503  # the proxy: not answering
    crashed = wait_state(w, "probe", a.ApplicationState.CRASHED)
    assert "code 7" in crashed.app_status.message and "exiting on request" in crashed.app_status.message
    wait_state(w, "probe", a.ApplicationState.RUNNING)
    assert call(env, "/apps/probe/", env["admin"]).json()["app"] == "probe"
    # a second deployment replaces the first without a gap
    second = w.apps.deploy_and_wait("probe", a.AppDeployment(source_code_path=env["folder"]), timeout=WAIT)
    assert w.apps.get("probe").active_deployment.deployment_id == second.deployment_id


def wait_state(w: WorkspaceClient, name: str, state: a.ApplicationState, seconds: float = 30) -> a.App:
    deadline = time.monotonic() + seconds
    while True:
        app = w.apps.get(name)
        if app.app_status.state == state:
            return app
        assert time.monotonic() < deadline, f"{name} stayed {app.app_status.state}: {app.app_status.message}"
        time.sleep(0.1)


def test_browsers_get_the_app_at_its_own_origin(env: dict[str, Any]) -> None:
    from urllib.parse import urlsplit

    from tests.ui._setup import sign_in

    port = urlsplit(env["url"]).port
    app_host = f"probe.localhost:{port}"
    browser = sign_in(env["url"], env["admin"])
    opened = browser.get("/apps/probe/?q=1", headers={"Sec-Fetch-Mode": "navigate"}, follow_redirects=False)
    assert opened.status_code == 200 and "no-store" in opened.headers["cache-control"]
    import html
    import re

    handoff = urlsplit(html.unescape(re.search(r'url=([^"]+)"', opened.text).group(1)))
    assert handoff.netloc == app_host and handoff.path == "/.brickyard/handoff"
    # a script on any page of the workspace's origin cannot use the session cookie with an app
    refused = browser.get("/apps/probe/", headers={"Sec-Fetch-Mode": "cors"})
    assert refused.status_code == 403 and "its own origin" in refused.json()["message"]
    # the app's origin: the one-time code becomes a cookie of that host, for that app
    def at(host: str, path: str, cookie: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Host": host, **kw.pop("headers", {})}
        if cookie is not None:
            headers["Cookie"] = cookie
        return httpx.get(env["url"] + path, headers=headers, timeout=30, **kw)

    signed = at(app_host, f"{handoff.path}?{handoff.query}")
    assert signed.status_code == 303 and signed.headers["location"] == "/?q=1"
    session = signed.headers["set-cookie"]
    assert "httponly" in session.lower() and "domain" not in session.lower()
    cookie = session.split(";", 1)[0]
    assert cookie.startswith("brickyard_app_session=")
    assert at(app_host, f"{handoff.path}?{handoff.query}").status_code == 401  # once only
    got = at(app_host, "/?q=1", f"{cookie}; theme=dark").json()
    assert got["path"] == "/?q=1" and got["headers"]["x-forwarded-email"] == ADMIN
    assert "x-forwarded-prefix" not in got["headers"] and got["headers"]["cookie"] == "theme=dark"
    assert at(app_host, "/apps/probe/?x=2", cookie).json()["path"] == "/?x=2"
    # the app's cookie is good for nothing else: another app's host, the API, apps through the workspace
    other = f"crashy.localhost:{port}"
    assert at(other, "/", cookie).status_code == 401
    assert at(other, "/", cookie, headers={"Accept": "text/html"}).headers["location"].endswith("/apps/crashy/")
    token = cookie.split("=", 1)[1]
    assert call(env, "/api/2.1/unity-catalog/catalogs", token).status_code == 403
    assert call(env, "/apps/probe/", token).status_code == 403
    # without a session a page load goes to the workspace to sign in; a script gets 401
    assert at(app_host, "/", headers={"Accept": "text/html"}).headers["location"] == f"{env['url']}/apps/probe/"
    assert at(app_host, "/").status_code == 401
    # an app cannot set Brickyard's cookies, and its own stay below its path on the workspace's origin
    set_cookies = call(env, "/apps/probe/set-cookies", env["admin"]).headers.get_list("set-cookie")
    assert set_cookies == ["theme=dark; HttpOnly; Path=/apps/probe/"]
    assert at(app_host, "/set-cookies", cookie).headers.get_list("set-cookie") == ["theme=dark; Path=/; HttpOnly"]


def test_in_chromium_an_app_is_its_own_origin(env: dict[str, Any]) -> None:
    from urllib.parse import urlsplit

    from tests._browser import browser, sign_in

    driver = browser()
    try:
        driver.get(env["url"] + "/apps/probe/")
        assert "/login" in driver.current_url
        sign_in(driver, env["admin"])
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(driver, 20).until(lambda d: urlsplit(d.current_url).hostname == "probe.localhost")
        assert '"x-forwarded-email": "admin@example.com"' in driver.page_source
        # the app's scripts reach the app, but neither the workspace's pages nor its API with the user's session
        own = driver.execute_async_script(
            "const done = arguments[0]; fetch('/').then(r => r.json()).then(j => done(j.app), e => done(String(e)));")
        assert own == "probe"
        workspace = driver.execute_async_script(
            "const done = arguments[arguments.length - 1]; fetch(arguments[0], {credentials: 'include'})"
            ".then(r => r.text())"
            ".then(t => done('read: ' + t.slice(0, 80)), e => done('blocked: ' + e));", env["url"] + "/compute/apps")
        assert workspace.startswith("blocked"), workspace
    finally:
        driver.quit()


def test_the_apps_pages(env: dict[str, Any]) -> None:
    from tests.ui._setup import csrf, sign_in

    admin = sign_in(env["url"], env["admin"])
    listed = admin.get("/compute/apps").text
    assert 'href="/compute/apps/probe"' in listed and "crashy" in listed
    page = admin.get("/compute/apps/probe").text
    assert "open the app" in page and "main.app.open" in page and "probe starting" in page  # resources and logs
    crashed = admin.get("/compute/apps/crashy").text
    assert "CRASHED" in crashed and "boom: DATABASE_URL is not set" in crashed
    bob = sign_in(env["url"], env["bob"])
    seen = bob.get("/compute/apps/probe").text
    assert "open the app" in seen and "Logs" not in seen and "Stop</button>" not in seen  # CAN_USE only
    assert bob.get("/compute/apps/crashy").status_code == 404
    stopped = admin.post("/compute/apps/mute/stop", data={"csrf": csrf(admin.get("/compute/apps/mute").text)})
    assert stopped.status_code in (200, 303)
    assert env["w"].apps.get("mute").compute_status.state in (a.ComputeState.STOPPING, a.ComputeState.STOPPED)
    assert admin.post("/compute/apps/mute/start", data={"csrf": "forged"}).status_code == 403


def test_delete_takes_back_the_grants_and_the_principal(env: dict[str, Any]) -> None:
    w, ws = env["w"], env["ws"]
    app = w.apps.get("probe")
    sp = app.service_principal_client_id
    grants = w.grants.get_effective(securable_type="table", full_name="main.app.open")
    assert sp in {g.principal for g in grants.privilege_assignments}
    pid = ws.db.tx(write=False)
    with pid as tx:
        running = tx.one("SELECT pid FROM apps WHERE name = 'probe'")["pid"]
    w.apps.delete("probe")
    with pytest.raises(NotFound):
        w.apps.get("probe")
    grants = w.grants.get_effective(securable_type="table", full_name="main.app.open")
    assert sp not in {g.principal for g in grants.privilege_assignments or []}
    assert ws.identity.by_name(sp) is None
    deadline = time.monotonic() + 10
    while _alive(running):
        assert time.monotonic() < deadline, "the app's process outlived the app"
        time.sleep(0.05)
    assert call(env, "/apps/probe/", env["admin"]).status_code == 404


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
