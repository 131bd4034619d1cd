"""The pipeline's first task: the Markdown docs synced with the bundle become the ``chunks`` table (one row per
section), a Delta Sync index over it (made on the first run), and the ``eval_questions`` evaluation dataset.
It runs as the job's run-as principal through the workspace's REST API (DATABRICKS_HOST and DATABRICKS_TOKEN
are set for the task), the way it would on Databricks."""

from __future__ import annotations

import argparse
import io
import re

from databricks.sdk import WorkspaceClient
from databricks.sdk.errors import NotFound
from databricks.sdk.service.sql import StatementParameterListItem as Param

QUESTIONS = [
    ("How does a bundle keep two developers' copies apart?", "development mode prefixes names with the user"),
    ("What does the pipeline job do after the index is synced?", "it registers and serves the agent"),
    ("How does the chat app reach the agent?", "through its declared serving endpoint, as its service principal"),
]


def sql(w: WorkspaceClient, text: str, params: list[Param] | None = None) -> None:
    result = w.statement_execution.execute_statement(statement=text, parameters=params, warehouse_id="brickyard",
                                                     wait_timeout="50s")
    if result.status.error is not None:
        raise SystemExit(f"{text[:60]}...: {result.status.error.message}")


def sections(name: str, text: str) -> list[tuple[str, str]]:
    """(heading path, text) per Markdown section of a document."""
    out, title, lines = [], name, []
    for line in text.splitlines():
        if re.match(r"^#{1,3} ", line):
            if "".join(lines).strip():
                out.append((title, "\n".join(lines).strip()))
            title, lines = f"{name} > {line.lstrip('#').strip()}", []
        else:
            lines.append(line)
    if "".join(lines).strip():
        out.append((title, "\n".join(lines).strip()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--docs", "--schema", "--volume", "--embedding"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    w = WorkspaceClient()
    rows = []
    for item in w.workspace.list(args.docs):
        if not item.path.endswith(".md"):
            continue
        text = w.workspace.download(item.path).read().decode("utf-8")
        name = item.path.rsplit("/", 1)[-1]
        volume = "/Volumes/" + args.volume.replace(".", "/")
        w.files.upload(f"{volume}/{name}", io.BytesIO(text.encode()), overwrite=True)
        rows += [(f"{name}#{i}", name, title, body) for i, (title, body) in enumerate(sections(name, text))]
    chunks = f"{args.schema}.chunks"
    # the table's name comes from the job's parameters (the bundle's schema), never from a document
    sql(w, f"CREATE TABLE IF NOT EXISTS {chunks} (chunk_id STRING, source STRING, section STRING, text STRING)")
    sql(w, f"DELETE FROM {chunks}")  # noqa: S608 - see above
    for chunk_id, source, title, body in rows:
        sql(w, f"INSERT INTO {chunks} VALUES (:id, :source, :section, :text)",  # noqa: S608 - see above
            [Param(name="id", value=chunk_id), Param(name="source", value=source), Param(name="section", value=title),
             Param(name="text", value=body)])
    print(f"{len(rows)} chunks from the docs in {chunks}")
    index = f"{chunks}_index"
    try:
        w.api_client.do("GET", f"/api/2.0/vector-search/indexes/{index}")
    except NotFound:
        try:
            w.api_client.do("GET", "/api/2.0/vector-search/endpoints/docs-rag")
        except NotFound:
            w.api_client.do("POST", "/api/2.0/vector-search/endpoints", body={"name": "docs-rag",
                                                                              "endpoint_type": "STANDARD"})
        w.api_client.do("POST", "/api/2.0/vector-search/indexes", body={
            "name": index, "endpoint_name": "docs-rag", "primary_key": "chunk_id", "index_type": "DELTA_SYNC",
            "delta_sync_index_spec": {"source_table": chunks, "pipeline_type": "TRIGGERED", "embedding_source_columns": [
                {"name": "text", "embedding_model_endpoint_name": args.embedding}]}})
        print(f"created the index {index}")
    dataset = f"{args.schema}.eval_questions"
    try:
        found = w.api_client.do("GET", "/api/2.1/unity-catalog/tables/" + dataset)
        dataset_id = found["table_id"]
    except NotFound:
        dataset_id = w.api_client.do("POST", "/api/2.0/managed-evals/datasets", body={"name": dataset})["dataset_id"]
        w.api_client.do("POST", f"/api/2.0/managed-evals/datasets/{dataset_id}/records:batchCreate", body={
            "requests": [{"dataset_record": {"inputs": [{"key": "question", "value": q}],
                                             "expectations": {"expected_facts": {"value": [fact]}}}}
                         for q, fact in QUESTIONS]})
        print(f"created the evaluation dataset {dataset} with {len(QUESTIONS)} questions")


if __name__ == "__main__":
    main()
