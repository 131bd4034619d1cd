"""MLflow's filter and order syntax, against hand-written expectations."""

from __future__ import annotations

import pytest

from brickyard.core.errors import InvalidParameterValue
from brickyard.tracking import Entity, compile_filter, sort_entities

ATTRS = ("run_name", "status", "start_time")
RUNS = [Entity({"run_name": "alpha", "status": "FINISHED", "start_time": 3}, metrics={"acc": 0.9, "val.loss": 0.2},
               params={"k": "5", "model name": "mini"}, tags={"team": "Search"}),
        Entity({"run_name": "beta", "status": "FAILED", "start_time": 1}, metrics={"acc": 0.7},
               params={"k": "10"}, tags={"team": "ranking"}),
        Entity({"run_name": "gamma", "status": "FINISHED", "start_time": 2}, params={"k": "20"})]


@pytest.mark.parametrize(("text", "expected"), [
    ("", ["alpha", "beta", "gamma"]),
    ("metrics.acc > 0.8", ["alpha"]),
    ("metrics.acc >= 0.7 AND attributes.status = 'FINISHED'", ["alpha"]),
    ("metrics.val.loss < 0.5", ["alpha"]),
    ("params.`model name` = 'mini'", ["alpha"]),
    ("params.k IN ('5', '20')", ["alpha", "gamma"]),
    ("params.k NOT IN ('5')", ["beta", "gamma"]),
    ("tags.team LIKE 'S%'", ["alpha"]),
    ("tags.team ILIKE 's%'", ["alpha"]),
    ("run_name != 'beta'", ["alpha", "gamma"]),
    ("run.start_time >= 2", ["alpha", "gamma"]),
    ('status = "FAILED"', ["beta"]),
])
def test_filters(text: str, expected: list[str]) -> None:
    match = compile_filter(text, ATTRS)
    assert [r.attributes["run_name"] for r in RUNS if match(r)] == expected


@pytest.mark.parametrize("text", ["metrics.acc > 0.8 OR params.k = '5'", "nope = 'x'", "metrics.acc >",
                                  "params.k IN '5'", "metrics.acc ~ 3", "tags.team LIKE 3"])
def test_bad_filters_are_refused(text: str) -> None:
    with pytest.raises(InvalidParameterValue):
        compile_filter(text, ATTRS)


def test_order_by_puts_missing_values_last() -> None:
    def order(spec: list[str]) -> list[str]:
        return [r.attributes["run_name"] for r in sort_entities(RUNS, lambda r: r, spec, ATTRS,
                                                                [("attributes", "start_time", True)])]

    assert order([]) == ["alpha", "gamma", "beta"]
    assert order(["metrics.acc"]) == ["beta", "alpha", "gamma"]
    assert order(["metrics.acc DESC"]) == ["alpha", "beta", "gamma"]
    assert order(["params.k ASC"]) == ["beta", "gamma", "alpha"]  # params compare as strings, as in MLflow
