"""The workspace pages over HTTP (issue 22): every section answers for a signed-in user, with the user's grants
(a table without SELECT is a 403 page, not an empty one), hostile text shown as text, CSRF and Origin checked on
every form, the session ended by sign-out or revocation, strict headers, and the URLs the clients print."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import serve
from tests.ui._setup import ADMIN, BOB, HOSTILE, IMG, build, csrf, log_run, sign_in, wait_ready


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = build(tmp_path_factory.mktemp("ui") / "home")
    with serve(ws) as url:
        wait_ready(ws)
        tokens = {"admin": ws.create_token(ADMIN, admin=True), "bob": ws.create_token(BOB)}
        experiment, run = log_run(url, tokens["admin"])
        yield {"ws": ws, "url": url, "tokens": tokens, "experiment": experiment, "run": run}
    ws.close()


@pytest.fixture
def admin(site: dict[str, Any]) -> Iterator[Any]:
    client = sign_in(site["url"], site["tokens"]["admin"])
    yield client
    client.close()


@pytest.fixture
def bob(site: dict[str, Any]) -> Iterator[Any]:
    client = sign_in(site["url"], site["tokens"]["bob"])
    yield client
    client.close()


def test_pages_need_a_session_and_send_strict_headers(site: dict[str, Any], admin: Any) -> None:
    import httpx

    anonymous = httpx.get(site["url"] + "/explore/data/main/default/fruit", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login?next=")
    page = admin.get("/")
    assert page.status_code == 200 and "Catalog" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text):
        assert admin.get(asset).status_code == 200
    assert admin.get("/static/..%2Fapi%2F_ui%2F__init__.py").status_code == 404
    # a bearer token is not a browser session, and a browser session is not a bearer token
    assert httpx.get(site["url"] + "/", headers={"Authorization": f"Bearer {site['tokens']['admin']}"}).status_code == 303
    assert admin.get("/api/2.1/unity-catalog/catalogs").status_code == 401


def test_catalog_explorer_shows_a_table_as_its_reader_may_see_it(site: dict[str, Any], admin: Any, bob: Any) -> None:
    assert "main" in admin.get("/explore/data").text
    schema = admin.get("/explore/data/main/default").text
    for name in ("fruit", "files", "greet"):
        assert f">{name}<" in schema
    columns = admin.get("/explore/data/main/default/fruit")
    assert columns.status_code == 200 and "the name" in columns.text
    assert HOSTILE not in columns.text and "&lt;script&gt;" in columns.text  # the comment, as text
    sample = admin.get("/explore/data/main/default/fruit?tab=sample").text
    assert "banana" in sample and IMG not in sample and "&lt;img src=x" in sample
    first = admin.get("/explore/data/main/default/fruit?tab=sample&version=1").text
    assert "banana" in first and "cherry" not in first  # time travel: before the second insert
    history = admin.get("/explore/data/main/default/fruit?tab=history").text
    assert "WRITE" in history or "CREATE TABLE" in history
    lineage = admin.get("/explore/data/main/default/fruit?tab=lineage").text
    assert "main.default.fruit_index" in lineage and "<svg" in lineage
    index = admin.get("/explore/data/main/default/fruit_index")  # an index's catalog page is its query page
    assert index.status_code == 303 and index.headers["location"] == "/compute/vector-search/indexes/main.default.fruit_index"
    denied = bob.get("/explore/data/main/default/fruit?tab=sample")
    assert denied.status_code == 403 and "PERMISSION_DENIED" in denied.text and "banana" not in denied.text
    assert bob.get("/explore/data/main/default/nope").status_code in (403, 404)
    assert admin.get("/explore/data/main/default/fruit?tab=bogus").status_code == 400


def test_grants_are_changed_by_owners_with_a_csrf_token(site: dict[str, Any], admin: Any, bob: Any) -> None:
    page = admin.get("/explore/data/main/default/fruit?tab=grants").text
    token = csrf(page)
    form = {"principal": BOB, "privilege": "SELECT", "action": "add"}
    assert admin.post("/explore/data/main/default/fruit/grants", data=form).status_code == 403  # no token
    assert admin.post("/explore/data/main/default/fruit/grants", data={**form, "csrf": "0" * 40}).status_code == 403
    cross = admin.post("/explore/data/main/default/fruit/grants", data={**form, "csrf": token},
                       headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403
    done = admin.post("/explore/data/main/default/fruit/grants", data={**form, "csrf": token})
    assert done.status_code == 303
    assert "granted" in admin.get(done.headers["location"]).text
    # bob reads now, but may not change grants: the form is not offered, and a forged post is refused
    assert "banana" in bob.get("/explore/data/main/default/fruit?tab=sample").text
    bob_page = bob.get("/explore/data/main/default/fruit?tab=grants").text
    assert "Only the owner" in bob_page
    refused = bob.post("/explore/data/main/default/fruit/grants",
                       data={"principal": BOB, "privilege": "MODIFY", "action": "add", "csrf": csrf(bob_page)})
    assert refused.status_code == 403
    site["ws"].catalog.update_grants(site["ws"].principal(ADMIN), "table", "main.default.fruit",
                                     [{"principal": BOB, "remove": ["SELECT"]}])
    function = admin.get("/explore/data/functions/main/default/greet")
    assert function.status_code == 200 and "concat(" in function.text and "Says hi." in function.text
    granted = admin.post("/explore/data/functions/main/default/greet/grants",
                         data={"csrf": csrf(function.text), "principal": BOB, "privilege": "EXECUTE", "action": "add"})
    assert granted.status_code == 303
    after = admin.get(granted.headers["location"]).text
    assert "EXECUTE granted to" in after and BOB in after
    revoked = admin.post("/explore/data/functions/main/default/greet/grants",
                         data={"csrf": csrf(after), "principal": BOB, "privilege": "EXECUTE", "action": "remove"})
    assert "EXECUTE revoked from" in admin.get(revoked.headers["location"]).text


def test_volume_files_browse_upload_and_download(admin: Any) -> None:
    page = admin.get("/explore/data/volumes/main/default/files")
    assert page.status_code == 200 and "notes.txt" in page.text
    got = admin.get("/explore/data/volumes/main/default/files/download?path=notes.txt")
    assert got.status_code == 200 and got.content == b"hello from a volume"
    assert "attachment" in got.headers["content-disposition"]
    token = csrf(page.text)
    up = admin.post("/explore/data/volumes/main/default/files/upload",
                    data={"csrf": token, "path": "", "name": "typed.txt", "content": "typed in the page"})
    assert up.status_code == 303
    raw = admin.post("/explore/data/volumes/main/default/files/upload-file?path=&name=raw.bin",
                     content=b"\x00\x01binary", headers={"X-CSRF-Token": token})
    assert raw.status_code == 200, raw.text
    assert admin.post("/explore/data/volumes/main/default/files/upload-file?path=&name=x.bin",
                      content=b"x").status_code == 403  # no token
    listing = admin.get("/explore/data/volumes/main/default/files").text
    assert "typed.txt" in listing and "raw.bin" in listing
    assert admin.get("/explore/data/volumes/main/default/files/download?path=../../../secrets.key").status_code in (
        400, 403, 404)


def test_sql_editor_runs_pages_charts_and_remembers(admin: Any) -> None:
    page = admin.get("/sql/editor")
    token = csrf(page.text)
    statement = "SELECT f.id, f.id * 10 AS score, f.name FROM main.default.fruit f CROSS JOIN range(60) ORDER BY f.id"
    ran = admin.post("/sql/editor", data={"csrf": token, "statement": statement})
    assert ran.status_code == 303
    result = admin.get(ran.headers["location"])
    assert "SUCCEEDED" in result.text and "240 rows" in result.text and "page 1 of 3" in result.text
    assert IMG not in result.text
    last = admin.get(ran.headers["location"] + "?page=2").text
    assert "page 3 of 3" in last
    chart = admin.get(ran.headers["location"] + "?chart=bar&x=id&y=score").text
    assert "<svg" in chart and "<rect" in chart
    assert admin.get(ran.headers["location"] + "?chart=line&x=id&y=name").status_code == 400  # text is no number
    history = admin.get("/sql/editor").text
    assert "CROSS JOIN range(60)" in history
    failed = admin.post("/sql/editor", data={"csrf": token, "statement": "SELEC 1"})
    assert "PARSE_SYNTAX_ERROR" in admin.get(failed.headers["location"]).text


def test_serving_metrics_and_the_playground_with_its_trace(site: dict[str, Any], admin: Any, bob: Any) -> None:
    playground = admin.get("/ml/playground?endpoint=echo")
    assert playground.status_code == 200 and "echo" in playground.text
    token = csrf(playground.text)
    said = admin.post("/ml/playground", data={"csrf": token, "endpoint": "echo", "message": HOSTILE,
                                             "system": "be brief", "temperature": "0.2", "max_tokens": "32"})
    assert said.status_code == 200, said.text[:2000]
    assert HOSTILE not in said.text and "&lt;script&gt;" in said.text
    trace = re.search(r'href="(/ml/experiments/\d+/traces/[^"]+)"', said.text)
    assert trace, said.text[:3000]
    trace_page = admin.get(trace.group(1))
    assert trace_page.status_code == 200 and "playground: echo" in trace_page.text and HOSTILE not in trace_page.text
    both = admin.post("/ml/playground", data={"csrf": token, "endpoint": "echo", "compare": "echo", "message": "hi"})
    assert both.status_code == 200
    streamed = admin.post("/ml/playground/stream", data={"csrf": token, "endpoint": "echo", "message": "stream me"})
    assert streamed.status_code == 200 and "\x1etrace:/ml/experiments/" in streamed.text
    assert bob.post("/ml/playground", data={"csrf": csrf(bob.get("/ml/playground").text), "endpoint": "echo",
                                            "message": "hi"}).status_code == 400  # bob cannot query echo
    listing = admin.get("/ml/endpoints").text
    assert "echo" in listing and "READY" in listing
    detail = admin.get("/ml/endpoints/echo")
    assert detail.status_code == 200 and "AI Gateway" in detail.text and "usage_tracking_config" in detail.text
    requests = int(re.search(r"<b>(\d+)</b>requests", detail.text).group(1))
    assert requests == 3  # the three turns above (one, side by side with itself, streamed), from the usage table
    assert detail.text.count("<svg") == 3 and "p99" in detail.text
    assert bob.get("/ml/endpoints/echo").status_code in (403, 404)


def test_playground_tools_come_from_managed_mcp_servers_and_run_as_the_user(site: dict[str, Any], admin: Any,
                                                                            bob: Any) -> None:
    page = admin.get("/ml/playground?endpoint=obedient")
    assert "functions/main/default" in page.text and "vector-search/main/default" in page.text
    call = 'CALL main__default__greet {"name": "ann"}'
    said = admin.post("/ml/playground", data={"csrf": csrf(page.text), "endpoint": "obedient", "message": call,
                                             "tools": ["functions/main/default"]})
    assert said.status_code == 200 and "ANSWER: hi ann" in said.text, said.text[-3000:]
    trace = re.search(r'href="(/ml/experiments/\d+/traces/[^"]+)"', said.text).group(1)
    spans = admin.get(trace).text
    assert "main__default__greet" in spans and "TOOL" in spans
    # bob may query the endpoint but not execute the function: the model reads the refusal
    ws = site["ws"]
    ws.serving.set_acl(ws.principal(ADMIN), ws.serving.get(ws.principal(ADMIN), "obedient")["id"],
                       [{"user_name": BOB, "permission_level": "CAN_QUERY"}], replace=False)
    bob_page = bob.get("/ml/playground?endpoint=obedient").text
    refused = bob.post("/ml/playground", data={"csrf": csrf(bob_page), "endpoint": "obedient", "message": call,
                                              "tools": ["functions/main/default"]})
    assert refused.status_code in (200, 403), refused.text[-2000:]
    assert "hi ann" not in refused.text
    bogus = admin.post("/ml/playground", data={"csrf": csrf(page.text), "endpoint": "obedient", "message": "x",
                                              "tools": ["../../etc"]})
    assert bogus.status_code == 400 and "functions/&lt;catalog&gt;" in bogus.text


def test_vector_search_query_box(admin: Any, bob: Any) -> None:
    listing = admin.get("/compute/vector-search").text
    assert "main.default.fruit_index" in listing
    hits = admin.get("/compute/vector-search/indexes/main.default.fruit_index?q=banana&query_type=HYBRID&k=2")
    assert hits.status_code == 200 and "banana" in hits.text
    text = admin.get("/compute/vector-search/indexes/main.default.fruit_index?q=cherry&query_type=FULL_TEXT").text
    assert "cherry" in text
    assert bob.get("/compute/vector-search/indexes/main.default.fruit_index?q=x").status_code == 403


def test_experiments_runs_compare_and_the_url_mlflow_prints(site: dict[str, Any], admin: Any, bob: Any) -> None:
    eid, rid = site["experiment"], site["run"]
    runs = admin.get(f"/ml/experiments/{eid}")
    assert runs.status_code == 200 and "first" in runs.text and "second" in runs.text
    run = admin.get(f"/ml/experiments/{eid}/runs/{rid}")
    assert run.status_code == 200 and "lr" in run.text and "<polyline" in run.text  # loss by step, drawn
    other = re.findall(r'name="runs" value="([0-9a-f]+)"', runs.text)
    compared = admin.get(f"/ml/experiments/{eid}/compare", params=[("runs", r) for r in other])
    assert compared.status_code == 200 and "loss" in compared.text and "<rect" in compared.text
    assert bob.get(f"/ml/experiments/{eid}/runs/{rid}").status_code in (403, 404)


def test_sign_out_and_revocation_end_the_session(site: dict[str, Any]) -> None:
    client = sign_in(site["url"], site["tokens"]["admin"])
    page = client.get("/")
    assert page.status_code == 200
    assert client.post("/logout", data={"csrf": csrf(page.text)}).status_code == 303
    assert client.get("/").status_code == 303  # the cookie no longer works
    again = sign_in(site["url"], site["tokens"]["bob"])
    cookie = again.cookies.get("brickyard_session")
    site["ws"].identity.revoke_secret_token(cookie)
    assert again.get("/").status_code == 303


def test_prompts_versions_and_their_diff(admin: Any) -> None:
    schema = admin.get("/explore/data/main/default").text
    assert "/explore/data/prompts/main/default/greeting" in schema
    page = admin.get("/explore/data/prompts/main/default/greeting")
    assert page.status_code == 200 and "How we greet" in page.text
    assert '<span class="removed">- Hello {{name}}.</span>' in page.text
    assert '<span class="added">+ Hi {{name}}!</span>' in page.text and HOSTILE not in page.text
    assert '<span class="same">  Have a nice day.</span>' in page.text
    assert admin.get("/explore/data/prompts/main/default/greeting?a=1&b=9").status_code == 400


def test_logged_models_and_evaluation_runs_row_by_row(site: dict[str, Any], admin: Any, tmp_path: Any) -> None:
    import json as _json

    ws = site["ws"]
    listing = admin.get("/ml/experiments").text
    models = re.search(r'href="(/ml/experiments/\d+)">/Users/admin@example.com/models<', listing).group(1)
    assert "fruit-classifier" in admin.get(models + "?tab=models").text
    dataset = tmp_path / "rows.jsonl"
    dataset.write_text("\n".join(_json.dumps({"inputs": {"question": q}, "expectations": {"expected_response": a}})
                                 for q, a in (("apple", "echo: apple"), ("pear", "a pear"))))
    owner = ws.principal(ADMIN)
    runs = [ws.evaluations.run(owner, endpoint="echo", dataset=str(dataset), scorers=["exact_match"],
                               experiment=f"/Users/{ADMIN}/evals", run_name=f"eval {i}")["run_id"] for i in range(2)]
    experiment = ws.tracking.get_run(owner, runs[0])["info"]["experiment_id"]
    compared = admin.get(f"/ml/experiments/{experiment}/compare", params=[("runs", r) for r in runs]).text
    assert "Row by row" in compared and "exact_match" in compared
    assert compared.count("apple") >= 1 and "pear" in compared


def test_hostile_links_and_entities_stay_text(site: dict[str, Any], admin: Any) -> None:
    """Comments and values that look like markup, entities or javascript: URLs: escaped where shown, and every
    link the pages draw is a path on this server (names cannot hold such text: the catalog refuses them)."""
    ws = site["ws"]
    owner = ws.principal(ADMIN)
    ws.sql.execute(owner, "CREATE TABLE main.default.links (link STRING) COMMENT 'javascript:alert(1) &lt;b&gt;'")
    ws.sql.execute(owner, "INSERT INTO main.default.links VALUES ('javascript:alert(1)'), ('&lt;i&gt;x&lt;/i&gt;')")
    schema = admin.get("/explore/data/main/default").text
    assert "javascript:alert(1) &amp;lt;b&amp;gt;" in schema  # the comment: text, entities escaped once more
    page = admin.get("/explore/data/main/default/links?tab=sample")
    assert page.status_code == 200, page.text[:500]
    assert "&amp;lt;i&amp;gt;" in page.text and 'href="javascript' not in page.text
    for html in (schema, page.text, admin.get("/").text):
        for target in re.findall(r'(?:href|action|src)="([^"]*)"', html):
            assert target.startswith(("/", "?", "#")), target


def test_every_control_has_a_label(site: dict[str, Any], admin: Any) -> None:
    """Inputs, selects and text areas on every page are labelled (a <label for>, or aria-label)."""
    eid, rid = site["experiment"], site["run"]
    for path in ("/", "/explore/data/main/default/fruit?tab=sample", "/explore/data/main/default/fruit?tab=grants",
                 "/explore/data/volumes/main/default/files", "/sql/editor", "/ml/playground", "/ml/endpoints/echo",
                 "/compute/vector-search/indexes/main.default.fruit_index", f"/ml/experiments/{eid}",
                 f"/ml/experiments/{eid}/runs/{rid}", "/explore/data/prompts/main/default/greeting"):
        html = admin.get(path).text
        labelled = set(re.findall(r'<label for="([^"]+)"', html))
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
            if 'type="hidden"' in tag or "aria-label=" in tag:
                continue
            found = re.search(r'id="([^"]+)"', tag)
            assert found and found.group(1) in labelled, (path, tag)


def test_rerank_models_and_cancel(site: dict[str, Any], admin: Any) -> None:
    reranked = admin.get("/compute/vector-search/indexes/main.default.fruit_index?q=banana&k=2&rerank=on")
    assert reranked.status_code == 200 and "banana" in reranked.text, reranked.text[-1500:]
    ws = site["ws"]
    ws.catalog.create(ws.principal(ADMIN), "registered_model", "main.default.classifier", comment="Sorts fruit")
    model = admin.get("/explore/data/models/main/default/classifier")
    assert model.status_code == 200 and "Sorts fruit" in model.text and "No versions." in model.text
    page = admin.get("/sql/editor")
    ran = admin.post("/sql/editor", data={"csrf": csrf(page.text), "statement": "SELECT 1 AS one"})
    done = admin.post(ran.headers["location"] + "/cancel", data={"csrf": csrf(page.text)})
    assert done.status_code == 303 and "notice=" in done.headers["location"]
    assert "SUCCEEDED" in admin.get(done.headers["location"]).text  # a finished statement stays as it was
