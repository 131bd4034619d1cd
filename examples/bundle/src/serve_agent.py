"""The pipeline's third task: log the RAG agent with mlflow (models from code), register a new version of the
bundle's registered model, and serve it with ``databricks.agents.deploy`` at the bundle's agent endpoint,
waiting until it answers."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import mlflow
from databricks import agents
from databricks.sdk import WorkspaceClient
from mlflow.models.resources import DatabricksServingEndpoint, DatabricksVectorSearchIndex

AGENT = """import mlflow
from brickyard.agents import ToolCallingAgent, VectorSearchRetrieverTool

agent = ToolCallingAgent(
    llm_endpoint={llm!r},
    tools=[VectorSearchRetrieverTool({index!r}, num_results=2, columns=["section", "text"],
                                     tool_description="Search the docs of the docs-rag bundle.")],
    system_prompt="You answer questions about deploying the docs RAG app. Search the docs first.",
    max_steps=3, max_tokens=120)
mlflow.models.set_model(agent)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    for flag in ("--model", "--index", "--llm", "--endpoint", "--experiment"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    mlflow.set_tracking_uri("databricks")
    mlflow.set_registry_uri("databricks-uc")
    mlflow.set_experiment(args.experiment.removeprefix("/Workspace"))
    code = Path(tempfile.mkdtemp()) / "agent.py"
    code.write_text(AGENT.format(llm=args.llm, index=args.index))
    resources = [DatabricksServingEndpoint(endpoint_name=args.llm), DatabricksVectorSearchIndex(index_name=args.index)]
    with mlflow.start_run(run_name="docs-agent"):
        info = mlflow.pyfunc.log_model(name="agent", python_model=str(code), resources=resources)
    version = mlflow.register_model(info.model_uri, args.model)
    print(f"registered {args.model} version {version.version}")
    agents.deploy(args.model, version.version, endpoint_name=args.endpoint)
    WorkspaceClient().serving_endpoints.wait_get_serving_endpoint_not_updating(args.endpoint)
    print(f"serving {args.model} version {version.version} at {args.endpoint}")


if __name__ == "__main__":
    main()
