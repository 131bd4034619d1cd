"""``brickyard bundle init``: a small bundle to start from (a job running a notebook, dev and prod targets)."""

from __future__ import annotations

import re
from pathlib import Path

from ._yaml import BundleError

DATABRICKS_YML = """# A Databricks Asset Bundle: what `brickyard bundle deploy` (or `databricks bundle deploy`) puts in the workspace.
bundle:
  name: {name}

include:
  - resources/*.yml

variables:
  catalog:
    description: The catalog the bundle's schema lives in
    default: main

targets:
  dev:
    # names get a [dev <you>] prefix and schedules are paused, so each developer has a copy of their own
    mode: development
    default: true
  prod:
    mode: production
    workspace:
      root_path: /Workspace/Shared/.bundle/${{bundle.name}}/${{bundle.target}}
"""

JOB_YML = """resources:
  schemas:
    {key}_schema:
      name: {key}
      catalog_name: ${{var.catalog}}
      comment: Tables of the {name} bundle

  jobs:
    {key}_job:
      name: {name} job
      schedule:
        quartz_cron_expression: "0 0 6 * * ?"
        timezone_id: UTC
      tasks:
        - task_key: hello
          notebook_task:
            notebook_path: ../src/hello.py
            base_parameters:
              schema: ${{resources.schemas.{key}_schema.id}}
"""

NOTEBOOK = """# Databricks notebook source
# MAGIC %md
# MAGIC A notebook the bundle's job runs. `schema` comes from the job's base parameters.

# COMMAND ----------

dbutils.widgets.text("schema", "main.default")
schema = dbutils.widgets.get("schema")
print(f"hello from the {name} bundle; its schema is {{schema}}")
dbutils.notebook.exit(schema)
"""


def init(folder: Path, name: str | None = None) -> list[Path]:
    """Write a new bundle into ``folder`` (which must not hold one); returns the files written."""
    name = name or folder.resolve().name
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_\\-]{0,62}", name):
        raise BundleError(f"bundle name {name!r}: letters, digits, _ and -, starting with a letter")
    if (folder / "databricks.yml").exists():
        raise BundleError(f"{folder / 'databricks.yml'} already exists")
    key = re.sub(r"[^a-z0-9_]", "_", name.lower())
    files = {folder / "databricks.yml": DATABRICKS_YML.format(name=name),
             folder / "resources" / f"{key}.job.yml": JOB_YML.format(name=name, key=key),
             folder / "src" / "hello.py": NOTEBOOK.format(name=name)}
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)
