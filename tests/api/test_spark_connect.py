"""HTTPS with Spark Connect on the same port (issue 21: unitycatalog-ai's create_python_function and its default
serverless mode go through databricks-connect): the official clients unchanged, the TLS front's routing, the
certificate Brickyard makes, and what is refused."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from brickyard.api import create_app
from brickyard.api._tls import certificate, https_scheme, tls_front
from brickyard.core.errors import InvalidParameterValue
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.sql._shared import ADMIN, BOB, workspace

pytest.importorskip("databricks.connect", reason="databricks-connect (dev dependency, Python < 3.12) is not installed")
pytest.importorskip("grpc", reason="grpcio (the spark-connect extra) is not installed")

ROOT = Path(__file__).parents[2]


@contextlib.contextmanager
def serve_tls(ws: Workspace) -> Iterator[tuple[str, Path]]:
    """The workspace as ``brickyard serve --tls`` serves it: uvicorn on a private port behind the TLS front on a
    free loopback port. Yields (https URL, CA file)."""
    import uvicorn

    app = create_app(ws)
    server = uvicorn.Server(uvicorn.Config(https_scheme(app), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the private server did not start"
        time.sleep(0.02)
    private_port = server.servers[0].sockets[0].getsockname()[1]
    ws.server_url = f"http://127.0.0.1:{private_port}"
    public = socket.create_server(("127.0.0.1", 0))
    try:
        with tls_front(ws, public, private_port) as files:
            assert files.ca is not None
            yield f"https://127.0.0.1:{public.getsockname()[1]}", files.ca
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, str, Path]]:
    ws = workspace(tmp_path_factory.mktemp("spark") / "home", tls=1)
    with serve_tls(ws) as (url, ca):
        yield ws, url, ca
    ws.close()


def test_databricks_connect_and_unitycatalog_ai_work_unchanged(served: tuple[Workspace, str, Path]) -> None:
    ws, url, ca = served
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(ca), "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(ca),
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "tests.api._spark_client", url, ws.create_token(ADMIN),
                           ws.create_token(BOB)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["version"] == "3.5.0"
    assert seen["select"] == [{"x": 42, "y": "hi"}]
    assert seen["ddl"] == "ok"
    assert seen["count"] == 2
    assert seen["pandas"] == {"id": [2, 3], "name": ["banana", "cherry"]}
    assert seen["limit"] == ["banana"]
    assert seen["columns"] == ["id", "name"]
    assert seen["schema"] == "struct<id:int,name:string>"
    assert seen["show"] == "+---+-----+\n| id| name|\n+---+-----+\n|  2|ba...|\n+---+-----+\nonly showing top 1 row\n"
    assert seen["table"] == [1, 2, 3]
    assert seen["range"] == [0, 1, 2]
    assert "UNSUPPORTED_OPERATION" in seen["filter"] and "spark.sql" in seen["filter"]
    assert "PARSE_SYNTAX_ERROR" in seen["bad_sql"]
    assert seen["conf"] == "7"
    # unitycatalog-ai in its default (serverless) mode: create_python_function and create_function run through
    # Spark Connect, execute_function too; the function lands in the catalog, callable from SQL
    assert seen["uc_create_python"] == "main.default.shout"
    assert seen["uc_execute"] == "HI HI"
    assert seen["uc_create_sql"] == "main.default.fruit_upto"
    assert seen["uc_table"] == "name\napple\nbanana\n"
    assert json.loads(seen["uc_tool"]) == {"format": "SCALAR", "value": "YO YO YO"}
    assert ws.sql.execute(ws.principal(ADMIN), "SELECT main.default.shout('a', 3) AS s").table.to_pylist() == [
        {"s": "A A A"}]
    # governance: the same grants as every other path
    assert "PERMISSION_DENIED" in seen["bob_table"]
    assert "PERMISSION_DENIED" in seen["bob_function"]
    assert seen["bob_after_grant"] == [1, 2, 3]
    assert "UNAUTHENTICATED" in seen["bad_token"] or "nauthenticated" in seen["bad_token"]


def _alpn(url: str, ca: Path | None, offer: list[str]) -> str | None:
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(ca) if ca else None)  # None: the system's authorities
    context.set_alpn_protocols(offer)
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return tls.selected_alpn_protocol()


def test_the_front_routes_by_alpn_and_keeps_browsers_on_http1(served: tuple[Workspace, str, Path]) -> None:
    import httpx

    ws, url, ca = served
    assert _alpn(url, ca, ["h2", "http/1.1"]) == "http/1.1"  # a browser: the pages and the REST API
    assert _alpn(url, ca, ["grpc-exp", "h2"]) == "grpc-exp"  # gRPC's C core
    assert _alpn(url, ca, ["h2"]) == "h2"  # other gRPC clients
    token = ws.create_token(ADMIN)
    with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as http:
        me = http.get(url + "/api/2.0/preview/scim/v2/Me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200 and me.json()["userName"] == ADMIN
        # same-origin checks see the scheme the browser used: an https Origin of this server is its own
        body = {"statement": "SELECT 1 AS one", "warehouse_id": "local", "wait_timeout": "10s"}
        own = http.post(url + "/api/2.0/sql/statements", json=body,
                        headers={"Authorization": f"Bearer {token}", "Origin": url})
        assert own.status_code == 200, own.text
        other = http.post(url + "/api/2.0/sql/statements", json=body,
                          headers={"Authorization": f"Bearer {token}", "Origin": url.replace("https", "http")})
        assert other.status_code == 403
    with pytest.raises(ssl.SSLCertVerificationError):  # nothing but the workspace's CA vouches for it
        _alpn(url, None, ["http/1.1"])


def test_spark_connect_refuses_calls_without_a_valid_token(served: tuple[Workspace, str, Path]) -> None:
    import grpc

    from brickyard.api._spark._proto import M

    _, url, ca = served
    channel = grpc.secure_channel(url.removeprefix("https://"), grpc.ssl_channel_credentials(ca.read_bytes()))
    call = channel.unary_unary("/spark.connect.SparkConnectService/AnalyzePlan",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=M["AnalyzePlanResponse"].FromString)
    request = M["AnalyzePlanRequest"](session_id="6a3a2a34-7a0e-4e52-9d0b-2f1c1a9d1e11", spark_version=M["Empty"]())
    for metadata in ((), (("authorization", "Bearer nope"),), (("authorization", "Basic eDp5"),)):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, metadata=metadata, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # an app's token for its user without the sql scope is not a Spark credential
    ws = served[0]
    user = ws.ensure_user("scoped@example.com")
    limited, _ = ws.identity.create_token(user.id, lifetime_seconds=600, kind="app",
                                          api_scopes=["serving.serving-endpoints"])
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=(("authorization", f"Bearer {limited}"),), timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    channel.close()


def test_the_certificate_is_made_once_and_kept_private(tmp_path: Path) -> None:
    from cryptography import x509

    first = certificate(tmp_path, None, None)
    assert first.ca is not None and first.key.stat().st_mode & 0o077 == 0
    leaf = x509.load_pem_x509_certificates(first.cert.read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "*.localhost"} <= set(names.get_values_for_type(x509.DNSName))  # apps: <name>.localhost
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    before = first.cert.read_bytes()
    assert certificate(tmp_path, None, None).cert.read_bytes() == before  # reused, not remade
    given = certificate(tmp_path, str(first.cert), str(first.key))
    assert given.ca is None and given.cert == first.cert
    with pytest.raises(InvalidParameterValue, match="does not exist"):
        certificate(tmp_path, str(tmp_path / "nope.pem"), str(first.key))
    with pytest.raises(InvalidParameterValue, match="go together"):
        Settings.from_env({"BRICKYARD_TLS_CERT": str(first.cert)})


def test_serve_refuses_tls_with_several_processes(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "brickyard.cli", "serve", "--home", str(tmp_path / "h"), "--tls",
                           "--workers", "2"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert done.returncode != 0 and "--tls serves one process" in done.stderr
