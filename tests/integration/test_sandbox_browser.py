"""The sandbox's hosted checkout pages in a real browser (headless Chromium through Selenium).

The service runs as a user runs it: `card-checkout migrate`, `card-checkout api-keys create` and
`card-checkout serve` in subprocesses, on a SQLite file. Chromium types Stripe test cards into the
page; the API (over httpx) then shows what the page did.

Chromium and its driver come from Debian (`chromium`, `chromium-driver`) and are installed with
apt-get when missing. Without them (or without selenium) the tests skip with the reason, except in
CI (CI=true), where they fail. Screenshots of the pages are saved under `artifacts/`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import httpx
import pytest

from tests.integration.http_server import free_port

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_PACKAGES = ("chromium", "chromium-driver")
APT_UPDATE_SECONDS = 300
APT_INSTALL_SECONDS = 1200
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
PAGE_SECONDS = 15

CLI = Path(sys.executable).with_name("card-checkout")
ENVIRONMENT = "env_browser"
STARTUP_SECONDS = 20.0
STOP_SECONDS = 10.0
CLI_SECONDS = 60

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _unavailable(reason: str) -> NoReturn:
    """Skip with `reason`, or fail in CI, where the browser tests must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI must run the browser tests)")
    pytest.skip(reason)


def _apt_get(*args: str, timeout: int) -> None:
    command = ["apt-get", "-o", "DPkg::Lock::Timeout=120", *args]
    try:
        result = subprocess.run(
            command,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"`{' '.join(command)}` did not finish within {timeout} s")
    except OSError as error:
        _unavailable(f"`{' '.join(command)}` could not run: {error}")
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        _unavailable(f"`{' '.join(command)}` exited with {result.returncode}:\n{tail}")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium and chromedriver, installed with apt-get when either is missing."""
    if importlib.util.find_spec("selenium") is None:
        _unavailable("selenium is not installed (it is in the `test` extra)")
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        _unavailable(f"{CHROMIUM} or {CHROMEDRIVER} is missing and there is no apt-get")
    started = time.monotonic()
    _apt_get("update", timeout=APT_UPDATE_SECONDS)
    _apt_get("install", "-y", *CHROMIUM_PACKAGES, timeout=APT_INSTALL_SECONDS)
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        _unavailable(f"apt-get installed {CHROMIUM_PACKAGES} but {missing} are still missing")
    print(
        f"installed {' '.join(CHROMIUM_PACKAGES)} in {time.monotonic() - started:.0f} s",
        file=sys.stderr,
    )
    return CHROMIUM


# The service ---------------------------------------------------------------------------


def _cli(environ: dict[str, str], *args: str) -> str:
    """Run `card-checkout ARGS`; its standard output."""
    result = subprocess.run(
        [str(CLI), *args],
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLI_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"card-checkout {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class Service:
    base_url: str
    api: httpx.Client

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.api.post(path, json=body or {})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def get(self, path: str) -> dict[str, Any]:
        response = self.api.get(path)
        assert response.status_code == 200, response.text
        return dict(response.json())


def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"the server exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(
        f"{base_url}/healthz did not answer within {STARTUP_SECONDS} s:\n"
        f"{log.read_text(errors='replace')}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`card-checkout serve` on a free port over a fresh SQLite file, with a write key."""
    home = tmp_path_factory.mktemp("browser-service")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    environ = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{home / 'db.sqlite3'}",
        "PUBLIC_BASE_URL": base_url,
    }
    environ.pop("STRIPE_SECRET_KEY", None)  # the sandbox gateway serves the hosted pages
    _cli(environ, "migrate")
    output = _cli(environ, "api-keys", "create", "--environment", ENVIRONMENT, "--role", "write")
    key = output.strip().splitlines()[-1].strip()
    assert key, f"no key in the output: {output!r}"
    assert " " not in key, f"no key in the output: {output!r}"
    log = home / "server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_healthy(process, base_url, log)
        headers = {"Authorization": f"Bearer {key}", "X-Environment-ID": ENVIRONMENT}
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as api:
            yield Service(base_url=base_url, api=api)
    finally:
        _stop(process)


# The browser ---------------------------------------------------------------------------


@pytest.fixture
def browser(chromium: Path, tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=DriverService(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(PAGE_SECONDS)
        driver.set_window_size(900, 800)
        yield driver
    finally:
        driver.quit()


def _screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), f"no screenshot saved at {path}"
    return path


def _submit_card(driver: WebDriver, card_number: str) -> None:
    """Type `card_number` into the form on the page and submit it."""
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.NAME, "card_number")
    field.clear()
    field.send_keys(card_number)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def _wait(driver: WebDriver) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, PAGE_SECONDS)


def _customer(service: Service, name: str) -> str:
    return str(service.post("/api/v1/customers", {"external_id": f"browser-{name}"})["id"])


# The tests -----------------------------------------------------------------------------


def test_a_card_typed_on_the_setup_page_becomes_the_customers_default(
    service: Service, browser: WebDriver
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    customer_id = _customer(service, "setup")
    setup = service.post(f"/api/v1/customers/{customer_id}/payment_methods/setup")
    assert setup["url"].startswith(f"{service.base_url}/sandbox/checkout/")

    browser.get(setup["url"])
    _wait(browser).until(ec.presence_of_element_located((By.NAME, "card_number")))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Save a card"
    _screenshot(browser, "sandbox-checkout-form.png")

    _submit_card(browser, "4242 4242 4242 4242")
    done = _wait(browser).until(ec.presence_of_element_located((By.CSS_SELECTOR, "h1.done")))
    assert done.text == "Card saved."
    assert not browser.find_elements(By.NAME, "card_number")
    _screenshot(browser, "sandbox-checkout-card-saved.png")

    cards = service.get(f"/api/v1/customers/{customer_id}/payment_methods")["items"]
    assert len(cards) == 1, cards
    assert cards[0]["last4"] == "4242"
    assert cards[0]["brand"] == "visa"
    assert cards[0]["is_default"] is True


def test_a_payment_link_shows_a_decline_then_takes_a_good_card_and_pays_the_invoice(
    service: Service, browser: WebDriver
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    customer_id = _customer(service, "payment-link")
    invoice = service.post(
        "/api/v1/invoices",
        {"customer_id": customer_id, "currency": "usd", "amount_due": "25.00",
         "status": "FINALIZED"},
    )  # fmt: skip
    success_url = f"{service.base_url}/healthz"
    payment = service.post(
        "/api/v1/payments",
        {
            "destination_type": "INVOICE",
            "destination_id": invoice["id"],
            "payment_method_type": "PAYMENT_LINK",
            "payment_gateway": "stripe",
            "amount": "25.00",
            "currency": "usd",
            "process_payment": True,
            "save_card_and_make_default": True,
            "success_url": success_url,
        },
    )
    assert payment["payment_status"] == "processing"
    payment_url = payment["payment_url"]
    assert payment_url.startswith(f"{service.base_url}/sandbox/checkout/")

    browser.get(payment_url)
    _wait(browser).until(ec.presence_of_element_located((By.NAME, "card_number")))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Pay with card"
    assert browser.find_element(By.CSS_SELECTOR, ".amount").text == "25.00 USD"
    _screenshot(browser, "sandbox-checkout-payment-form.png")

    # A declined card: the page says so and keeps the form; nothing is paid or saved.
    _submit_card(browser, "4000000000000002")
    alert = _wait(browser).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "[role=alert]"))
    )
    assert alert.text == "Your card was declined."
    assert browser.current_url == payment_url
    assert browser.find_element(By.NAME, "card_number").get_attribute("value") == ""
    _screenshot(browser, "sandbox-checkout-declined.png")
    assert service.get(f"/api/v1/payments/{payment['id']}")["payment_status"] == "processing"
    assert service.get(f"/api/v1/customers/{customer_id}/payment_methods")["items"] == []

    # A good card: the page completes and sends the customer to success_url.
    _submit_card(browser, "4242424242424242")
    _wait(browser).until(ec.url_to_be(success_url))

    paid = service.get(f"/api/v1/payments/{payment['id']}")
    assert paid["payment_status"] == "succeeded"
    assert paid["amount"] == "25.00"
    assert paid["metadata"]["card_last4"] == "4242"
    assert paid["error"] is None
    settled = service.get(f"/api/v1/invoices/{invoice['id']}")
    assert settled["payment_status"] == "succeeded"
    assert settled["amount_paid"] == "25.00"
    assert settled["amount_remaining"] == "0.00"
    assert settled["paid_at"] is not None
    cards = service.get(f"/api/v1/customers/{customer_id}/payment_methods")["items"]
    assert [(card["last4"], card["is_default"]) for card in cards] == [("4242", True)]
