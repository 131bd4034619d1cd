"""Registered model versions and aliases: methods of :class:`~brickyard.catalog.Catalog` (mixed in there)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..core.errors import InvalidParameterValue, NotFound
from ._db import Row, Tx
from ._identity import Principal
from ._securable import DEFAULT_PAGE, Securable, _check_comment


class ModelVersions:
    # -- registered model versions and aliases -------------------------------------------------
    def create_model_version(self, p: Principal, model: str, *, source: str | None, run_id: str | None = None,
                             comment: str | None = None, spec: dict[str, Any] | None = None,
                             storage_location: Callable[[Securable, int], str] | None = None,
                             status: str = "READY") -> Row:
        with self._tx() as tx:
            obj = self._resolve(tx, p, "registered_model", model, action="createModelVersion")
            d = self._decide(tx, p, "OWNERSHIP", obj)
            if not d.allowed:
                d = self._decide(tx, p, "MANAGE", obj)
            if not d.allowed:
                self._deny(p, "createModelVersion", "registered_model", obj.full_name, d.reason)
            tx.one(f"SELECT id FROM securables WHERE id = ?{tx.for_update}", (obj.id,))  # noqa: S608 - fixed suffix
            version = int(tx.scalar("SELECT COALESCE(MAX(version), 0) FROM model_versions WHERE model_id = ?",
                                    (obj.id,)) or 0) + 1
            now = self.clock()
            location = storage_location(obj, version) if storage_location else None
            tx.execute(
                "INSERT INTO model_versions (model_id, version, source, run_id, status, comment, storage_location,"
                " spec, created_at, created_by, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (obj.id, version, source, run_id, status, _check_comment(comment), location,
                 json.dumps(spec or {}), now, p.name, now, p.name),
            )
            self._audit(tx, p, "createModelVersion", "registered_model", obj.full_name, params={"version": version})
            return self._version_row(tx, obj, version)

    def _version_row(self, tx: Tx, obj: Securable, version: int) -> Row:
        row = tx.one("SELECT * FROM model_versions WHERE model_id = ? AND version = ?", (obj.id, version))
        if row is None:
            raise NotFound(f"Model version {obj.full_name}/{version} does not exist.")
        row = dict(row)
        row["aliases"] = [a["alias"] for a in tx.all(
            "SELECT alias FROM model_aliases WHERE model_id = ? AND version = ? ORDER BY alias", (obj.id, version))]
        row["model"] = obj
        row["spec"] = json.loads(row["spec"] or "{}")
        return row

    def model_version(self, p: Principal, model: str, version: int) -> Row:
        version = _version(version)
        with self._tx(write=False) as tx:
            obj = self._resolve(tx, p, "registered_model", model, action="getModelVersion")
            return self._version_row(tx, obj, version)

    def model_versions(self, p: Principal, model: str, *, page_token: str | None = None,
                       max_results: int | None = None) -> tuple[list[Row], str | None]:
        size = DEFAULT_PAGE if not max_results or max_results <= 0 else min(int(max_results), DEFAULT_PAGE)
        start = 0
        if page_token:
            try:
                start = int(page_token)
            except ValueError:
                raise InvalidParameterValue("page_token is not valid") from None
        with self._tx(write=False) as tx:
            obj = self._resolve(tx, p, "registered_model", model, action="listModelVersions")
            rows = tx.all("SELECT version FROM model_versions WHERE model_id = ? AND version > ? ORDER BY version"
                          " LIMIT ?", (obj.id, start, size + 1))
            out = [self._version_row(tx, obj, r["version"]) for r in rows[:size]]
            nxt = str(rows[size - 1]["version"]) if len(rows) > size else None
            return out, nxt

    def update_model_version(self, p: Principal, model: str, version: int, *, comment: str | None) -> Row:
        version = _version(version)
        with self._tx() as tx:
            obj = self._resolve(tx, p, "registered_model", model, action="updateModelVersion")
            self._require(tx, p, "MANAGE", obj, "updateModelVersion")
            self._version_row(tx, obj, version)
            tx.execute("UPDATE model_versions SET comment = ?, updated_at = ?, updated_by = ?"
                       " WHERE model_id = ? AND version = ?",
                       (_check_comment(comment), self.clock(), p.name, obj.id, version))
            self._audit(tx, p, "updateModelVersion", "registered_model", obj.full_name, params={"version": version})
            return self._version_row(tx, obj, version)

    def change_model_version(self, p: Principal, model: str, version: int, *, status: str | None = None,
                             spec: dict[str, Any] | None = None, check: Callable[[Row], None] | None = None,
                             action: str = "updateModelVersion") -> Row:
        """Set a version's status and merge ``spec`` (tags, dependencies) into it, as an owner or MANAGE
        holder; ``check(row)`` may refuse the change (it runs inside the transaction)."""
        version = _version(version)
        with self._tx() as tx:
            obj = self._resolve(tx, p, "registered_model", model, action=action)
            d = self._decide(tx, p, "OWNERSHIP", obj)
            if not d.allowed:
                d = self._decide(tx, p, "MANAGE", obj)
            if not d.allowed:
                self._deny(p, action, "registered_model", obj.full_name, d.reason)
            row = self._version_row(tx, obj, version)
            if check is not None:
                check(row)
            merged = {**row["spec"], **(spec or {})}
            tx.execute("UPDATE model_versions SET status = ?, spec = ?, updated_at = ?, updated_by = ?"
                       " WHERE model_id = ? AND version = ?",
                       (status or row["status"], json.dumps(merged), self.clock(), p.name, obj.id, version))
            self._audit(tx, p, action, "registered_model", obj.full_name, params={"version": version})
            return self._version_row(tx, obj, version)

    def delete_model_version(self, p: Principal, model: str, version: int) -> None:
        version = _version(version)
        with self._tx() as tx:
            obj = self._resolve(tx, p, "registered_model", model, action="deleteModelVersion")
            self._require(tx, p, "MANAGE", obj, "deleteModelVersion")
            self._version_row(tx, obj, version)
            tx.execute("DELETE FROM model_aliases WHERE model_id = ? AND version = ?", (obj.id, version))
            tx.execute("DELETE FROM model_versions WHERE model_id = ? AND version = ?", (obj.id, version))
            self._audit(tx, p, "deleteModelVersion", "registered_model", obj.full_name, params={"version": version})

    def set_alias(self, p: Principal, model: str, alias: str, version: int) -> Row:
        version = _version(version)
        alias = _alias(alias)
        with self._tx() as tx:
            obj = self._resolve(tx, p, "registered_model", model, action="setRegisteredModelAlias")
            self._require(tx, p, "MANAGE", obj, "setRegisteredModelAlias")
            self._version_row(tx, obj, version)
            tx.execute("DELETE FROM model_aliases WHERE model_id = ? AND alias = ?", (obj.id, alias))
            tx.execute("INSERT INTO model_aliases (model_id, alias, version) VALUES (?, ?, ?)", (obj.id, alias, version))
            self._audit(tx, p, "setRegisteredModelAlias", "registered_model", obj.full_name,
                        params={"alias": alias, "version": version})
            return {"alias_name": alias, "version_num": version}

    def delete_alias(self, p: Principal, model: str, alias: str) -> None:
        alias = _alias(alias)
        with self._tx() as tx:
            obj = self._resolve(tx, p, "registered_model", model, action="deleteRegisteredModelAlias")
            self._require(tx, p, "MANAGE", obj, "deleteRegisteredModelAlias")
            if not tx.one("SELECT alias FROM model_aliases WHERE model_id = ? AND alias = ?", (obj.id, alias)):
                raise NotFound(f"alias {alias!r} does not exist on model {obj.full_name}")
            tx.execute("DELETE FROM model_aliases WHERE model_id = ? AND alias = ?", (obj.id, alias))
            self._audit(tx, p, "deleteRegisteredModelAlias", "registered_model", obj.full_name, params={"alias": alias})

    def version_by_alias(self, p: Principal, model: str, alias: str) -> Row:
        alias = _alias(alias)
        with self._tx(write=False) as tx:
            obj = self._resolve(tx, p, "registered_model", model, action="getModelVersionByAlias")
            row = tx.one("SELECT version FROM model_aliases WHERE model_id = ? AND alias = ?", (obj.id, alias))
            if row is None:
                raise NotFound(f"alias {alias!r} does not exist on model {obj.full_name}")
            return self._version_row(tx, obj, row["version"])

    def aliases(self, model: Securable) -> list[dict[str, Any]]:
        with self._tx(write=False) as tx:
            return [{"alias_name": r["alias"], "version_num": r["version"]} for r in tx.all(
                "SELECT alias, version FROM model_aliases WHERE model_id = ? ORDER BY alias", (model.id,))]


def _version(value: Any) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"model version must be a positive integer, got {str(value)[:40]!r}") from None
    if v <= 0:
        raise InvalidParameterValue("model version must be a positive integer")
    return v


def _alias(value: Any) -> str:
    from ..core.names import validate_part

    if isinstance(value, str) and value.isdigit():
        raise InvalidParameterValue("an alias cannot be a number (it would read as a version)")
    return validate_part(value, "alias")
