"""``ai_query`` in SQL (issue 21, first part): chat, completions and embeddings endpoints per row with Databricks'
signature and named arguments; ``failOnError => false`` answers ``STRUCT<result, errorMessage>``; every call is
checked (CAN_QUERY, before any row runs), goes through the AI Gateway with the statement id, and a rate limit
paces the statement instead of failing rows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from brickyard.core.errors import BrickyardError, InvalidParameterValue, NotFound
from brickyard.core.settings import Settings
from brickyard.sql import _ai
from brickyard.workspace import Workspace
from tests.conftest import serve, wait_deployed
from tests.sql._shared import rows as _rows


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    home = tmp_path_factory.mktemp("ai-query") / "home"
    w = Workspace(Settings(home=home, enable_fake_models=1, access_log="off", monitor_interval_seconds=0))
    admin = w.ensure_user("admin@example.com", admin=True)
    w.ensure_user("bob@example.com")
    for name, gateway in (("chat", {"usage_tracking_config": {"enabled": True}}),
                          ("guarded", {"guardrails": {"input": {"invalid_keywords": ["forbidden"]}}})):
        w.serving.create(admin, {"name": name, "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
                                 "ai_gateway": gateway})
        wait_deployed(w, admin, name)
    w.sql.execute(admin, "CREATE TABLE main.default.words (id INT, w STRING)")
    w.sql.execute(admin, "INSERT INTO main.default.words VALUES (1, 'apple'), (2, 'forbidden fruit'), (3, NULL)")
    yield w
    w.close()


def test_chat_completions_and_embeddings_per_row(ws: Workspace) -> None:
    rows = _rows(ws, "SELECT id, ai_query('chat', concat('Say ', w), modelParameters => named_struct('max_tokens', 20,"
                     " 'temperature', 0.0)) AS r FROM main.default.words WHERE id <> 2 ORDER BY id")
    assert rows == [{"id": 1, "r": "echo: Say apple"}, {"id": 3, "r": None}]  # a NULL request answers NULL
    vectors = _rows(ws, "SELECT id, ai_query('databricks-gte-large-en', w, 'ARRAY<FLOAT>') AS v FROM "
                        "main.default.words ORDER BY id")
    assert [len(r["v"]) if r["v"] else None for r in vectors] == [384, 384, None]
    same = _rows(ws, "SELECT ai_query('databricks-gte-large-en', 'apple') AS v")[0]["v"]
    assert same == pytest.approx(vectors[0]["v"], abs=1e-6)  # batched or alone, the same vector


def test_fail_on_error_false_answers_per_row(ws: Workspace) -> None:
    rows = _rows(ws, "SELECT id, ai_query('guarded', w, failOnError => false) AS r FROM main.default.words ORDER BY id")
    assert rows[0]["r"] == {"result": "echo: apple", "errorMessage": None}
    assert rows[1]["r"]["result"] is None and "forbidden" in rows[1]["r"]["errorMessage"]
    with pytest.raises(BrickyardError, match="forbidden"):  # failOnError (the default): the statement fails
        _rows(ws, "SELECT ai_query('guarded', w) FROM main.default.words")


def test_calls_are_governed_and_carry_the_statement_id(ws: Workspace) -> None:
    with pytest.raises(NotFound):  # bob may read the table (below) but cannot see the endpoint
        ws.catalog.update_grants(ws.principal("admin@example.com"), "table", "main.default.words",
                                 [{"principal": "bob@example.com", "add": ["SELECT"]}])
        _rows(ws, "SELECT ai_query('chat', w) FROM main.default.words", user="bob@example.com")
    with pytest.raises(NotFound):
        _rows(ws, "SELECT ai_query('no-such-endpoint', 'x')")
    with serve(ws) as url:
        from databricks.sdk import WorkspaceClient

        token = ws.create_token("admin@example.com")
        w = WorkspaceClient(host=url, token=token)
        done = w.statement_execution.execute_statement(
            statement="SELECT ai_query('chat', w) AS r FROM main.default.words WHERE id = 1", warehouse_id="w",
            wait_timeout="30s")
        assert done.result.data_array == [["echo: apple"]]
        ws.gateway.usage.flush()
        found = ws.sql.execute(ws.principal("admin@example.com"), "SELECT count(*) AS n FROM "
                               "system.serving.endpoint_usage WHERE client_request_id = :sid",
                               parameters=[{"name": "sid", "value": done.statement_id}]).table.to_pylist()
        assert found == [{"n": 1}]  # the usage row names the statement
        import httpx

        status = httpx.get(f"{url}/api/2.0/sql/statements/{done.statement_id}",
                           headers={"authorization": f"Bearer {token}"}).json()["status"]
        assert status == {"state": "SUCCEEDED", "progress": {"ai_rows_done": 1}}  # rows the AI functions answered


def test_a_rate_limit_paces_the_statement(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four rows against two calls a minute: the statement waits for the next window (the clock is the test's)
    and every row is answered."""
    admin = ws.principal("admin@example.com")
    ws.serving.create(admin, {"name": "limited", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]},
                              "ai_gateway": {"rate_limits": [{"key": "endpoint", "calls": 2, "renewal_period": "minute"}]}})
    wait_deployed(ws, admin, "limited")
    now = [int(time.time() * 1000)]
    monkeypatch.setattr(ws.gateway.limiter, "clock", lambda: now[0])
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += int(seconds * 1000) + 1

    monkeypatch.setattr(_ai.time, "sleep", sleep)
    monkeypatch.setattr(_ai, "CONCURRENCY", 1)
    rows = _rows(ws, "SELECT ai_query('limited', concat('n', CAST(x AS STRING))) AS r FROM (VALUES (1), (2), (3), (4)) "
                     "AS v(x) ORDER BY r")
    assert [r["r"] for r in rows] == ["echo: n1", "echo: n2", "echo: n3", "echo: n4"]
    assert slept  # it waited instead of failing


@pytest.mark.parametrize("sql, why", [
    ("SELECT ai_query('chat')", "2 to 6 arguments"),
    ("SELECT ai_query('chat', 'x', nope => 1)", "no parameter 'nope'"),
    ("SELECT ai_query(concat('ch', 'at'), 'x')", "string literal"),
    ("SELECT ai_query('databricks-gte-large-en', 'x', returnType => 'STRING')", "does not fit"),
    ("SELECT ai_query('chat', 'x', returnType => 'STRUCT<a INT')", "INVALID_RETURN_TYPE"),
    ("SELECT ai_query('chat', 'x', responseFormat => '{\"type\": \"json_schema\", \"json_schema\": {\"schema\": "
     "{\"type\": \"thing\"}}}')", "INVALID_RESPONSE_FORMAT"),
    ("SELECT ai_query('chat', 'x', responseFormat => 'STRUCT<a: NOPE>')", "INVALID_RETURN_TYPE"),
    ("SELECT ai_query('chat', 'x', failOnError => 'yes')", "true or false"),
    ("SELECT ai_query('chat', 'x', responseFormat => 'not json')", "JSON schema"),
    ("SELECT ai_query('databricks-gte-large-en', 'x', responseFormat => '{\"type\": \"json_object\"}')",
     "chat endpoints"),
])
def test_bad_calls_are_refused_before_any_row(ws: Workspace, sql: str, why: str) -> None:
    with pytest.raises(InvalidParameterValue, match=why):
        _rows(ws, sql)


def test_the_engine_without_serving_says_so(tmp_path: Path) -> None:
    from brickyard.core.errors import InvalidState

    w = Workspace(Settings(home=tmp_path / "home", access_log="off", monitor_interval_seconds=0))
    try:
        w.sql.models = None
        with pytest.raises(InvalidState, match="serves models"):
            w.sql.execute(w.ensure_user("a@example.com", admin=True), "SELECT ai_query('chat', 'x')")
    finally:
        w.close()


def test_task_functions(tmp_path: Path) -> None:
    """The task functions on their default endpoints: the chat ones send a prompt (the echoing test model shows
    exactly what was asked), ai_similarity and ai_classify compute with embeddings."""
    w = Workspace(Settings(home=tmp_path / "home", enable_fake_models=1, access_log="off", monitor_interval_seconds=0,
                           ai_functions_chat_endpoint="echo"))
    try:
        admin = w.ensure_user("admin@example.com", admin=True)
        w.serving.create(admin, {"name": "echo", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]}})
        wait_deployed(w, admin, "echo")
        row = w.sql.execute(admin, "SELECT ai_gen('hello') AS g, ai_summarize('a long text', 10) AS s, "
                                   "ai_translate('bonjour', 'en') AS t, ai_fix_grammar('me go') AS f, "
                                   "ai_analyze_sentiment('I love it') AS m").table.to_pylist()[0]
        assert row["g"] == "echo: hello"
        assert row["s"].startswith("echo: Summarize the following text in at most 10 words") and "a long text" in row["s"]
        assert "to en." in row["t"] and row["t"].endswith("bonjour")
        assert row["f"].endswith("me go")
        assert row["m"] == "positive"  # the echo contains the choices: the first one named is taken
        sims = w.sql.execute(admin, "SELECT ai_similarity('the cat sat', 'the cat sat') AS same, "
                                    "ai_similarity('the cat sat', 'stock prices fell') AS other").table.to_pylist()[0]
        assert sims["same"] == pytest.approx(1.0, abs=1e-4) and sims["other"] < 0.5
        labels = w.sql.execute(admin, "SELECT i, ai_classify(t, ARRAY('sports', 'cooking', 'finance')) AS label FROM "
                                      "(VALUES (1, 'the striker scored a goal in the football match'), "
                                      "(2, 'bake the bread dough in a hot oven'), (3, 'the bank raised interest rates'), "
                                      "(4, NULL)) AS v(i, t) ORDER BY i").table.to_pylist()
        assert [r["label"] for r in labels] == ["sports", "cooking", "finance", None]
        with pytest.raises(InvalidParameterValue, match="string literals"):
            w.sql.execute(admin, "SELECT ai_classify('x', ARRAY(upper('a')))")
        with pytest.raises(InvalidParameterValue, match="takes 2 arguments"):
            w.sql.execute(admin, "SELECT ai_translate('x')")
    finally:
        w.close()


def test_ai_mask_masks_what_it_is_asked_to(ws: Workspace) -> None:
    pytest.importorskip("presidio_analyzer", reason="the 'guardrails' extra is not installed")
    row = _rows(ws, "SELECT ai_mask('John Smith wrote to john@example.com from 555-123-4567', "
                    "ARRAY('email', 'phone')) AS some, ai_mask('John Smith wrote to john@example.com', "
                    "ARRAY('person', 'email')) AS both, ai_mask(NULL, ARRAY('email')) AS none")[0]
    assert row["some"] == "John Smith wrote to [MASKED] from [MASKED]"  # the person was not asked for
    assert row["both"] == "[MASKED] wrote to [MASKED]" and row["none"] is None
    with pytest.raises(InvalidParameterValue, match="unknown label 'shoe_size'"):
        _rows(ws, "SELECT ai_mask('x', ARRAY('shoe_size'))")


def test_brickyard_sql_runs_ai_functions(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    home = tmp_path / "home"
    w = Workspace(Settings(home=home, enable_fake_models=1, access_log="off", monitor_interval_seconds=0))
    admin = w.ensure_user("admin@example.com", admin=True)
    w.serving.create(admin, {"name": "chat", "config": {"served_entities": [{"entity_name": "system.ai.fake-chat"}]}})
    wait_deployed(w, admin, "chat")
    w.close()
    done = subprocess.run([sys.executable, "-m", "brickyard.cli", "sql", "--home", str(home), "--user",
                           "admin@example.com", "--json", "SELECT ai_query('chat', 'hi') AS r"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "BRICKYARD_ENABLE_FAKE_MODELS": "1",
                                                       "PYTHONPATH": str(Path(__file__).parents[2] / "src")})
    assert done.returncode == 0, done.stderr
    assert "echo: hi" in done.stdout
    refused = subprocess.run([sys.executable, "-m", "brickyard.cli", "sql", "--home", str(home), "--user",
                              "admin@example.com", "SELECT ai_query('nope', 'hi')"], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")})
    assert refused.returncode != 0 and "nope" in refused.stderr
