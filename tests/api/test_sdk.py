"""The official databricks-sdk against a live Brickyard server: the calls users make, unchanged."""

from __future__ import annotations

import io
import json
import time
import urllib.request

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import (
    BadRequest,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    Unauthenticated,
)
from databricks.sdk.service import catalog as uc
from databricks.sdk.service.iam import Patch, PatchOp, PatchSchema
from databricks.sdk.service.sql import StatementParameterListItem, StatementState

from tests.conftest import Live


@pytest.fixture(scope="module")
def admin(live: Live) -> WorkspaceClient:
    w = live.client(live.token("admin@example.com", admin=True))
    return w


def cols(*pairs: tuple[str, str]) -> list[uc.ColumnInfo]:
    return [uc.ColumnInfo(name=n, type_text=t, type_name=uc.ColumnTypeName(t.upper().replace("BIGINT", "LONG")),
                          position=i) for i, (n, t) in enumerate(pairs)]


def test_catalog_schema_table_lifecycle(admin: WorkspaceClient) -> None:
    c = admin.catalogs.create(name="sales", comment="c", properties={"team": "x"})
    assert (c.name, c.owner, c.properties) == ("sales", "admin@example.com", {"team": "x"})
    admin.schemas.create(name="raw", catalog_name="sales")
    t = admin.tables.create(name="orders", catalog_name="sales", schema_name="raw", table_type=uc.TableType.MANAGED,
                            data_source_format=uc.DataSourceFormat.DELTA, storage_location="",
                            columns=cols(("id", "bigint"), ("item", "string")))
    assert t.full_name == "sales.raw.orders" and [x.name for x in t.columns] == ["id", "item"]
    assert t.properties["delta.enableChangeDataFeed"] == "true"
    assert admin.tables.exists("sales.raw.orders").table_exists
    assert not admin.tables.exists("sales.raw.nope").table_exists
    assert [x.name for x in admin.tables.list(catalog_name="sales", schema_name="raw")] == ["orders"]
    admin.catalogs.update("sales", comment="updated")
    assert admin.catalogs.get("sales").comment == "updated"
    with pytest.raises(ResourceAlreadyExists):
        admin.catalogs.create(name="sales")
    with pytest.raises(BadRequest):
        admin.catalogs.delete("sales")  # not empty
    admin.catalogs.delete("sales", force=True)
    with pytest.raises(NotFound):
        admin.catalogs.get("sales")


def test_pagination_follows_next_page_token(admin: WorkspaceClient) -> None:
    admin.schemas.create(name="many", catalog_name="main")
    for i in range(7):
        admin.volumes.create(catalog_name="main", schema_name="many", name=f"v{i}", volume_type=uc.VolumeType.MANAGED)
    names = [v.name for v in admin.volumes.list(catalog_name="main", schema_name="many", max_results=3)]
    assert names == [f"v{i}" for i in range(7)]


def test_sql_statements_through_the_sdk(admin: WorkspaceClient) -> None:
    se = admin.statement_execution
    r = se.execute_statement(statement="CREATE TABLE main.default.kv (k STRING, v BIGINT)", warehouse_id="any")
    assert r.status.state == StatementState.SUCCEEDED
    se.execute_statement(statement="INSERT INTO main.default.kv VALUES ('a', 1), ('b', 2)", warehouse_id="any")
    r = se.execute_statement(statement="SELECT k, v FROM main.default.kv WHERE v >= :min ORDER BY k",
                             warehouse_id="any",
                             parameters=[StatementParameterListItem(name="min", value="2", type="BIGINT")])
    assert r.result.data_array == [["b", "2"]]
    assert [c.name for c in r.manifest.schema.columns] == ["k", "v"]
    r = se.execute_statement(statement="SELECT * FROM main.default.kv", warehouse_id="any", wait_timeout="0s")
    for _ in range(300):
        r = se.get_statement(r.statement_id)
        if r.status.state == StatementState.SUCCEEDED:
            break
        time.sleep(0.01)
    assert r.manifest.total_row_count == 2
    bad = se.execute_statement(statement="SELECT * FROM main.default.missing", warehouse_id="any")
    assert bad.status.state == StatementState.FAILED and "does not exist" in bad.status.error.message


def test_grants_and_a_denied_user(live: Live, admin: WorkspaceClient) -> None:
    admin.catalogs.create(name="sales")  # its default schema comes with it
    admin.statement_execution.execute_statement(statement="CREATE TABLE sales.default.secret (x INT)", warehouse_id="w")
    bob = live.client(live.token("bob@example.com"))
    with pytest.raises(PermissionDenied, match="USE_CATALOG"):
        bob.tables.get("sales.default.secret")
    admin.grants.update("catalog", "sales", changes=[uc.PermissionsChange(principal="bob@example.com",
                                                                          add=[uc.Privilege.USE_CATALOG])])
    admin.grants.update("schema", "sales.default", changes=[uc.PermissionsChange(
        principal="bob@example.com", add=[uc.Privilege.USE_SCHEMA])])
    admin.grants.update("table", "sales.default.secret", changes=[uc.PermissionsChange(
        principal="bob@example.com", add=[uc.Privilege.SELECT])])
    assert bob.tables.get("sales.default.secret").name == "secret"
    got = admin.grants.get("table", "sales.default.secret")
    assert [(a.principal, [p.value for p in a.privileges]) for a in got.privilege_assignments] == [
        ("bob@example.com", ["SELECT"])]
    eff = admin.grants.get_effective("table", "sales.default.secret", principal="bob@example.com")
    inherited = {p.privilege.value: p.inherited_from_name for a in eff.privilege_assignments for p in a.privileges}
    assert inherited == {"SELECT": None, "USE_SCHEMA": "sales.default", "USE_CATALOG": "sales"}
    with pytest.raises(PermissionDenied):
        bob.grants.update("table", "sales.default.secret", changes=[uc.PermissionsChange(
            principal="bob@example.com", add=[uc.Privilege.MODIFY])])


def test_functions_models_versions_aliases_connections(admin: WorkspaceClient) -> None:
    fi = admin.functions.create(function_info=uc.CreateFunction(
        name="add_one", catalog_name="main", schema_name="default",
        input_params=uc.FunctionParameterInfos(parameters=[uc.FunctionParameterInfo(
            name="x", type_text="int", type_name=uc.ColumnTypeName.INT, position=0)]),
        data_type=uc.ColumnTypeName.INT, full_data_type="int", routine_body=uc.CreateFunctionRoutineBody.SQL,
        routine_definition="x + 1", parameter_style=uc.CreateFunctionParameterStyle.S, is_deterministic=True,
        sql_data_access=uc.CreateFunctionSqlDataAccess.NO_SQL, is_null_call=False,
        security_type=uc.CreateFunctionSecurityType.DEFINER, specific_name="add_one", comment="adds one"))
    assert fi.full_name == "main.default.add_one" and fi.input_params.parameters[0].name == "x"
    assert admin.functions.get("main.default.add_one").routine_definition == "x + 1"
    assert [f.name for f in admin.functions.list(catalog_name="main", schema_name="default")] == ["add_one"]

    m = admin.registered_models.create(catalog_name="main", schema_name="default", name="clf", comment="model")
    assert m.full_name == "main.default.clf"
    for run in ("r1", "r2"):
        admin.api_client.do("POST", "/api/2.1/unity-catalog/models/versions",
                            body={"catalog_name": "main", "schema_name": "default", "model_name": "clf",
                                  "source": f"runs:/{run}/model", "run_id": run})
    admin.registered_models.set_alias("main.default.clf", "champion", 2)
    assert admin.model_versions.get_by_alias("main.default.clf", "champion").version == 2
    assert [v.version for v in admin.model_versions.list("main.default.clf")] == [1, 2]
    assert admin.registered_models.get("main.default.clf").aliases[0].alias_name == "champion"
    admin.registered_models.delete_alias("main.default.clf", "champion")
    with pytest.raises(NotFound):
        admin.model_versions.get_by_alias("main.default.clf", "champion")

    conn = admin.connections.create(name="pg", connection_type=uc.ConnectionType.POSTGRESQL,
                                    options={"host": "db.internal", "port": "5432", "user": "u",
                                             "password": "canary-pw-123456"})
    assert "password" not in conn.options and conn.options["host"] == "db.internal"
    assert "canary-pw" not in json.dumps(admin.api_client.do("GET", "/api/2.1/unity-catalog/connections/pg"))


def test_scim_users_groups_service_principals(live: Live, admin: WorkspaceClient) -> None:
    assert admin.current_user.me().user_name == "admin@example.com"
    u = admin.users.create(user_name="carol@example.com", display_name="Carol")
    assert admin.users.get(u.id).display_name == "Carol"
    assert [x.user_name for x in admin.users.list(filter='userName eq "carol@example.com"')] == ["carol@example.com"]
    g = admin.groups.create(display_name="analysts")
    admin.groups.patch(g.id, operations=[Patch(op=PatchOp.ADD, path="members", value=[{"value": u.id}])],
                       schemas=[PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP])
    assert [x.display for x in admin.groups.get(g.id).members] == ["Carol"]
    sp = admin.service_principals.create(display_name="etl-bot")
    assert sp.application_id and admin.service_principals.get(sp.id).display_name == "etl-bot"
    carol = live.client(live.token("carol@example.com"))
    with pytest.raises(PermissionDenied):
        carol.users.create(user_name="mallory@example.com")
    admin.users.delete(u.id)
    with pytest.raises(ResourceDoesNotExist):
        admin.users.get(u.id)


def test_oauth_m2m_service_principal(live: Live) -> None:
    sp, secret = live.ws.create_service_principal("m2m")
    w = WorkspaceClient(host=live.url, client_id=sp.application_id, client_secret=secret)
    assert w.config.auth_type == "oauth-m2m"
    assert w.current_user.me().display_name == "m2m"
    wrong = WorkspaceClient(host=live.url, client_id=sp.application_id, client_secret="dose-wrong")
    with pytest.raises(Exception, match="invalid"):
        wrong.current_user.me()


def test_tokens_api_and_revocation(live: Live) -> None:
    w = live.client(live.token("dana@example.com"))
    created = w.tokens.create(comment="ci", lifetime_seconds=3600)
    w2 = live.client(created.token_value)
    assert w2.current_user.me().user_name == "dana@example.com"
    assert created.token_info.comment == "ci" in [t.comment for t in w.tokens.list()]
    w.tokens.delete(created.token_info.token_id)
    with pytest.raises(Unauthenticated):
        w2.current_user.me()


def test_files_api_on_volumes(admin: WorkspaceClient) -> None:
    admin.volumes.create(catalog_name="main", schema_name="default", name="files", volume_type=uc.VolumeType.MANAGED)
    payload = bytes(range(256)) * 1000
    admin.files.upload("/Volumes/main/default/files/dir/blob.bin", io.BytesIO(payload), overwrite=True)
    assert admin.files.download("/Volumes/main/default/files/dir/blob.bin").contents.read() == payload
    meta = admin.files.get_metadata("/Volumes/main/default/files/dir/blob.bin")
    assert meta.content_length == len(payload)
    admin.files.create_directory("/Volumes/main/default/files/empty")
    listing = sorted(e.path for e in admin.files.list_directory_contents("/Volumes/main/default/files"))
    assert listing == ["/Volumes/main/default/files/dir/", "/Volumes/main/default/files/empty/"]
    with pytest.raises(ResourceAlreadyExists):
        admin.files.upload("/Volumes/main/default/files/dir/blob.bin", io.BytesIO(b"x"), overwrite=False)
    admin.files.delete("/Volumes/main/default/files/dir/blob.bin")
    with pytest.raises(NotFound):
        admin.files.download("/Volumes/main/default/files/dir/blob.bin")


def test_discovery_documents(live: Live) -> None:
    with urllib.request.urlopen(live.url + "/.well-known/databricks-config") as r:  # noqa: S310 - loopback
        cfg = json.load(r)
    assert cfg["oidc_endpoint"] == live.url + "/oidc" and cfg["workspace_id"].isdigit()
    with urllib.request.urlopen(live.url + "/oidc/.well-known/oauth-authorization-server") as r:  # noqa: S310
        assert json.load(r)["token_endpoint"] == live.url + "/oidc/v1/token"


def test_large_file_upload_and_download(admin: WorkspaceClient, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Over 50 MiB the SDK tries presigned multipart uploads, falls back to one PUT, downloads with Range."""
    admin.volumes.create(catalog_name="main", schema_name="default", name="big", volume_type=uc.VolumeType.MANAGED)
    block = bytes(range(256)) * 4096
    payload = block * 60  # 60 MiB
    admin.files.upload("/Volumes/main/default/big/blob.bin", io.BytesIO(payload), overwrite=True)
    assert admin.files.get_metadata("/Volumes/main/default/big/blob.bin").content_length == len(payload)
    got = admin.files.download("/Volumes/main/default/big/blob.bin").contents.read()
    assert got == payload
    target = tmp_path / "copy.bin"
    admin.files.download_to("/Volumes/main/default/big/blob.bin", str(target))
    assert target.read_bytes() == payload
