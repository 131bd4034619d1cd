"""The workspace pages in real Chromium (issue 22): sign in, see a table's rows, run SQL, change a grant, chat in
the Playground with the test model and open the answer's trace, query an index, open the run link mlflow prints;
hostile text never runs; the pages fit a narrow window. Screenshots of each main page go to ``reports/ui/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests._browser import browser, sign_in
from tests.conftest import serve
from tests.ui._setup import ADMIN, BOB, build, log_run, wait_ready

REPORTS = Path(__file__).parents[2] / "reports" / "ui"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    ws = build(tmp_path_factory.mktemp("ui-browser") / "home")
    with serve(ws) as url:
        wait_ready(ws)
        token = ws.create_token(ADMIN, admin=True)
        experiment, run = log_run(url, token)
        yield {"ws": ws, "url": url, "token": token, "experiment": experiment, "run": run}
    ws.close()


def _wait(driver: Any, css: str, text: str | None = None, seconds: float = 30) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d: Any) -> Any:
        for element in d.find_elements(By.CSS_SELECTOR, css):
            if text is None or text in element.text:
                return element
        return False

    return WebDriverWait(driver, seconds).until(found)


def _shot(driver: Any, name: str) -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(REPORTS / f"{name}.png"))


def test_a_day_in_the_workspace_in_chromium(site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    url = site["url"]
    driver = browser()
    try:
        driver.get(url + "/explore/data/main/default/fruit?tab=sample")
        assert "/login" in driver.current_url
        sign_in(driver, site["token"])
        assert urlparse(driver.current_url).path == "/explore/data/main/default/fruit"
        _wait(driver, "table", "banana")
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "<img src=x" in body and driver.title != "pwned"  # hostile cell shown as text, never run
        _shot(driver, "table-sample")
        driver.find_element(By.LINK_TEXT, "Columns").click()
        assert "<script>document.title='pwned'</script>" in _wait(driver, "p.muted").text  # the comment, as text
        assert driver.title != "pwned"
        driver.find_element(By.LINK_TEXT, "Lineage").click()
        _wait(driver, "a", "main.default.fruit_index")
        _shot(driver, "table-lineage")

        # grants: give bob SELECT from the table's page
        driver.find_element(By.LINK_TEXT, "Grants").click()
        driver.find_element(By.ID, "g-principal").send_keys(BOB)
        Select(driver.find_element(By.ID, "g-privilege")).select_by_visible_text("SELECT")
        driver.find_element(By.CSS_SELECTOR, "form.row button[type=submit]").click()
        _wait(driver, "p.notice", "SELECT granted to")
        _wait(driver, "td", BOB)
        _shot(driver, "table-grants")

        # the SQL editor, reached by the navigation, keyboard only for the statement
        driver.find_element(By.LINK_TEXT, "SQL editor").click()
        box = driver.find_element(By.ID, "statement")
        box.send_keys("SELECT id, id * 2 AS double FROM main.default.fruit ORDER BY id")
        driver.find_element(By.CSS_SELECTOR, "form[action='/sql/editor'] button.primary").click()
        _wait(driver, "b.state-SUCCEEDED")
        assert "4 rows" in driver.find_element(By.TAG_NAME, "body").text
        Select(driver.find_element(By.ID, "x")).select_by_visible_text("id")
        driver.find_element(By.XPATH, "//button[text()='Draw']").click()
        _wait(driver, "svg.chart")
        _shot(driver, "sql-editor")

        # the Playground: a streamed answer from the test model, then its trace
        driver.find_element(By.LINK_TEXT, "Playground").click()
        Select(driver.find_element(By.ID, "endpoint")).select_by_visible_text("echo")
        message = driver.find_element(By.ID, "message")
        message.send_keys("Tell me about bricks")
        driver.find_element(By.CSS_SELECTOR, "form[data-stream] button.primary").click()
        trace_link = _wait(driver, "#streamed-trace:not([hidden])")
        _wait(driver, ".chat .msg.assistant", "Tell me about bricks")  # the turn joined the conversation
        message = driver.find_element(By.ID, "message")
        assert message.get_attribute("value") == ""
        message.send_keys("And walls?")
        driver.find_element(By.CSS_SELECTOR, "form[data-stream] button.primary").click()
        _wait(driver, ".chat .msg.assistant", "And walls?")
        assert len(driver.find_elements(By.CSS_SELECTOR, ".chat .msg.user")) == 2
        _shot(driver, "playground")
        trace_link = driver.find_element(By.ID, "streamed-trace")
        trace_link.click()
        _wait(driver, "h2", "Spans")
        assert "playground: echo" in driver.find_element(By.TAG_NAME, "body").text
        _shot(driver, "trace")

        # Vector Search: the query box
        driver.find_element(By.LINK_TEXT, "Vector Search").click()
        driver.find_element(By.LINK_TEXT, "main.default.fruit_index").click()
        query = driver.find_element(By.ID, "q")
        query.send_keys("banana", Keys.ENTER)
        _wait(driver, "td", "banana")
        _shot(driver, "vector-search")

        # the link mlflow printed for the run
        driver.get(f"{url}/ml/experiments/{site['experiment']}/runs/{site['run']}")
        _wait(driver, "h1", "first")
        assert driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline")
        _shot(driver, "run")
        # MLflow's own link form, /#/experiments/..., lands on the same page
        driver.get(f"{url}/#/experiments/{site['experiment']}/runs/{site['run']}")
        _wait(driver, "h1", "first")

        driver.get(url + "/ml/endpoints/echo")
        _wait(driver, "h2", "Traffic")
        _shot(driver, "serving")
        driver.get(url + "/")
        _shot(driver, "home")

        # a narrow window: nothing wider than the screen but the scrolling tables
        driver.set_window_size(400, 800)
        driver.get(url + "/explore/data/main/default/fruit?tab=sample")
        width = driver.execute_script("return document.documentElement.scrollWidth")
        assert width <= 420, width
        _shot(driver, "narrow")

        driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        _wait(driver, "input[name=token]")
        driver.get(url + "/sql/editor")
        assert "/login" in driver.current_url
    finally:
        driver.quit()
