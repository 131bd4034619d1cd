"""``vector_search()`` as a table-valued function in SQL::

    SELECT id, text, search_score FROM vector_search(index => 'main.docs.chunks_index',
                                                     query_text => 'rate limits', num_results => 5)

Arguments by name (or ``index, query, num_results`` in that order): ``index``; one of ``query_text``,
``query_vector`` (an ``ARRAY(...)`` literal) or ``query`` (the older name of ``query_text``); ``num_results``
(default 10); ``query_type`` (``ANN``, ``HYBRID``, ``FULL_TEXT``); and, as Brickyard extensions,
``filters`` (the JSON of the REST API's ``filters_json``) and ``columns`` (a comma-separated list; default:
every column of the index). The search runs before the statement's query, as the caller (SELECT on the index
is checked by Vector Search), and its rows -- the index's columns and ``search_score`` -- are the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from ..catalog import Principal
from ..core.errors import InvalidParameterValue
from ._text import shown

NAMES = ("index", "query_text", "query_vector", "query", "num_results", "query_type", "filters", "columns")
POSITIONAL = ("index", "query_text", "num_results")

#: (caller, index, REST query body) -> the REST answer; and (caller, index) -> the index's columns
Search = tuple[Callable[[Principal, str, dict[str, Any]], dict[str, Any]], Callable[[Principal, str], list[str]]]


RENAMED = "brickyard_vector_search"  # sqlglot reads VECTOR_SEARCH as BigQuery's function, with three required args


def rename_calls(text: str) -> str:
    """``vector_search(`` calls (never text inside strings or comments: found by sqlglot's tokenizer) renamed so
    the parser keeps their arguments as written."""
    if "vector_search" not in text.lower():
        return text
    import sqlglot
    from sqlglot.tokens import TokenType

    try:
        tokens = sqlglot.tokenize(text, read="databricks")
    except sqlglot.errors.SqlglotError:
        return text  # the parser says what is wrong with it
    spans = [(tok.start, tok.end) for tok, after in zip(tokens, tokens[1:], strict=False)
             if tok.text.lower() == "vector_search" and after.token_type == TokenType.L_PAREN]
    for start, end in reversed(spans):
        text = text[:start] + RENAMED + text[end + 1:]
    return text


def is_call(exp: Any, node: Any) -> bool:
    return isinstance(node, exp.Anonymous) and str(node.this).lower() in (RENAMED, "vector_search")


def _value(exp: Any, node: Any, name: str) -> Any:
    if isinstance(node, exp.Literal):
        return node.this if node.is_string else float(node.this) if "." in str(node.this) else int(node.this)
    if isinstance(node, exp.Neg):
        return -_value(exp, node.this, name)
    if isinstance(node, exp.Array):
        return [_value(exp, item, name) for item in node.expressions]
    raise InvalidParameterValue(f"vector_search: {name} must be a literal, got {shown(node, 60)}")


def arguments(exp: Any, node: Any) -> dict[str, Any]:
    raw = node.expressions
    args: dict[str, Any] = {}
    positional = 0
    for item in raw:
        if isinstance(item, exp.Kwarg):
            key = item.this.name.lower()
            if key not in NAMES:
                raise InvalidParameterValue(f"vector_search has no parameter {item.this.name!r}; it takes "
                                            f"{', '.join(NAMES)}")
            args[key] = _value(exp, item.expression, key)
        else:
            if positional >= len(POSITIONAL):
                raise InvalidParameterValue("vector_search takes index, query and num_results positionally")
            args[POSITIONAL[positional]] = _value(exp, item, POSITIONAL[positional])
            positional += 1
    return args


def run(search: Search, p: Principal, args: dict[str, Any]) -> pa.Table:
    """The rows of one ``vector_search(...)``: the index's columns and ``search_score``."""
    query, columns_of = search
    index = args.get("index")
    if not isinstance(index, str) or not index:
        raise InvalidParameterValue("vector_search needs index => 'catalog.schema.index'")
    text = args.get("query_text", args.get("query"))
    vector = args.get("query_vector")
    if (text is None) == (vector is None):
        raise InvalidParameterValue("vector_search needs exactly one of query_text (or query) and query_vector")
    body: dict[str, Any] = {"num_results": args.get("num_results", 10),
                            "query_type": str(args.get("query_type") or "ANN").upper()}
    if text is not None:
        if not isinstance(text, str):
            raise InvalidParameterValue("vector_search: query_text must be a string")
        body["query_text"] = text
    else:
        if not isinstance(vector, list) or not all(isinstance(x, int | float) for x in vector):
            raise InvalidParameterValue("vector_search: query_vector must be ARRAY(0.1, 0.2, ...) of numbers")
        body["query_vector"] = [float(x) for x in vector]
    if args.get("filters") is not None:
        if not isinstance(args["filters"], str):
            raise InvalidParameterValue("vector_search: filters must be a JSON string, e.g. '{\"shard\": 3}'")
        try:
            json.loads(args["filters"])
        except ValueError:
            raise InvalidParameterValue("vector_search: filters must be valid JSON") from None
        body["filters_json"] = args["filters"]
    wanted = args.get("columns")
    if wanted is not None and not isinstance(wanted, str):
        raise InvalidParameterValue("vector_search: columns must be a string such as 'id, text'")
    body["columns"] = [c.strip() for c in wanted.split(",") if c.strip()] if wanted else columns_of(p, index)
    answer = query(p, index, body)
    names = [c["name"] for c in answer["manifest"]["columns"]]
    names = names[:-1] + ["search_score"]  # the REST API's score column, named as in Databricks SQL
    rows = answer["result"].get("data_array") or []
    return pa.table({name: pa.array([row[i] for row in rows]) for i, name in enumerate(names)})
