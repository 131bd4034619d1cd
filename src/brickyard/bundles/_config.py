"""Reading a bundle: ``databricks.yml`` and its includes, the chosen target merged in, variables given values
(``--var``, ``BUNDLE_VAR_<name>``, the target, the default, or a lookup), ``${...}`` references filled in,
the development or production mode applied, and the local paths of jobs and apps turned into workspace
paths. Every error names the file, line and key it is about."""

from __future__ import annotations

import copy
import fnmatch
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._yaml import BundleError, Map, Seq, load, where

CONFIG_NAMES = ("databricks.yml", "databricks.yaml", "bundle.yml", "bundle.yaml")
TOP = {"bundle", "include", "variables", "targets", "workspace", "sync", "resources"}
NOT_SUPPORTED_TOP = {"artifacts": "build Python wheels yourself and reference them from the task's libraries",
                     "permissions": "set permissions on each resource", "presets": "", "experimental": "",
                     "python": "", "scripts": "", "run_as": "jobs run as their creator or their own run_as",
                     "environments": "use targets"}
BUNDLE_KEYS = {"name", "uuid", "databricks_cli_version", "git", "compute_id", "cluster_id"}
WORKSPACE_KEYS = {"host", "root_path", "file_path", "state_path", "artifact_path", "profile"}
SYNC_KEYS = {"include", "exclude", "paths"}
TARGET_KEYS = {"default", "mode", "workspace", "variables", "resources", "sync", "bundle"}
VARIABLE_KEYS = {"description", "default", "lookup", "type"}
LOOKUPS = {"service_principal", "warehouse", "job", "experiment"}

#: resource type -> the keys a resource of that type may have (a subset of Databricks' schema: what Brickyard has)
RESOURCES: dict[str, set[str]] = {
    "schemas": {"name", "catalog_name", "comment", "properties", "storage_root", "grants"},
    "volumes": {"name", "catalog_name", "schema_name", "comment", "volume_type", "storage_location", "grants"},
    "registered_models": {"name", "catalog_name", "schema_name", "comment", "storage_location", "grants"},
    "experiments": {"name", "artifact_location", "tags", "permissions"},
    "model_serving_endpoints": {"name", "config", "ai_gateway", "rate_limits", "route_optimized", "tags",
                                "permissions", "description", "budget_policy_id"},
    "jobs": {"name", "description", "tasks", "job_clusters", "environments", "schedule", "trigger", "continuous",
             "parameters", "max_concurrent_runs", "timeout_seconds", "tags", "email_notifications",
             "webhook_notifications", "notification_settings", "run_as", "queue", "health", "permissions",
             "edit_mode", "budget_policy_id", "performance_target"},
    "apps": {"name", "description", "source_code_path", "config", "resources", "user_api_scopes", "permissions",
             "compute_size"},
}
#: the order resources are created in (and deleted in, reversed): what others may refer to comes first
ORDER = ("schemas", "volumes", "registered_models", "experiments", "model_serving_endpoints", "jobs", "apps")
NOT_SUPPORTED_RESOURCES = {
    "quality_monitors": "Brickyard has no Lakehouse Monitoring; monitor agents with scheduled scorers on an "
                        "experiment (a brickyard_monitoring_task in a job)",
    "pipelines": "Brickyard has no Lakeflow Declarative Pipelines; use a job with SQL or Python tasks",
    "clusters": "Brickyard runs tasks as local processes, with no clusters",
    "dashboards": "", "alerts": "", "secret_scopes": "", "database_instances": "", "database_catalogs": "",
    "synced_database_tables": "", "sql_warehouses": "Brickyard has one SQL engine; no warehouses to create",
    "postgres_projects": "", "vector_search_endpoints": "create them with the Vector Search API from a job",
}
REF = re.compile(r"\$\{([A-Za-z0-9_.\-\[\]]+)\}")
NOTEBOOK_HEADERS = ("# Databricks notebook source", "-- Databricks notebook source")


@dataclass
class Bundle:
    root: Path
    name: str
    target: str
    mode: str | None
    user: str
    root_path: str
    file_path: str
    state_path: str
    sync_root: Path
    sync_paths: list[Path]
    sync_exclude: list[str]
    variables: dict[str, Any]
    resources: dict[str, dict[str, Map]] = field(default_factory=dict)
    #: (resource type, key) -> the file and line it is declared at
    declared: dict[tuple[str, str], tuple[str, int] | None] = field(default_factory=dict)

    def remote(self, local: Path) -> str:
        """The workspace path a synced local file or folder gets (a notebook loses its extension)."""
        rel = local.resolve().relative_to(self.sync_root).as_posix()
        path = f"{self.file_path}/{rel}" if rel != "." else self.file_path
        if local.is_file() and is_notebook(local):
            path = path.rsplit(".", 1)[0]
        return path


def is_notebook(path: Path) -> bool:
    if path.suffix == ".ipynb":
        return True
    if path.suffix not in (".py", ".sql", ".scala", ".r", ".R"):
        return False
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline().strip() in NOTEBOOK_HEADERS
    except OSError:
        return False


def find_root(start: Path) -> Path:
    """The folder of the nearest ``databricks.yml`` at or above ``start``."""
    here = start.resolve()
    for folder in (here, *here.parents):
        if any((folder / n).is_file() for n in CONFIG_NAMES):
            return folder
    raise BundleError(f"no databricks.yml in {start} or a folder above it; create one with 'brickyard bundle init'")


def short_name(user: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", user.split("@", 1)[0].lower()).strip("_") or "user"


def load_bundle(root: Path, *, target: str | None, variables: dict[str, str], environ: dict[str, str],
                user: str, lookup: Callable[[str, str], str] | None = None) -> Bundle:
    """The bundle at ``root`` for ``target``, as ``user`` deploys it; ``lookup(kind, name)`` answers variable
    lookups (a service principal's application id, a job's id, ...) from the workspace."""
    config_file = next((root / n for n in CONFIG_NAMES if (root / n).is_file()), None)
    if config_file is None:
        raise BundleError(f"no databricks.yml in {root}")
    main = load(config_file, config_file.name)
    if not isinstance(main, Map):
        raise BundleError("the bundle file must be a mapping", where=(config_file.name, 1))
    _known(main, TOP, "", NOT_SUPPORTED_TOP)
    bundle = _map(main, "bundle", "")
    _known(bundle, BUNDLE_KEYS, "bundle")
    name = bundle.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BundleError("bundle.name is required", where=where(main, "bundle") or main.at, key="bundle.name")
    # includes: more files with resources, variables and targets
    files = [main]
    includes = main.get("include") or Seq()
    if not isinstance(includes, list):
        raise BundleError("include must be a list of file patterns", where=where(main, "include"), key="include")
    for pattern in includes:
        if not isinstance(pattern, str):
            raise BundleError("include entries are glob patterns such as resources/*.yml", where=includes.at,
                              key="include")
        matched = sorted(p for p in root.glob(pattern) if p.is_file() and p.resolve() != config_file.resolve())
        for path in matched:
            extra = load(path, path.relative_to(root).as_posix())
            if not isinstance(extra, Map):
                raise BundleError("an included file must be a mapping", where=(path.relative_to(root).as_posix(), 1))
            _known(extra, {"resources", "variables", "targets", "sync"}, "", NOT_SUPPORTED_TOP)
            files.append(extra)
    resources: dict[str, dict[str, Map]] = {}
    declared: dict[tuple[str, str], tuple[str, int] | None] = {}
    var_defs: dict[str, Map] = {}
    targets: dict[str, Map] = {}
    for f in files:
        _collect_resources(_map(f, "resources", ""), resources, declared, "resources")
        for var_name, spec in _map(f, "variables", "").items():
            if var_name in var_defs:
                raise BundleError(f"variable {var_name!r} is declared twice", where=where(f["variables"], var_name),
                                  key=f"variables.{var_name}")
            if not isinstance(spec, Map):
                raise BundleError(f"variable {var_name!r} must be a mapping with default, description or lookup",
                                  where=where(f["variables"], var_name), key=f"variables.{var_name}")
            _known(spec, VARIABLE_KEYS, f"variables.{var_name}")
            var_defs[var_name] = spec
        for target_name, spec in _map(f, "targets", "").items():
            if target_name in targets:
                raise BundleError(f"target {target_name!r} is declared twice", key=f"targets.{target_name}",
                                  where=where(f["targets"], target_name))
            spec = spec if spec is not None else Map()
            if not isinstance(spec, Map):
                raise BundleError(f"target {target_name!r} must be a mapping", key=f"targets.{target_name}",
                                  where=where(f["targets"], target_name))
            _known(spec, TARGET_KEYS, f"targets.{target_name}")
            targets[target_name] = spec
    # the target
    if target is None:
        defaults = [t for t, spec in targets.items() if spec.get("default") is True]
        if len(defaults) > 1:
            raise BundleError(f"more than one target is the default: {', '.join(defaults)}")
        target = defaults[0] if defaults else (next(iter(targets)) if len(targets) == 1 else None)
        if target is None and not targets:
            target = "default"  # a bundle without targets has one, as on Databricks
        if target is None:
            raise BundleError(f"choose a target with --target ({', '.join(targets)})")
    if targets and target not in targets:
        raise BundleError(f"no target {target!r}; the bundle has {', '.join(targets)}")
    spec = targets.get(target, Map())
    mode = spec.get("mode")
    if mode not in (None, "development", "production"):
        raise BundleError("mode must be development or production", where=where(spec, "mode"),
                          key=f"targets.{target}.mode")
    workspace = Map(_map(main, "workspace", ""))
    _known(workspace, WORKSPACE_KEYS, "workspace")
    target_ws = _map(spec, "workspace", f"targets.{target}")
    _known(target_ws, WORKSPACE_KEYS, f"targets.{target}.workspace")
    workspace.update(target_ws)
    workspace.pos.update(target_ws.pos)
    for type_name, items in _map(spec, "resources", f"targets.{target}").items():
        _resource_type(type_name, spec["resources"], f"targets.{target}.resources")
        for key, override in (items or {}).items():
            if key not in resources.get(type_name, {}):
                resources.setdefault(type_name, {})[key] = override
                declared[(type_name, key)] = where(items, key)
            else:
                resources[type_name][key] = _merge(resources[type_name][key], override)
    # variables
    target_vars = _map(spec, "variables", f"targets.{target}")
    for given in (*target_vars, *variables):
        if given not in var_defs:
            raise BundleError(f"variable {given!r} is not declared under variables",
                              where=where(target_vars, given) if given in target_vars else None,
                              key=f"targets.{target}.variables.{given}" if given in target_vars else f"--var {given}")
    values: dict[str, Any] = {}
    for var_name, spec_var in var_defs.items():
        if var_name in variables:
            values[var_name] = variables[var_name]
        elif f"BUNDLE_VAR_{var_name}" in environ:
            values[var_name] = environ[f"BUNDLE_VAR_{var_name}"]
        elif var_name in target_vars and not isinstance(target_vars[var_name], Map):
            values[var_name] = target_vars[var_name]
        elif var_name in target_vars and "lookup" in target_vars[var_name]:
            values[var_name] = _lookup(target_vars[var_name], var_name, lookup)
        elif "default" in spec_var:
            values[var_name] = spec_var["default"]
        elif "lookup" in spec_var:
            values[var_name] = _lookup(spec_var, var_name, lookup)
        else:
            raise BundleError(f"variable {var_name!r} has no value: give it a default, a value in target "
                              f"{target!r}, --var {var_name}=..., or BUNDLE_VAR_{var_name}",
                              where=spec_var.at, key=f"variables.{var_name}")
    short = short_name(user)
    context = {"bundle.name": name, "bundle.target": target, "workspace.current_user.userName": user,
               "workspace.current_user.short_name": short}
    for var_name in values:  # a value may name the bundle, the target or the user (not another variable)
        values[var_name] = _fill(values[var_name], context, var_defs[var_name].at, f"variables.{var_name}")
    context.update({f"var.{k}": v for k, v in values.items()})
    # paths in the workspace
    default_root = f"/Workspace/Users/{user}/.bundle/{name}/{target}"
    if mode == "production" and "root_path" not in workspace:
        raise BundleError(f"target {target!r} is in production mode: set workspace.root_path (for example "
                          "/Workspace/Shared/.bundle/${bundle.name}/${bundle.target}) so that a deploy does not "
                          "depend on who runs it", where=where(spec, "mode"), key=f"targets.{target}.workspace")
    root_path = _fill(workspace.get("root_path", default_root), context, where(workspace, "root_path"),
                      "workspace.root_path")
    root_path = _home(str(root_path), user)
    if mode == "production" and root_path.startswith(f"/Workspace/Users/{user}/") and "run_as" not in spec:
        pass  # allowed, as on Databricks, when the deployer owns the target's folder
    context["workspace.root_path"] = root_path
    file_path = _home(str(_fill(workspace.get("file_path", f"{root_path}/files"), context,
                                where(workspace, "file_path"), "workspace.file_path")), user)
    state_path = _home(str(_fill(workspace.get("state_path", f"{root_path}/state"), context,
                                 where(workspace, "state_path"), "workspace.state_path")), user)
    context.update({"workspace.file_path": file_path, "workspace.state_path": state_path})
    # sync: the paths whose files are uploaded, relative to the bundle root
    sync = Map(_map(main, "sync", ""))
    for f in files[1:]:
        sync.update(_map(f, "sync", ""))
    sync.update(_map(spec, "sync", f"targets.{target}"))
    _known(sync, SYNC_KEYS, "sync")
    paths = [(root / str(p)).resolve() for p in (sync.get("paths") or ["."])]
    for p in paths:
        if not p.exists():
            raise BundleError(f"sync path {p} does not exist", where=where(sync, "paths"), key="sync.paths")
    sync_root = Path(os.path.commonpath([root.resolve(), *paths]))
    exclude = [str(x) for x in sync.get("exclude") or []]
    # references and modes
    for type_name, items in resources.items():
        for key, body in items.items():
            loc = declared.get((type_name, key))
            if not isinstance(body, Map):
                raise BundleError(f"{type_name}.{key} must be a mapping", where=loc, key=f"resources.{type_name}.{key}")
            _known(body, RESOURCES[type_name], f"resources.{type_name}.{key}")
            items[key] = _fill(body, context, loc, f"resources.{type_name}.{key}")
            _check_refs(items[key], resources, f"resources.{type_name}.{key}")
    result = Bundle(root=root, name=name, target=target, mode=mode, user=user, root_path=root_path,
                    file_path=file_path, state_path=state_path, sync_root=sync_root, sync_paths=paths,
                    sync_exclude=exclude, variables=values, resources=resources, declared=declared)
    for type_name, items in resources.items():
        for key, body in items.items():
            _defaults(result, type_name, key, body)
            _local_paths(result, type_name, key, body)
            if mode == "development":
                _development(result, type_name, body, short)
    return result


# -- helpers ----------------------------------------------------------------------------------------------------
def _map(parent: Any, key: str, path: str) -> Map:
    value = parent.get(key) if isinstance(parent, dict) else None
    if value is None:
        return Map()
    if not isinstance(value, Map):
        raise BundleError(f"{key} must be a mapping", where=where(parent, key), key=f"{path}.{key}".lstrip("."))
    return value


def _known(value: Map, keys: set[str], path: str, unsupported: dict[str, str] | None = None) -> None:
    for key in value:
        if key in keys:
            continue
        loc = where(value, key)
        dotted = f"{path}.{key}".lstrip(".")
        if unsupported and key in unsupported:
            hint = unsupported[key]
            raise BundleError(f"{key!r} is not supported by Brickyard" + (f": {hint}" if hint else ""), where=loc,
                              key=dotted)
        raise BundleError(f"unknown key {key!r}; {path or 'the top level'} has {', '.join(sorted(keys))}", where=loc,
                          key=dotted)


def _resource_type(type_name: str, parent: Map, path: str) -> None:
    if type_name in RESOURCES:
        return
    loc = where(parent, type_name)
    if type_name in NOT_SUPPORTED_RESOURCES:
        hint = NOT_SUPPORTED_RESOURCES[type_name]
        raise BundleError(f"resources of type {type_name} are not supported by Brickyard" + (f": {hint}" if hint else ""),
                          where=loc, key=f"{path}.{type_name}")
    raise BundleError(f"unknown resource type {type_name!r}; Brickyard has {', '.join(sorted(RESOURCES))}", where=loc,
                      key=f"{path}.{type_name}")


def _collect_resources(value: Map, out: dict[str, dict[str, Map]], declared: dict[tuple[str, str], Any],
                       path: str) -> None:
    for type_name, items in value.items():
        _resource_type(type_name, value, path)
        if not isinstance(items, Map):
            raise BundleError(f"{type_name} must map keys to resources", where=where(value, type_name),
                              key=f"{path}.{type_name}")
        for key, body in items.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", key):
                raise BundleError(f"resource key {key!r} must be letters, digits, _ and -", where=where(items, key),
                                  key=f"{path}.{type_name}.{key}")
            if key in out.get(type_name, {}):
                raise BundleError(f"{type_name}.{key} is declared twice (also at "
                                  f"{':'.join(map(str, declared[(type_name, key)] or ('?',)))})",
                                  where=where(items, key), key=f"{path}.{type_name}.{key}")
            out.setdefault(type_name, {})[key] = body
            declared[(type_name, key)] = where(items, key)


def _merge(base: Any, override: Any) -> Any:
    """A target's override: mappings merge key by key, job tasks merge by task_key, anything else replaces."""
    if isinstance(base, Map) and isinstance(override, Map):
        out = Map(base)
        out.at, out.pos = base.at, dict(base.pos)
        for key, value in override.items():
            if key == "tasks" and isinstance(value, list) and isinstance(base.get(key), list):
                by_key = {t.get("task_key"): t for t in base[key] if isinstance(t, dict)}
                merged = Seq(base[key])
                merged.at = getattr(base[key], "at", None)
                for task in value:
                    k = task.get("task_key") if isinstance(task, dict) else None
                    if k in by_key:
                        merged[merged.index(by_key[k])] = _merge(by_key[k], task)
                    else:
                        merged.append(task)
                out[key] = merged
            else:
                out[key] = _merge(base.get(key), value) if key in base else value
            out.pos[key] = override.pos.get(key, out.pos.get(key))  # type: ignore[assignment]
        return out
    return override


def _fill(value: Any, context: dict[str, Any], loc: tuple[str, int] | None, path: str) -> Any:
    """``${...}`` references replaced; ``${resources...}`` left for the deploy, which knows the ids."""
    if isinstance(value, Map):
        out = Map()
        out.at, out.pos = value.at, value.pos
        for k, v in value.items():
            out[k] = _fill(v, context, where(value, k) or loc, f"{path}.{k}")
        return out
    if isinstance(value, list):
        seq = Seq(_fill(v, context, getattr(value, "at", None) or loc, f"{path}[{i}]") for i, v in enumerate(value))
        seq.at = getattr(value, "at", None)
        return seq
    if not isinstance(value, str) or "${" not in value:
        return value

    def one(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref.startswith("resources."):
            return m.group(0)
        if ref not in context:
            known = "var.<name>, bundle.name, bundle.target, workspace.root_path, workspace.file_path, " \
                    "workspace.current_user.userName, workspace.current_user.short_name, resources.<type>.<key>.<field>"
            raise BundleError(f"unknown reference ${{{ref}}}" + (" (no such variable)" if ref.startswith("var.") else
                                                                  f"; references are {known}"), where=loc, key=path)
        return str(context[ref])

    whole = REF.fullmatch(value)
    if whole and not whole.group(1).startswith("resources.") and whole.group(1) in context:
        return context[whole.group(1)]  # keeps a variable's type (a number, a list)
    return REF.sub(one, value)


def _check_refs(value: Any, resources: dict[str, dict[str, Map]], path: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _check_refs(v, resources, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_refs(v, resources, f"{path}[{i}]")
    elif isinstance(value, str):
        for m in REF.finditer(value):
            parts = m.group(1).split(".")
            if len(parts) != 4 or parts[1] not in resources or parts[2] not in resources[parts[1]]:
                raise BundleError(f"${{{m.group(1)}}} names no resource of this bundle (resources.<type>.<key>.<field>)",
                                  key=path)


def _lookup(spec: Map, name: str, lookup: Callable[[str, str], str] | None) -> str:
    what = spec["lookup"]
    if not isinstance(what, Map) or len(what) != 1:
        raise BundleError("lookup must name one object, such as {service_principal: <name>}", where=spec.at,
                          key=f"variables.{name}.lookup")
    kind, target = next(iter(what.items()))
    if kind not in LOOKUPS:
        raise BundleError(f"lookups of {kind} are not supported; Brickyard looks up {', '.join(sorted(LOOKUPS))}",
                          where=where(what, kind), key=f"variables.{name}.lookup.{kind}")
    if lookup is None:
        raise BundleError("this command cannot reach the workspace to look variables up", key=f"variables.{name}")
    return lookup(kind, str(target))


def _home(path: str, user: str) -> str:
    if path.startswith("~/"):
        path = f"/Workspace/Users/{user}/{path[2:]}"
    if path.startswith("/Users/") or path.startswith("/Shared/"):
        path = "/Workspace" + path
    return path.rstrip("/")


def _defaults(bundle: Bundle, type_name: str, key: str, body: Map) -> None:
    if "name" not in body and type_name != "experiments":
        body["name"] = key
    if type_name == "experiments" and "name" not in body:
        body["name"] = f"/Workspace/Users/{bundle.user}/{key}"


def _local_paths(bundle: Bundle, type_name: str, key: str, body: Map) -> None:
    """Relative paths in tasks and apps are local files, relative to the file that declares them."""
    loc = bundle.declared.get((type_name, key))
    base = (bundle.root / loc[0]).parent if loc else bundle.root

    def convert(value: Any, what: str) -> str:
        if not isinstance(value, str) or value.startswith("/") or "${" in value:
            return value  # type: ignore[return-value]
        local = (base / value).resolve()
        if not local.exists():
            raise BundleError(f"{what} {value!r} does not exist ({local})", where=loc, key=f"resources.{type_name}.{key}")
        if not any(local == p or p in local.parents for p in bundle.sync_paths) or _excluded(bundle, local):
            raise BundleError(f"{what} {value!r} is not among the synced files (sync.paths)", where=loc,
                              key=f"resources.{type_name}.{key}")
        return bundle.remote(local)

    if type_name == "apps" and "source_code_path" in body:
        body["source_code_path"] = convert(body["source_code_path"], "source_code_path")
    if type_name == "jobs":
        for task in body.get("tasks") or []:
            if not isinstance(task, dict):
                continue
            for kind, field_name in (("notebook_task", "notebook_path"), ("spark_python_task", "python_file")):
                if isinstance(task.get(kind), dict) and field_name in task[kind]:
                    task[kind][field_name] = convert(task[kind][field_name], f"{kind}.{field_name}")
            sql_file = (task.get("sql_task") or {}).get("file") if isinstance(task.get("sql_task"), dict) else None
            if isinstance(sql_file, dict) and "path" in sql_file:
                sql_file["path"] = convert(sql_file["path"], "sql_task.file.path")
            for lib in task.get("libraries") or []:
                if isinstance(lib, dict) and isinstance(lib.get("whl"), str):
                    lib["whl"] = convert(lib["whl"], "libraries.whl")


def _excluded(bundle: Bundle, local: Path) -> bool:
    rel = local.relative_to(bundle.sync_root).as_posix()
    return any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(local.name, pat) for pat in bundle.sync_exclude)


def _development(bundle: Bundle, type_name: str, body: Map, short: str) -> None:
    """``mode: development``: names carry the user, so two developers' copies never collide, and nothing runs
    on its own (schedules, triggers and continuous jobs are paused)."""
    if type_name == "jobs":
        body["name"] = f"[dev {short}] {body['name']}"
        for timed in ("schedule", "trigger", "continuous"):
            if isinstance(body.get(timed), dict):
                body[timed] = copy.copy(body[timed])
                body[timed]["pause_status"] = "PAUSED"
        tags = dict(body.get("tags") or {})
        tags.setdefault("dev", short)
        body["tags"] = tags
    elif type_name in ("schemas", "registered_models"):
        body["name"] = f"dev_{short}_{body['name']}"
    elif type_name == "model_serving_endpoints":
        body["name"] = f"dev-{short.replace('_', '-')}-{body['name']}"
    elif type_name == "experiments":
        folder, _, base = str(body["name"]).rpartition("/")
        body["name"] = f"{folder}/[dev {short}] {base}"
