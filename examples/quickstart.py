"""Brickyard quickstart: a local workspace driven by the official Databricks SDK.

Run with ``make demo``. It starts ``brickyard serve`` on a free loopback port with a fresh workspace in
``.demo/``, then, through ``databricks-sdk`` exactly as against a Databricks workspace:

1. creates a catalog, a schema and a Delta table, writes rows with SQL and reads them back;
2. shows a permission denial for a second user, grants access, and shows the same read succeeding;
3. uploads a file to a volume and downloads it;
4. reads the audit log (``system.access.audit``), where the denial was recorded;
5. serves the offline models: retrieves the best row for a question with the embedding endpoint
   (``databricks-gte-large-en`` stand-in), answers it with the local chat model through the ``openai``
   client behind the AI Gateway, hits a rate limit, and prints the usage and inference-table rows;
6. renders some of Brickyard's own docs to PDF, DOCX and HTML, ingests them with ``brickyard ingest``,
   builds a Delta Sync index with managed embeddings through ``VectorSearchClient``, and runs ANN,
   FULL_TEXT, HYBRID and reranked HYBRID queries with a filter;
7. registers a UC function, builds a RAG agent with that function and the index as tools, logs it with
   mlflow, registers it in Unity Catalog, deploys it behind a serving endpoint, asks it questions through
   the ``openai`` client, and prints the answers, the tool calls and each trace's span tree.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from _demo import BIN, cli, free_port, step, wait_healthy  # examples/_demo.py, beside this script
from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import PermissionDenied
from databricks.sdk.service.catalog import (
    ColumnInfo,
    ColumnTypeName,
    DataSourceFormat,
    PermissionsChange,
    Privilege,
    TableType,
    VolumeType,
)
from databricks.sdk.service.serving import (
    AiGatewayConfig,
    AiGatewayInferenceTableConfig,
    AiGatewayRateLimit,
    AiGatewayRateLimitKey,
    AiGatewayRateLimitRenewalPeriod,
    AiGatewayUsageTrackingConfig,
    EndpointCoreConfigInput,
    ServedEntityInput,
)
from openai import OpenAI, RateLimitError

warnings.filterwarnings("ignore", category=DeprecationWarning, module="databricks.vector_search")
from databricks.vector_search.client import VectorSearchClient  # noqa: E402
from databricks.vector_search.reranker import DatabricksReranker  # noqa: E402

HOME = Path(os.environ.get("BRICKYARD_DEMO_HOME", ".demo"))






def sql(w: WorkspaceClient, statement: str) -> list[list[str]]:
    r = w.statement_execution.execute_statement(statement=statement, warehouse_id="brickyard", wait_timeout="30s")
    if r.status.state.value != "SUCCEEDED":
        raise RuntimeError(f"{statement!r} failed: {r.status.error.message if r.status.error else r.status}")
    return r.result.data_array or [] if r.result else []


def render_corpus(out: Path) -> Path:
    """Some of this project's docs in every format the parsers read: PDF, DOCX, HTML and Markdown."""
    import docx
    from fpdf import FPDF
    from markdown_it import MarkdownIt

    docs = Path(__file__).resolve().parents[1] / "docs"
    out.mkdir(parents=True, exist_ok=True)
    md = MarkdownIt("commonmark").enable("table")
    shutil.copy(docs.parent / "README.md", out / "README.md")
    (out / "security.html").write_text(f"<html><body>{md.render((docs / 'security.md').read_text())}</body></html>")
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    text = (docs / "serving.md").read_text().encode("latin-1", "replace").decode("latin-1")
    pdf.write_html(re.sub(r"</?(code|strong|em)\b[^>]*>", "", md.render(text)))  # fpdf's HTML subset
    pdf.output(str(out / "serving.pdf"))
    document = docx.Document()
    for tok_line in (docs / "vectorsearch.md").read_text().split("\n\n"):
        block = tok_line.strip()
        if block.startswith("#"):
            level = len(block) - len(block.lstrip("#"))
            document.add_heading(block.lstrip("# ").strip(), level=min(level - 1, 9))
        elif block.startswith("- "):
            for item in block.split("\n- "):
                document.add_paragraph(item.removeprefix("- ").strip(), style="List Bullet")
        elif block:
            document.add_paragraph(block)
    document.save(str(out / "vectorsearch.docx"))
    return out


def main() -> int:
    shutil.rmtree(HOME, ignore_errors=True)
    step(f"Create a workspace in {HOME}/ and two users with the CLI")
    admin_token = cli("token", "create", "--home", str(HOME), "--user", "admin@example.com", "--admin")
    bob_token = cli("token", "create", "--home", str(HOME), "--user", "bob@example.com")
    print("admin@example.com (admin) and bob@example.com each got a personal access token")

    port = free_port()
    host = f"http://127.0.0.1:{port}"
    step(f"Start the server: brickyard serve --home {HOME} --port {port}")
    proc = subprocess.Popen([str(BIN), "serve", "--home", str(HOME), "--port", str(port), "--log-level", "warning"])
    try:
        wait_healthy(host, proc)
        admin = WorkspaceClient(host=host, token=admin_token)
        bob = WorkspaceClient(host=host, token=bob_token)
        print(f"databricks-sdk connected as {admin.current_user.me().user_name}")

        step("Catalog, schema and a managed Delta table (w.catalogs / w.schemas / w.tables)")
        admin.catalogs.create(name="demo", comment="Brickyard quickstart")
        admin.schemas.create(name="docs", catalog_name="demo")
        table = admin.tables.create(
            name="articles", catalog_name="demo", schema_name="docs", table_type=TableType.MANAGED,
            data_source_format=DataSourceFormat.DELTA, storage_location="",
            columns=[ColumnInfo(name="id", type_name=ColumnTypeName.LONG, type_text="bigint", position=0),
                     ColumnInfo(name="title", type_name=ColumnTypeName.STRING, type_text="string", position=1)])
        print(f"created {table.full_name} with columns {[c.name for c in table.columns or []]}")

        step("Write rows with SQL and read them back (w.statement_execution)")
        sql(admin, "INSERT INTO demo.docs.articles VALUES (1, 'Delta tables on a laptop'), (2, 'Grants that explain themselves')")
        sql(admin, "MERGE INTO demo.docs.articles AS t USING (SELECT 2 AS id, 'Grants that explain why' AS title "
                   "UNION ALL SELECT 3, 'Time travel: query an older version of a table') AS s ON t.id = s.id "
                   "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *")
        for row in sql(admin, "SELECT id, title FROM demo.docs.articles ORDER BY id"):
            print("  ", row)
        print("version 1 (time travel):", sql(admin, "SELECT count(*) FROM demo.docs.articles VERSION AS OF 1"))

        step("bob@example.com tries to read the table before any grant")
        try:
            bob.tables.get("demo.docs.articles")
            raise SystemExit("expected a permission denial")
        except PermissionDenied as exc:
            print("PermissionDenied:", str(exc).split(". Config:")[0])

        step("Grant USE CATALOG, USE SCHEMA and SELECT to bob (w.grants.update)")
        admin.grants.update("catalog", "demo", changes=[PermissionsChange(principal="bob@example.com",
                                                                           add=[Privilege.USE_CATALOG])])
        admin.grants.update("schema", "demo.docs", changes=[PermissionsChange(principal="bob@example.com",
                                                                               add=[Privilege.USE_SCHEMA, Privilege.SELECT])])
        rows = sql(bob, "SELECT title FROM demo.docs.articles ORDER BY id")
        print(f"bob now reads {len(rows)} rows; effective privileges on the table:")
        eff = admin.grants.get_effective("table", "demo.docs.articles", principal="bob@example.com")
        for a in eff.privilege_assignments or []:
            for p in a.privileges or []:
                origin = getattr(p.inherited_from_type, "value", p.inherited_from_type)
                print(f"   {p.privilege.value} (inherited from {origin} {p.inherited_from_name})")
        r = bob.statement_execution.execute_statement(statement="DELETE FROM demo.docs.articles",
                                                      warehouse_id="brickyard")
        print("bob's DELETE:", r.status.state.value, "-", r.status.error.message if r.status.error else "")

        step("A managed volume and the Files API (w.files)")
        admin.volumes.create(catalog_name="demo", schema_name="docs", name="raw", volume_type=VolumeType.MANAGED)
        admin.files.upload("/Volumes/demo/docs/raw/notes.md", io.BytesIO(b"# Notes\nBrickyard runs offline.\n"),
                           overwrite=True)
        data = admin.files.download("/Volumes/demo/docs/raw/notes.md").contents.read()
        print(f"downloaded {len(data)} bytes: {data.splitlines()[0].decode()!r}")

        step("The audit log records every change and every denial (system.access.audit)")
        for row in sql(admin, "SELECT user_identity.email, action_name, securable_full_name, response.status_code "
                              "FROM system.access.audit WHERE response.status_code = 403 ORDER BY event_time"):
            print("  ", row)

        step("Model serving behind the AI Gateway, offline (openai client + databricks-sdk)")
        admin.serving_endpoints.create_and_wait(
            name="demo-chat",
            config=EndpointCoreConfigInput(name="demo-chat", served_entities=[
                ServedEntityInput(entity_name="system.ai.smollm2-135m-instruct")]),
            ai_gateway=AiGatewayConfig(
                usage_tracking_config=AiGatewayUsageTrackingConfig(enabled=True),
                inference_table_config=AiGatewayInferenceTableConfig(
                    enabled=True, catalog_name="demo", schema_name="docs", table_name_prefix="demo_chat"),
                rate_limits=[AiGatewayRateLimit(calls=2, key=AiGatewayRateLimitKey.USER,
                                                renewal_period=AiGatewayRateLimitRenewalPeriod.MINUTE)]))
        print("endpoint demo-chat serves SmolLM2-135M-Instruct; limit: 2 calls per user per minute")
        client = OpenAI(base_url=f"{host}/serving-endpoints", api_key=admin_token, max_retries=0)
        titles = [r[0] for r in sql(admin, "SELECT title FROM demo.docs.articles ORDER BY id")]
        question = "How can I look at the data as it was yesterday, before my changes?"
        vectors = client.embeddings.create(model="databricks-gte-large-en", input=[question, *titles]).data
        q, docs = np.array(vectors[0].embedding), np.array([v.embedding for v in vectors[1:]])
        best = titles[int(np.argmax(docs @ q))]
        print(f"retrieved by embedding similarity: {best!r}")
        answer = client.chat.completions.create(
            model="demo-chat", max_tokens=60, temperature=0,
            messages=[{"role": "system", "content": f"Answer in one sentence. Useful article: {best}"},
                      {"role": "user", "content": question}])
        print("SmolLM2 (a 135M demo model) says:", answer.choices[0].message.content.strip()[:200])
        client.chat.completions.create(model="demo-chat", max_tokens=8,
                                       messages=[{"role": "user", "content": "Say OK."}])
        try:
            client.chat.completions.create(model="demo-chat", max_tokens=8,
                                           messages=[{"role": "user", "content": "Once more?"}])
        except RateLimitError as exc:
            print(f"third call in a minute: HTTP 429, Retry-After {exc.response.headers.get('retry-after')}s")
        time.sleep(1.5)  # usage rows are written in batches, once a second
        print("system.serving.endpoint_usage:")
        for row in sql(admin, "SELECT requester, endpoint_name, status_code, input_token_count, output_token_count "
                              "FROM system.serving.endpoint_usage ORDER BY request_time"):
            print("  ", row)
        print("inference table demo.docs.demo_chat_payload (first row):")
        for row in sql(admin, "SELECT requester, status_code, substr(request, 1, 70), substr(response, 1, 70) "
                              "FROM demo.docs.demo_chat_payload ORDER BY request_time LIMIT 1"):
            print("  ", row)

        step("Ingest Brickyard's own docs (rendered to PDF, DOCX and HTML) and search them")
        corpus = render_corpus(HOME / "corpus")
        print("rendered:", ", ".join(sorted(p.name for p in corpus.iterdir())))
        print(cli("ingest", str(corpus), "--table", "demo.docs.chunks", "--home", str(HOME), "--user",
                  "admin@example.com", "--strategy", "structure", "--size", "1500", "--overlap", "150"))
        vsc = VectorSearchClient(workspace_url=host, personal_access_token=admin_token, disable_notice=True)
        vsc.create_endpoint_and_wait(name="demo-vs", endpoint_type="STANDARD")
        index = vsc.create_delta_sync_index(
            endpoint_name="demo-vs", index_name="demo.docs.chunks_index", source_table_name="demo.docs.chunks",
            primary_key="chunk_id", pipeline_type="TRIGGERED", embedding_source_column="text",
            embedding_model_endpoint_name="databricks-gte-large-en")
        index.wait_until_ready(wait_for_updates=True)
        index = vsc.get_index(endpoint_name="demo-vs", index_name="demo.docs.chunks_index")
        print(f"index demo.docs.chunks_index: {index.describe()['status']['indexed_row_count']} chunks, "
              "embedded with all-MiniLM-L6-v2 (the databricks-gte-large-en stand-in)")
        question = "how are rate limits kept exact across server processes?"
        reranker = DatabricksReranker(columns_to_rerank=["text"])
        for query_type, rerank in (("ANN", None), ("FULL_TEXT", None), ("HYBRID", None), ("HYBRID", reranker)):
            hits = index.similarity_search(query_text=question, columns=["source", "section_path"], num_results=3,
                                           query_type=query_type, filters={"source NOT": "security.html"},
                                           reranker=rerank, disable_notice=True)
            label = query_type + (" + reranker" if rerank else "")
            print(f"{label} top hits for {question!r} (filter: source NOT security.html):")
            for source, section, score in hits["result"]["data_array"]:
                print(f"   {score:8.4f}  {Path(source).name:18} {section[:70]}")

        agent_demo(admin, host, admin_token)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    print("\nDone. The workspace is in", HOME.resolve())
    print("See it in a browser (catalog, SQL editor, serving, Playground, Vector Search, experiments and traces):\n"
          f"   {BIN} serve --home {HOME} --port 8080\n"
          f"   {BIN} token create --home {HOME} --user admin@example.com   # the token to sign in with\n"
          "   then open http://127.0.0.1:8080/")
    return 0


AGENT_CODE = """
import mlflow
from brickyard.agents import ToolCallingAgent, VectorSearchRetrieverTool, uc_function_tools

agent = ToolCallingAgent(
    llm_endpoint="databricks-meta-llama-3-3-70b-instruct",
    tools=[VectorSearchRetrieverTool("demo.docs.chunks_index", num_results=2,
                                     tool_description="Search the Brickyard documentation."),
           uc_function_tools("demo", "docs")],
    system_prompt="You answer questions about Brickyard.", max_steps=4, max_tokens=120)
mlflow.models.set_model(agent)
"""


def agent_demo(admin: WorkspaceClient, host: str, token: str) -> None:
    """A UC function and the index as tools of a RAG agent, logged with mlflow, registered in Unity Catalog,
    deployed behind a serving endpoint and asked through the OpenAI client."""
    import mlflow

    step("A UC function for the agent (POST /api/2.1/unity-catalog/functions)")
    admin.api_client.do("POST", "/api/2.1/unity-catalog/functions", body={"function_info": {
        "name": "word_count", "catalog_name": "demo", "schema_name": "docs", "data_type": "INT",
        "full_data_type": "INT", "routine_body": "SQL", "routine_definition": "size(split(text, ' '))",
        "comment": "Count the words in a text.",
        "input_params": {"parameters": [{"name": "text", "type_text": "STRING", "type_name": "STRING",
                                         "position": 0, "comment": "the text to count"}]}}})
    print("demo.docs.word_count(text) registered")

    step("Log the agent with mlflow (models from code), register it as demo.docs.docs_agent")
    os.environ.update(DATABRICKS_HOST=host, DATABRICKS_TOKEN=token)
    mlflow.set_tracking_uri("databricks")
    mlflow.set_registry_uri("databricks-uc")
    experiment = mlflow.set_experiment("/Users/admin@example.com/docs-agent")
    code = HOME / "agent" / "agent.py"
    code.parent.mkdir(parents=True, exist_ok=True)
    code.write_text(AGENT_CODE)
    warnings.filterwarnings("ignore", category=UserWarning)
    from mlflow.models.resources import (
        DatabricksFunction,
        DatabricksServingEndpoint,
        DatabricksVectorSearchIndex,
    )

    resources = [DatabricksServingEndpoint(endpoint_name="databricks-meta-llama-3-3-70b-instruct"),
                 DatabricksVectorSearchIndex(index_name="demo.docs.chunks_index"),
                 DatabricksFunction(function_name="demo.docs.word_count")]
    with mlflow.start_run(run_name="docs-agent"):
        info = mlflow.pyfunc.log_model(name="agent", python_model=str(code), resources=resources)
    version = mlflow.register_model(info.model_uri, "demo.docs.docs_agent")
    print(f"logged model {info.model_id} in experiment {experiment.experiment_id}; "
          f"registered demo.docs.docs_agent version {version.version} ({version.status}), declaring "
          f"{', '.join(r.name for r in resources)}")

    step("Deploy it the Databricks way (databricks.agents.deploy)")
    from databricks import agents

    deployment = agents.deploy("demo.docs.docs_agent", version.version, endpoint_name="docs-agent")
    admin.serving_endpoints.wait_get_serving_endpoint_not_updating("docs-agent")
    print("endpoint docs-agent is READY; the agent acts through a credential scoped to what it declared")
    print("query URL:", deployment.query_endpoint)

    client = OpenAI(base_url=f"{host}/serving-endpoints", api_key=token)
    for question in ("Search the docs for rate limits.", "How many words are in 'Brickyard runs fully offline'?"):
        step(f"Ask the agent through the OpenAI client: {question!r}")
        answer = client.responses.create(model="docs-agent", input=question)
        for item in answer.output:
            if item.type == "function_call":
                print(f"tool call: {item.name}({item.arguments})")
            elif item.type == "function_call_output":
                print(f"tool output: {item.output[:160]}{'...' if len(item.output) > 160 else ''}")
        print("answer:", answer.output_text[:400])
        trace = mlflow.MlflowClient().get_trace(answer.model_extra["databricks_output"]["trace_id"])
        print("trace", trace.info.trace_id, "tree:")
        print_tree(trace.data.spans)


def print_tree(spans: list[Any]) -> None:
    """Spans as an indented tree: type, name, duration."""
    children: dict[str | None, list[Any]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)

    def show(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_time_ns):
            ms = (span.end_time_ns - span.start_time_ns) / 1e6
            print(f"   {'  ' * depth}{span.span_type:10} {span.name[:50]:50} {ms:8.1f} ms")
            show(span.span_id, depth + 1)

    show(None, 0)


if __name__ == "__main__":
    sys.exit(main())
