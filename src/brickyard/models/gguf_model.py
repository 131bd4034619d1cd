"""A GGUF file as an MLflow model, so a fine-tuned or LoRA-merged model can be registered in Unity Catalog and
served like any model version::

    from brickyard.models import gguf_model
    with mlflow.start_run():
        info = gguf_model.log_model("qwen-support-merged.Q4_K_M.gguf", name="llm",
                                    registered_model_name="main.llm.support_qwen")

The model is an ordinary ``python_function`` model whose loader is this module: ``mlflow.pyfunc.load_model``
gives a chat model on llama.cpp anywhere Brickyard's ``local`` extra is installed, and a Brickyard serving
endpoint that serves the version runs it in the server on llama.cpp, like a GGUF from a volume. Nothing is
pickled: the version's files are the GGUF and the MLmodel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOADER = "brickyard.models.gguf_model"


def log_model(gguf: str | Path, *, name: str = "model", registered_model_name: str | None = None,
              n_ctx: int = 4096) -> Any:
    """Log ``gguf`` in the active MLflow run (with a chat signature and task ``llm/v1/chat``)."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types.llm import CHAT_MODEL_INPUT_SCHEMA, CHAT_MODEL_OUTPUT_SCHEMA

    path = Path(gguf)
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            from ..core.errors import InvalidParameterValue

            raise InvalidParameterValue(f"{path} is not a GGUF file")
    return mlflow.pyfunc.log_model(
        name=name, loader_module=LOADER, data_path=str(path), registered_model_name=registered_model_name,
        signature=ModelSignature(inputs=CHAT_MODEL_INPUT_SCHEMA, outputs=CHAT_MODEL_OUTPUT_SCHEMA),
        metadata={"task": "llm/v1/chat", "runtime": "llama.cpp", "n_ctx": n_ctx},
        pip_requirements=["brickyard[local]"])


def gguf_of(model_dir: Path, flavor: dict[str, Any]) -> Path | None:
    """The GGUF file of a logged model directory whose pyfunc loader is this module, or None."""
    if flavor.get("loader_module") != LOADER or not isinstance(flavor.get("data"), str):
        return None
    found = (model_dir / flavor["data"]).resolve()
    if not found.is_relative_to(model_dir.resolve()):
        return None
    return next(iter(sorted(found.glob("*.gguf"))), None) if found.is_dir() else found


class _Chat:
    """What ``mlflow.pyfunc.load_model`` returns for such a model: chat completions on llama.cpp."""

    def __init__(self, path: Path) -> None:
        from ._llamacpp import LlamaCppChat

        self.model = LlamaCppChat(path, model_id=path.stem)

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        if hasattr(model_input, "to_dict"):  # a one-row frame from MLflow's schema enforcement
            model_input = {k: v[0] for k, v in model_input.to_dict(orient="list").items()}
        request = {**dict(model_input), **(params or {})}
        return self.model.chat(request)


def _load_pyfunc(data_path: str) -> _Chat:
    path = Path(data_path)
    if path.is_dir():
        path = sorted(path.glob("*.gguf"))[0]
    return _Chat(path)
