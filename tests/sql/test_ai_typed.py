"""Typed answers of the AI functions (issue 21): ``responseFormat`` as a JSON schema or a DDL struct checks every
reply, ``returnType`` parses it into a struct or array (custom models too); a reply that does not fit is a row
error with ``failOnError => false`` and a statement error otherwise; ``ai_extract`` offline (Presidio) and through a
chat endpoint held to a JSON schema; an ``INSERT ... SELECT`` that fails or is cancelled commits nothing."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from brickyard.core.errors import InvalidParameterValue
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import wait_deployed

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
RF = json.dumps({"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}})


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = Workspace(Settings(home=tmp_path_factory.mktemp("ai-typed") / "home", enable_fake_models=1, access_log="off",
                           monitor_interval_seconds=0))
    admin = w.ensure_user("admin@example.com", admin=True)
    w.serving.create(admin, {"name": "chat", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]}})
    wait_deployed(w, admin, "chat")
    w.sql.execute(admin, "CREATE TABLE main.default.replies (id INT, reply STRING)")
    w.sql.execute(admin, """INSERT INTO main.default.replies VALUES (1, '{"name": "ann", "age": 31}'),
                            (2, '{"name": "bob", "age": "old"}'), (3, 'not json'), (4, NULL)""")
    yield w
    w.close()


def _rows(ws: Workspace, sql: str) -> list[dict[str, Any]]:
    """Run ``sql`` with the parameter :rf, the response format (a literal to ai_query, as parameters are)."""
    return ws.sql.execute(ws.principal("admin@example.com"), sql, parameters=[{"name": "rf", "value": RF}]
                          ).table.to_pylist()


def test_response_format_checks_replies_and_return_type_types_them(ws: Workspace) -> None:
    # the fake chat model, asked for JSON, answers the user's words as they are: each row's reply is its text
    text = _rows(ws, "SELECT ai_query('chat', reply, responseFormat => :rf, failOnError => false) AS r "
                     "FROM main.default.replies ORDER BY id")
    assert text[0]["r"] == {"result": '{"name": "ann", "age": 31}', "errorMessage": None}  # STRING, as Databricks
    assert "$.age is string, not integer" in text[1]["r"]["errorMessage"] and text[1]["r"]["result"] is None
    assert "not JSON" in text[2]["r"]["errorMessage"]
    assert text[3]["r"] == {"result": None, "errorMessage": None}  # NULL in, NULL out
    typed = _rows(ws, "SELECT id, ai_query('chat', reply, returnType => 'STRUCT<name: STRING, age: INT>', "
                      "responseFormat => :rf, failOnError => false) AS r FROM main.default.replies ORDER BY id")
    assert typed[0]["r"]["result"] == {"name": "ann", "age": 31}
    assert typed[0]["r"]["result"]["age"] + 1 == 32
    person = _rows(ws, "SELECT ai_query('chat', reply, returnType => 'STRUCT<name: STRING, age: INT>', "
                       "responseFormat => :rf).name AS n FROM main.default.replies WHERE id = 1")
    assert person == [{"n": "ann"}]  # a struct a query can reach into
    with pytest.raises(InvalidParameterValue, match="does not match responseFormat"):  # failOnError: the statement
        _rows(ws, "SELECT ai_query('chat', reply, responseFormat => :rf) FROM main.default.replies")


def test_a_ddl_response_format(ws: Workspace) -> None:
    reply = '{"person": {"name": "x", "tags": ["a", "b"]}}'
    ddl = "STRUCT<result: STRUCT<person: STRUCT<name: STRING, tags: ARRAY<STRING>>>>"  # one wrapping field, as Databricks
    rows = _rows(ws, f"SELECT ai_query('chat', '{reply}', responseFormat => '{ddl}', "
                     "returnType => 'STRUCT<person: STRUCT<name: STRING, tags: ARRAY<STRING>>>') AS r")
    assert rows == [{"r": {"person": {"name": "x", "tags": ["a", "b"]}}}]
    with pytest.raises(InvalidParameterValue, match=r"\$.person.tags is string"):
        _rows(ws, f"""SELECT ai_query('chat', '{{"person": {{"name": "x", "tags": "a"}}}}', responseFormat => '{ddl}')""")


class _Predicting:
    """Serving as the SQL engine sees it, with a custom model that answers dicts (one per row)."""

    def task(self, p: Any, endpoint: str) -> str:
        return "custom"

    def call(self, p: Any, endpoint: str, body: dict[str, Any], route: str) -> dict[str, Any]:
        rows = body["dataframe_records"]
        return {"predictions": [{"label": str(r["x"]).upper(), "score": len(str(r["x"])) / 10} if r["x"] != "bad"
                                else {"label": 1, "score": "high"} for r in rows]}


def test_custom_models_answer_typed_structs(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ws.sql, "models", _Predicting())
    rows = _rows(ws, "SELECT x, ai_query('scorer', named_struct('x', x), returnType => 'STRUCT<label: STRING, score: "
                     "DOUBLE>', failOnError => false) AS r FROM (VALUES ('ab'), ('bad')) AS v(x) ORDER BY x")
    assert rows[0]["r"] == {"result": {"label": "AB", "score": 0.2}, "errorMessage": None}
    assert "DATATYPE_MISMATCH" in rows[1]["r"]["errorMessage"]


def test_ai_extract_offline_with_presidio(ws: Workspace) -> None:
    rows = _rows(ws, "SELECT ai_extract('Call John Smith at john@example.com or 555-123-4567, in Paris.', "
                     "ARRAY('person', 'email', 'phone', 'location')) AS e, ai_extract(NULL, ARRAY('email')) AS n")
    assert rows == [{"e": {"person": "John Smith", "email": "john@example.com", "phone": "555-123-4567",
                           "location": "Paris"}, "n": None}]
    none = _rows(ws, "SELECT ai_extract('nothing here', ARRAY('email')).email AS m")
    assert none == [{"m": None}]
    with pytest.raises(InvalidParameterValue, match="ARRAY"):
        _rows(ws, "SELECT ai_extract('x', 'email')")


def test_ai_extract_of_other_labels_asks_the_chat_endpoint_for_json(ws: Workspace) -> None:
    """Labels Presidio does not know go to BRICKYARD_AI_FUNCTIONS_CHAT_ENDPOINT (here the bundled SmolLM2, held to
    the JSON schema by llama.cpp): a STRUCT with one STRING per label, whatever the small model makes of it."""
    rows = _rows(ws, "SELECT ai_extract('The Acme X200 drill costs 99 dollars.', ARRAY('product', 'price')) AS e")
    answer = rows[0]["e"]
    assert set(answer) == {"product", "price"}
    assert all(v is None or isinstance(v, str) for v in answer.values())
    usage = _rows(ws, "SELECT count(*) AS n FROM main.default.replies")  # the table is untouched by reads
    assert usage == [{"n": 4}]


class _Slow:
    """Serving that takes its time, to cancel a statement in the middle of its model calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def task(self, p: Any, endpoint: str) -> str:
        return str(self.inner.task(p, endpoint))

    def call(self, p: Any, endpoint: str, body: dict[str, Any], route: str) -> dict[str, Any]:
        self.calls += 1
        time.sleep(0.05)
        return dict(self.inner.call(p, endpoint, body, route))


def test_insert_select_that_fails_or_is_cancelled_commits_nothing(ws: Workspace, monkeypatch: pytest.MonkeyPatch
                                                                  ) -> None:
    admin = ws.principal("admin@example.com")
    ws.sql.execute(admin, "CREATE TABLE main.default.answers (id BIGINT, a STRING)")
    version = len(ws.tables.history(admin, "main.default.answers"))
    with pytest.raises(InvalidParameterValue, match="responseFormat"):  # row 2's reply does not fit: no write
        _rows(ws, "INSERT INTO main.default.answers SELECT id, ai_query('chat', reply, responseFormat => :rf) "
                  "FROM main.default.replies")
    assert _rows(ws, "SELECT count(*) AS n FROM main.default.answers") == [{"n": 0}]
    slow = _Slow(ws.sql.models)
    monkeypatch.setattr(ws.sql, "models", slow)
    started = ws.statements.submit(admin, "INSERT INTO main.default.answers SELECT id, ai_query('chat', "
                                          "concat('q', CAST(id AS STRING))) FROM (SELECT explode(sequence(1, 400)) AS id)",
                                   wait_timeout="0s")
    deadline = time.monotonic() + 30
    while slow.calls < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slow.calls >= 5
    ws.statements.cancel(admin, started["statement_id"])
    done = threading.Event()
    while time.monotonic() < deadline and not done.is_set():
        state = ws.statements.get(admin, started["statement_id"])["status"]["state"]
        if state not in ("PENDING", "RUNNING"):
            done.set()
        time.sleep(0.02)
    assert ws.statements.get(admin, started["statement_id"])["status"]["state"] == "CANCELED"
    assert slow.calls < 400  # it stopped calling the model
    assert _rows(ws, "SELECT count(*) AS n FROM main.default.answers") == [{"n": 0}]
    assert len(ws.tables.history(admin, "main.default.answers")) == version  # no commit at all
