"""``vector_search()`` in SQL (issue 21): a table-valued function over a Vector Search index -- vectors or text,
ANN / FULL_TEXT, filters, joined with tables -- governed by SELECT on the index."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from brickyard.core.errors import InvalidParameterValue, NotFound, PermissionDenied
from brickyard.workspace import Workspace
from tests.sql._shared import ADMIN, workspace
from tests.sql._shared import rows as _rows


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    w = workspace(tmp_path_factory.mktemp("vs-sql") / "home")
    admin = w.principal(ADMIN)
    w.vectorsearch.create_endpoint(admin, {"name": "ep"})
    w.vectorsearch.create_index(admin, {
        "name": "main.default.idx", "primary_key": "id", "index_type": "DIRECT_ACCESS",
        "direct_access_index_spec": {"embedding_vector_columns": [{"name": "v", "embedding_dimension": 2}],
                                     "schema_json": json.dumps({"id": "integer", "text": "string",
                                                                "v": "array<float>"})}}, endpoint="ep")
    w.vectorsearch.upsert(admin, "main.default.idx", [{"id": 1, "text": "red apple", "v": [1.0, 0.0]},
                                                      {"id": 2, "text": "green pear", "v": [0.0, 1.0]},
                                                      {"id": 3, "text": "red cherry", "v": [0.9, 0.1]}])
    w.sql.execute(admin, "CREATE TABLE main.default.prices (id INT, price DOUBLE)")
    w.sql.execute(admin, "INSERT INTO main.default.prices VALUES (1, 0.5), (2, 0.7), (3, 3.0)")
    yield w
    w.close()


def test_vectors_text_filters_and_joins(ws: Workspace) -> None:
    near = _rows(ws, "SELECT id, text, search_score FROM vector_search(index => 'main.default.idx', "
                     "query_vector => ARRAY(1.0, 0.0), num_results => 2) ORDER BY search_score DESC")
    assert [r["id"] for r in near] == [1, 3] and near[0]["text"] == "red apple" and near[0]["search_score"] > 0
    text = _rows(ws, "SELECT id FROM vector_search(index => 'main.default.idx', query_text => 'cherry', "
                     "query_type => 'FULL_TEXT')")
    assert text == [{"id": 3}]
    filtered = _rows(ws, "SELECT id FROM vector_search(index => 'main.default.idx', query_vector => ARRAY(1.0, 0.0), "
                         "num_results => 3, filters => '{\"id >\": 1}') ORDER BY id")
    assert filtered == [{"id": 2}, {"id": 3}]
    joined = _rows(ws, "SELECT v.id, p.price FROM vector_search(index => 'main.default.idx', query_vector => "
                       "ARRAY(1.0, 0.0), num_results => 5) AS v JOIN main.default.prices AS p ON p.id = v.id "
                       "WHERE v.search_score > 0.5 ORDER BY v.id")
    assert joined == [{"id": 1, "price": 0.5}, {"id": 3, "price": 3.0}]


def test_searching_needs_select_on_the_index(ws: Workspace) -> None:
    with pytest.raises((NotFound, PermissionDenied)):
        _rows(ws, "SELECT * FROM vector_search(index => 'main.default.idx', query_vector => ARRAY(1.0, 0.0))",
              user="bob@example.com")


@pytest.mark.parametrize("sql, why", [
    ("SELECT * FROM vector_search(index => 'main.default.idx')", "exactly one of"),
    ("SELECT * FROM vector_search(index => 'main.default.idx', query_text => 'x', query_vector => ARRAY(1.0, 0.0))",
     "exactly one of"),
    ("SELECT * FROM vector_search(index => 'main.default.idx', query_text => 'x', nope => 1)", "no parameter 'nope'"),
    ("SELECT * FROM vector_search(index => 'main.default.idx', query_text => 'x', filters => 'not json')",
     "valid JSON"),
    ("SELECT 'vector_search(' AS s", ""),  # inside a string it is only text
])
def test_bad_searches_say_why(ws: Workspace, sql: str, why: str) -> None:
    if not why:
        assert _rows(ws, sql) == [{"s": "vector_search("}]
        return
    with pytest.raises(InvalidParameterValue, match=why):
        _rows(ws, sql)
