"""Evaluate a RAG app on Brickyard, the way it is done on Databricks: a dataset, two versions, judges, a
comparison.

Run with ``.venv/bin/python examples/evaluate_rag.py`` (``--quick`` for the short version ``make test`` runs).
It starts ``brickyard serve`` on a free loopback port with a fresh workspace in ``.demo-eval/`` and then, with the
official clients only:

1. ingests Brickyard's own docs (``docs/*.md``) into a chunks table and builds a Delta Sync vector index;
2. writes an evaluation dataset (``mlflow.genai.datasets``, a Unity Catalog table) of questions about those
   docs with the document that answers each (``expected_retrieved_context``) and the facts a right answer
   states (``expected_facts``);
3. evaluates two versions of the same RAG app with ``mlflow.genai.evaluate``: a baseline that retrieves one
   passage with ANN, and an improved one that retrieves three with HYBRID search and the reranker. Each answers
   with what it retrieved (extractive, so the difference is the retrieval's). The scorers: recall@3, MRR and
   nDCG@3 against the expected document, and the built-in judges ``RetrievalRelevance``,
   ``RetrievalSufficiency``, ``Correctness`` (offline proxies here: no judge model is configured, and each
   verdict says so);
4. prints the two runs side by side (``mlflow.search_runs``) and the questions whose verdicts changed.
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

from _demo import cli, server, step  # examples/_demo.py, beside this script

warnings.filterwarnings("ignore", category=DeprecationWarning, module="databricks.vector_search")

HOME = Path(os.environ.get("BRICKYARD_EVAL_DEMO_HOME", ".demo-eval"))
DOCS = Path(__file__).resolve().parents[1] / "docs"

# Questions people ask about Brickyard, each with the pages that answer it and the facts of a right answer.
QUESTIONS = [
    ("Which environment variable names the judge model?", "settings.md evaluation.md", ["BRICKYARD_JUDGE_ENDPOINT"]),
    ("How do I tell Brickyard what an endpoint's tokens cost?", "evaluation.md", ["brickyard prices set"]),
    ("Which folders does ingestion skip, like _static or __pycache__?", "ingest.md",
     ["build folders such as _static, _sources and __pycache__ are skipped"]),
    ("How does HYBRID search combine the ANN and BM25 lists?", "vectorsearch.md",
     ["reciprocal rank fusion with the constant 60"]),
    ("What does the server answer when too many requests wait for a local model?", "serving.md",
     ["503 with Retry-After"]),
    ("Which address does the server bind to by default?", "security.md", ["127.0.0.1"]),
    ("How do I read a table as it was at an older version in SQL?", "sql.md", ["VERSION AS OF"]),
    ("What does the offline default reranker combine?", "vectorsearch.md",
     ["dense similarity and a BM25 score, 0.7 dense and 0.3 lexical"]),
    ("How are evaluation datasets stored?", "evaluation.md", ["as Unity Catalog Delta tables"]),
    ("How do I compare two evaluation runs from the command line?", "evaluation.md", ["brickyard eval compare"]),
    ("What happens to a scheduled scorer's traces after kill -9?", "evaluation.md",
     ["no trace is scored twice"]),
    ("How do I turn off the scheduler of scheduled scorers?", "settings.md evaluation.md",
     ["BRICKYARD_MONITOR_INTERVAL_SECONDS set to 0"]),
]






def make_app(index: Any, *, query_type: str, rerank: bool, passages: int) -> Any:
    """A RAG app: retrieve ``passages`` passages (traced as a RETRIEVER span) and answer with them."""
    import mlflow
    from databricks.vector_search.reranker import DatabricksReranker
    from mlflow.entities import Document, SpanType

    reranker = DatabricksReranker(columns_to_rerank=["text"]) if rerank else None

    @mlflow.trace(span_type=SpanType.RETRIEVER, name="retrieve")
    def retrieve(question: str) -> list[Document]:
        hits = index.similarity_search(query_text=question, columns=["source", "text"], num_results=passages,
                                       query_type=query_type, reranker=reranker, disable_notice=True)
        return [Document(page_content=text, metadata={"doc_uri": Path(source).name})
                for source, text, _score in hits["result"]["data_array"]]

    @mlflow.trace(span_type=SpanType.AGENT, name="rag_app")
    def app(question: str) -> str:
        docs = retrieve(question)
        return "\n\n".join(d.page_content[:600] for d in docs) if docs else "I could not find that in the docs."

    return app


def main() -> int:
    import mlflow
    from databricks.vector_search.client import VectorSearchClient
    from mlflow.genai import datasets
    from mlflow.genai.scorers import Correctness, RetrievalRelevance, RetrievalSufficiency

    from brickyard.evaluation import use_bundled_o200k
    from brickyard.evaluation.scorers import retrieval_scorers

    quick = "--quick" in sys.argv
    questions = QUESTIONS[:6] if quick else QUESTIONS
    use_bundled_o200k()  # databricks-agents counts tokens with o200k_base: from the installed package, not the web
    shutil.rmtree(HOME, ignore_errors=True)
    token = cli("token", "create", "--home", str(HOME), "--user", "admin@example.com", "--admin")
    with server(HOME) as host:
        os.environ.update(DATABRICKS_HOST=host, DATABRICKS_TOKEN=token)
        mlflow.set_tracking_uri("databricks")

        step("Ingest Brickyard's docs and index them (brickyard ingest, VectorSearchClient)")
        print(cli("ingest", str(DOCS), "--table", "main.default.docs_chunks", "--home", str(HOME), "--user",
                  "admin@example.com", "--include", "*.md", "--exclude", "decisions/**"))
        vsc = VectorSearchClient(workspace_url=host, personal_access_token=token, disable_notice=True)
        vsc.create_endpoint_and_wait(name="eval-vs", endpoint_type="STANDARD")
        index = vsc.create_delta_sync_index(
            endpoint_name="eval-vs", index_name="main.default.docs_index", source_table_name="main.default.docs_chunks",
            primary_key="chunk_id", pipeline_type="TRIGGERED", embedding_source_column="text",
            embedding_model_endpoint_name="databricks-gte-large-en")
        index.wait_until_ready(wait_for_updates=True, timeout=600)
        index = vsc.get_index(endpoint_name="eval-vs", index_name="main.default.docs_index")
        print(f"main.default.docs_index: {index.describe()['status']['indexed_row_count']} chunks")

        step(f"An evaluation dataset of {len(questions)} questions (mlflow.genai.datasets, a UC table)")
        experiment = mlflow.set_experiment("/Users/admin@example.com/rag-evaluation")
        dataset = datasets.create_dataset(name="main.default.docs_questions", experiment_id=experiment.experiment_id)
        dataset.merge_records([{"inputs": {"question": q},
                                "expectations": {"expected_retrieved_context": [{"doc_uri": d} for d in doc.split()],
                                                 "expected_facts": facts}} for q, doc, facts in questions])
        print(f"main.default.docs_questions: {len(dataset.to_df())} records")

        step("Evaluate two versions of the app (mlflow.genai.evaluate)")
        scorers = [*retrieval_scorers(k=3)[1:], RetrievalRelevance(), RetrievalSufficiency(), Correctness()]
        runs = {}
        for name, query_type, rerank, passages in (("baseline: ANN, 1 passage", "ANN", False, 1),
                                                   ("improved: HYBRID + rerank, 3 passages", "HYBRID", True, 3)):
            with mlflow.start_run(run_name=name) as run:
                app = make_app(index, query_type=query_type, rerank=rerank, passages=passages)
                mlflow.genai.evaluate(data=dataset, predict_fn=app, scorers=scorers)
            runs[name] = run.info.run_id
            print(f"{name}: run {run.info.run_id}")

        step("The two runs side by side (mlflow.search_runs)")
        table = mlflow.search_runs(experiment_ids=[experiment.experiment_id])
        metrics = sorted(c for c in table.columns if c.startswith("metrics.") and c.endswith("/mean"))
        by_name = {row["tags.mlflow.runName"]: row for _, row in table.iterrows()}
        names = list(runs)
        print(f"{'metric':40} {'baseline':>10} {'improved':>10}")
        for m in metrics:
            a, b = by_name[names[0]].get(m), by_name[names[1]].get(m)
            print(f"{m.removeprefix('metrics.'):40} {a:10.3f} {b:10.3f}")
        step("Questions whose retrieval changed (brickyard eval compare)")
        print(cli("eval", "compare", runs[names[0]], runs[names[1]], "--home", str(HOME), "--user",
                  "admin@example.com"))
        print("\nJudges ran as offline proxies (no BRICKYARD_JUDGE_ENDPOINT): each verdict's rationale says so; "
              "their agreement with human labels is in docs/evaluation.md.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
