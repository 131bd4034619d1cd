"""MLflow tracking REST routes (``/api/2.0/mlflow/...``), the ones the ``mlflow`` client calls with tracking
URI ``databricks``: experiments, runs, metrics, params, tags, inputs and outputs, and experiment
permissions. Thin: each route reads its arguments (JSON body or query string) and calls the store."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ._http import Api, Req

ML = "/api/2.0/mlflow"


def register(api: Api, ws: Any) -> None:
    tr = ws.tracking

    # -- experiments ---------------------------------------------------------------------------------
    @api.route("POST", ML + "/experiments/create", policy="authenticated")
    def create_experiment(req: Req) -> dict[str, Any]:
        return {"experiment_id": tr.create_experiment(req.user, req.require("name"),
                                                      artifact_location=req.arg("artifact_location"),
                                                      tags=req.arg("tags"))}

    @api.route("GET", ML + "/experiments/get", policy="authenticated")
    def get_experiment(req: Req) -> dict[str, Any]:
        return {"experiment": tr.get_experiment(req.user, req.require("experiment_id"))}

    @api.route("GET", ML + "/experiments/get-by-name", policy="authenticated")
    def get_experiment_by_name(req: Req) -> dict[str, Any]:
        return {"experiment": tr.get_experiment_by_name(req.user, req.require("experiment_name"))}

    @api.route("GET|POST", ML + "/experiments/search", policy="authenticated")
    def search_experiments(req: Req) -> dict[str, Any]:
        order_by = req.arg("order_by")
        if req.query_lists.get("order_by") and not (isinstance(req.body, dict) and "order_by" in req.body):
            order_by = req.query_lists["order_by"]
        found, token = tr.search_experiments(req.user, filter=req.arg("filter"), max_results=req.arg("max_results"),
                                             order_by=order_by, page_token=req.arg("page_token"),
                                             view_type=req.arg("view_type"))
        return {"experiments": found, **({"next_page_token": token} if token else {})}

    @api.route("POST", ML + "/experiments/update", policy="authenticated")
    def update_experiment(req: Req) -> dict[str, Any]:
        tr.update_experiment(req.user, req.require("experiment_id"), req.require("new_name"))
        return {}

    @api.route("POST", ML + "/experiments/delete", policy="authenticated")
    def delete_experiment(req: Req) -> dict[str, Any]:
        tr.set_experiment_stage(req.user, req.require("experiment_id"), "deleted")
        return {}

    @api.route("POST", ML + "/experiments/restore", policy="authenticated")
    def restore_experiment(req: Req) -> dict[str, Any]:
        tr.set_experiment_stage(req.user, req.require("experiment_id"), "active")
        return {}

    @api.route("POST", ML + "/experiments/set-experiment-tag", policy="authenticated")
    def set_experiment_tag(req: Req) -> dict[str, Any]:
        tr.set_experiment_tag(req.user, req.require("experiment_id"), req.require("key"), req.arg("value", ""))
        return {}

    @api.route("POST", ML + "/experiments/delete-experiment-tag", policy="authenticated")
    def delete_experiment_tag(req: Req) -> dict[str, Any]:
        tr.delete_experiment_tag(req.user, req.require("experiment_id"), req.require("key"))
        return {}

    @api.route("GET", "/api/2.0/permissions/experiments/{experiment_id}", policy="authenticated")
    def get_experiment_permissions(req: Req) -> dict[str, Any]:
        return tr.get_permissions(req.user, req.path["experiment_id"])  # type: ignore[no-any-return]

    @api.route("PUT", "/api/2.0/permissions/experiments/{experiment_id}", policy="authenticated")
    def set_experiment_permissions(req: Req) -> dict[str, Any]:
        return tr.set_permissions(req.user, req.path["experiment_id"],  # type: ignore[no-any-return]
                                  req.arg("access_control_list", []), replace=True)

    @api.route("PATCH", "/api/2.0/permissions/experiments/{experiment_id}", policy="authenticated")
    def update_experiment_permissions(req: Req) -> dict[str, Any]:
        return tr.set_permissions(req.user, req.path["experiment_id"],  # type: ignore[no-any-return]
                                  req.arg("access_control_list", []), replace=False)

    # -- runs ------------------------------------------------------------------------------------------
    def run_id(req: Req) -> Any:
        return req.arg("run_id") or req.require("run_uuid")

    @api.route("POST", ML + "/runs/create", policy="authenticated")
    def create_run(req: Req) -> dict[str, Any]:
        return {"run": tr.create_run(req.user, req.require("experiment_id"), start_time=req.arg("start_time"),
                                     tags=req.arg("tags"), run_name=req.arg("run_name"))}

    @api.route("GET", ML + "/runs/get", policy="authenticated")
    def get_run(req: Req) -> dict[str, Any]:
        return {"run": tr.get_run(req.user, run_id(req))}

    @api.route("POST", ML + "/runs/update", policy="authenticated")
    def update_run(req: Req) -> dict[str, Any]:
        return {"run_info": tr.update_run(req.user, run_id(req), status=req.arg("status"),
                                          end_time=req.arg("end_time"), run_name=req.arg("run_name"))}

    @api.route("POST", ML + "/runs/delete", policy="authenticated")
    def delete_run(req: Req) -> dict[str, Any]:
        tr.set_run_stage(req.user, req.require("run_id"), "deleted")
        return {}

    @api.route("POST", ML + "/runs/restore", policy="authenticated")
    def restore_run(req: Req) -> dict[str, Any]:
        tr.set_run_stage(req.user, req.require("run_id"), "active")
        return {}

    @api.route("POST", ML + "/runs/log-batch", policy="authenticated")
    def log_batch(req: Req) -> dict[str, Any]:
        tr.log_batch(req.user, run_id(req), metrics=req.arg("metrics"), params=req.arg("params"),
                     tags=req.arg("tags"))
        return {}

    @api.route("POST", ML + "/runs/log-metric", policy="authenticated")
    def log_metric(req: Req) -> dict[str, Any]:
        metric = {k: req.arg(k) for k in ("key", "value", "timestamp", "step", "model_id", "dataset_name",
                                          "dataset_digest")}
        tr.log_batch(req.user, run_id(req), metrics=[metric])
        return {}

    @api.route("POST", ML + "/runs/log-parameter", policy="authenticated")
    def log_parameter(req: Req) -> dict[str, Any]:
        tr.log_batch(req.user, run_id(req), params=[{"key": req.arg("key"), "value": req.arg("value")}])
        return {}

    @api.route("POST", ML + "/runs/set-tag", policy="authenticated")
    def set_tag(req: Req) -> dict[str, Any]:
        tr.log_batch(req.user, run_id(req), tags=[{"key": req.arg("key"), "value": req.arg("value", "")}])
        return {}

    @api.route("POST", ML + "/runs/delete-tag", policy="authenticated")
    def delete_tag(req: Req) -> dict[str, Any]:
        tr.delete_tag(req.user, req.require("run_id"), req.require("key"))
        return {}

    @api.route("POST", ML + "/runs/log-inputs", policy="authenticated")
    def log_inputs(req: Req) -> dict[str, Any]:
        tr.log_inputs(req.user, req.require("run_id"), datasets=req.arg("datasets"), models=req.arg("models"))
        return {}

    @api.route("POST", ML + "/runs/outputs", policy="authenticated")
    def log_outputs(req: Req) -> dict[str, Any]:
        tr.log_outputs(req.user, req.require("run_id"), req.arg("models"))
        return {}

    @api.route("POST", ML + "/runs/search", policy="authenticated")
    def search_runs(req: Req) -> dict[str, Any]:
        found, token = tr.search_runs(req.user, req.arg("experiment_ids"), filter=req.arg("filter"),
                                      run_view_type=req.arg("run_view_type"), max_results=req.arg("max_results"),
                                      order_by=req.arg("order_by"), page_token=req.arg("page_token"))
        return {"runs": found, **({"next_page_token": token} if token else {})}

    @api.route("GET", ML + "/metrics/get-history", policy="authenticated")
    def metric_history(req: Req) -> dict[str, Any]:
        found, token = tr.metric_history(req.user, run_id(req), req.require("metric_key"),
                                         page_token=req.arg("page_token"), max_results=req.arg("max_results"))
        return {"metrics": found, **({"next_page_token": token} if token else {})}

    # -- logged models (MLflow 3) ----------------------------------------------------------------------
    lm = ws.logged_models

    @api.route("POST", ML + "/logged-models", policy="authenticated")
    def create_logged_model(req: Req) -> dict[str, Any]:
        return {"model": lm.create(req.user, req.require("experiment_id"), name=req.arg("name"),
                                   model_type=req.arg("model_type"), source_run_id=req.arg("source_run_id"),
                                   params=req.arg("params"), tags=req.arg("tags"))}

    @api.route("POST", ML + "/logged-models/search", policy="authenticated")
    def search_logged_models(req: Req) -> dict[str, Any]:
        found, token = lm.search(req.user, req.arg("experiment_ids"), filter=req.arg("filter"),
                                 max_results=req.arg("max_results"), order_by=req.arg("order_by"),
                                 page_token=req.arg("page_token"))
        return {"models": found, **({"next_page_token": token} if token else {})}

    @api.route("GET", ML + "/logged-models/{model_id}", policy="authenticated")
    def get_logged_model(req: Req) -> dict[str, Any]:
        return {"model": lm.get(req.user, req.path["model_id"])}

    @api.route("PATCH", ML + "/logged-models/{model_id}", policy="authenticated")
    def finalize_logged_model(req: Req) -> dict[str, Any]:
        return {"model": lm.finalize(req.user, req.path["model_id"], req.require("status"))}

    @api.route("DELETE", ML + "/logged-models/{model_id}", policy="authenticated")
    def delete_logged_model(req: Req) -> dict[str, Any]:
        lm.delete(req.user, req.path["model_id"])
        return {}

    @api.route("PATCH", ML + "/logged-models/{model_id}/tags", policy="authenticated")
    def set_logged_model_tags(req: Req) -> dict[str, Any]:
        lm.set_tags(req.user, req.path["model_id"], req.arg("tags"))
        return {}

    @api.route("DELETE", ML + "/logged-models/{model_id}/tags/{key}", policy="authenticated")
    def delete_logged_model_tag(req: Req) -> dict[str, Any]:
        lm.delete_tag(req.user, req.path["model_id"], req.path["key"])
        return {}

    @api.route("POST", ML + "/logged-models/{model_id}/params", policy="authenticated")
    def log_logged_model_params(req: Req) -> dict[str, Any]:
        lm.log_params(req.user, req.path["model_id"], req.arg("params"))
        return {}

    # -- traces (V3, in experiments) and assessments ---------------------------------------------------
    traces = ws.traces
    V3 = "/api/3.0/mlflow/traces"

    def base_url(req: Req) -> str:
        return str(req.request.base_url)

    @api.route("POST", V3, policy="authenticated")
    def start_trace(req: Req) -> dict[str, Any]:
        return {"trace": {"trace_info": traces.start(req.user, req.require("trace"))}}

    @api.route("POST", V3 + "/search", policy="authenticated")
    def search_traces(req: Req) -> dict[str, Any]:
        found, token = traces.search(req.user, req.arg("locations"), filter=req.arg("filter"),
                                     max_results=req.arg("max_results"), order_by=req.arg("order_by"),
                                     page_token=req.arg("page_token"))
        return {"traces": found, **({"next_page_token": token} if token else {})}

    @api.route("POST", V3 + "/delete-traces", policy="authenticated")
    def delete_traces(req: Req) -> dict[str, Any]:
        return {"traces_deleted": traces.delete(req.user, req.require("experiment_id"), trace_ids=req.arg("request_ids")
                                                or req.arg("trace_ids"),
                                                max_timestamp_millis=req.arg("max_timestamp_millis"),
                                                max_traces=req.arg("max_traces"))}

    @api.route("GET", V3 + "/{trace_id}", policy="authenticated")
    def get_trace_info(req: Req) -> dict[str, Any]:
        return {"trace": {"trace_info": traces.get_info(req.user, req.path["trace_id"])}}

    @api.route("POST", ML + "/traces/link-to-run", policy="authenticated")
    def link_traces_to_run(req: Req) -> dict[str, Any]:
        traces.link_to_run(req.user, req.require("trace_ids"), req.require("run_id"))
        return {}

    @api.route("PATCH", ML + "/traces/{trace_id}/tags", policy="authenticated")
    def set_trace_tag(req: Req) -> dict[str, Any]:
        traces.set_tag(req.user, req.path["trace_id"], req.require("key"), req.arg("value", ""))
        return {}

    @api.route("DELETE", ML + "/traces/{trace_id}/tags", policy="authenticated")
    def delete_trace_tag(req: Req) -> dict[str, Any]:
        traces.delete_tag(req.user, req.path["trace_id"], req.require("key"))
        return {}

    @api.route("GET", ML + "/traces/{trace_id}/credentials-for-data-upload", policy="authenticated")
    def trace_upload_credentials(req: Req) -> dict[str, Any]:
        return traces.credentials(req.user, req.path["trace_id"], write=True, base_url=base_url(req))  # type: ignore[no-any-return]

    @api.route("GET", ML + "/traces/{trace_id}/credentials-for-data-download", policy="authenticated")
    def trace_download_credentials(req: Req) -> dict[str, Any]:
        return traces.credentials(req.user, req.path["trace_id"], write=False, base_url=base_url(req))  # type: ignore[no-any-return]

    @api.route("PUT", "/api/2.0/brickyard/signed/{token}", policy="public", body="file")
    def signed_upload(req: Req) -> Response:
        traces.use_signed(req.path["token"], write=True, data=req.file.read() if req.file else b"")
        return Response(status_code=200)

    @api.route("GET", "/api/2.0/brickyard/signed/{token}", policy="public", body="none")
    def signed_download(req: Req) -> Response:
        return Response(traces.use_signed(req.path["token"], write=False), media_type="application/json")

    @api.route("POST", V3 + "/{trace_id}/assessments", policy="authenticated")
    def create_assessment(req: Req) -> dict[str, Any]:
        return {"assessment": traces.create_assessment(req.user, req.path["trace_id"], req.require("assessment"))}

    @api.route("GET", V3 + "/{trace_id}/assessments/{assessment_id}", policy="authenticated")
    def get_assessment(req: Req) -> dict[str, Any]:
        return {"assessment": traces.get_assessment(req.user, req.path["trace_id"], req.path["assessment_id"])}

    @api.route("PATCH", V3 + "/{trace_id}/assessments/{assessment_id}", policy="authenticated")
    def update_assessment(req: Req) -> dict[str, Any]:
        return {"assessment": traces.update_assessment(req.user, req.path["trace_id"], req.path["assessment_id"],
                                                       req.require("assessment"), req.arg("update_mask"))}

    @api.route("DELETE", V3 + "/{trace_id}/assessments/{assessment_id}", policy="authenticated")
    def delete_assessment(req: Req) -> dict[str, Any]:
        traces.delete_assessment(req.user, req.path["trace_id"], req.path["assessment_id"])
        return {}

    # -- Unity Catalog model registry, as mlflow calls it (registry URI databricks-uc) -----------------
    reg = ws.registry
    UCR = ML + "/unity-catalog"

    @api.route("GET", UCR + "/registered-models:is-databricks-sdk-models-artifact-repository-enabled",
               policy="authenticated")
    def sdk_models_repository_enabled(req: Req) -> dict[str, Any]:
        return {"is_databricks_sdk_models_artifact_repository_enabled": True}  # files go through /Models/...

    @api.route("POST", UCR + "/registered-models/create", policy="authenticated")
    def uc_create_model(req: Req) -> dict[str, Any]:
        return {"registered_model": reg.create_model(req.user, req.require("name"), description=req.arg("description"),
                                                     tags=req.arg("tags"))}

    @api.route("GET", UCR + "/registered-models/get", policy="authenticated")
    def uc_get_model(req: Req) -> dict[str, Any]:
        return {"registered_model": reg.get_model(req.user, req.require("name"))}

    @api.route("GET", UCR + "/registered-models/search", policy="authenticated")
    def uc_search_models(req: Req) -> dict[str, Any]:
        found, token = reg.search_models(req.user, max_results=req.arg("max_results"), page_token=req.arg("page_token"))
        return {"registered_models": found, **({"next_page_token": token} if token else {})}

    @api.route("PATCH", UCR + "/registered-models/update", policy="authenticated")
    def uc_update_model(req: Req) -> dict[str, Any]:
        return {"registered_model": reg.update_model(req.user, req.require("name"),
                                                     description=req.arg("description"))}

    @api.route("DELETE", UCR + "/registered-models/delete", policy="authenticated")
    def uc_delete_model(req: Req) -> dict[str, Any]:
        reg.delete_model(req.user, req.require("name"))
        return {}

    @api.route("POST", UCR + "/registered-models/set-tag", policy="authenticated")
    def uc_set_model_tag(req: Req) -> dict[str, Any]:
        reg.set_model_tag(req.user, req.require("name"), req.require("key"), req.arg("value", ""))
        return {}

    @api.route("DELETE", UCR + "/registered-models/delete-tag", policy="authenticated")
    def uc_delete_model_tag(req: Req) -> dict[str, Any]:
        reg.delete_model_tag(req.user, req.require("name"), req.require("key"))
        return {}

    @api.route("POST", UCR + "/registered-models/alias", policy="authenticated")
    def uc_set_alias(req: Req) -> dict[str, Any]:
        reg.set_alias(req.user, req.require("name"), req.require("alias"), req.require("version"))
        return {}

    @api.route("DELETE", UCR + "/registered-models/alias", policy="authenticated")
    def uc_delete_alias(req: Req) -> dict[str, Any]:
        reg.delete_alias(req.user, req.require("name"), req.require("alias"))
        return {}

    @api.route("GET", UCR + "/registered-models/alias", policy="authenticated")
    def uc_version_by_alias(req: Req) -> dict[str, Any]:
        return {"model_version": reg.by_alias(req.user, req.require("name"), req.require("alias"))}

    @api.route("POST", UCR + "/model-versions/create", policy="authenticated")
    def uc_create_version(req: Req) -> dict[str, Any]:
        return {"model_version": reg.create_version(
            req.user, req.require("name"), source=req.arg("source"), run_id=req.arg("run_id"),
            description=req.arg("description"), tags=req.arg("tags"), model_id=req.arg("model_id"),
            run_experiment_id=req.arg("run_experiment_id"), dependencies=req.arg("model_version_dependencies"))}

    @api.route("POST", UCR + "/model-versions/finalize", policy="authenticated")
    def uc_finalize_version(req: Req) -> dict[str, Any]:
        return {"model_version": reg.finalize(req.user, req.require("name"), req.require("version"))}

    @api.route("GET", UCR + "/model-versions/get", policy="authenticated")
    def uc_get_version(req: Req) -> dict[str, Any]:
        return {"model_version": reg.get_version(req.user, req.require("name"), req.require("version"))}

    @api.route("GET", UCR + "/model-versions/search", policy="authenticated")
    def uc_search_versions(req: Req) -> dict[str, Any]:
        found, token = reg.search_versions(req.user, filter=req.arg("filter"), max_results=req.arg("max_results"),
                                           page_token=req.arg("page_token"))
        return {"model_versions": found, **({"next_page_token": token} if token else {})}

    @api.route("PATCH", UCR + "/model-versions/update", policy="authenticated")
    def uc_update_version(req: Req) -> dict[str, Any]:
        return {"model_version": reg.update_version(req.user, req.require("name"), req.require("version"),
                                                    description=req.arg("description"))}

    @api.route("DELETE", UCR + "/model-versions/delete", policy="authenticated")
    def uc_delete_version(req: Req) -> dict[str, Any]:
        reg.delete_version(req.user, req.require("name"), req.require("version"))
        return {}

    @api.route("POST", UCR + "/model-versions/set-tag", policy="authenticated")
    def uc_set_version_tag(req: Req) -> dict[str, Any]:
        reg.set_version_tag(req.user, req.require("name"), req.require("version"), req.require("key"),
                            req.arg("value", ""))
        return {}

    @api.route("DELETE", UCR + "/model-versions/delete-tag", policy="authenticated")
    def uc_delete_version_tag(req: Req) -> dict[str, Any]:
        reg.set_version_tag(req.user, req.require("name"), req.require("version"), req.require("key"), None)
        return {}

    @api.route("GET", UCR + "/model-versions/get-download-uri", policy="authenticated")
    def uc_download_uri(req: Req) -> dict[str, Any]:
        version = reg.get_version(req.user, req.require("name"), req.require("version"))
        return {"artifact_uri": version["storage_location"]}

    @api.route("POST", UCR + "/model-versions/generate-temporary-credentials", policy="authenticated")
    def uc_temporary_credentials(req: Req) -> dict[str, Any]:
        from ..core.errors import NotSupported

        raise NotSupported("Brickyard stores model files itself: upload them through the Files API under "
                           "/Models/<catalog>/<schema>/<model>/<version>/ (mlflow does this by itself)")

    @api.route("POST", UCR + "/model-versions/emit-lineage", policy="authenticated")
    def uc_emit_lineage(req: Req) -> dict[str, Any]:
        version = reg.get_version(req.user, req.require("name"), req.require("version"))  # checks access
        return {"model_version": version}

    # -- prompt registry in Unity Catalog ----------------------------------------------------------------
    pr = ws.prompts
    PR = UCR + "/prompts"

    @api.route("POST", PR, policy="authenticated")
    def create_prompt(req: Req) -> dict[str, Any]:
        prompt = req.obj_arg("prompt")
        return pr.create(req.user, req.arg("name") or prompt.get("name"),  # type: ignore[no-any-return]
                         description=prompt.get("description"), tags=prompt.get("tags"))

    @api.route("POST", PR + "/search", policy="authenticated")
    def search_prompts(req: Req) -> dict[str, Any]:
        found, token = pr.search(req.user, req.arg("catalog_schema"), max_results=req.arg("max_results"),
                                 page_token=req.arg("page_token"))
        return {"prompts": found, **({"next_page_token": token} if token else {})}

    @api.route("GET", PR + "/{name}", policy="authenticated")
    def get_prompt(req: Req) -> dict[str, Any]:
        return pr.get(req.user, req.path["name"])  # type: ignore[no-any-return]

    @api.route("PATCH", PR + "/{name}", policy="authenticated")
    def update_prompt(req: Req) -> dict[str, Any]:
        return pr.update(req.user, req.path["name"],  # type: ignore[no-any-return]
                         description=req.obj_arg("prompt").get("description"))

    @api.route("DELETE", PR + "/{name}", policy="authenticated")
    def delete_prompt(req: Req) -> dict[str, Any]:
        pr.delete(req.user, req.path["name"])
        return {}

    @api.route("POST", PR + "/{name}/tags", policy="authenticated")
    def set_prompt_tag(req: Req) -> dict[str, Any]:
        pr.set_tag(req.user, req.path["name"], req.require("key"), req.arg("value", ""))
        return {}

    @api.route("DELETE", PR + "/{name}/tags/{key}", policy="authenticated")
    def delete_prompt_tag(req: Req) -> dict[str, Any]:
        pr.set_tag(req.user, req.path["name"], req.path["key"], None)
        return {}

    @api.route("POST", PR + "/{name}/versions", policy="authenticated")
    def create_prompt_version(req: Req) -> dict[str, Any]:
        return pr.create_version(req.user, req.path["name"], req.require("prompt_version"))  # type: ignore[no-any-return]

    @api.route("POST", PR + "/{name}/versions/search", policy="authenticated")
    def search_prompt_versions(req: Req) -> dict[str, Any]:
        found, token = pr.versions(req.user, req.path["name"], max_results=req.arg("max_results"),
                                   page_token=req.arg("page_token"))
        return {"prompt_versions": found, **({"next_page_token": token} if token else {})}

    @api.route("GET", PR + "/{name}/versions/by-alias/{alias}", policy="authenticated")
    def get_prompt_by_alias(req: Req) -> dict[str, Any]:
        return pr.by_alias(req.user, req.path["name"], req.path["alias"])  # type: ignore[no-any-return]

    @api.route("GET", PR + "/{name}/versions/{version}", policy="authenticated")
    def get_prompt_version(req: Req) -> dict[str, Any]:
        return pr.get_version(req.user, req.path["name"], req.path["version"])  # type: ignore[no-any-return]

    @api.route("PATCH", PR + "/{name}/versions/{version}", policy="authenticated")
    def update_prompt_version(req: Req) -> dict[str, Any]:
        return pr.update_version(req.user, req.path["name"], req.path["version"],  # type: ignore[no-any-return]
                                 description=req.obj_arg("prompt_version").get("description"))

    @api.route("DELETE", PR + "/{name}/versions/{version}", policy="authenticated")
    def delete_prompt_version(req: Req) -> dict[str, Any]:
        pr.delete_version(req.user, req.path["name"], req.path["version"])
        return {}

    @api.route("POST", PR + "/{name}/versions/{version}/tags", policy="authenticated")
    def set_prompt_version_tag(req: Req) -> dict[str, Any]:
        pr.set_version_tag(req.user, req.path["name"], req.path["version"], req.require("key"), req.arg("value", ""))
        return {}

    @api.route("DELETE", PR + "/{name}/versions/{version}/tags/{key}", policy="authenticated")
    def delete_prompt_version_tag(req: Req) -> dict[str, Any]:
        pr.set_version_tag(req.user, req.path["name"], req.path["version"], req.path["key"], None)
        return {}

    @api.route("POST", PR + "/{name}/aliases/{alias}", policy="authenticated")
    def set_prompt_alias(req: Req) -> dict[str, Any]:
        pr.set_alias(req.user, req.path["name"], req.path["alias"], req.require("version"))
        return {}

    @api.route("DELETE", PR + "/{name}/aliases/{alias}", policy="authenticated")
    def delete_prompt_alias(req: Req) -> dict[str, Any]:
        pr.delete_alias(req.user, req.path["name"], req.path["alias"])
        return {}

    @api.route("POST", UCR + "/prompt-versions/links-to-models", policy="authenticated")
    @api.route("POST", UCR + "/prompt-versions/links-to-traces", policy="authenticated")
    @api.route("POST", UCR + "/prompt-versions/links-to-runs", policy="authenticated")
    def link_prompt_versions(req: Req) -> dict[str, Any]:
        for ref in req.list_arg("prompt_versions"):  # each named version must be readable by the caller
            if isinstance(ref, dict):
                pr.get_version(req.user, ref.get("name"), ref.get("version"))
        return {}
