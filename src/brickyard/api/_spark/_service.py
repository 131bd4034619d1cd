"""Spark Connect's gRPC service (``spark.connect.SparkConnectService``) over the workspace's SQL engine.

Enough of it for ``DatabricksSession`` to work the way Databricks notebooks and tools use it locally:
``spark.sql(...)`` (statements with named arguments; queries stay lazy, as in Spark, and run when collected),
``spark.table(...)``, ``collect``/``toPandas``/``count``/``limit``/``show``, the session configuration,
``spark.version``, interrupting and re-attaching to an operation. Every call authenticates with the bearer
token in its metadata (the same tokens as the REST API, scoped model credentials included) and runs as
that principal; sessions belong to the principal that opened them.

The server listens on a loopback port; :mod:`.._tls` puts it on the workspace's port beside the REST API.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ...core.errors import BrickyardError, InvalidParameterValue, NotFound, PermissionDenied, Unauthenticated
from ._plan import Unsupported, arrow_stream, evaluate, parameters, spark_compatible, spark_schema
from ._proto import M

log = logging.getLogger("brickyard.spark_connect")

SERVICE = "spark.connect.SparkConnectService"
#: what ``spark.version`` says: the Spark of Databricks Runtime 16.1, and the runtime databricks-connect checks
SPARK_VERSION = "3.5.0"
DBR_VERSION = "16.1.x-scala2.12"
MAX_SESSIONS_PER_PRINCIPAL = 64
SESSION_IDLE_SECONDS = 3600.0
OPERATIONS_KEPT = 256
ROWS_PER_BATCH = 8192
MAX_MESSAGE_BYTES = 128 << 20
#: what the client asks for when it reads results (the session's time zone, Arrow settings); others are unset
DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_LTZ",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.repl.eagerEval.enabled": "false",
    "spark.sql.repl.eagerEval.maxNumRows": "20",
    "spark.sql.repl.eagerEval.truncate": "20",
    "spark.sql.execution.arrow.maxRecordsPerBatch": str(ROWS_PER_BATCH),
    "spark.sql.execution.pandas.convertToArrowArraySafely": "false",
    "spark.sql.execution.pandas.inferPandasDictAsMap": "false",
    "spark.sql.pyspark.inferNestedDictAsStruct.enabled": "false",
    "spark.sql.pyspark.legacy.inferArrayTypeFromFirstElement.enabled": "false",
    "spark.sql.pyspark.legacy.inferMapTypeFromFirstPair.enabled": "false",
    "spark.sql.session.localRelationCacheThreshold": str(64 << 20),
    "spark.sql.execution.arrow.pyspark.selfDestruct.enabled": "false",
}
_GRPC_CODES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               409: "ALREADY_EXISTS", 413: "RESOURCE_EXHAUSTED", 429: "RESOURCE_EXHAUSTED", 501: "UNIMPLEMENTED",
               503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


@dataclass
class Operation:
    id: str
    tags: tuple[str, ...]
    cancelled: bool = False
    done: bool = False


@dataclass
class Session:
    id: str
    server_side_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    conf: dict[str, str] = field(default_factory=dict)
    operations: OrderedDict[str, Operation] = field(default_factory=OrderedDict)
    used: float = field(default_factory=time.monotonic)


class SparkConnect:
    """The service's logic: one instance per server, over a workspace."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._sessions: dict[tuple[str, str], Session] = {}
        self._lock = threading.Lock()

    # -- who and which session ---------------------------------------------------------------------------------
    def principal(self, metadata: dict[str, str]) -> Any:
        header = metadata.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("no credentials: send 'authorization: Bearer <token>' metadata")
        who = self.ws.identity.cached(token.strip()) or self.ws.identity.authenticate(token.strip())
        if who.scope is not None or (who.api_scopes is not None and "sql" not in who.api_scopes):
            raise PermissionDenied("this credential is limited to an app's or a model's resources; Spark Connect "
                                   "needs a token of your own (or an app token with the sql scope)")
        return who

    def session(self, p: Any, request: Any) -> Session:
        session_id = request.session_id
        try:
            uuid.UUID(session_id)
        except ValueError:
            raise InvalidParameterValue("[INVALID_HANDLE.FORMAT] session_id must be a UUID",
                                        error_code="INVALID_HANDLE") from None
        now = time.monotonic()
        with self._lock:
            for key in [k for k, s in self._sessions.items() if now - s.used > SESSION_IDLE_SECONDS]:
                del self._sessions[key]
            session = self._sessions.get((p.id, session_id))
            if session is None:
                mine = [k for k in self._sessions if k[0] == p.id]
                if len(mine) >= MAX_SESSIONS_PER_PRINCIPAL:
                    oldest = min(mine, key=lambda k: self._sessions[k].used)
                    del self._sessions[oldest]
                session = self._sessions[(p.id, session_id)] = Session(session_id)
            session.used = now
        observed = getattr(request, "client_observed_server_side_session_id", "")
        if observed and observed != session.server_side_id:
            raise InvalidParameterValue("[INVALID_HANDLE.SESSION_CHANGED] the server-side session is gone (the server "
                                        "restarted or the session expired): create a new session",
                                        error_code="INVALID_HANDLE")
        return session

    # -- ExecutePlan -------------------------------------------------------------------------------------------
    def execute(self, p: Any, session: Session, request: Any) -> Iterator[Any]:
        op_id = request.operation_id if request.HasField("operation_id") else str(uuid.uuid4())
        with self._lock:
            if op_id in session.operations:
                raise InvalidParameterValue(f"[INVALID_HANDLE.OPERATION_ALREADY_EXISTS] operation {op_id} exists",
                                            error_code="INVALID_HANDLE")
            op = session.operations[op_id] = Operation(op_id, tuple(request.tags))
            while len(session.operations) > OPERATIONS_KEPT:
                session.operations.popitem(last=False)

        def reply(**fields: Any) -> Any:
            return M["ExecutePlanResponse"](session_id=session.id, server_side_session_id=session.server_side_id,
                                            operation_id=op_id, response_id=str(uuid.uuid4()), **fields)

        def run(sql: str, params: list[dict[str, Any]]) -> pa.Table:
            if op.cancelled:
                raise BrickyardError("[OPERATION_CANCELED] the operation was interrupted", error_code="CANCELLED")
            return self.ws.sql.execute(p, sql, parameters=params, statement_id=op_id,
                                       cancelled=lambda: op.cancelled).table

        try:
            plan = request.plan
            if plan.HasField("command"):
                if not plan.command.HasField("sql_command"):
                    raise Unsupported("only SQL commands (spark.sql) are supported among Spark Connect commands")
                yield reply(sql_command_result=M["SqlCommandResult"](relation=self._sql_command(
                    plan.command.sql_command, run)))
            elif plan.HasField("root"):
                table = spark_compatible(evaluate(plan.root, run))
                schema = M["DataType"]()
                spark_schema(table.schema, schema)
                yield reply(schema=schema)
                yield from (reply(arrow_batch=batch) for batch in _batches(table))
            else:
                raise InvalidParameterValue("the plan has neither a relation nor a command")
            yield reply(result_complete=M["ResultComplete"]())
        finally:
            op.done = True

    def _sql_command(self, cmd: Any, run: Any) -> Any:
        """``spark.sql``: a query comes back as itself, to run when collected (Spark's way: ``spark.sql(q)
        .limit(5)`` reads five rows); any other statement runs now and its rows come back with it."""
        source = cmd  # older clients put the text in the command, newer ones a SQL relation in ``input``
        if cmd.HasField("input"):
            if not cmd.input.HasField("sql"):
                raise Unsupported("spark.sql() over DataFrames (keyword arguments that are DataFrames) is not "
                                  "supported: name tables in the statement")
            source = cmd.input.sql
        text = source.query if source is not cmd else cmd.sql
        params = parameters(source)
        rel = M["Relation"]()
        if self.ws.sql.is_query(text):
            rel.sql.query = text
            rel.sql.args.extend(source.args)
            rel.sql.named_arguments.extend(source.named_arguments)
            return rel
        table = spark_compatible(run(text, params))
        rel.local_relation.data = arrow_stream(table)
        return rel

    # -- AnalyzePlan, Config, Interrupt, Release -----------------------------------------------------------------
    def analyze(self, p: Any, session: Session, request: Any) -> Any:
        out = M["AnalyzePlanResponse"](session_id=session.id, server_side_session_id=session.server_side_id)
        if request.HasField("spark_version"):
            out.spark_version.version = SPARK_VERSION
            out.spark_version.dbr_version = DBR_VERSION
        elif request.HasField("schema"):
            table = spark_compatible(self._rows(p, request.schema.plan))
            spark_schema(table.schema, out.schema.schema)
        elif request.HasField("is_local"):
            out.is_local.value = request.is_local.plan.root.HasField("local_relation")
        elif request.HasField("is_streaming"):
            out.is_streaming.value = False
        elif request.HasField("explain") or request.HasField("tree_string"):
            holder = request.explain if request.HasField("explain") else request.tree_string
            table = self._rows(p, holder.plan)
            text = "\n".join(f" |-- {f.name}: {f.type} (nullable = {str(f.nullable).lower()})" for f in table.schema)
            (out.explain if request.HasField("explain") else out.tree_string).text = "root\n" + text + "\n"
        else:
            raise Unsupported("this AnalyzePlan request is not supported here")
        return out

    def _rows(self, p: Any, plan: Any) -> pa.Table:
        if not plan.HasField("root"):
            raise InvalidParameterValue("analysis needs a relation")
        return evaluate(plan.root, lambda sql, params: self.ws.sql.execute(p, sql, parameters=params).table)

    def config(self, session: Session, request: Any) -> Any:
        op = request.operation
        out = M["ConfigResponse"](session_id=session.id, server_side_session_id=session.server_side_id)
        conf = {**DEFAULT_CONF, **session.conf}
        if op.HasField("set"):
            for pair in op.set.pairs:
                if len(session.conf) >= 1000 or len(pair.key) > 1000 or len(pair.value) > 100_000:
                    raise InvalidParameterValue("too many or too large configuration values")
                session.conf[pair.key] = pair.value
        elif op.HasField("get") or op.HasField("get_option"):
            for key in (op.get.keys if op.HasField("get") else op.get_option.keys):
                pair = out.pairs.add(key=key)
                if key in conf:
                    pair.value = conf[key]
        elif op.HasField("get_with_default"):
            for given in op.get_with_default.pairs:
                pair = out.pairs.add(key=given.key)
                if given.key in conf:
                    pair.value = conf[given.key]
                elif given.HasField("value"):
                    pair.value = given.value
        elif op.HasField("get_all"):
            prefix = op.get_all.prefix
            out.pairs.extend(M["KeyValue"](key=k, value=v) for k, v in sorted(conf.items()) if k.startswith(prefix))
        elif op.HasField("unset"):
            for key in op.unset.keys:
                session.conf.pop(key, None)
        elif op.HasField("is_modifiable"):
            out.pairs.extend(M["KeyValue"](key=k, value="true") for k in op.is_modifiable.keys)
        return out

    def interrupt(self, session: Session, request: Any) -> Any:
        out = M["InterruptResponse"](session_id=session.id, server_side_session_id=session.server_side_id)
        kind = request.interrupt_type  # 1 all, 2 by tag, 3 by operation id
        with self._lock:
            for op in session.operations.values():
                hit = (kind == 1 or (kind == 2 and request.operation_tag in op.tags)
                       or (kind == 3 and op.id == request.operation_id))
                if hit and not op.done:
                    op.cancelled = True
                    out.interrupted_ids.append(op.id)
        return out

    def reattach(self, session: Session, request: Any) -> Iterator[Any]:
        op = session.operations.get(request.operation_id)
        if op is None:
            raise NotFound(f"[INVALID_HANDLE.OPERATION_NOT_FOUND] operation {request.operation_id} is not known",
                           error_code="INVALID_HANDLE")
        if not op.done:  # its stream is still being written: there is nothing to resend
            raise InvalidParameterValue("[INVALID_HANDLE.OPERATION_ABANDONED] the operation's results were not kept",
                                        error_code="INVALID_HANDLE")
        yield M["ExecutePlanResponse"](session_id=session.id, server_side_session_id=session.server_side_id,
                                       operation_id=op.id, response_id=str(uuid.uuid4()),
                                       result_complete=M["ResultComplete"]())

    def release_execute(self, session: Session, request: Any) -> Any:
        return M["ReleaseExecuteResponse"](session_id=session.id, server_side_session_id=session.server_side_id,
                                           operation_id=request.operation_id)

    def release_session(self, p: Any, request: Any) -> Any:
        with self._lock:
            gone = self._sessions.pop((p.id, request.session_id), None)
        return M["ReleaseSessionResponse"](session_id=request.session_id,
                                           server_side_session_id=gone.server_side_id if gone else "")


def _batches(table: pa.Table) -> Iterator[Any]:
    """Arrow IPC streams of at most ROWS_PER_BATCH rows (and one empty one for an empty result)."""
    offset = 0
    batches = table.combine_chunks().to_batches(max_chunksize=ROWS_PER_BATCH) or [
        pa.RecordBatch.from_pylist([], schema=table.schema)]
    for batch in batches:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, batch.schema) as writer:
            writer.write_batch(batch)
        yield M["ArrowBatch"](row_count=batch.num_rows, data=sink.getvalue().to_pybytes(), start_offset=offset)
        offset += batch.num_rows


# -- the gRPC server -------------------------------------------------------------------------------------------
def start_server(ws: Any, *, threads: int = 16) -> tuple[Any, int]:
    """A Spark Connect server on a free loopback port: (grpc server, port). Stop it with ``server.stop(grace)``."""
    try:
        import grpc
    except ImportError:
        raise InvalidParameterValue("Spark Connect needs grpcio: pip install 'brickyard[spark-connect]'") from None
    service = SparkConnect(ws)

    def status(exc: BaseException) -> tuple[Any, str]:
        if isinstance(exc, BrickyardError):
            code = _GRPC_CODES.get(exc.http_status, "INTERNAL")
            return getattr(grpc.StatusCode, code), f"[{exc.error_code}] {exc.message}"
        log.exception("Spark Connect call failed")
        return grpc.StatusCode.INTERNAL, f"[INTERNAL_ERROR] {type(exc).__name__}: the server could not run this"

    def unary(method: Any, with_session: bool = True) -> Any:
        def handler(request: Any, context: Any) -> Any:
            try:
                p = service.principal(dict(context.invocation_metadata()))
                if with_session:
                    return method(p, service.session(p, request), request)
                return method(p, request)
            except Exception as exc:  # every failure becomes a gRPC status the client shows
                context.abort(*status(exc))
        return handler

    def streaming(method: Any) -> Any:
        def handler(request: Any, context: Any) -> Iterator[Any]:
            try:
                p = service.principal(dict(context.invocation_metadata()))
                yield from method(p, service.session(p, request), request)
            except Exception as exc:  # every failure becomes a gRPC status the client shows
                context.abort(*status(exc))
        return handler

    def refuse(what: str) -> Any:
        def handler(request: Any, context: Any) -> Any:
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          f"[UNSUPPORTED_OPERATION] {what} is not supported by Brickyard's Spark Connect (SQL only)")
        return handler

    def serialize(message: Any) -> bytes:
        return message.SerializeToString()

    def rpc(kind: str, fn: Any, request: str) -> Any:
        make = grpc.unary_stream_rpc_method_handler if kind == "stream" else grpc.unary_unary_rpc_method_handler
        return make(fn, request_deserializer=M[request].FromString, response_serializer=serialize)

    handlers = {
        "ExecutePlan": rpc("stream", streaming(service.execute), "ExecutePlanRequest"),
        "ReattachExecute": rpc("stream", streaming(lambda p, s, r: service.reattach(s, r)), "ReattachExecuteRequest"),
        "AnalyzePlan": rpc("unary", unary(service.analyze), "AnalyzePlanRequest"),
        "Config": rpc("unary", unary(lambda p, s, r: service.config(s, r)), "ConfigRequest"),
        "Interrupt": rpc("unary", unary(lambda p, s, r: service.interrupt(s, r)), "InterruptRequest"),
        "ReleaseExecute": rpc("unary", unary(lambda p, s, r: service.release_execute(s, r)), "ReleaseExecuteRequest"),
        "ReleaseSession": rpc("unary", unary(service.release_session, with_session=False), "ReleaseSessionRequest"),
        "FetchErrorDetails": rpc("unary", refuse("FetchErrorDetails"), "FetchErrorDetailsRequest"),
        "AddArtifacts": grpc.stream_unary_rpc_method_handler(refuse("Adding artifacts (UDF code, jars)")),
        "ArtifactStatus": grpc.unary_unary_rpc_method_handler(refuse("ArtifactStatus")),
    }
    server = grpc.server(ThreadPoolExecutor(max_workers=threads, thread_name_prefix="spark-connect"),
                         handlers=[grpc.method_handlers_generic_handler(SERVICE, handlers)],
                         options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                  ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port
