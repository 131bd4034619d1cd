"""The official clients against a Brickyard served over TLS, run in a process of their own (databricks-connect
sets process-wide state: SPARK_CONNECT_MODE_ENABLED, cached sessions, gRPC's trusted roots read once).

``python -m tests.api._spark_client URL ADMIN_TOKEN BOB_TOKEN`` prints one JSON object of what each step saw;
the test asserts on it. A step that raises records ``"error: <message>"``.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable
from typing import Any


def step(out: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    try:
        out[name] = fn()
    except Exception as exc:  # the test reads the message
        out[name] = f"error: {type(exc).__name__}: {exc}"


def shout(text: str, times: int) -> str:
    """Repeat a text, upper-cased.

    Args:
        text: what to say
        times: how many times

    Returns:
        str: the text, upper-cased and repeated
    """
    return " ".join([text.upper()] * times)


def session(url: str, token: str) -> Any:
    from databricks.connect import DatabricksSession
    from databricks.sdk.core import Config

    return DatabricksSession.builder.sdkConfig(Config(host=url, token=token, serverless_compute_id="auto")).create()


def main(url: str, admin_token: str, bob_token: str) -> dict[str, Any]:
    warnings.simplefilter("ignore")
    out: dict[str, Any] = {}
    spark = session(url, admin_token)
    step(out, "version", lambda: spark.version)
    step(out, "select", lambda: [r.asDict() for r in spark.sql("SELECT :n + 1 AS x, :s AS y",
                                                                  args={"n": 41, "s": "hi"}).collect()])
    step(out, "ddl", lambda: [spark.sql(s).collect() for s in (
        "CREATE TABLE main.default.fruit (id INT, name STRING)",
        "INSERT INTO main.default.fruit VALUES (1, 'apple'), (2, 'banana'), (3, 'cherry')")] and "ok")
    df = spark.sql("SELECT id, name FROM main.default.fruit WHERE id >= :low ORDER BY id", args={"low": 2})
    step(out, "count", df.count)
    step(out, "pandas", lambda: df.toPandas().to_dict(orient="list"))
    step(out, "limit", lambda: [r.name for r in df.limit(1).collect()])
    step(out, "columns", lambda: df.columns)
    step(out, "schema", lambda: df.schema.simpleString())
    step(out, "show", lambda: df._show_string(n=1, truncate=5))
    step(out, "table", lambda: [r.id for r in spark.table("main.default.fruit").select("id").collect()])
    step(out, "range", lambda: [r.id for r in spark.range(3).collect()])
    step(out, "filter", lambda: spark.table("main.default.fruit").filter("id > 1").collect())
    step(out, "bad_sql", lambda: spark.sql("SELEC 1").collect())
    step(out, "conf", lambda: (spark.conf.set("my.setting", "7"), spark.conf.get("my.setting"))[1])

    from databricks.sdk import WorkspaceClient
    from unitycatalog.ai.core.databricks import DatabricksFunctionClient
    from unitycatalog.ai.langchain.toolkit import UCFunctionToolkit

    client = DatabricksFunctionClient(client=WorkspaceClient(host=url, token=admin_token))
    step(out, "uc_create_python", lambda: client.create_python_function(
        func=shout, catalog="main", schema="default", replace=True).full_name)
    step(out, "uc_execute", lambda: client.execute_function("main.default.shout", {"text": "hi", "times": 2}).value)
    step(out, "uc_create_sql", lambda: client.create_function(sql_function_body=(
        "CREATE OR REPLACE FUNCTION main.default.fruit_upto(n INT COMMENT 'highest id') RETURNS TABLE (name STRING) "
        "COMMENT 'Fruit up to an id.' RETURN SELECT name FROM main.default.fruit WHERE id <= n")).full_name)
    step(out, "uc_table", lambda: client.execute_function("main.default.fruit_upto", {"n": 2}).value)
    step(out, "uc_tool", lambda: UCFunctionToolkit(function_names=["main.default.shout"], client=client)
         .tools[0].invoke({"text": "yo", "times": 3}))

    bob = session(url, bob_token)
    step(out, "bob_table", lambda: bob.table("main.default.fruit").collect())
    step(out, "bob_function", lambda: bob.sql("SELECT main.default.shout('x', 1) AS s").collect())
    spark.sql("GRANT SELECT ON TABLE main.default.fruit TO `bob@example.com`")
    step(out, "bob_after_grant", lambda: [r.id for r in bob.table("main.default.fruit").collect()])
    step(out, "bad_token", lambda: session(url, "dapi-not-a-token").sql("SELECT 1").collect())
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4]), default=str))
