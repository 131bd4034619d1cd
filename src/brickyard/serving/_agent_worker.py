"""The process a deployed model version runs in: ``python -m brickyard.serving._agent_worker MODEL_DIR``.

It loads the model once with ``mlflow.pyfunc.load_model`` (models from code run their file; that is how
they are defined), then answers requests one at a time. Protocol, one JSON object per line: requests on
stdin ``{"id", "input", "stream"}``; answers on the original stdout ``{"id", "output", "trace"}``, or for a
stream ``{"id", "event"}`` lines then ``{"id", "done": true, "trace"}``, or ``{"id", "error"}``. Anything the
model prints goes to stderr, so it cannot corrupt the protocol.

It runs the way Databricks Model Serving runs models (``IS_IN_DB_MODEL_SERVING_ENV``,
``ENABLE_MLFLOW_TRACING``): MLflow keeps each request's trace in memory under the request id, and the worker
returns it with the answer. Its credentials (``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN``) are given by the
server: a token that acts, while a request is being answered, as the user who sent it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any


def main(model_dir: str) -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # print() in model code lands on stderr
    sys.stdout = sys.stderr

    def send(message: dict[str, Any]) -> None:
        proto.write(json.dumps(message, default=str) + "\n")
        proto.flush()

    try:
        import mlflow
        from mlflow.pyfunc.context import Context, set_prediction_context
        from mlflow.tracing.export.inference_table import pop_trace

        model = mlflow.pyfunc.load_model(model_dir)
    except Exception as exc:  # noqa: BLE001 - the server reports why the endpoint cannot start
        send({"id": None, "error": {"type": type(exc).__name__, "message": str(exc)[:2000],
                                    "trace": traceback.format_exc()[-4000:]}})
        return 1
    send({"id": None, "ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        ident = str(request["id"])
        try:
            with set_prediction_context(Context(request_id=ident)):
                if request.get("stream"):
                    try:
                        events = iter(model.predict_stream(request["input"]))
                        first = next(events, None)
                    except mlflow.exceptions.MlflowException as exc:
                        if "predict_stream" not in str(exc):
                            raise
                        events, first = iter(()), None  # no streaming: the whole answer, item by item
                        for item in (_plain(model.predict(request["input"])) or {}).get("output") or []:
                            send({"id": ident, "event": {"type": "response.output_item.done", "item": item}})
                    if first is not None:
                        send({"id": ident, "event": _plain(first)})
                    for event in events:
                        send({"id": ident, "event": _plain(event)})
                    send({"id": ident, "done": True, "trace": pop_trace(ident)})
                elif isinstance(request["input"], dict) and FORMATS & set(request["input"]):
                    send({"id": ident, "output": _score(model, request["input"]), "trace": pop_trace(ident)})
                else:
                    output = model.predict(request["input"])
                    send({"id": ident, "output": _plain(output), "trace": pop_trace(ident)})
        except Exception as exc:  # noqa: BLE001 - one failed request does not end the worker
            status = exc.get_http_status_code() if isinstance(exc, mlflow.exceptions.MlflowException) else 500
            send({"id": ident, "error": {"type": type(exc).__name__, "message": _message(exc)[:2000],
                                         "status": status}, "trace": pop_trace(ident)})
    return 0


FORMATS = {"dataframe_split", "dataframe_records", "instances", "inputs"}  # Databricks' scoring input formats


def _score(model: Any, body: dict[str, Any]) -> Any:
    """A Databricks scoring request (``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs``,
    with ``params``) through MLflow's own scoring-server parsing, so the model's signature is enforced exactly
    as MLflow serving enforces it; the answer is ``{"predictions": ...}``."""
    from mlflow.pyfunc.scoring_server import invocations

    answer = invocations(json.dumps(body), "application/json", model, model.metadata.get_input_schema())
    if answer.status != 200:
        raise ValueError(str(answer.response)[:2000])
    return json.loads(answer.response)


def _message(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc)


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_none=True)
    if hasattr(value, "to_dict") and not isinstance(value, dict):
        try:
            return value.to_dict(orient="records")
        except TypeError:
            return value.to_dict()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
