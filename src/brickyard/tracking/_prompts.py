"""The prompt registry in Unity Catalog (``mlflow.genai.register_prompt`` with registry URI ``databricks-uc``):
prompts named ``catalog.schema.prompt`` with immutable numbered versions (a template, text or chat),
aliases such as ``@production``, and tags.

Privileges follow functions, which prompts sit beside in a schema: creating one needs CREATE_FUNCTION on
the schema, reading one EXECUTE on the schema (or owning the prompt), and changing one (new versions,
aliases, tags, deletion) ownership of the prompt or MANAGE on the schema.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..catalog import Catalog, Principal
from ..catalog._db import Row, Tx
from ..core.errors import AlreadyExists, InvalidParameterValue, NotFound, PermissionDenied
from ..core.ids import now_ms
from ..core.names import parse_name
from ._store import _paged
from ._traces import _rfc3339

_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,254}$")
MAX_TEMPLATE = 1_000_000


def _tag_map(items: Any) -> dict[str, str]:
    if items is None:
        return {}
    if not isinstance(items, list) or not all(isinstance(t, dict) and isinstance(t.get("key"), str) for t in items):
        raise InvalidParameterValue("tags must be a list of {key, value}")
    return {t["key"][:250]: str(t.get("value", ""))[:100_000] for t in items}


def _tags_json(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


class Prompts:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.db = catalog.db

    # -- access --------------------------------------------------------------------------------------
    @staticmethod
    def _name(name: Any) -> tuple[str, str]:
        full = str(parse_name(name, 3, what="prompt name"))
        return full, full.rsplit(".", 1)[0]

    def _prompt(self, tx: Tx, p: Principal, name: Any, *, write: bool) -> Row:
        full, schema = self._name(name)
        row = tx.one("SELECT * FROM prompts WHERE name = ?", (full,))
        if row is not None and row["owner"] in p.names:
            return row
        if row is None or not self.catalog.check(p, "EXECUTE", ("schema", schema)).allowed:
            raise NotFound(f"Prompt '{full}' does not exist.")  # no existence oracle
        if write and not self.catalog.check(p, "MANAGE", ("schema", schema)).allowed:
            raise PermissionDenied(f"{p.name} cannot change prompt {full}: it needs to own it or MANAGE on {schema}")
        return row

    # -- prompts -----------------------------------------------------------------------------------------
    def _prompt_json(self, tx: Tx, row: Row) -> dict[str, Any]:
        aliases = tx.all("SELECT alias, version FROM prompt_aliases WHERE name = ? ORDER BY alias", (row["name"],))
        return {"name": row["name"], "description": row["description"] or "",
                "creation_timestamp": _rfc3339(row["created_at"]),
                "last_updated_timestamp": _rfc3339(row["updated_at"]), "tags": _tags_json(json.loads(row["tags"])),
                "aliases": [{"alias": a["alias"], "version": str(a["version"])} for a in aliases]}

    def create(self, p: Principal, name: Any, *, description: Any = None, tags: Any = None) -> dict[str, Any]:
        full, schema = self._name(name)
        schema_obj = self.catalog.require(p, "CREATE_FUNCTION", "schema", schema, action="createPrompt")
        now = now_ms()
        with self.db.tx() as tx:
            if tx.one("SELECT 1 FROM prompts WHERE name = ?", (full,)) is not None:
                raise AlreadyExists(f"Prompt '{full}' already exists.", error_code="ALREADY_EXISTS")  # what mlflow expects
            tx.execute("INSERT INTO prompts (name, schema_id, owner, description, tags, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (full, schema_obj.id, p.name, None if description is None
                                                        else str(description)[:10_000], json.dumps(_tag_map(tags)),
                                                        now, now))
            return self._prompt_json(tx, tx.one("SELECT * FROM prompts WHERE name = ?", (full,)))  # type: ignore[arg-type]

    def get(self, p: Principal, name: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            return self._prompt_json(tx, self._prompt(tx, p, name, write=False))

    def update(self, p: Principal, name: Any, *, description: Any) -> dict[str, Any]:
        with self.db.tx() as tx:
            row = self._prompt(tx, p, name, write=True)
            tx.execute("UPDATE prompts SET description = ?, updated_at = ? WHERE name = ?",
                       (None if description is None else str(description)[:10_000], now_ms(), row["name"]))
            return self._prompt_json(tx, self._prompt(tx, p, name, write=False))

    def delete(self, p: Principal, name: Any) -> None:
        with self.db.tx() as tx:
            row = self._prompt(tx, p, name, write=True)
            tx.execute("DELETE FROM prompt_aliases WHERE name = ?", (row["name"],))
            tx.execute("DELETE FROM prompt_versions WHERE name = ?", (row["name"],))
            tx.execute("DELETE FROM prompts WHERE name = ?", (row["name"],))

    def set_tag(self, p: Principal, name: Any, key: Any, value: Any | None) -> None:
        with self.db.tx() as tx:
            row = self._prompt(tx, p, name, write=True)
            tags = json.loads(row["tags"])
            if value is None:
                tags.pop(str(key), None)
            else:
                tags.update(_tag_map([{"key": key, "value": value}]))
            tx.execute("UPDATE prompts SET tags = ?, updated_at = ? WHERE name = ?",
                       (json.dumps(tags), now_ms(), row["name"]))

    def search(self, p: Principal, catalog_schema: Any, *, max_results: Any = None,
               page_token: Any = None) -> tuple[list[dict[str, Any]], str | None]:
        if not isinstance(catalog_schema, dict) or not catalog_schema.get("catalog_name") \
                or not catalog_schema.get("schema_name"):
            raise InvalidParameterValue("catalog_schema {catalog_name, schema_name} is required")
        schema = f"{catalog_schema['catalog_name']}.{catalog_schema['schema_name']}"
        self.catalog.require(p, "USE_SCHEMA", "schema", schema, action="listPrompts")
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT * FROM prompts WHERE name LIKE ? ORDER BY name", (schema + ".%",))
            visible = []
            for row in rows:
                if row["name"].rsplit(".", 1)[0] != schema:  # LIKE's '_' matches any character
                    continue
                try:
                    visible.append(self._prompt_json(tx, self._prompt(tx, p, row["name"], write=False)))
                except (NotFound, PermissionDenied):
                    continue
        return _paged(visible, page_token, max_results, 100, 1000)

    # -- versions ------------------------------------------------------------------------------------------
    def _version_json(self, tx: Tx, row: Row) -> dict[str, Any]:
        aliases = tx.all("SELECT alias FROM prompt_aliases WHERE name = ? AND version = ? ORDER BY alias",
                         (row["name"], row["version"]))
        return {"name": row["name"], "version": str(row["version"]), "template": row["template"],
                "description": row["description"] or "", "creation_timestamp": _rfc3339(row["created_at"]),
                "last_updated_timestamp": _rfc3339(row["updated_at"]), "tags": _tags_json(json.loads(row["tags"])),
                "aliases": [{"alias": a["alias"], "version": str(row["version"])} for a in aliases]}

    def create_version(self, p: Principal, name: Any, version: Any) -> dict[str, Any]:
        if not isinstance(version, dict):
            raise InvalidParameterValue("prompt_version is required")
        template = version.get("template")
        if not isinstance(template, str) or not template or len(template) > MAX_TEMPLATE:
            raise InvalidParameterValue(f"template must be a non-empty string of at most {MAX_TEMPLATE} characters")
        now = now_ms()
        with self.db.tx() as tx:
            row = self._prompt(tx, p, name, write=True)
            tx.one(f"SELECT name FROM prompts WHERE name = ?{tx.for_update}", (row["name"],))  # noqa: S608
            number = int(tx.scalar("SELECT COALESCE(MAX(version), 0) FROM prompt_versions WHERE name = ?",
                                   (row["name"],)) or 0) + 1
            tx.execute("INSERT INTO prompt_versions (name, version, template, description, tags, created_at, created_by,"
                       " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (row["name"], number, template, None if version.get("description") is None
                        else str(version["description"])[:10_000], json.dumps(_tag_map(version.get("tags"))), now,
                        p.name, now))
            return self._version_json(tx, self._version(tx, row["name"], number))

    @staticmethod
    def _version(tx: Tx, name: str, version: Any) -> Row:
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise InvalidParameterValue("version must be a positive integer") from None
        row = tx.one("SELECT * FROM prompt_versions WHERE name = ? AND version = ?", (name, number))
        if row is None:
            raise NotFound(f"Prompt '{name}' has no version {number}.")
        return row

    def get_version(self, p: Principal, name: Any, version: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            prompt = self._prompt(tx, p, name, write=False)
            return self._version_json(tx, self._version(tx, prompt["name"], version))

    def by_alias(self, p: Principal, name: Any, alias: Any) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            prompt = self._prompt(tx, p, name, write=False)
            found = tx.one("SELECT version FROM prompt_aliases WHERE name = ? AND alias = ?", (prompt["name"], str(alias)))
            if found is None:
                raise NotFound(f"Prompt '{prompt['name']}' has no alias {str(alias)[:60]!r}.")
            return self._version_json(tx, self._version(tx, prompt["name"], found["version"]))

    def versions(self, p: Principal, name: Any, *, max_results: Any = None,
                 page_token: Any = None) -> tuple[list[dict[str, Any]], str | None]:
        with self.db.tx(write=False) as tx:
            prompt = self._prompt(tx, p, name, write=False)
            rows = tx.all("SELECT * FROM prompt_versions WHERE name = ? ORDER BY version DESC", (prompt["name"],))
            found = [self._version_json(tx, r) for r in rows]
        return _paged(found, page_token, max_results, 100, 1000)

    def update_version(self, p: Principal, name: Any, version: Any, *, description: Any) -> dict[str, Any]:
        with self.db.tx() as tx:
            prompt = self._prompt(tx, p, name, write=True)
            row = self._version(tx, prompt["name"], version)
            tx.execute("UPDATE prompt_versions SET description = ?, updated_at = ? WHERE name = ? AND version = ?",
                       (None if description is None else str(description)[:10_000], now_ms(), row["name"],
                        row["version"]))
            return self._version_json(tx, self._version(tx, row["name"], row["version"]))

    def delete_version(self, p: Principal, name: Any, version: Any) -> None:
        with self.db.tx() as tx:
            prompt = self._prompt(tx, p, name, write=True)
            row = self._version(tx, prompt["name"], version)
            tx.execute("DELETE FROM prompt_aliases WHERE name = ? AND version = ?", (row["name"], row["version"]))
            tx.execute("DELETE FROM prompt_versions WHERE name = ? AND version = ?", (row["name"], row["version"]))

    def set_version_tag(self, p: Principal, name: Any, version: Any, key: Any, value: Any | None) -> None:
        with self.db.tx() as tx:
            prompt = self._prompt(tx, p, name, write=True)
            row = self._version(tx, prompt["name"], version)
            tags = json.loads(row["tags"])
            if value is None:
                tags.pop(str(key), None)
            else:
                tags.update(_tag_map([{"key": key, "value": value}]))
            tx.execute("UPDATE prompt_versions SET tags = ?, updated_at = ? WHERE name = ? AND version = ?",
                       (json.dumps(tags), now_ms(), row["name"], row["version"]))

    def set_alias(self, p: Principal, name: Any, alias: Any, version: Any) -> None:
        if not isinstance(alias, str) or not _ALIAS.match(alias) or alias.lower() == "latest":
            raise InvalidParameterValue("an alias is a name such as 'production' (letters, digits, '_', '-'); "
                                        "'latest' is reserved")
        with self.db.tx() as tx:
            prompt = self._prompt(tx, p, name, write=True)
            row = self._version(tx, prompt["name"], version)
            tx.execute("DELETE FROM prompt_aliases WHERE name = ? AND alias = ?", (row["name"], alias))
            tx.execute("INSERT INTO prompt_aliases (name, alias, version) VALUES (?, ?, ?)",
                       (row["name"], alias, row["version"]))

    def delete_alias(self, p: Principal, name: Any, alias: Any) -> None:
        with self.db.tx() as tx:
            prompt = self._prompt(tx, p, name, write=True)
            tx.execute("DELETE FROM prompt_aliases WHERE name = ? AND alias = ?", (prompt["name"], str(alias)))
