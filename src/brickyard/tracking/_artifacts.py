"""MLflow artifacts through the Files API: ``/WorkspaceInternal/Mlflow/Artifacts/<experiment>/...``.

This is where mlflow's Databricks artifact repositories put run artifacts (``.../Runs/<run>/...``) and
logged-model files (``.../LoggedModels/<model>/...``). Reading needs CAN_READ on the experiment and
writing CAN_EDIT; a run path must name a run of that experiment. Files live under the workspace's
``tracking/artifacts/<experiment>/`` and are written like volume files (fsync, atomic rename).
"""

from __future__ import annotations

from pathlib import Path

from ..catalog import Principal
from ..core.errors import InvalidParameterValue, NotFound
from ..tables import FileTree, below, check_parts
from ._store import Tracking

PREFIX = "/WorkspaceInternal/Mlflow/Artifacts/"
KINDS = ("Runs", "LoggedModels", "Traces")


class ArtifactTree(FileTree):
    prefix = PREFIX
    what = "artifact directory"

    def __init__(self, tracking: Tracking, root: Path) -> None:
        self.tracking = tracking
        self.root = root

    def _resolve(self, p: Principal, path: str, *, write: bool, action: str) -> tuple[Path, list[str]]:
        parts = [x for x in path[len(PREFIX):].split("/")]
        if parts and parts[-1] == "":
            parts = parts[:-1]
        if len(parts) < 3 or parts[1] not in KINDS:
            raise InvalidParameterValue(f"path {path[:100]!r} must look like {PREFIX}<experiment>/Runs/<run>/...")
        check_parts(path, parts)
        experiment = parts[0]
        self.tracking.require_experiment(p, experiment, "CAN_EDIT" if write else "CAN_READ")
        if parts[1] == "Runs" and self.tracking.run_experiment(parts[2]) != experiment:
            raise NotFound(f"Run with id={parts[2][:40]} not found in experiment {experiment}")
        return below(self.root / experiment, parts[1:], path), parts[3:]
