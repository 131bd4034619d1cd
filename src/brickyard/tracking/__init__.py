"""MLflow-compatible tracking: experiments, runs, metrics and artifacts (the store behind the MLflow REST
routes), so the ``mlflow`` client works against a Brickyard server with tracking URI ``databricks``."""

from ._artifacts import ArtifactTree
from ._models import LoggedModels
from ._prompts import Prompts
from ._registry import ModelFiles, Registry
from ._search import Entity, compile_filter, sort_entities
from ._store import Tracking
from ._traces import Traces

__all__ = ["ArtifactTree", "Entity", "LoggedModels", "ModelFiles", "Prompts", "Registry", "Tracking", "Traces", "compile_filter", "sort_entities"]
