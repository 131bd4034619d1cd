"""Human review: a review app, label schemas and a labeling session made with mlflow.genai's labeling API
(databricks-agents underneath), traces added to the session; a reviewer signs in in headless Chromium
(Debian's, through its chromedriver), reads each item (a chunk holding ``<script>`` shows as text) and submits
labels that land as assessments with the reviewer's name; only assigned reviewers and owners get in; sign-out
ends the session."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from brickyard.core.settings import Settings
from brickyard.workspace import Workspace
from tests._browser import browser, sign_in
from tests.conftest import serve

pytest.importorskip("databricks.agents", reason="needs databricks-agents (the dev group)")

EVIL = "<script>document.title='pwned'</script> Paris is the capital of France."


@pytest.fixture
def review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    import mlflow
    from mlflow.entities import Document, SpanType
    from mlflow.genai.label_schemas import InputCategorical, InputTextList, create_label_schema
    from mlflow.genai.labeling import create_labeling_session

    from brickyard.evaluation import use_bundled_o200k

    use_bundled_o200k()
    ws = Workspace(Settings(home=tmp_path / "home", access_log="off", monitor_interval_seconds=0))
    owner = ws.create_token("owner@example.com", admin=False)
    reviewer = ws.create_token("reviewer@example.com")
    outsider = ws.create_token("outsider@example.com")
    with serve(ws) as url:
        monkeypatch.setenv("DATABRICKS_HOST", url)
        monkeypatch.setenv("DATABRICKS_TOKEN", owner)
        mlflow.set_tracking_uri("databricks")
        mlflow.set_experiment("/Users/owner@example.com/reviewed")

        @mlflow.trace(span_type=SpanType.RETRIEVER)
        def retrieve(question: str) -> list[Document]:
            return [Document(page_content=EVIL, metadata={"doc_uri": "docs/evil.md"})]

        @mlflow.trace(span_type=SpanType.TOOL, name="lookup_city")
        def lookup(country: str) -> str:
            return "Paris"

        @mlflow.trace
        def app(question: str) -> str:
            retrieve(question)
            lookup("France")
            return "The capital is Paris."

        for q in ("What is the capital of France?", "Which city is France's capital?"):
            app(q)
        mlflow.flush_trace_async_logging()
        create_label_schema(name="correct", type="feedback", title="Is the answer correct?",
                            input=InputCategorical(options=["yes", "no"]), enable_comment=True)
        create_label_schema(name="facts", type="expectation", title="Facts a right answer states",
                            input=InputTextList())
        session = create_labeling_session(name="round 1", assigned_users=["reviewer@example.com"],
                                          label_schemas=["correct", "facts"])
        traces = mlflow.search_traces(max_results=10)
        session.add_traces(traces)
        yield {"ws": ws, "url": url, "session": session, "tokens": {"owner": owner, "reviewer": reviewer,
                                                                     "outsider": outsider}}
    ws.close()


def _submit(driver: Any, css: str) -> None:
    """Click a form's button and wait until the next page has replaced this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    button = driver.find_element(By.CSS_SELECTOR, css)
    button.click()
    WebDriverWait(driver, 20).until(expected_conditions.staleness_of(button))


def test_a_reviewer_labels_a_session_in_chromium(review: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    ws, url, session = review["ws"], review["url"], review["session"]
    path = urlparse(session.url).path
    driver = browser()
    try:
        driver.get(url + path)
        assert "/login" in driver.current_url  # not signed in: sent to sign in, then back
        sign_in(driver, review["tokens"]["reviewer"])
        assert urlparse(driver.current_url).path == path, (driver.current_url, driver.page_source[:1500])
        assert "0 of 2 items labelled" in driver.page_source
        cookie = driver.get_cookie("brickyard_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        _submit(driver, "a[href*='/items/']")
        for _ in range(2):
            body = driver.find_element(By.TAG_NAME, "body").text
            assert "<script>document.title='pwned'</script>" in body  # shown as text, never run
            assert driver.title != "pwned" and "lookup_city" in body and "The capital is Paris." in body
            Select(driver.find_element(By.NAME, "label:correct")).select_by_visible_text("yes")
            driver.find_element(By.NAME, "comment:correct").send_keys("names the right city")
            driver.find_element(By.NAME, "label:facts").send_keys("Paris is the capital\nin France")
            _submit(driver, "form:not([action]) button[type=submit]")
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "2 of 2 items labelled" in text and "Every item is labelled" in text, text[:1500]
        _submit(driver, "form[action='/logout'] button")
        assert "/login" in driver.current_url
        driver.get(url + path)
        assert "/login" in driver.current_url  # signed out: the session no longer works
    finally:
        driver.quit()
    items = ws.review_apps.list_items(ws.principal("owner@example.com"), session.review_app_id,
                                      session.labeling_session_id)["items"]
    assert [i["state"] for i in items] == ["COMPLETED", "COMPLETED"]
    for item in items:
        info = ws.traces.get_info(ws.system_principal(), item["chat_rounds"][0]["trace_id"])
        labels = {a["assessment_name"]: a for a in info["assessments"]
                  if (a.get("source") or {}).get("source_id") == "reviewer@example.com"}
        assert labels["correct"]["feedback"]["value"] == "yes"
        assert labels["correct"]["rationale"] == "names the right city"
        assert labels["correct"]["source"]["source_type"] == "HUMAN"
        assert labels["facts"]["expectation"]["value"] == ["Paris is the capital", "in France"]


def test_only_reviewers_and_owners_get_in(review: dict[str, Any]) -> None:
    url, session, tokens = review["url"], review["session"], review["tokens"]
    path = urlparse(session.url).path

    def signed_in(token: str) -> httpx.Client:
        client = httpx.Client(base_url=url, follow_redirects=False)
        r = client.post("/login", data={"token": token, "next": path})
        assert r.status_code == 303 and r.headers["location"] == path
        return client

    outsider = signed_in(tokens["outsider"])
    assert outsider.get(path).status_code == 403
    api = f"/api/2.0/managed-evals/review-apps/{session.review_app_id}/labeling-sessions/" \
          f"{session.labeling_session_id}/items"
    assert httpx.get(url + api, headers={"authorization": f"Bearer {tokens['outsider']}"}).status_code == 403
    assert httpx.get(url + api, headers={"authorization": f"Bearer {tokens['reviewer']}"}).status_code == 200
    owner = signed_in(tokens["owner"])
    assert owner.get(path).status_code == 200
    page = owner.get(path)
    assert "default-src 'none'" in page.headers["content-security-policy"] and "<script" not in page.text
    reviewer = signed_in(tokens["reviewer"])
    item = reviewer.get(path).text.split(f'href="{path}/items/')[1].split('"')[0]
    # no CSRF token: refused; a value that is not an option: the page again with the reason
    assert reviewer.post(f"{path}/items/{item}", data={"label:correct": "yes"}).status_code == 403
    form = reviewer.get(f"{path}/items/{item}").text
    csrf = form.split('name="csrf" value="')[1].split('"')[0]
    bad = reviewer.post(f"{path}/items/{item}", data={"csrf": csrf, "label:correct": "maybe"})
    assert bad.status_code == 400 and "is not an option" in bad.text
    assert httpx.post(url + "/login", data={"token": "dapi-nope", "next": "/"}).status_code == 401
    # a redirect target off this server is ignored
    r = httpx.post(url + "/login", data={"token": tokens["reviewer"], "next": "//evil.example/x"})
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_review_app_rest_bad_input(review: dict[str, Any]) -> None:
    url, session, tokens = review["url"], review["session"], review["tokens"]
    h = {"authorization": f"Bearer {tokens['owner']}"}
    base = f"{url}/api/2.0/managed-evals/review-apps/{session.review_app_id}"
    schema = {"name": "x", "type": "FEEDBACK", "categorical": {"options": []}}
    r = httpx.patch(f"{base}?update_mask=labeling_schemas", headers=h, json={"labeling_schemas": [schema]})
    assert r.status_code == 400 and "options" in r.json()["message"]
    r = httpx.post(f"{base}/labeling-sessions", headers=h, json={"name": "s", "assigned_users": ["nobody@x.com"]})
    assert r.status_code == 400 and "nobody@x.com" in r.json()["message"]
    r = httpx.post(f"{base}/labeling-sessions", headers=h, json={"name": "s", "labeling_schemas": [{"name": "zz"}]})
    assert r.status_code == 400 and "not in the review app" in r.json()["message"]
    items = f"{base}/labeling-sessions/{session.labeling_session_id}/items:batchCreate"
    assert httpx.post(items, headers=h, json={"items": [{"source": {}}]}).status_code == 400
    assert httpx.get(f"{url}/api/2.0/managed-evals/review-apps?filter=name%3Dx", headers=h).status_code == 400


def test_dataset_records_are_reviewed_into_their_expectations(review: dict[str, Any]) -> None:
    """An item from an evaluation dataset: the page shows its inputs and expectations, and a reviewer's
    expectation labels are written back to the record."""
    ws, url, session, tokens = review["ws"], review["url"], review["session"], review["tokens"]
    owner = ws.principal("owner@example.com")
    admin = ws.ensure_user("root@example.com", admin=True)
    ws.catalog.update_grants(admin, "schema", "main.default", [{"principal": "owner@example.com",
                                                                "add": ["CREATE_TABLE", "USE_SCHEMA"]}])
    ws.catalog.update_grants(admin, "catalog", "main", [{"principal": "owner@example.com", "add": ["USE_CATALOG"]}])
    dataset = ws.datasets.create(owner, {"name": "main.default.qs"})
    ws.datasets.create_records(owner, dataset["dataset_id"], {"requests": [{"dataset_record": {
        "inputs": [{"key": "question", "value": "Where is <b>Paris</b>?"}],
        "expectations": {"expected_response": {"value": "In France"}}}}]})
    record = ws.datasets.rows(owner, "main.default.qs")[0]
    ws.catalog.update_grants(admin, "table", "main.default.qs", [{"principal": "reviewer@example.com",
                                                                  "add": ["SELECT", "MODIFY"]}])
    ws.review_apps.create_items(owner, session.review_app_id, session.labeling_session_id, {"items": [{"source": {
        "dataset_record": {"dataset_id": dataset["dataset_id"], "dataset_record_id": record["dataset_record_id"]}}}]})
    path = urlparse(session.url).path
    client = httpx.Client(base_url=url, follow_redirects=False)
    client.post("/login", data={"token": tokens["reviewer"], "next": path})
    items = ws.review_apps.list_items(owner, session.review_app_id, session.labeling_session_id)["items"]
    item = next(i for i in items if "dataset_record" in i["source"])
    page = client.get(f"{path}/items/{item['item_id']}").text
    assert "Where is &lt;b&gt;Paris&lt;/b&gt;?" in page and "In France" in page
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    done = client.post(f"{path}/items/{item['item_id']}", data={"csrf": csrf, "label:facts": "Paris is in France"})
    assert done.status_code == 303
    after = ws.datasets.rows(owner, "main.default.qs")[0]
    assert after["expectations"] == {"expected_response": "In France", "facts": ["Paris is in France"]}


def test_the_workspace_pages_lead_to_the_review_app(review: dict[str, Any]) -> None:
    """The experiment's page links its review app's chat and labeling sessions; the reviewer's session page is
    one click away, and an outsider's experiment list does not show it."""
    from tests.ui._setup import sign_in as page_session

    owner = page_session(review["url"], review["tokens"]["owner"])
    listing = owner.get("/ml/experiments").text
    link = re.findall(r'href="(/ml/experiments/\d+)"', listing)[0]
    page = owner.get(link).text
    assert "Review app" in page and "round 1" in page
    assert urlparse(review["session"].url).path in page
    outsider = page_session(review["url"], review["tokens"]["outsider"])
    assert "reviewed" not in outsider.get("/ml/experiments").text
    owner.close()
    outsider.close()
