"""The process a deployed model version runs in: ``python -m brickyard.serving._agent_worker MODEL_DIR``.

It loads the model once with ``mlflow.pyfunc.load_model`` (models from code run their file; that is how
they are defined), then answers requests one at a time. Protocol, one JSON object per line: requests on
stdin ``{"id", "input", "stream"}``; answers on the original stdout ``{"id", "output", "trace"}``, or for a
stream ``{"id", "event"}`` lines then ``{"id", "done": true, "trace"}``, or ``{"id", "error"}``. Anything the
model prints goes to stderr, so it cannot corrupt the protocol.

It runs the way Databricks Model Serving runs models (``IS_IN_DB_MODEL_SERVING_ENV``,
``ENABLE_MLFLOW_TRACING``): MLflow keeps each request's trace in memory under the request id, and the worker
returns it with the answer. Its credentials (``DATABRICKS_HOST`` / ``DATABRICKS_TOKEN``) are given by the
server: a token that acts, while a request is being answered, as the user who sent it -- or, for a model that
declares its resources, a credential scoped to them (``SERVING_CREDENTIALS_DIR``) and, with a user auth policy,
the caller's identity as the invoker token (see :mod:`brickyard.tracking._resources`).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from typing import Any


def main(model_dir: str) -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # print() in model code lands on stderr
    sys.stdout = sys.stderr

    def send(message: dict[str, Any]) -> None:
        try:
            line = json.dumps(message, default=_jsonable, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise NotJSON(f"the model's answer cannot be sent as JSON: {exc}") from None
        proto.write(line + "\n")
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
    task = (getattr(model.metadata, "metadata", None) or {}).get("task")
    send({"id": None, "ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        ident = str(request["id"])
        if request.get("invoker"):  # a user auth policy: ModelServingUserCredentials reads the caller's token here
            threading.main_thread().__dict__["invokers_token"] = request["invoker"]
        try:
            with set_prediction_context(Context(request_id=ident)):
                if request.get("stream"):
                    try:
                        events = iter(model.predict_stream(request["input"]))
                        first = next(events, None)
                    except Exception as exc:
                        # MLflow's ways of saying a model has no predict_stream (an MlflowException for
                        # wrapped models, a ResponsesAgent's own error): answered whole below
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
                elif isinstance(request["input"], dict) and (FORMATS & set(request["input"]) or (
                        task in LLM_TASKS and LLM_KEYS & set(request["input"]))):
                    send({"id": ident, "output": _score(model, request["input"]), "trace": pop_trace(ident)})
                else:
                    output = model.predict(request["input"])
                    send({"id": ident, "output": _plain(output), "trace": pop_trace(ident)})
        except ModelRaised as raised:
            send({"id": ident, "error": {"type": type(raised.exc).__name__, "message": _message(raised.exc)[:2000],
                                         "status": 500}, "trace": pop_trace(ident)})
        except Exception as exc:  # noqa: BLE001 - one failed request does not end the worker
            status = getattr(exc, "status", None) or (
                exc.get_http_status_code() if isinstance(exc, mlflow.exceptions.MlflowException) else 500)
            send({"id": ident, "error": {"type": type(exc).__name__, "message": _message(exc)[:2000],
                                         "status": status}, "trace": pop_trace(ident)})
    return 0


FORMATS = {"dataframe_split", "dataframe_records", "instances", "inputs"}  # Databricks' scoring input formats
#: completions and embeddings models (their MLmodel's task) take OpenAI-shaped bodies through MLflow's parser too
LLM_TASKS = {"llm/v1/completions", "llm/v1/embeddings"}
LLM_KEYS = {"prompt", "input"}


def _score(model: Any, body: dict[str, Any]) -> Any:
    """A Databricks scoring request (``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs``,
    with ``params``; or for a completions / embeddings model an OpenAI-shaped ``prompt`` / ``input`` body)
    through MLflow's own scoring-server parsing, so the model's signature is enforced exactly as MLflow serving
    enforces it; the answer is ``{"predictions": ...}``, or the model's own answer for the OpenAI shapes."""
    from mlflow.pyfunc.scoring_server import invocations

    answer = invocations(json.dumps(body), "application/json", _Watched(model), model.metadata.get_input_schema())
    if answer.status != 200:
        try:
            message = json.loads(answer.response).get("message") or answer.response
        except ValueError:
            message = answer.response
        raise ScoringError(str(message)[:2000], answer.status)
    return json.loads(answer.response)


class ModelRaised(BaseException):
    """The model's own exception, carried past the scoring parser (which would turn it into a generic 400)."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(str(exc))
        self.exc = exc


class _Watched:
    """A loaded model whose own failures come out as :class:`ModelRaised`; MLflow's refusals of the input
    (signature enforcement: INVALID_PARAMETER_VALUE / BAD_REQUEST) stay as they are, so they answer 400."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.metadata = model.metadata

    def predict(self, data: Any, params: Any = None) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self._model.predict(data, params=params)
        except MlflowException as exc:
            if exc.error_code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST"):
                raise
            raise ModelRaised(exc) from None
        except Exception as exc:  # noqa: BLE001 - the model's own error, reported as a 500 with its message
            raise ModelRaised(exc) from None


class ScoringError(Exception):
    """MLflow's scoring parser refused a request (400: it does not fit the signature) or the model failed (500)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = 400 if 400 <= status < 500 else 500


class NotJSON(Exception):
    status = 500


def _jsonable(value: Any) -> Any:
    """What JSON cannot hold but a model commonly returns: numpy and pandas values, dates."""
    plain = _plain(value)
    if plain is not value:
        return plain
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"a {type(value).__name__} is not JSON")


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
