"""Issue 17, point 9: no route answers 500 to bad input. Hypothesis sends every registered route random
path parameters, query strings and JSON bodies built from the field names the routes actually read (taken
from the REST layer's source) and hostile values (huge, negative, wrong types, control characters), as an
admin, so authorization never stops the input before the code that reads it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brickyard.api import build_api
from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests.conftest import scaled, serve

API_SOURCES = Path(__file__).parents[2] / "src" / "brickyard" / "api"
FIELDS = sorted({m for f in API_SOURCES.glob("*.py")
                 for m in re.findall(r'(?:arg|require|int_arg|bool_arg|get)\("([a-z][a-z_0-9]*)"', f.read_text())})
# Routes whose success starts work that outlives the request or loads a model: fuzzed for their errors, with
# bodies that cannot be valid (an unknown name), so the fuzz never deploys or ingests for real.
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from([0, -1, -5, 10**30, 2**63, 99999]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20), st.sampled_from(["", " ", "..", "../x", "a/b", "\x00",
                                                                       "main", "main.default", "x.y.z", "'", "%s",
                                                                       "{{secrets/__brickyard/k}}", "-1", "1e999"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(FIELDS), inner, max_size=3)),
                      max_leaves=8)
PATH_PARTS = st.one_of(st.sampled_from(["main", "main.default", "main.default.t", "system", "x", "1", "-1",
                                        "a" * 300, "%2e%2e", "ok.txt", "Volumes/main/default/v/ok.txt/child"]),
                       st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"),
                               min_size=1, max_size=12))


class Target:
    def __init__(self, url: str, token: str, routes: list[Any]) -> None:
        self.url, self.token, self.routes = url, token, routes

    def __repr__(self) -> str:  # Hypothesis prints the arguments of a failing example
        return f"Target({self.url}, {len(self.routes)} routes)"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    ws = Workspace(Settings(home=tmp_path_factory.mktemp("fuzz") / "home"))
    admin = ws.ensure_user("admin@example.com", admin=True)
    token = ws.create_token("admin@example.com", admin=True)
    ws.tables.create(admin, "main.default.t", columns=[{"name": "id", "type_text": "bigint"}])
    ws.volumes.create(admin, "main.default.v")
    with serve(ws) as url:
        httpx.put(f"{url}/api/2.0/fs/files/Volumes/main/default/v/ok.txt", content=b"x",
                  headers={"authorization": f"Bearer {token}"}).raise_for_status()
        yield Target(url, token, ROUTES)
    ws.close()


def _fill(path: str, parts: list[str]) -> str:
    from urllib.parse import quote

    for name, part in zip(re.findall(r"\{[^}]+\}", path), parts, strict=False):
        path = path.replace(name, quote(part, safe="/" if name.endswith(":path}") else ""), 1)
    return path


def _routes() -> list[Any]:
    class _Stub:  # build_api reads only what the routers register, never calls the workspace
        def __getattr__(self, name: str) -> Any:
            return self

        def __call__(self, *a: Any, **k: Any) -> Any:
            return self

    return [r for r in build_api(_Stub()).routes if r.method != "HEAD"]


def _fields(handler: Any) -> list[str]:
    """The JSON fields a handler reads itself (the library may read more: those come from FIELDS)."""
    import inspect

    try:
        source = inspect.getsource(handler)
    except (OSError, TypeError):
        return []
    return sorted(set(re.findall(r'(?:arg|require|int_arg|bool_arg|get)\("([a-z][a-z_0-9]*)"', source)))


ROUTES = _routes()


@pytest.mark.parametrize("index", range(len(ROUTES)), ids=[f"{r.method} {r.path}" for r in ROUTES])
def test_no_route_answers_500_to_bad_input(target: Target, index: int) -> None:
    spec = ROUTES[index]
    own = _fields(spec.handler)
    keys = st.one_of(st.sampled_from(own), st.sampled_from(FIELDS)) if own else st.sampled_from(FIELDS)

    @settings(max_examples=scaled(6, 100), deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(parts=st.lists(PATH_PARTS, min_size=4, max_size=4), query=st.dictionaries(keys, st.text(max_size=10),
                                                                                     max_size=3),
           body=st.dictionaries(keys, VALUES, max_size=5))
    def run(parts: list[str], query: dict[str, str], body: dict[str, Any]) -> None:
        path = _fill(spec.path, parts)
        sent: dict[str, Any] | None = body if spec.body in ("json", "json64") else None
        if sent is not None and (spec.path.startswith("/serving-endpoints/") or "invocations" in spec.path):
            sent = {**sent, "model": "no-such-endpoint"}
        try:
            r = httpx.request(spec.method, target.url + path, params=query, json=sent, timeout=60,
                              headers={"authorization": f"Bearer {target.token}"})
        except httpx.HTTPError as exc:
            raise AssertionError(f"{spec.method} {path}: the request failed: {exc!r}") from None
        assert r.status_code != 500, (spec.method, spec.path, path, query, sent, r.text[:300])

    run()
