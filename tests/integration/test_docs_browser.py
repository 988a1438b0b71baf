"""`/docs` in a real browser (headless Chromium through Selenium), offline.

`card-checkout serve` runs on a migrated SQLite file; Chromium opens /docs with every host name
made unresolvable (the server is reached by its address), so a page that fetched anything from a
CDN would break. The
test waits until Swagger UI has rendered every operation of /openapi.json, tries one from the
page, checks that every request the browser made went to the service and that the page's
policy refused nothing, and keeps a screenshot as `artifacts/docs.png`.

Chromium comes as in test_sandbox_browser.py (installed with apt-get when missing; without it
the test skips, except in CI, where it fails).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.integration.conftest import migrated
from tests.integration.http_server import Server
from tests.integration.test_sandbox_browser import (  # the same browser, installed once
    ARTIFACTS,
    CHROMEDRIVER,
    CHROMIUM_ARGS,
    PAGE_SECONDS,
    chromium,  # noqa: F401 - a fixture
)

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

SCREENSHOT = ARTIFACTS / "docs.png"
# What the browser makes itself, without a request to any host (Swagger UI's icons are data:).
IN_THE_BROWSER = ("data:", "blob:")
# Only the server's own address resolves: whatever else the page asked for would fail.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("docs-service")
    database_url = f"sqlite+aiosqlite:///{home / 'db.sqlite3'}"
    asyncio.run(migrated(database_url))
    server = Server(database_url, home / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(chromium: Path, tmp_path: Path) -> Iterator[WebDriver]:  # noqa: F811 - the fixture
    """Headless Chromium, offline but for the loopback address, recording its network log."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in (*CHROMIUM_ARGS, OFFLINE):
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(PAGE_SECONDS)
        driver.set_window_size(1280, 1400)
        yield driver
    finally:
        driver.quit()


def _wait(driver: WebDriver) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, PAGE_SECONDS)


def _requested_urls(driver: WebDriver) -> list[str]:
    """Every URL the browser asked for since the last call (its DevTools network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _rendered_operations(driver: WebDriver) -> dict[str, str]:
    """What Swagger UI shows: operation id -> "METHOD path", one per operation block."""
    from selenium.webdriver.common.by import By

    shown = {}
    for block in driver.find_elements(By.CSS_SELECTOR, ".opblock"):
        operation_id = block.find_element(By.CSS_SELECTOR, ".opblock-summary-operation-id").text
        method = block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text
        path = block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute(
            "data-path"
        )
        shown[operation_id] = f"{method} {path}"
    return shown


def test_the_reference_renders_every_operation_offline_and_tries_one(
    server: Server, browser: WebDriver
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    document = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    documented = {
        operation["operationId"]: f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }

    _requested_urls(browser)  # the blank tab's own (chrome://) requests: not the page's
    browser.get(f"{server.base_url}/docs")
    _wait(browser).until(
        lambda driver: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) == len(documented)
    )

    shown = _rendered_operations(browser)
    assert shown == documented
    for operation_id, operation in {
        "createPayment": "POST /api/v1/payments",
        "getPayment": "GET /api/v1/payments/{payment_id}",
        "createInvoice": "POST /api/v1/invoices",
        "getReadiness": "GET /readyz",
        "getApiReference": "GET /docs",
    }.items():
        assert shown[operation_id] == operation
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT)), f"no screenshot saved at {SCREENSHOT}"
    print(f"screenshot of /docs: {SCREENSHOT}")

    # "Try it out" on the readiness probe: the page calls the service it came from.
    probe = browser.find_element(By.ID, "operations-Operations-getReadiness")
    probe.find_element(By.CSS_SELECTOR, ".opblock-summary-control").click()
    _wait(browser).until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".try-out__btn"))).click()
    _wait(browser).until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".execute"))).click()
    status = _wait(browser).until(
        ec.visibility_of_element_located(
            (By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status")
        )
    )
    assert status.text.strip() == "200"
    assert '"ready"' in probe.find_element(By.CSS_SELECTOR, ".live-responses-table").text

    # Nothing left the machine: every request went to the service, none was refused.
    requested = _requested_urls(browser)
    assert f"{server.base_url}/openapi.json" in requested
    assert f"{server.base_url}/readyz" in requested
    elsewhere = [
        url for url in requested if not url.startswith((f"{server.base_url}/", *IN_THE_BROWSER))
    ]
    assert elsewhere == [], elsewhere
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)"
    )
    assert loaded, "the page loaded no resource"
    assert [url for url in loaded if not url.startswith(f"{server.base_url}/")] == []
    problems = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"]
    ]
    assert problems == [], problems
