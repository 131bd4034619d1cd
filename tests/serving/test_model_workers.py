"""Served model versions run on pools of worker processes: ``workload_size`` and provisioned throughput set the
pool's size, a bounded queue answers overflow with 503 + Retry-After, ``scale_to_zero_enabled`` stops idle
workers (the next answer says it was a cold start), and faults are contained -- a model that raises, hangs,
exits, answers something that is not JSON or is killed mid-request gives a clean 500/504 carrying the request
id, and the next request is answered. A model that cannot load fails its deployment, not its first request."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import mlflow_against, serve

pytest.importorskip("mlflow.pyfunc", reason="needs mlflow (the agents extra)")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # mlflow's advice on input examples

MODEL = '''
import os
import time

import mlflow


class Faulty(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        out = []
        for text in model_input["text"]:
            if text == "raise":
                raise ValueError("boom from the model")
            if text == "hang":
                time.sleep(600)
            if text == "exit":
                os._exit(3)
            if text == "nonjson":
                return [object()]
            if text.startswith("slow"):
                time.sleep(float(text.split(":")[1]))
            out.append(f"{text.upper()} from {os.getpid()}")
        return out


mlflow.models.set_model(Faulty())
'''

BROKEN = '''
import mlflow


class NeedsAPackage(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import brickyard_no_such_package  # noqa: F401

    def predict(self, context, model_input, params=None):
        return list(model_input["text"])


mlflow.models.set_model(NeedsAPackage())
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    tmp = tmp_path_factory.mktemp("workers")
    ws = Workspace(Settings(home=tmp / "home", access_log="off", monitor_interval_seconds=0, serving_queue_size=1,
                            model_timeout_seconds=4, scale_to_zero_seconds=1))
    token = ws.create_token("alice@example.com", admin=True)
    with serve(ws) as url, mlflow_against(url, token, "/Users/alice@example.com/workers"):
        for name, code in (("faulty", MODEL), ("broken", BROKEN)):
            (tmp / f"{name}.py").write_text(code)
            with mlflow.start_run():
                info = mlflow.pyfunc.log_model(name=name, python_model=str(tmp / f"{name}.py"),
                                               signature=infer_signature(pd.DataFrame({"text": ["a"]}), ["A"]))
            mlflow.register_model(info.model_uri, f"main.default.{name}")
        yield {"ws": ws, "url": url, "token": token, "h": {"authorization": f"Bearer {token}"}}
    ws.close()


def _create(env: dict[str, Any], name: str, model: str = "main.default.faulty", **scale: Any) -> dict[str, Any]:
    r = httpx.post(env["url"] + "/api/2.0/serving-endpoints", headers=env["h"], json={
        "name": name, "config": {"served_entities": [{"entity_name": model, "entity_version": "1", **scale}]}})
    assert r.status_code == 200, r.text
    for _ in range(6000):
        state = httpx.get(env["url"] + f"/api/2.0/serving-endpoints/{name}", headers=env["h"]).json()
        if state["state"]["config_update"] != "IN_PROGRESS":
            return state
        time.sleep(0.02)
    raise AssertionError(f"{name} did not finish deploying")


def _ask(env: dict[str, Any], name: str, text: str) -> httpx.Response:
    return httpx.post(env["url"] + f"/serving-endpoints/{name}/invocations", headers=env["h"],
                      json={"dataframe_records": [{"text": text}]}, timeout=120)


def _pool(env: dict[str, Any], endpoint: dict[str, Any]) -> Any:
    [pool] = env["ws"].serving.agents.pools_of(endpoint["id"])
    return pool


def _request_id(r: httpx.Response) -> str:
    return r.json()["details"][0]["request_id"]


def test_faults_give_clean_errors_and_the_next_request_is_answered(env: dict[str, Any]) -> None:
    endpoint = _create(env, "faulty")
    assert endpoint["state"] == {"ready": "READY", "config_update": "NOT_UPDATING"}, endpoint["state"]
    pool = _pool(env, endpoint)
    assert pool.size == 1 and pool.workers[0].alive  # started at deploy time, not by the first request

    raised = _ask(env, "faulty", "raise")
    assert raised.status_code == 500, raised.text
    assert raised.json()["error_code"] == "INTERNAL_ERROR" and "boom from the model" in raised.json()["message"]
    assert _request_id(raised) == raised.headers["x-request-id"]
    pid = pool.workers[0].proc.pid
    ok = _ask(env, "faulty", "fine")
    assert ok.status_code == 200 and ok.json()["predictions"] == [f"FINE from {pid}"]  # same worker: it caught it

    hung = _ask(env, "faulty", "hang")
    assert hung.status_code == 504, hung.text
    assert hung.json()["error_code"] == "DEADLINE_EXCEEDED" and _request_id(hung) == hung.headers["x-request-id"]
    after = _ask(env, "faulty", "fine")
    assert after.status_code == 200 and after.json()["predictions"] != [f"FINE from {pid}"]  # a new process

    exited = _ask(env, "faulty", "exit")
    assert exited.status_code == 500 and "exited (code 3)" in exited.json()["message"], exited.text
    assert _ask(env, "faulty", "fine").status_code == 200

    nonjson = _ask(env, "faulty", "nonjson")
    assert nonjson.status_code == 500 and "JSON" in nonjson.json()["message"], nonjson.text
    assert _ask(env, "faulty", "fine").status_code == 200

    from databricks.sdk import WorkspaceClient
    from databricks.sdk.errors import InternalError

    w = WorkspaceClient(host=env["url"], token=env["token"])
    with pytest.raises(InternalError, match="boom from the model"):
        w.serving_endpoints.query(name="faulty", dataframe_records=[{"text": "raise"}])


def test_kill_9_of_a_worker_mid_request(env: dict[str, Any]) -> None:
    endpoint = _create(env, "killed")
    pool = _pool(env, endpoint)
    answers: list[httpx.Response] = []
    t = threading.Thread(target=lambda: answers.append(_ask(env, "killed", "slow:30")))
    t.start()
    for _ in range(500):
        if not pool._free:
            break
        time.sleep(0.01)
    time.sleep(0.3)
    os.kill(pool.workers[0].proc.pid, signal.SIGKILL)
    t.join(timeout=60)
    assert answers[0].status_code == 500 and "code -9" in answers[0].json()["message"], answers[0].text
    assert _ask(env, "killed", "next").status_code == 200


def test_a_model_that_cannot_load_fails_its_deployment(env: dict[str, Any]) -> None:
    endpoint = _create(env, "broken", model="main.default.broken")
    assert endpoint["state"]["config_update"] == "UPDATE_FAILED", endpoint["state"]
    assert endpoint["state"]["ready"] == "NOT_READY"
    assert "brickyard_no_such_package" in endpoint["state"]["message"]
    assert env["ws"].serving.agents.pools_of(endpoint["id"]) == []


def test_workload_size_and_the_bounded_queue(env: dict[str, Any]) -> None:
    medium = _create(env, "medium", workload_size="Medium")
    pool = _pool(env, medium)
    assert pool.size == 2 and all(w.alive for w in pool.workers)
    begun = time.monotonic()
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(_ask(env, "medium", "slow:1.5"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200, 200]
    assert len({a.json()["predictions"][0] for a in answers}) == 2  # two processes answered
    assert time.monotonic() - begun < 2.9  # side by side, not one after the other

    small = _create(env, "small")  # one worker; BRICKYARD_SERVING_QUEUE_SIZE=1 here: one request may wait
    pool = _pool(env, small)
    busy: list[httpx.Response] = []
    first = threading.Thread(target=lambda: busy.append(_ask(env, "small", "slow:2")))
    first.start()
    _until(lambda: not pool._free)
    second = threading.Thread(target=lambda: busy.append(_ask(env, "small", "slow:0")))
    second.start()
    _until(lambda: pool.waiting == 1)
    overflow = _ask(env, "small", "fine")
    assert overflow.status_code == 503, overflow.text
    assert overflow.json()["error_code"] == "TEMPORARILY_UNAVAILABLE" and int(overflow.headers["retry-after"]) >= 1
    first.join()
    second.join()
    assert [b.status_code for b in busy] == [200, 200]


def test_scale_to_zero_and_the_cold_start(env: dict[str, Any]) -> None:
    endpoint = _create(env, "sleepy", scale_to_zero_enabled=True)
    assert endpoint["state"]["config_update"] == "NOT_UPDATING", endpoint["state"]
    pool = _pool(env, endpoint)
    warm = _ask(env, "sleepy", "hello")
    assert warm.status_code == 200 and "x-brickyard-cold-start" not in warm.headers
    _until(lambda: pool.state() == "SCALED_TO_ZERO", seconds=15)  # idle 1 s here
    shown = httpx.get(env["url"] + "/api/2.0/serving-endpoints/sleepy", headers=env["h"]).json()
    assert shown["state"]["ready"] == "READY"
    assert shown["config"]["served_entities"][0]["state"]["deployment_state_message"] == "Scaled to zero"
    cold = _ask(env, "sleepy", "hello")
    assert cold.status_code == 200 and cold.headers["x-brickyard-cold-start"] == "true"
    again = _ask(env, "sleepy", "hello")
    assert "x-brickyard-cold-start" not in again.headers


def test_provisioned_throughput_reserves_workers_and_scale_fields_are_checked(env: dict[str, Any]) -> None:
    reserved = _create(env, "reserved", min_provisioned_throughput=100, max_provisioned_throughput=200,
                       scale_to_zero_enabled=True)
    pool = _pool(env, reserved)
    assert pool.size == 2 and pool.warm == 1 and not pool.scale_to_zero  # a reservation is never scaled away
    for bad, why in (({"workload_size": "Huge"}, "workload_size"), ({"workload_type": "GPU_SMALL"}, "GPU"),
                     ({"max_provisioned_throughput": 150}, "multiple of 100"),
                     ({"min_provisioned_throughput": 300, "max_provisioned_throughput": 200}, "at least"),
                     ({"workload_size": "Small", "max_provisioned_throughput": 100}, "not both")):
        r = httpx.post(env["url"] + "/api/2.0/serving-endpoints", headers=env["h"], json={
            "name": "refused", "config": {"served_entities": [
                {"entity_name": "main.default.faulty", "entity_version": "1", **bad}]}})
        assert r.status_code == 400 and why in r.json()["message"], (bad, r.text)


def _until(check: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_server_process_warms_its_endpoints_when_it_starts(env: dict[str, Any]) -> None:
    """What a restarted server, or a process joining the home, does before its first request: the workers of
    live endpoints start (scale-to-zero ones excepted)."""
    endpoint = _create(env, "rewarmed")
    ws = env["ws"]
    ws.serving.agents.retire(endpoint["id"])  # as a fresh process: no pools yet
    assert ws.serving.agents.pools_of(endpoint["id"]) == []
    ws.serving.warm_all()
    [pool] = ws.serving.agents.pools_of(endpoint["id"])
    assert pool.workers[0].alive
    answer = _ask(env, "rewarmed", "warm")
    assert answer.status_code == 200 and "x-brickyard-cold-start" not in answer.headers
