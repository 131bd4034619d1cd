"""The Unity Catalog model registry as MLflow sees it (``/api/2.0/mlflow/unity-catalog/...``, registry URI
``databricks-uc``), over the same catalog store the SDK's ``/api/2.1/unity-catalog/models`` routes use.

A version is created PENDING_REGISTRATION; the client uploads its files through the Files API under
``/Models/<catalog>/<schema>/<model>/<version>/`` (Brickyard answers that the SDK models artifact
repository is enabled) and finalizes it. Finalizing checks what Databricks requires of a UC model: an
MLmodel file whose signature declares both inputs and outputs. A READY version's files are immutable.
The version remembers the run and logged model it came from (lineage) and the resources an agent
declared (``model_version_dependencies``), which deployment uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from ..catalog import Catalog, Principal, Securable
from ..core.errors import InvalidParameterValue, InvalidState, NotFound, PermissionDenied
from ..core.names import parse_name
from ..tables import FileTree, below, check_parts
from ._resources import KINDS, declared
from ._search import Entity, compile_filter
from ._store import _paged

MODELS_PREFIX = "/Models/"
SIGNATURE_MESSAGE = ("Model passed for registration did not contain any signature metadata. All models in the "
                     "Unity Catalog must be logged with a model signature containing both input and output type "
                     "specifications.")


def _tags(items: Any) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list) or not all(isinstance(t, dict) and isinstance(t.get("key"), str) for t in items):
        raise InvalidParameterValue("tags must be a list of {key, value}")
    return {t["key"][:250]: str(t.get("value", ""))[:5000] for t in items}


class Registry:
    def __init__(self, catalog: Catalog, home: Path) -> None:
        self.catalog = catalog
        self.root = home / "models"

    def version_dir(self, model: Securable, version: int) -> Path:
        return self.root / model.id / "versions" / str(version)

    # -- shapes ----------------------------------------------------------------------------------------
    def _model_json(self, obj: Securable) -> dict[str, Any]:
        return {"name": obj.full_name, "creation_timestamp": obj.created_at, "last_updated_timestamp": obj.updated_at,
                "user_id": obj.owner, "description": obj.comment or "",
                "aliases": [{"alias": a["alias_name"], "version": str(a["version_num"])}
                            for a in self.catalog.aliases(obj)],
                "tags": [{"key": k, "value": v} for k, v in sorted((obj.spec.get("tags") or {}).items())]}

    @staticmethod
    def _version_json(row: dict[str, Any]) -> dict[str, Any]:
        model: Securable = row["model"]
        spec = row["spec"]
        out = {"name": model.full_name, "version": str(row["version"]), "creation_timestamp": row["created_at"],
               "last_updated_timestamp": row["updated_at"], "user_id": row["created_by"],
               "description": row["comment"] or "", "source": row["source"] or "", "status": row["status"],
               "storage_location": row["storage_location"] or "",
               "aliases": [{"alias": a, "version": str(row["version"])} for a in row["aliases"]],
               "tags": [{"key": k, "value": v} for k, v in sorted((spec.get("tags") or {}).items())]}
        for key in ("run_id",):
            if row[key]:
                out[key] = row[key]
        for key in ("model_id", "run_experiment_id", "status_message", "resources", "auth_policy"):
            if spec.get(key):
                out[key] = spec[key]
        return out

    # -- registered models -----------------------------------------------------------------------------
    def create_model(self, p: Principal, name: Any, *, description: Any = None, tags: Any = None) -> dict[str, Any]:
        full = str(parse_name(name, 3, what="model name"))
        obj = self.catalog.create(p, "registered_model", full, comment=description or None,
                                  spec={"tags": _tags(tags)} if tags else None)
        return self._model_json(obj)

    def get_model(self, p: Principal, name: Any) -> dict[str, Any]:
        return self._model_json(self.catalog.get(p, "registered_model", str(parse_name(name, 3, what="model name"))))

    def update_model(self, p: Principal, name: Any, *, description: Any = None) -> dict[str, Any]:
        obj = self.catalog.update(p, "registered_model", str(parse_name(name, 3, what="model name")),
                                  comment=description if description is not None else None)
        return self._model_json(obj)

    def delete_model(self, p: Principal, name: Any) -> None:
        self.catalog.delete(p, "registered_model", str(parse_name(name, 3, what="model name")), force=True)

    def set_model_tag(self, p: Principal, name: Any, key: Any, value: Any) -> None:
        full = str(parse_name(name, 3, what="model name"))
        obj = self.catalog.get(p, "registered_model", full)
        tags = {**(obj.spec.get("tags") or {}), **_tags([{"key": key, "value": value}])}
        self.catalog.update(p, "registered_model", full, spec={"tags": tags})

    def delete_model_tag(self, p: Principal, name: Any, key: Any) -> None:
        full = str(parse_name(name, 3, what="model name"))
        obj = self.catalog.get(p, "registered_model", full)
        tags = {k: v for k, v in (obj.spec.get("tags") or {}).items() if k != key}
        self.catalog.update(p, "registered_model", full, spec={"tags": tags})

    def search_models(self, p: Principal, *, max_results: Any = None, page_token: Any = None) -> tuple[list[dict[str, Any]], str | None]:
        found: list[dict[str, Any]] = []
        catalogs, _ = self.catalog.list(p, "catalog")
        for c in catalogs:
            try:
                schemas, _ = self.catalog.list(p, "schema", c.full_name)
                for s in schemas:
                    models, _ = self.catalog.list(p, "registered_model", s.full_name)
                    found += [self._model_json(m) for m in models]
            except PermissionDenied:
                continue
        return _paged(found, page_token, max_results, 100, 1000)

    # -- versions ----------------------------------------------------------------------------------------
    def create_version(self, p: Principal, name: Any, *, source: Any, run_id: Any = None, description: Any = None,
                       tags: Any = None, model_id: Any = None, run_experiment_id: Any = None,
                       dependencies: Any = None) -> dict[str, Any]:
        full = str(parse_name(name, 3, what="model name"))
        if source is not None and not isinstance(source, str):
            raise InvalidParameterValue("source must be a string (the logged model's URI)")
        spec: dict[str, Any] = {"tags": _tags(tags)}
        if model_id:
            spec["model_id"] = str(model_id)[:200]
        if run_experiment_id:
            spec["run_experiment_id"] = str(run_experiment_id)[:200]
        if dependencies:
            if not isinstance(dependencies, list):
                raise InvalidParameterValue("model_version_dependencies must be a list")
            spec["dependencies"] = dependencies[:1000]
        row = self.catalog.create_model_version(
            p, full, source=source, run_id=None if not run_id else str(run_id)[:200], comment=description or None,
            spec=spec, status="PENDING_REGISTRATION",
            storage_location=lambda m, v: "file://" + str(self.version_dir(m, v)))
        self.version_dir(row["model"], row["version"]).mkdir(parents=True, exist_ok=True)
        return self._version_json(row)

    def finalize(self, p: Principal, name: Any, version: Any) -> dict[str, Any]:
        full = str(parse_name(name, 3, what="model name"))
        kept: dict[str, Any] = {}  # what the MLmodel declares, merged into the version's spec

        def check(row: dict[str, Any]) -> None:
            if row["status"] == "READY":
                return
            mlmodel = self.version_dir(row["model"], row["version"]) / "MLmodel"
            if not mlmodel.is_file():
                raise InvalidState(f"model version {full}/{row['version']} has no MLmodel file; upload the model "
                                   "files before finalizing")
            try:
                meta = yaml.safe_load(mlmodel.read_text()) or {}
            except (yaml.YAMLError, UnicodeDecodeError):
                raise InvalidParameterValue("the MLmodel file is not valid YAML") from None
            signature = meta.get("signature") if isinstance(meta, dict) else None
            if not isinstance(signature, dict) or not signature.get("inputs") or not signature.get("outputs"):
                raise InvalidParameterValue(SIGNATURE_MESSAGE)
            kept.update({k: meta[k] for k in ("resources", "auth_policy") if meta.get(k)})
            try:
                kept["declared"] = [list(r) for r in declared(meta).resources]
            except InvalidParameterValue:  # e.g. a Genie space: kept as logged; serving it is refused, with why
                kept["declared"] = []

        row = self.catalog.change_model_version(p, full, version, status="READY", spec=kept, check=check,
                                                action="finalizeModelVersion")
        self._link_resources(p, full, row)
        return self._version_json(row)

    def _link_resources(self, p: Principal, full: str, row: dict[str, Any]) -> None:
        """Lineage from each declared resource to the model (index -> model, function -> model, ...)."""
        for kind, name in row["spec"].get("declared") or []:
            target = KINDS[kind][0]
            if target == "serving_endpoint":
                self.catalog.add_endpoint_lineage(p, ("registered_model", full), name, direction="up",
                                                  edge="MODEL_RESOURCE", detail=f"version {row['version']}")
            elif target != "sql_warehouse" and self.catalog.exists(target, name):
                self.catalog.add_lineage(p, (target, name), ("registered_model", full), kind="MODEL_RESOURCE")

    def get_version(self, p: Principal, name: Any, version: Any) -> dict[str, Any]:
        return self._version_json(self.catalog.model_version(p, str(parse_name(name, 3, what="model name")), version))

    def version_row(self, p: Principal, name: str, version: Any) -> dict[str, Any]:
        return self.catalog.model_version(p, str(parse_name(name, 3, what="model name")), version)

    def by_alias(self, p: Principal, name: Any, alias: Any) -> dict[str, Any]:
        return self._version_json(self.catalog.version_by_alias(p, str(parse_name(name, 3, what="model name")),
                                                                str(alias)))

    def search_versions(self, p: Principal, *, filter: Any = None, max_results: Any = None,
                        page_token: Any = None) -> tuple[list[dict[str, Any]], str | None]:
        predicate = compile_filter(filter, ("name", "run_id", "source", "version"))
        names = sorted({e for e in _names_in(filter)})
        if not names:
            raise InvalidParameterValue("filter must name the model: name = 'catalog.schema.model'")
        found = []
        for name in names:
            rows, token = self.catalog.model_versions(p, name, max_results=1000)
            while True:
                for row in rows:
                    shape = self._version_json(row)
                    entity = Entity({"name": shape["name"], "run_id": shape.get("run_id"), "source": shape["source"],
                                     "version": shape["version"]}, tags={t["key"]: t["value"] for t in shape["tags"]})
                    if predicate(entity):
                        found.append(shape)
                if not token:
                    break
                rows, token = self.catalog.model_versions(p, name, page_token=token, max_results=1000)
        found.sort(key=lambda v: -int(v["version"]))
        return _paged(found, page_token, max_results, 10_000, 10_000)

    def update_version(self, p: Principal, name: Any, version: Any, *, description: Any) -> dict[str, Any]:
        return self._version_json(self.catalog.update_model_version(
            p, str(parse_name(name, 3, what="model name")), version, comment=description))

    def delete_version(self, p: Principal, name: Any, version: Any) -> None:
        self.catalog.delete_model_version(p, str(parse_name(name, 3, what="model name")), version)

    def set_version_tag(self, p: Principal, name: Any, version: Any, key: Any, value: Any | None) -> None:
        full = str(parse_name(name, 3, what="model name"))
        row = self.catalog.model_version(p, full, version)
        tags = dict(row["spec"].get("tags") or {})
        if value is None:
            tags.pop(str(key), None)
        else:
            tags.update(_tags([{"key": key, "value": value}]))
        self.catalog.change_model_version(p, full, version, spec={"tags": tags}, action="setModelVersionTag")

    def set_alias(self, p: Principal, name: Any, alias: Any, version: Any) -> None:
        self.catalog.set_alias(p, str(parse_name(name, 3, what="model name")), str(alias), version)

    def delete_alias(self, p: Principal, name: Any, alias: Any) -> None:
        self.catalog.delete_alias(p, str(parse_name(name, 3, what="model name")), str(alias))


def _names_in(filter: Any) -> list[str]:
    """Model names a version search is about (``name = 'c.s.m'`` or ``name IN (...)``)."""
    import re

    if not isinstance(filter, str):
        return []
    m = re.search(r"\bname\s*=\s*['\"]([^'\"]+)['\"]", filter)
    if m:
        return [m.group(1)]
    m = re.search(r"\bname\s+IN\s*\(([^)]*)\)", filter, re.IGNORECASE)
    return re.findall(r"['\"]([^'\"]+)['\"]", m.group(1)) if m else []


class ModelFiles(FileTree):
    """Model version files through the Files API: ``/Models/<catalog>/<schema>/<model>/<version>/...``.
    Writing needs ownership or MANAGE on the model and a version still PENDING_REGISTRATION; reading
    needs EXECUTE (what loading a UC model takes)."""

    prefix = MODELS_PREFIX
    what = "model version"

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _resolve(self, p: Principal, path: str, *, write: bool, action: str) -> tuple[Path, list[str]]:
        parts = path[len(MODELS_PREFIX):].split("/")
        if parts and parts[-1] == "":
            parts = parts[:-1]
        if len(parts) < 4:
            raise InvalidParameterValue(f"path {path[:100]!r} must look like {MODELS_PREFIX}<catalog>/<schema>/<model>/"
                                        "<version>/...")
        check_parts(path, parts)
        full = ".".join(parts[:3])
        catalog = self.registry.catalog
        if write:
            row = catalog.model_version(p, full, parts[3])
            obj: Securable = row["model"]
            if not (catalog.check(p, "MANAGE", ("registered_model", full)).allowed or obj.owner in p.names):
                raise PermissionDenied(f"{p.name} cannot write files of model {full}: it needs ownership or MANAGE")
            if row["status"] != "PENDING_REGISTRATION":
                raise InvalidState(f"model version {full}/{row['version']} is {row['status']}; its files can no longer "
                                   "change")
        else:
            obj = catalog.require(p, "EXECUTE", "registered_model", full, action="readModelVersionFiles")
            try:
                row = catalog.model_version(p, full, parts[3])
            except NotFound:
                raise NotFound(f"model version {full}/{parts[3]} does not exist", error_code="NOT_FOUND") from None
        base = self.registry.version_dir(obj, int(row["version"]))
        os.makedirs(base, exist_ok=True)
        return below(base, parts[4:], path), parts[4:]
