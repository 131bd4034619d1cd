"""``ai_query`` in SQL: a serving endpoint called for every row, with Databricks' signature.

``ai_query(endpoint, request [, returnType, failOnError, modelParameters, responseFormat])`` -- positional or
named (``failOnError => false``). Each call site is planned before anything runs: the endpoint must exist and
the caller must be able to query it (CAN_QUERY), its task decides the request shape (chat: the request is the
user message; completions: the prompt; embeddings: the text, answered with ``ARRAY<FLOAT>``), and the literal
options are checked. The call site then becomes a vectorised DuckDB function: each batch of rows (up to 2048)
goes to the endpoint with bounded concurrency, embeddings many texts per request. Every call goes through the
AI Gateway as the caller (rate limits, usage rows, inference tables, guardrails) and carries the statement id
(``client_request_id``). A rate limit paces the statement (it waits for the window) instead of failing rows.

``failOnError => false`` answers ``STRUCT<result, errorMessage>`` per row instead of failing the statement.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from ..catalog import Principal
from ..core.errors import BrickyardError, InvalidParameterValue, RateLimited
from ._text import shown
from ._typed import arrow_of, conform, ddl, duck, mismatch, response_format

OPTIONS = ("returntype", "failonerror", "modelparameters", "responseformat")
CHAT, COMPLETIONS, EMBEDDINGS = "llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"
CUSTOM = "custom"  # a model taking rows (dataframe_records) and answering predictions
SCALARS = ("STRING", "DOUBLE", "FLOAT", "BIGINT", "INT", "BOOLEAN")  # answers coerced leniently ("3" -> 3)
CUSTOM_BATCH = 256  # rows per request to a custom model
CONCURRENCY = 8  # requests in flight per call site
EMBED_BATCH = 64  # texts per embeddings request
PACE_SECONDS = 600.0  # how long a statement may wait out rate limits in all


class Models(Protocol):
    """What the SQL engine needs of serving (given by the workspace, which owns the gateway)."""

    def task(self, p: Principal, endpoint: str) -> str: ...

    def call(self, p: Principal, endpoint: str, body: dict[str, Any], route: str) -> dict[str, Any]: ...

    def mask(self, texts: list[str | None], entities: list[str]) -> list[str | None]: ...

    def extract(self, texts: list[str | None], labels: dict[str, list[str]]) -> list[dict[str, str | None] | None]: ...


#: ai_mask's labels (Databricks') -> the Presidio entities that find them
MASK_LABELS = {"person": ["PERSON"], "email": ["EMAIL_ADDRESS"], "phone": ["PHONE_NUMBER"],
               "address": ["LOCATION"], "location": ["LOCATION"], "ssn": ["US_SSN"],
               "credit_card": ["CREDIT_CARD"], "iban": ["IBAN_CODE"], "ip_address": ["IP_ADDRESS"],
               "url": ["URL"], "date": ["DATE_TIME"]}


def mask_entities(exp: Any, labels: Any) -> list[str]:
    """The Presidio entities of ``ai_mask``'s label array (string literals, known labels)."""
    if not isinstance(labels, exp.Array) or not labels.expressions or not all(
            isinstance(x, exp.Literal) and x.is_string for x in labels.expressions):
        raise InvalidParameterValue("ai_mask: the labels must be ARRAY('person', 'email', ...) of string literals")
    found: list[str] = []
    for label in (x.this.lower() for x in labels.expressions):
        if label not in MASK_LABELS:
            raise InvalidParameterValue(f"ai_mask: unknown label {label[:40]!r}; known: {', '.join(sorted(MASK_LABELS))}")
        found += [e for e in MASK_LABELS[label] if e not in found]
    return found


def extract_entities(exp: Any, labels: Any) -> dict[str, list[str]] | None:
    """ai_extract's labels -> the Presidio entities of each, when every label is one Presidio finds (then it runs
    offline, in the server); None when any label needs a language model."""
    names = _labels(exp, labels, "ai_extract")
    if all(n.lower() in MASK_LABELS for n in names):
        return {n: MASK_LABELS[n.lower()] for n in names}
    return None


def _labels(exp: Any, labels: Any, function: str) -> list[str]:
    if not isinstance(labels, exp.Array) or not labels.expressions or not all(
            isinstance(x, exp.Literal) and x.is_string for x in labels.expressions):
        raise InvalidParameterValue(f"{function}: the labels must be ARRAY('label', ...) of string literals")
    names = [str(x.this) for x in labels.expressions]
    if len(names) > 500 or len(set(names)) != len(names) or not all(n.strip() for n in names):
        raise InvalidParameterValue(f"{function} takes up to 500 distinct, non-empty labels")
    return names


def register_extract(con: Any, name: str, models: Models, labels: dict[str, list[str]]) -> None:
    """Make ``name(text)`` answer STRUCT<label: STRING, ...>: for each label, the span Presidio is surest of."""
    import duckdb
    from duckdb import sqltypes as t

    target = pa.struct([(label, pa.string()) for label in labels])

    def udf(texts: pa.Array) -> pa.Array:
        found = models.extract([None if v is None else str(v) for v in texts.to_pylist()], labels)
        return pa.array(found, type=target)

    con.create_function(name, udf, [t.VARCHAR], duckdb.struct_type({label: t.VARCHAR for label in labels}),
                        type="arrow", null_handling="special")


def register_mask(con: Any, name: str, models: Models, entities: list[str]) -> None:
    """Make ``name(text)`` mask ``entities`` in each text with ``[MASKED]`` (Presidio, offline)."""
    from duckdb import sqltypes as t

    def udf(texts: pa.Array) -> pa.Array:
        return pa.array(models.mask([None if v is None else str(v) for v in texts.to_pylist()], entities),
                        type=pa.string())

    con.create_function(name, udf, [t.VARCHAR], t.VARCHAR, type="arrow", null_handling="special")


@dataclass
class Site:
    """One planned ``ai_query`` call: its endpoint, task and options."""

    endpoint: str
    task: str
    fail_on_error: bool = True
    returns: str = "STRING"  # the Databricks type of each answer (a chat reply or prediction is parsed into it)
    parameters: dict[str, Any] = field(default_factory=dict)
    response_format: Any = None  # the OpenAI field sent to a chat endpoint
    schema: dict[str, Any] | None = None  # the JSON schema every reply must match (from responseFormat)
    function: str = "ai_query"  # the SQL function the site stands for, in usage rows and errors


def _literal(exp: Any, node: Any, what: str) -> Any:
    """The Python value of a literal argument (strings, numbers, booleans, NULL, named_struct / map literals)."""
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        number = float(node.this)
        return int(number) if number.is_integer() and "." not in str(node.this) else number
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Neg):
        return -_literal(exp, node.this, what)
    if isinstance(node, exp.Struct):
        out = {}
        for item in node.expressions:
            if not isinstance(item, exp.PropertyEQ):
                raise InvalidParameterValue(f"ai_query: {what} must be named_struct('key', value, ...) of literals")
            out[item.this.name] = _literal(exp, item.expression, what)
        return out
    raise InvalidParameterValue(f"ai_query: {what} must be a literal, got {shown(node, 60)}")


def plan(exp: Any, call: Any, p: Principal, models: Models) -> tuple[Site, Any]:
    """(the planned call, its request expression) for an ``ai_query(...)`` node; checks access and options."""
    positional, named = [], {}
    for arg in call.expressions:
        if isinstance(arg, exp.Kwarg):
            key = arg.this.name.lower()
            if key not in OPTIONS:
                raise InvalidParameterValue(f"ai_query has no parameter {arg.this.name!r}; it takes endpoint, request, "
                                            "returnType, failOnError, modelParameters, responseFormat")
            named[key] = arg.expression
        elif named:
            raise InvalidParameterValue("ai_query: positional arguments must come before named ones")
        else:
            positional.append(arg)
    if len(positional) < 2 or len(positional) > 6:
        raise InvalidParameterValue(f"ai_query takes 2 to 6 arguments (endpoint, request, ...), got {len(positional)}")
    for key, node in zip(OPTIONS, positional[2:], strict=False):
        if key in named:
            raise InvalidParameterValue(f"ai_query: {key} is given twice")
        named[key] = node
    endpoint = _literal(exp, positional[0], "the endpoint (a string literal naming a serving endpoint)")
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidParameterValue("ai_query: the endpoint must be a string literal naming a serving endpoint")
    task = models.task(p, endpoint)  # 404 / 403 before any row runs
    request = positional[1]
    if isinstance(request, exp.Struct):  # a custom model: the struct is one row of its input
        wanted = _literal(exp, named["returntype"], "returnType") if "returntype" in named else None
        if not isinstance(wanted, str):
            raise InvalidParameterValue("ai_query: a struct request goes to a custom model, whose answer type must "
                                        "be given: returnType => 'DOUBLE', 'STRUCT<label: STRING, score: DOUBLE>', ...")
        site = Site(endpoint, CUSTOM, returns=_type_name(wanted))
        named.pop("returntype")
        if "responseformat" in named:
            raise InvalidParameterValue("ai_query: responseFormat applies to chat endpoints")
        request = exp.Anonymous(this="to_json", expressions=[request])
    elif task not in (CHAT, COMPLETIONS, EMBEDDINGS):
        raise InvalidParameterValue(f"ai_query: endpoint {endpoint!r} serves {task}; SQL reaches chat, completions, "
                                    "embeddings and custom-model endpoints (a named_struct request) for now")
    else:
        site = Site(endpoint, task)
    if "failonerror" in named:
        value = _literal(exp, named["failonerror"], "failOnError")
        if not isinstance(value, bool):
            raise InvalidParameterValue("ai_query: failOnError must be true or false")
        site.fail_on_error = value
    if "modelparameters" in named:
        params = _literal(exp, named["modelparameters"], "modelParameters")
        if not isinstance(params, dict):
            raise InvalidParameterValue("ai_query: modelParameters must be named_struct('max_tokens', 100, ...)")
        site.parameters = params
    if "returntype" in named:
        wanted = _literal(exp, named["returntype"], "returnType")
        if not isinstance(wanted, str):
            raise InvalidParameterValue("ai_query: returnType must be a type, as a string ('STRUCT<...>', 'DOUBLE')")
        if task == EMBEDDINGS:
            if wanted.replace(" ", "").upper() != "ARRAY<FLOAT>":
                raise InvalidParameterValue(f"ai_query: endpoint {endpoint!r} answers ARRAY<FLOAT>; returnType "
                                            f"{wanted[:40]!r} does not fit it")
        else:  # a chat or completions reply is read as JSON into the type (STRING: the reply as it is)
            site.returns = _type_name(wanted)
    if "responseformat" in named:
        if task != CHAT:
            raise InvalidParameterValue("ai_query: responseFormat applies to chat endpoints")
        site.response_format, site.schema = response_format(_literal(exp, named["responseformat"], "responseFormat"))
    return site, request


def _type_name(text: str) -> str:
    return str(ddl(text, "ai_query: returnType").sql(dialect="databricks"))


class Runner:
    """Calls one planned site for batches of rows as ``p``, paced by rate limits, tagged with the statement."""

    def __init__(self, site: Site, p: Principal, models: Models, statement_id: str,
                 cancelled: Callable[[], bool] = lambda: False, progress: Callable[[int], None] = lambda n: None) -> None:
        self.site = site
        self.p = p
        self.models = models
        self.statement_id = statement_id
        self.cancelled = cancelled
        self.progress = progress  # told how many rows each batch answered
        self.paced = 0.0  # seconds spent waiting out rate limits
        self.target = None if site.task == EMBEDDINGS else arrow_of(duck(site.returns))

    def _call(self, body: dict[str, Any], route: str) -> dict[str, Any]:
        if self.cancelled():  # a cancelled statement stops calling models at once (and commits nothing)
            raise BrickyardError("the statement was cancelled", error_code="CANCELLED")
        body = {**body, "client_request_id": self.statement_id,
                "usage_context": {"statement_id": self.statement_id, "sql_function": self.site.function}}
        while True:
            try:
                return self.models.call(self.p, self.site.endpoint, body, route)
            except RateLimited as exc:  # pace: wait for the window instead of failing the row
                if self.paced > PACE_SECONDS or self.cancelled():
                    raise
                wait = max(0.05, min(float(exc.retry_after or 1.0), 5.0))
                self.paced += wait
                time.sleep(wait)

    def _one(self, text: str) -> Any:
        site = self.site
        if site.task == CHAT:
            body: dict[str, Any] = {"messages": [{"role": "user", "content": text}], **site.parameters}
            if site.response_format is not None:
                body["response_format"] = site.response_format
            answer = self._call(body, "chat")
            return str((answer["choices"][0].get("message") or {}).get("content") or "")
        answer = self._call({"prompt": text, **site.parameters}, "completions")
        return str(answer["choices"][0].get("text") or "")

    def _embed(self, texts: list[str]) -> list[list[float]]:
        answer = self._call({"input": texts}, "embeddings")
        data = sorted(answer["data"], key=lambda d: d["index"])
        return [[float(x) for x in d["embedding"]] for d in data]

    def _predict(self, rows: list[str]) -> list[Any]:
        answer = self._call({"dataframe_records": [json.loads(r) for r in rows]}, "invocations")
        predictions = answer.get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(rows):
            raise InvalidParameterValue(f"ai_query: {self.site.endpoint} answered {str(predictions)[:80]}, not one "
                                        "prediction per row")
        return predictions

    def typed(self, value: Any) -> Any:
        """One answer as the site's type: a reply checked against the responseFormat schema, parsed from JSON
        when the type is not STRING; an answer that does not fit is an error of its row."""
        site = self.site
        if value is None or self.target is None:
            return value
        if site.task == CUSTOM and site.returns in SCALARS:
            return _as(value, site.returns)
        parsed = value
        if site.task in (CHAT, COMPLETIONS) and (site.schema is not None or site.returns != "STRING"):
            try:
                parsed = json.loads(value)
            except ValueError:
                raise InvalidParameterValue(f"[AI_FUNCTION_INVALID_RESPONSE] {site.function}: {site.endpoint} answered "
                                            f"{str(value)[:80]!r}, which is not JSON") from None
        if site.schema is not None:
            problem = mismatch(parsed, site.schema)
            if problem:
                raise InvalidParameterValue(f"[AI_FUNCTION_INVALID_RESPONSE] {site.function}: the answer of "
                                            f"{site.endpoint} does not match responseFormat: {problem}")
        if site.returns == "STRING":
            return value if isinstance(value, str) else json.dumps(parsed)
        return conform(parsed, self.target, f"{site.function}: the answer of {site.endpoint}")

    def batch(self, values: list[str | None]) -> tuple[list[Any], list[str | None]]:
        """(results, error messages) for a batch of requests; NULL requests give NULL results. Requests go in
        groups -- one row for chat and completions, 64 texts per embeddings request, 256 rows per custom-model
        request -- with CONCURRENCY groups in flight."""
        results: list[Any] = [None] * len(values)
        errors: list[str | None] = [None] * len(values)
        todo = [i for i, v in enumerate(values) if v is not None]
        task = self.site.task
        size, answer = {EMBEDDINGS: (EMBED_BATCH, self._embed), CUSTOM: (CUSTOM_BATCH, self._predict)}.get(
            task, (1, lambda rows: [self._one(rows[0])]))

        def run(group: list[int]) -> None:
            try:
                answered = answer([str(values[i]) for i in group])
            except BrickyardError as exc:
                if self.site.fail_on_error:
                    raise
                for i in group:
                    errors[i] = f"{exc.error_code}: {exc.message}"
                return
            for i, value in zip(group, answered, strict=True):
                try:
                    results[i] = self.typed(value)
                except BrickyardError as exc:
                    if self.site.fail_on_error:
                        raise
                    errors[i] = f"{exc.error_code}: {exc.message}"

        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            list(pool.map(run, [todo[i:i + size] for i in range(0, len(todo), size)]))
        self.progress(len(values))
        return results, errors


def _as(value: Any, returns: str) -> Any:
    """A custom model's prediction as the declared ``returnType`` (a dict prediction's only value is taken)."""
    if isinstance(value, dict) and len(value) == 1:
        value = next(iter(value.values()))
    if value is None:
        return None
    try:
        if returns == "STRING":
            return value if isinstance(value, str) else json.dumps(value)
        if returns in ("DOUBLE", "FLOAT"):
            return float(value)
        if returns in ("BIGINT", "INT"):
            return int(value)
        return bool(value)
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"ai_query: the prediction {str(value)[:60]!r} is not a {returns}") from None


def register(con: Any, name: str, runner: Runner) -> None:
    """Make ``name(request)`` a vectorised DuckDB function answering for ``runner``'s site."""
    import duckdb
    from duckdb import sqltypes as t

    if runner.site.task == EMBEDDINGS:
        value_type, arrow_value = duckdb.list_type(t.FLOAT), pa.list_(pa.float32())
    else:
        value_type, arrow_value = duckdb.sqltype(duck(runner.site.returns)), runner.target
    if runner.site.fail_on_error:
        out_type: Any = value_type
    else:
        out_type = duckdb.struct_type({"result": value_type, "errorMessage": t.VARCHAR})

    def udf(requests: pa.Array) -> pa.Array:
        values = [None if v is None else str(v) for v in requests.to_pylist()]
        results, errors = runner.batch(values)
        if runner.site.fail_on_error:
            return pa.array(results, type=arrow_value)
        return pa.StructArray.from_arrays([pa.array(results, type=arrow_value), pa.array(errors, type=pa.string())],
                                          names=["result", "errorMessage"])

    con.create_function(name, udf, [t.VARCHAR], out_type, type="arrow", null_handling="special",
                        side_effects=True)


# -- task functions --------------------------------------------------------------------------------------
PROMPTS = {
    "ai_gen": "{0}",
    "ai_summarize": "Summarize the following text in at most {1} words. Answer with the summary only.\n\n{0}",
    "ai_translate": "Translate the following text to {1}. Answer with the translation only.\n\n{0}",
    "ai_fix_grammar": "Correct the grammar and spelling of the following text. Answer with the corrected text "
                      "only.\n\n{0}",
    "ai_analyze_sentiment": "What is the sentiment of the following text? Answer with one word: positive, "
                            "negative, neutral or mixed.\n\n{0}",
}
ARITY = {"ai_gen": (1, 1), "ai_summarize": (1, 2), "ai_translate": (2, 2), "ai_fix_grammar": (1, 1),
         "ai_analyze_sentiment": (1, 1), "ai_similarity": (2, 2), "ai_classify": (2, 2), "ai_mask": (2, 2),
         "ai_extract": (2, 2)}
EXTRACT_PROMPT = ("Extract these items from the text below: {labels}. Answer with a JSON object with one key per "
                  "item, its value the words of the text that say it, or null where the text does not say.\n\n")
TASK_FUNCTIONS = frozenset(ARITY)
LABEL_TEMPLATE = "This text is about {}."  # how ai_classify embeds a label (a bare word embeds poorly)


def task_call(exp: Any, node: Any) -> tuple[str, list[Any]] | None:
    """(function name, arguments) if ``node`` calls one of the AI task functions."""
    if isinstance(node, exp.AIClassify):
        return "ai_classify", [node.this, node.args.get("categories")]
    if isinstance(node, exp.AISimilarity):
        return "ai_similarity", list(node.expressions)
    if isinstance(node, exp.Anonymous) and str(node.this).lower() in TASK_FUNCTIONS:
        return str(node.this).lower(), list(node.expressions)
    return None


def rewrite_task(exp: Any, name: str, args: list[Any], site: Callable[..., str],
                 embed_now: Callable[[list[str]], list[list[float]]], chat_endpoint: str, embedding_endpoint: str) -> Any:
    """The SQL that computes an AI task function: a prompt for the chat endpoint (ai_gen, ai_summarize,
    ai_translate, ai_fix_grammar, ai_analyze_sentiment), or embedding arithmetic (ai_similarity: cosine of the
    two texts; ai_classify: the label whose embedding is nearest the text's). ``site(endpoint, task)`` plans a
    call site and names its DuckDB function; ``embed_now`` embeds literal labels once, at planning."""
    low, high = ARITY[name]
    if not low <= len(args) <= high:
        raise InvalidParameterValue(f"{name} takes {low if low == high else f'{low} or {high}'} argument"
                                    f"{'s' * (high > 1)}, got {len(args)}")

    def text(node: Any) -> Any:
        return exp.Cast(this=node, to=exp.DataType.build("VARCHAR", dialect="duckdb"))

    def call(function: str, *nodes: Any) -> Any:
        return exp.Anonymous(this=function, expressions=list(nodes))

    if name == "ai_extract":  # labels Presidio does not find: the chat endpoint, held to a JSON schema
        names = _labels(exp, args[1], name)
        schema = {"type": "object", "properties": {n: {"type": ["string", "null"]} for n in names},
                  "required": names, "additionalProperties": False}
        fields = ", ".join("`" + n.replace("`", "``") + "`: STRING" for n in names)
        prompt = exp.DPipe(this=exp.Literal.string(EXTRACT_PROMPT.format(labels=", ".join(names))), expression=text(args[0]))
        answer_site = site(chat_endpoint, CHAT, returns=f"STRUCT<{fields}>", schema=schema, function=name,
                           response_format={"type": "json_schema", "json_schema": {"name": "extracted", "schema": schema,
                                                                                   "strict": True}})
        return call(answer_site, prompt)
    if name in PROMPTS:
        template = PROMPTS[name]
        if name == "ai_summarize" and len(args) == 1:
            args = [*args, exp.Literal.number(50)]
        before, _, rest = template.partition("{0}")
        parts: list[Any] = []
        if "{1}" in before:
            head, _, tail = before.partition("{1}")
            parts += [exp.Literal.string(head), text(args[1]), exp.Literal.string(tail)]
        elif before:
            parts.append(exp.Literal.string(before))
        parts.append(text(args[0]))
        if rest:
            parts.append(exp.Literal.string(rest))
        prompt = exp.Concat(expressions=parts, safe=False, coalesce=False) if len(parts) > 1 else parts[0]
        answer = call(site(chat_endpoint, CHAT), prompt)
        if name != "ai_analyze_sentiment":
            return answer
        found = call("regexp_extract", call("lower", answer), exp.Literal.string("(positive|negative|neutral|mixed)"),
                     exp.Literal.number(1))
        return exp.Nullif(this=found, expression=exp.Literal.string(""))
    embed = site(embedding_endpoint, EMBEDDINGS)
    if name == "ai_similarity":
        return call("list_cosine_similarity", call(embed, text(args[0])), call(embed, text(args[1])))
    names = _labels(exp, args[1], "ai_classify")
    vectors = embed_now([LABEL_TEMPLATE.format(n) for n in names])  # zero-shot: a label reads better in a sentence
    target = call(embed, text(args[0]))
    sims = [call("list_cosine_similarity", target,
                 exp.Cast(this=exp.Array(expressions=[exp.Literal.number(round(v, 7)) for v in vec]),
                          to=exp.DataType.build("FLOAT[]", dialect="duckdb"))) for vec in vectors]
    scores = call("list_value", *sims)
    best = call("list_position", scores, call("list_max", scores.copy()))
    chosen = call("list_extract", exp.Array(expressions=[exp.Literal.string(n) for n in names]), best)
    return exp.Case(ifs=[exp.If(this=exp.Is(this=args[0].copy(), expression=exp.Null()), true=exp.Null())],
                    default=chosen)  # NULL in, NULL out (list_position would find the first NULL score)
