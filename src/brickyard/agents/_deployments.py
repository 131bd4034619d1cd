"""Agent deployments, as ``databricks.agents.deploy`` records them (``/api/2.0/agents/deployments``).

``agents.deploy(model, version)`` first creates or updates the serving endpoint itself (through the serving
endpoints API: the new version takes 100% of the traffic, older ones stay at 0%, the inference table is
switched on), then asks this service to record the deployment. Recording checks that the endpoint really
serves that version and that the caller manages it, switches usage tracking and the inference table on if
they are not, attaches the agent to the review app of the endpoint's experiment, and answers with the URLs
the client prints: where to query the version and where reviewers chat with it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ..catalog import Principal
from ..core.errors import InvalidParameterValue, NotFound, PermissionDenied
from ..core.ids import now_ms
from ..core.names import parse_name


class Deployments:
    def __init__(self, *, db: Any, serving: Any, gateway: Any, registry: Any, review_apps: Any) -> None:
        self.db = db
        self.serving = serving
        self.gateway = gateway
        self.registry = registry
        self.review_apps = review_apps

    def create(self, p: Principal, body: Any, base_url: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidParameterValue("the request body must be an object")
        model = str(parse_name(body.get("model_name"), 3, what="model_name"))
        version = str(body.get("model_version") or "")
        endpoint = body.get("endpoint_name")
        if not version.isdigit():
            raise InvalidParameterValue("model_version must be a version number")
        if not isinstance(endpoint, str) or not endpoint:
            raise InvalidParameterValue("endpoint_name is required")
        self.registry.version_row(p, model, int(version))  # the caller can see the version
        shown = self.serving.get(p, endpoint)
        if shown["permission_level"] != "CAN_MANAGE":
            raise PermissionDenied(f"{p.name} lacks CAN_MANAGE on serving endpoint '{endpoint}'")
        served = self._served(shown, model, version)
        gateway = dict(shown.get("ai_gateway") or {})
        changed = False
        if not (gateway.get("usage_tracking_config") or {}).get("enabled"):
            gateway["usage_tracking_config"] = {"enabled": True}
            changed = True
        if not (gateway.get("inference_table_config") or {}).get("enabled"):
            catalog, schema, short = model.split(".")
            gateway["inference_table_config"] = {"enabled": True, "catalog_name": catalog, "schema_name": schema,
                                                 "table_name_prefix": short[:63]}
            changed = True
        if changed:
            self.gateway.configure(p, endpoint, gateway)
        row = {"model_name": model, "model_version": version, "endpoint_name": endpoint,
               "served_entity_name": served["name"],
               "query_endpoint": f"{base_url}/serving-endpoints/{quote(endpoint)}/served-models/"
                                 f"{quote(served['name'])}/invocations",
               "review_app_url": self._review_app_url(p, shown, served, model, endpoint, base_url)}
        with self.db.tx() as tx:
            tx.execute("DELETE FROM agent_deployments WHERE model_name = ? AND model_version = ?", (model, version))
            tx.execute("INSERT INTO agent_deployments (model_name, model_version, endpoint_name, served_entity_name,"
                       " query_endpoint, review_app_url, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (model, version, endpoint, row["served_entity_name"], row["query_endpoint"],
                        row["review_app_url"], p.name, now_ms()))
        return {"deployed_chain": row}

    @staticmethod
    def _served(shown: dict[str, Any], model: str, version: str) -> dict[str, Any]:
        for config in (shown.get("pending_config"), shown.get("config")):
            for ent in (config or {}).get("served_entities") or []:
                if ent.get("entity_name") == model and str(ent.get("entity_version")) == version:
                    return dict(ent)
        raise InvalidParameterValue(f"serving endpoint '{shown['name']}' does not serve {model} version {version}; "
                                    "deploy it there first (agents.deploy does both)")

    def _review_app_url(self, p: Principal, shown: dict[str, Any], served: dict[str, Any], model: str,
                        endpoint: str, base_url: str) -> str:
        """The chat page of the review app of the experiment the endpoint traces to (made if missing, with this
        agent on it); the endpoint's page when there is no experiment or the caller cannot edit it."""
        experiment = (served.get("environment_vars") or {}).get("MLFLOW_EXPERIMENT_ID") or next(
            (t.get("value") for t in shown.get("tags") or [] if t.get("key") == "MONITOR_EXPERIMENT_ID"), None)
        if not experiment:
            return f"{base_url}/ml/endpoints/{quote(endpoint)}"
        try:
            found = self.review_apps.list(p, f"experiment_id={experiment}")["review_apps"]
            app = found[0] if found else self.review_apps.create(p, {"experiment_id": str(experiment)})
            agents = [a for a in app["agents"] if a.get("agent_name") != model]
            agents.append({"agent_name": model, "model_serving_endpoint": {"endpoint_name": endpoint}})
            self.review_apps.update(p, app["review_app_id"], {"agents": agents}, "agents")
        except (NotFound, PermissionDenied):
            return f"{base_url}/ml/endpoints/{quote(endpoint)}"
        return f"{base_url}/ml/review-v2/{quote(app['review_app_id'])}/chat"

    def get(self, p: Principal, model: Any, version: Any = None) -> dict[str, Any]:
        full = str(parse_name(model, 3, what="model_name"))
        self.registry.catalog.require(p, "BROWSE", "registered_model", full, action="getAgentDeployments")
        sql, params = "SELECT * FROM agent_deployments WHERE model_name = ?", [full]
        if version not in (None, ""):
            sql += " AND model_version = ?"
            params.append(str(version))
        with self.db.tx(write=False) as tx:
            rows = tx.all(sql + " ORDER BY created_at", params)
        return {"chain_deployments": [self._shape(r) for r in rows if self.serving.can_view(p, r["endpoint_name"])]}

    def list(self, p: Principal) -> dict[str, Any]:
        with self.db.tx(write=False) as tx:
            rows = tx.all("SELECT * FROM agent_deployments ORDER BY model_name, created_at")
        return {"chain_deployments": [self._shape(r) for r in rows if self.serving.can_view(p, r["endpoint_name"])]}

    def delete(self, p: Principal, model: Any, version: Any = None) -> None:
        """Forget deployments (the client removes the served version or the endpoint first). Only someone who
        manages the model may; a deployment whose endpoint still exists also needs CAN_MANAGE on it."""
        full = str(parse_name(model, 3, what="model_name"))
        self.registry.catalog.require(p, "MANAGE", "registered_model", full, action="deleteAgentDeployment")
        for row in self.get(p, full, version)["chain_deployments"]:
            try:
                level = self.serving.get(p, row["endpoint_name"])["permission_level"]
            except NotFound:
                level = "CAN_MANAGE"  # the endpoint is gone
            if level != "CAN_MANAGE":
                raise PermissionDenied(f"{p.name} lacks CAN_MANAGE on serving endpoint '{row['endpoint_name']}'")
        with self.db.tx() as tx:
            if version in (None, ""):
                tx.execute("DELETE FROM agent_deployments WHERE model_name = ?", (full,))
            else:
                tx.execute("DELETE FROM agent_deployments WHERE model_name = ? AND model_version = ?",
                           (full, str(version)))

    @staticmethod
    def _shape(row: Any) -> dict[str, Any]:
        return {k: row[k] for k in ("model_name", "model_version", "endpoint_name", "served_entity_name",
                                    "query_endpoint", "review_app_url")} | {
            "creation_timestamp": row["created_at"], "created_by": row["created_by"]}
