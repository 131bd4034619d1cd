"""Evaluation runs the server makes and compares (``brickyard eval run | compare``): the harness wired to
the workspace: predictions through the AI Gateway as the caller (so the endpoint's permissions, limits,
usage and inference table apply), judges through ``chat-assessments``' logic, traces, assessments and the run
in the tracking store, rows from an evaluation dataset (a UC table, read with the caller's SELECT) or a file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..catalog import Principal
from ..core.errors import AlreadyExists, BrickyardError, InvalidParameterValue, NotFound
from ..core.ids import now_ms
from ._harness import Harness, Prediction, Row, Scored, Services, check_scorers, numeric, summarise
from ._synthetic import generate_answer, generate_questions, not_configured, records_from_chunks

log = logging.getLogger(__name__)
MAX_FILE_BYTES = 200 * 1024 * 1024


def rows_from_file(path: Path) -> list[Row]:
    """Rows of a ``.jsonl`` (one record per line) or ``.json`` (a list of records) file."""
    if not path.is_file():
        raise InvalidParameterValue(f"{path} is not a file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise InvalidParameterValue(f"{path} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            records = json.loads(text)
        except ValueError as exc:
            raise InvalidParameterValue(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(records, list):
            raise InvalidParameterValue(f"{path} must hold a list of records")
        return [Row.parse(r, f"{path} record {i + 1}") for i, r in enumerate(records)]
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise InvalidParameterValue(f"{path} line {number} is not valid JSON: {exc}") from None
        rows.append(Row.parse(record, f"{path} line {number}"))
    return rows


def _text_of(result: dict[str, Any]) -> str:
    """The answer text of a chat completion, a Responses API response or a model's predictions."""
    choices = result.get("choices")
    if isinstance(choices, list) and choices:
        message = choices[0].get("message") or {}
        return str(message.get("content") or "")
    output = result.get("output")
    if isinstance(output, list):
        parts = [c.get("text", "") for item in output if isinstance(item, dict) and item.get("type") == "message"
                 for c in item.get("content") or [] if isinstance(c, dict)]
        return "".join(str(p) for p in parts)
    if "predictions" in result:
        return result["predictions"] if isinstance(result["predictions"], str) else json.dumps(result["predictions"])
    return json.dumps(result)


MAX_TOOL_ROUNDS = 5
MAX_TOOL_CALLS = 8
MAX_TOOL_SERVERS = 8


def _delta_text(chunk: Any) -> str:
    """The text a streamed chunk adds: a chat completion chunk's delta, or a Responses API text delta."""
    if isinstance(chunk, bytes | str):
        raw = chunk.decode() if isinstance(chunk, bytes) else chunk
        texts = []
        for line in raw.splitlines():
            line = line.strip()
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                try:
                    texts.append(_delta_text(json.loads(line[5:])))
                except ValueError:
                    continue
        return "".join(texts)
    if not isinstance(chunk, dict):
        return ""
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta") or choices[0].get("message") or {}
        return str(delta.get("content") or "")
    if chunk.get("type") == "response.output_text.delta":
        return str(chunk.get("delta") or "")
    return ""


def _request(task: str, messages: list[dict[str, Any]], *, with_trace: bool = False) -> dict[str, Any]:
    """The request body an endpoint of ``task`` takes for a conversation."""
    body: dict[str, Any] = {"input": messages} if task == "agent/v1/responses" else {"messages": messages}
    if with_trace and task.startswith("agent/"):
        body["databricks_options"] = {"return_trace": True}
    return body


class Evaluations:
    def __init__(self, *, gateway: Any, serving: Any, tracking: Any, traces: Any, datasets: Any, prices: Any,
                 assess: Callable[[Principal, Any], dict[str, Any]], judge_endpoint: Callable[[], str | None],
                 judge: Callable[[Principal], Callable[[list[dict[str, str]]], str] | None]) -> None:
        self.gateway = gateway
        #: managed MCP servers and the proxy to external ones, for the Playground's tools: given by the workspace
        self.mcp: Any = None
        self.mcp_external: Any = None
        self.serving = serving
        self.tracking = tracking
        self.traces = traces
        self.datasets = datasets
        self.prices = prices
        self._assess = assess
        self._judge_endpoint = judge_endpoint
        self._judge = judge  # principal -> the judge model's chat function as them, or None

    def rows(self, p: Principal, source: str) -> list[Row]:
        """A file (.jsonl or .json) or an evaluation dataset's UC table (catalog.schema.table)."""
        path = Path(source)
        if path.suffix.lower() in (".jsonl", ".json", ".ndjson") or path.exists():
            return rows_from_file(path)
        if len(source.split(".")) != 3:
            raise InvalidParameterValue(f"{source[:200]!r} is neither a file nor a table name (catalog.schema.table)")
        return [Row.parse(r, f"{source} record {r.get('dataset_record_id')}") for r in self.datasets.rows(p, source)]

    def _experiment(self, p: Principal, name: str | None) -> str:
        name = name or f"/Users/{p.name}/evaluations"
        try:
            return str(self.tracking.get_experiment_by_name(p, name)["experiment_id"])
        except NotFound:
            return str(self.tracking.create_experiment(p, name))

    def endpoint_of_model(self, p: Principal, model_uri: str) -> str:
        """The serving endpoint (one ``p`` can see) that serves ``models:/catalog.schema.model/version``: a model
        is evaluated the way it answers in production, through its endpoint and the AI Gateway."""
        uri = model_uri.removeprefix("models:/")
        name, _, version = uri.rpartition("/")
        if not uri or not name or not version or len(name.split(".")) != 3:
            raise InvalidParameterValue("the model must be models:/catalog.schema.model/version")
        for ep in self.serving.list(p):
            for entity in ((ep.get("config") or {}).get("served_entities") or []):
                if entity.get("entity_name") == name and str(entity.get("entity_version")) == version:
                    return str(ep["name"])
        raise InvalidParameterValue(f"no serving endpoint you can see serves {name} version {version}: serve it first "
                                    "(databricks.agents.deploy, or w.serving_endpoints.create) and evaluate that "
                                    "endpoint", error_code="RESOURCE_DOES_NOT_EXIST")

    def ask(self, p: Principal, endpoint: str, messages: list[dict[str, str]]) -> tuple[str, str | None]:
        """(answer text, trace id) of one conversation turn sent to ``endpoint`` as ``p`` through the gateway."""
        task = str(self.serving.get(p, endpoint).get("task") or "")
        agent = task.startswith("agent/")
        inv = self.gateway.call(p, endpoint, _request(task, messages), route="invocations" if agent else "chat")
        result = dict(inv.result)
        return _text_of(result), (result.get("databricks_output") or {}).get("trace_id")

    def converse(self, p: Principal, endpoint: str, messages: list[dict[str, str]], *,
                 params: dict[str, Any] | None = None, tools: list[str] | None = None) -> dict[str, Any]:
        """One Playground turn: ``messages`` (a system prompt first, if any) sent to ``endpoint`` as ``p`` through
        the AI Gateway with ``params`` (temperature, max_tokens), and recorded as a trace in ``p``'s Playground
        experiment. ``tools`` names MCP servers whose tools the model may call: managed ones
        (``functions/catalog/schema``, ``vector-search/catalog/schema``) and external ones registered as UC
        connections (``external/connection``); each call runs as ``p`` and is a span of the trace. Returns the
        answer, the trace id, the experiment id and the seconds it took."""
        started_ns, started = time.time_ns(), time.perf_counter()
        body = self._turn_body(p, endpoint, messages, params)
        sessions: dict[str, Any] = {}
        try:
            offered = self._tools(p, tools or [], sessions)
            return self._converse(p, endpoint, messages, body, offered, started_ns, started)
        finally:
            for session in sessions.values():
                session.close()

    def _converse(self, p: Principal, endpoint: str, messages: list[dict[str, str]], body: dict[str, Any],
                  offered: dict[str, dict[str, Any]], started_ns: int, started: float) -> dict[str, Any]:
        spans: list[dict[str, Any]] = []
        answer, error, tokens_in, tokens_out = None, None, 0, 0
        try:
            route = self._route(p, endpoint)
            conversation = list(body.get("messages") or [])
            for _ in range(MAX_TOOL_ROUNDS + 1):
                request = {**body, "messages": conversation} if offered else body
                if offered:
                    request["tools"] = [t["spec"] for t in offered.values()]
                result = dict(self.gateway.call(p, endpoint, request, route=route).result)
                usage = result.get("usage") or {}
                tokens_in += int(usage.get("prompt_tokens") or 0)
                tokens_out += int(usage.get("completion_tokens") or 0)
                message = ((result.get("choices") or [{}])[0] or {}).get("message") or {}
                calls = message.get("tool_calls") or [] if offered else []
                if not calls:
                    answer = _text_of(result)
                    break
                conversation.append({"role": "assistant", "content": message.get("content"), "tool_calls": calls})
                for call in calls[:MAX_TOOL_CALLS]:
                    output = self._call_tool(p, offered, call, spans)
                    conversation.append({"role": "tool", "tool_call_id": call.get("id"), "content": output})
            else:
                error = f"the model still asked for tools after {MAX_TOOL_ROUNDS} rounds"
        except BrickyardError as exc:
            error = f"{exc.error_code}: {exc.message}"
        pred = Prediction(answer, time.perf_counter() - started, tokens_in, tokens_out, model=endpoint, error=error,
                          spans=spans)
        return self._record_turn(p, endpoint, messages, pred, started_ns)

    def _tools(self, p: Principal, servers: list[str], sessions: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The tools of the named MCP servers, by tool name: their OpenAI spec and where they live. External
        servers' sessions are opened into ``sessions`` (the caller closes them)."""
        if self.mcp is None and servers:
            raise InvalidParameterValue("this workspace serves no MCP tools")
        out: dict[str, dict[str, Any]] = {}
        for server in servers[:MAX_TOOL_SERVERS]:
            kind, _, rest = str(server).partition("/")
            if kind == "external" and rest and "/" not in rest:
                sessions[rest] = session = self.mcp_external.session(p, rest)
                found, where = session.tools(), ("external", rest, "")
            else:
                catalog, _, schema = rest.partition("/")
                if kind not in ("functions", "vector-search") or not catalog or not schema or "/" in schema:
                    raise InvalidParameterValue("tools come from functions/<catalog>/<schema>, vector-search/"
                                                f"<catalog>/<schema> or external/<connection>, not {str(server)[:100]!r}")
                found, where = self.mcp.tools(p, kind, catalog, schema, None), (kind, catalog, schema)
            for tool in found:
                if tool["name"] in out:
                    raise InvalidParameterValue(f"two of the chosen servers have a tool {tool['name']!r}: choose one")
                out[tool["name"]] = {"where": where, "session": sessions.get(where[1]) if kind == "external" else None,
                                     "spec": {"type": "function", "function": {
                                         "name": tool["name"], "description": tool.get("description") or "",
                                         "parameters": tool.get("inputSchema") or {"type": "object"}}}}
        return out

    def _call_tool(self, p: Principal, offered: dict[str, dict[str, Any]], call: dict[str, Any],
                   spans: list[dict[str, Any]]) -> str:
        """Run one tool call as ``p``; the output (or the error) is what the model reads next."""
        import secrets

        from ._harness import _b64

        function = call.get("function") or {}
        name = str(function.get("name") or "")
        started = time.time_ns()
        try:
            arguments = json.loads(function.get("arguments") or "{}")
            if not isinstance(arguments, dict):
                raise InvalidParameterValue("tool arguments must be a JSON object")
            if name not in offered:
                raise InvalidParameterValue(f"there is no tool {name!r} in this conversation")
            kind, catalog, schema = offered[name]["where"]
            if kind == "external":
                done = offered[name]["session"].call(name, arguments)
            else:
                done = self.mcp.call(p, kind, catalog, schema, None, name, arguments)
            output, failed = "".join(c.get("text", "") for c in done.get("content") or []), None
        except (ValueError, BrickyardError) as exc:
            message = exc.message if isinstance(exc, BrickyardError) else "the arguments are not JSON"
            output, failed, arguments = f"error: {message}", message, function.get("arguments")
        spans.append({"span_id": _b64(secrets.token_hex(8)), "parent_span_id": None, "name": name or "tool",
                      "start_time_unix_nano": started, "end_time_unix_nano": time.time_ns(), "events": [],
                      "links": [], "status": {"code": "STATUS_CODE_ERROR" if failed else "STATUS_CODE_OK",
                                              "message": failed or ""},
                      "attributes": {"mlflow.spanType": json.dumps("TOOL"),
                                     "mlflow.spanInputs": json.dumps(arguments, default=str),
                                     "mlflow.spanOutputs": json.dumps(output)}})
        return output

    def converse_stream(self, p: Principal, endpoint: str, messages: list[dict[str, str]], *,
                        params: dict[str, Any] | None = None) -> Iterator[str | dict[str, Any]]:
        """:meth:`converse` streamed: the answer's text pieces as they come, then the turn's record (a dict)."""
        started_ns, started = time.time_ns(), time.perf_counter()
        body = {**self._turn_body(p, endpoint, messages, params), "stream": True}
        pieces: list[str] = []
        error = None
        try:
            inv = self.gateway.call(p, endpoint, body, route=self._route(p, endpoint))
            chunks = inv.result if inv.stream else [inv.result]
            for chunk in chunks:
                text = _delta_text(chunk)
                if text:
                    pieces.append(text)
                    yield text
        except BrickyardError as exc:
            error = f"{exc.error_code}: {exc.message}"
        pred = Prediction("".join(pieces) if error is None else None, time.perf_counter() - started, model=endpoint,
                          error=error)
        yield self._record_turn(p, endpoint, messages, pred, started_ns)

    def _route(self, p: Principal, endpoint: str) -> str:
        task = str(self.serving.get(p, endpoint).get("task") or "")
        return "invocations" if task.startswith("agent/") else "chat"

    def _turn_body(self, p: Principal, endpoint: str, messages: list[dict[str, str]],
                   params: dict[str, Any] | None) -> dict[str, Any]:
        if not messages or not all(isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                                   and isinstance(m.get("content"), str) for m in messages):
            raise InvalidParameterValue("messages must be a list of {role: system|user|assistant, content}")
        task = str(self.serving.get(p, endpoint).get("task") or "")
        body = _request(task, messages)
        for key, value in (params or {}).items():
            if key not in ("temperature", "max_tokens", "top_p"):
                raise InvalidParameterValue(f"unknown parameter {key!r}: temperature, max_tokens or top_p")
            if value is not None and not task.startswith("agent/"):
                body[key] = value
        return body

    def _record_turn(self, p: Principal, endpoint: str, messages: list[dict[str, str]], pred: Prediction,
                     started_ns: int) -> dict[str, Any]:
        from ._harness import trace_of

        experiment = self._experiment(p, f"/Users/{p.name}/playground")
        info, spans = trace_of(Row({"messages": messages}), pred, started_ns, name=f"playground: {endpoint}",
                               tags={"brickyard.playground.endpoint": endpoint})
        trace_id = self.traces.record(p, experiment, info, spans)
        return {"answer": pred.text, "error": pred.error, "trace_id": trace_id, "experiment_id": experiment,
                "seconds": round(pred.seconds, 3), "endpoint": endpoint}

    def predictor(self, p: Principal, endpoint: str) -> tuple[Callable[[Row], Prediction], str]:
        """The function that asks ``endpoint`` one row's question as ``p``, and the span type of its answers."""
        task = str(self.serving.get(p, endpoint).get("task") or "")
        agent = task.startswith("agent/")

        def predict(row: Row) -> Prediction:
            messages = row.inputs.get("messages")
            if not (isinstance(messages, list) and messages):
                messages = [{"role": "user", "content": row.question()}]
            body = _request(task, messages, with_trace=True)
            started = time.perf_counter()
            try:
                inv = self.gateway.call(p, endpoint, body, route="invocations" if agent else "chat")
            except BrickyardError as exc:
                return Prediction(None, time.perf_counter() - started, model=endpoint,
                                  error=f"{exc.error_code}: {exc.message}")
            except Exception as exc:  # noqa: BLE001 - the model crashed on this row: recorded, the run goes on
                log.warning("endpoint %s failed on an evaluation row", endpoint, exc_info=True)
                return Prediction(None, time.perf_counter() - started, model=endpoint,
                                  error=f"INTERNAL_ERROR: the model failed ({type(exc).__name__})")
            seconds = time.perf_counter() - started
            result = dict(inv.result)
            usage = result.get("usage") or {}
            trace = (result.get("databricks_output") or {}).get("trace") or {}
            return Prediction(_text_of(result), seconds,
                              int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0),
                              int(usage.get("completion_tokens") or usage.get("output_tokens") or 0),
                              model=endpoint, spans=list((trace.get("data") or {}).get("spans") or []))

        return predict, "AGENT" if agent else "CHAT_MODEL"

    def run(self, p: Principal, *, endpoint: str, dataset: str, scorers: list[str], experiment: str | None = None,
            run_name: str | None = None, workers: int = 4, progress: Callable[[Scored], None] | None = None,
            rows: list[Row] | None = None) -> dict[str, Any]:
        """Evaluate ``endpoint`` on ``dataset`` with ``scorers``; the run's id, its metrics and per-row results."""
        scorers = check_scorers(scorers)
        rows = rows if rows is not None else self.rows(p, dataset)
        predict, kind = self.predictor(p, endpoint)
        experiment_id = self._experiment(p, experiment)
        judge = self._judge_endpoint()
        run = self.tracking.create_run(p, experiment_id, run_name=run_name, start_time=now_ms(),
                                       tags=[{"key": "brickyard.eval.endpoint", "value": endpoint},
                                             {"key": "mlflow.runSourceType", "value": "brickyard-eval"}])
        run_id = run["info"]["run_id"]
        self.tracking.log_batch(p, run_id, params=[
            {"key": "endpoint", "value": endpoint}, {"key": "dataset", "value": dataset[:500]},
            {"key": "scorers", "value": ",".join(scorers)[:500]}, {"key": "judge", "value": judge or "offline proxies"}])
        services = Services(
            predict=predict, assess=lambda body: self._assess(p, body),
            record_trace=lambda info, spans: self.traces.record(p, experiment_id, info, spans),
            add_assessments=lambda trace_id, items: [self.traces.create_assessment(p, trace_id, a) for a in items],
            judge_source=judge or "brickyard-offline-proxy", prices=self.prices.load())
        started = time.perf_counter()
        try:
            results = Harness(services, scorers, workers=workers).run(rows, run_id, task_kind=kind, progress=progress)
            trace_ids = [r.trace_id for r in results if r.trace_id]
            for start in range(0, len(trace_ids), 100):
                self.traces.link_to_run(p, trace_ids[start:start + 100], run_id)
            summary = summarise(results, scorers)
            now = now_ms()
            metrics = [{"key": f"{name}/mean", "value": s["mean"], "timestamp": now, "step": 0}
                       for name, s in summary.items() if s["mean"] is not None]
            if metrics:
                self.tracking.log_batch(p, run_id, metrics=metrics)
        except BaseException:
            self.tracking.update_run(p, run_id, status="FAILED", end_time=now_ms())
            raise
        self.tracking.update_run(p, run_id, status="FINISHED", end_time=now_ms())
        seconds = time.perf_counter() - started
        return {"run_id": run_id, "experiment_id": experiment_id, "endpoint": endpoint, "dataset": dataset,
                "rows": len(results), "judge": judge or "offline proxies", "metrics": summary,
                "prediction_errors": sum(1 for r in results if r.prediction.error),
                "seconds": round(seconds, 3),
                "harness_ms_per_row": round(1000 * sum(r.seconds for r in results) / len(results), 3),
                "results": [{"row": r.row.key, "question": r.row.question()[:200], "trace_id": r.trace_id,
                             "answer": (r.prediction.text or "")[:200], "error": r.prediction.error,
                             "values": r.values, "errors": r.errors} for r in results]}

    def compare(self, p: Principal, run_a: str, run_b: str) -> dict[str, Any]:
        """Two runs side by side: each metric's value in both and the change; the rows whose verdicts differ
        (rows are matched by their inputs)."""
        runs = [self.tracking.get_run(p, run_id) for run_id in (run_a, run_b)]
        metric_sets = [{m["key"]: m["value"] for m in r["data"].get("metrics") or []} for r in runs]
        keys = sorted(set(metric_sets[0]) | set(metric_sets[1]))
        metrics = [{"metric": k, "a": metric_sets[0].get(k), "b": metric_sets[1].get(k),
                    "change": None if k not in metric_sets[0] or k not in metric_sets[1]
                    else round(metric_sets[1][k] - metric_sets[0][k], 6)} for k in keys]
        verdicts = [self._verdicts(p, r) for r in runs]
        changed = []
        for row in sorted(set(verdicts[0]) & set(verdicts[1])):
            a, b = verdicts[0][row], verdicts[1][row]
            for name in sorted(set(a["values"]) & set(b["values"])):
                if numeric(a["values"][name]) != numeric(b["values"][name]):
                    changed.append({"row": row, "question": a["question"], "scorer": name, "a": a["values"][name],
                                    "b": b["values"][name], "trace_a": a["trace_id"], "trace_b": b["trace_id"]})
        return {"runs": [{"run_id": r["info"]["run_id"], "run_name": r["info"].get("run_name")} for r in runs],
                "metrics": metrics, "rows_in_both": len(set(verdicts[0]) & set(verdicts[1])), "changed": changed}

    def _verdicts(self, p: Principal, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Row key -> the question, the trace and each scorer's value, for a run's traces."""
        info = run["info"]
        out: dict[str, dict[str, Any]] = {}
        token = None
        while True:
            found, token = self.traces.search(p, [info["experiment_id"]], filter=f"attributes.run_id = '{info['run_id']}'",
                                              max_results=500, page_token=token)
            for trace in found:
                metadata = trace.get("trace_metadata") or {}
                key = metadata.get("brickyard.eval.row") or trace.get("request_preview") or trace["trace_id"]
                values = {}
                for a in trace.get("assessments") or []:
                    if a.get("valid") is False or "feedback" not in a:
                        continue
                    if "value" in a["feedback"]:
                        values[a["assessment_name"]] = a["feedback"]["value"]
                out[str(key)] = {"question": str(trace.get("request_preview") or "")[:200], "values": values,
                                 "trace_id": trace["trace_id"]}
            if not token:
                return out

    # -- synthetic evaluation sets -------------------------------------------------------------------
    def generate_questions(self, p: Principal, body: Any) -> dict[str, Any]:
        return generate_questions(body, self._judge(p))

    def generate_answer(self, p: Principal, body: Any) -> dict[str, Any]:
        return generate_answer(body, self._judge(p))

    def generate(self, p: Principal, table: str, *, num_evals: int, dataset: str, text_column: str = "text",
                 uri_column: str | None = "source", agent_description: str | None = None,
                 question_guidelines: str | None = None, progress: Callable[[int], None] | None = None
                 ) -> dict[str, Any]:
        """Write ``num_evals`` synthetic records (question, expected facts, the chunk as expected context) from
        the chunks in ``table`` into the evaluation dataset ``dataset`` (created when missing)."""
        if isinstance(num_evals, bool) or not isinstance(num_evals, int) or not 1 <= num_evals <= 10_000:
            raise InvalidParameterValue("num_evals must be a whole number from 1 to 10000")
        complete = self._judge(p)
        if complete is None:
            raise not_configured()
        columns = [text_column] + ([uri_column] if uri_column else [])
        chunks = [{"content": r[text_column], "doc_uri": r.get(uri_column) if uri_column else None}
                  for r in self.datasets.tables.read(p, table, columns=columns).to_pylist()]
        records, problems = records_from_chunks(chunks, num_evals, complete, agent_description=agent_description,
                                                question_guidelines=question_guidelines, progress=progress)
        try:
            self.datasets.create(p, {"name": dataset})
        except AlreadyExists:
            pass
        dataset_id = self.datasets.id_of(p, dataset)
        for start in range(0, len(records), 500):
            self.datasets.create_records(p, dataset_id, {"requests": [{"dataset_record": {
                "inputs": [{"key": k, "value": v} for k, v in r["inputs"].items()],
                "expectations": {k: {"value": v} for k, v in r["expectations"].items()},
                "source": r["source"]}} for r in records[start:start + 500]]})
        return {"dataset": dataset, "records": len(records), "problems": problems}
