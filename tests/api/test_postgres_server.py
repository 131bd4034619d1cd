"""The whole server on a PostgreSQL metastore, driven by the SDK, and two workspaces sharing it."""

from __future__ import annotations

from pathlib import Path

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied
from databricks.sdk.service import catalog as uc

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import PgServer, serve

pytestmark = pytest.mark.postgres


def test_sdk_against_a_postgres_metastore(pg_server: PgServer | None, tmp_path: Path) -> None:
    if pg_server is None:
        pytest.skip("PostgreSQL is not installed (make test installs it with apt-get when run as root)")
    url = pg_server.new_database()
    ws = Workspace(Settings(home=tmp_path / "home", metastore_url=url))
    admin_token = ws.create_token("admin@example.com", admin=True)
    bob_token = ws.create_token("bob@example.com")
    with serve(ws) as host:
        admin = WorkspaceClient(host=host, token=admin_token)
        admin.schemas.create(name="s", catalog_name="main")
        se = admin.statement_execution
        se.execute_statement(statement="CREATE TABLE main.s.t (id BIGINT)", warehouse_id="w")
        se.execute_statement(statement="INSERT INTO main.s.t VALUES (1), (2)", warehouse_id="w")
        assert se.execute_statement(statement="SELECT sum(id) FROM main.s.t", warehouse_id="w").result.data_array == [["3"]]
        bob = WorkspaceClient(host=host, token=bob_token)
        with pytest.raises(PermissionDenied):
            bob.tables.get("main.s.t")
        admin.grants.update("catalog", "main", changes=[uc.PermissionsChange(principal="bob@example.com",
                                                                              add=[uc.Privilege.ALL_PRIVILEGES])])
        assert bob.tables.get("main.s.t").name == "t"
        # A second workspace process on the same metastore sees the same catalog and tokens.
        other = Workspace(Settings(home=tmp_path / "home", metastore_url=url))
        try:
            assert other.identity.authenticate(bob_token).name == "bob@example.com"
            assert other.tables.read(other.principal("bob@example.com"), "main.s.t").num_rows == 2
        finally:
            other.close()
    ws.close()
