"""`/docs`: Swagger UI over `/openapi.json`, every file of it served by the service itself (from
the openapi-ui-bundles package), under a policy that lets the page load nothing from elsewhere.
No key needed. (tests/integration/test_docs_browser.py opens it in a real browser.)"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openapi_ui_bundles.swagger_ui import static_path

from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app


@pytest.fixture
async def anonymous(checkout: CardCheckout) -> AsyncIterator[httpx.AsyncClient]:
    """A client with no key at all."""
    app = create_app(checkout, notify_every=None, close_checkout=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (directive.split() for directive in policy.split(";") if directive.strip())
    return {name: sources for name, *sources in parts}


def _referenced(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


async def test_the_page_needs_no_key_and_loads_only_what_this_service_serves(
    anonymous: httpx.AsyncClient,
) -> None:
    page = await anonymous.get("/docs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<div id="swagger-ui"></div>' in page.text
    referenced = _referenced(page.text)
    assert referenced, page.text
    assert all(url.startswith("/") and not url.startswith("//") for url in referenced), referenced
    assert "<script>" not in page.text  # no inline script: the policy allows none


async def test_the_page_policy_allows_scripts_styles_and_requests_to_this_service_only(
    anonymous: httpx.AsyncClient,
) -> None:
    page = await anonymous.get("/docs")

    policy = _directives(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]  # the document, and "Try it out"
    assert policy["img-src"] == ["'self'", "data:"]  # Swagger UI's icons are data: URIs
    assert policy["frame-ancestors"] == ["'none'"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"


async def test_every_file_the_page_names_is_served_with_its_type(
    anonymous: httpx.AsyncClient,
) -> None:
    page = await anonymous.get("/docs")
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}

    files = [url for url in _referenced(page.text) if url.startswith("/docs/")]
    assert {"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"} <= set(files), files
    for url in files:
        answer = await anonymous.get(url)
        assert answer.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert kinds[suffix] in answer.headers["content-type"], url
        assert answer.headers["x-content-type-options"] == "nosniff"
        packaged = static_path / url.removeprefix("/docs/")
        if packaged.exists():  # Swagger UI's own files, as the package ships them
            assert answer.content == packaged.read_bytes(), url


async def test_swagger_ui_is_started_on_this_services_document(
    anonymous: httpx.AsyncClient,
) -> None:
    page = await anonymous.get("/docs")
    [start] = [
        url for url in _referenced(page.text) if url.endswith(".js") and "swagger" not in url
    ]

    script = (await anonymous.get(start)).text

    assert 'url: "/openapi.json"' in script
    assert "validatorUrl: null" in script  # no badge fetched from swagger.io
    assert (await anonymous.get("/openapi.json")).status_code == 200


async def test_only_the_page_is_an_operation_of_the_document(
    anonymous: httpx.AsyncClient,
) -> None:
    document: dict[str, Any] = (await anonymous.get("/openapi.json")).json()

    operation = document["paths"]["/docs"]["get"]
    assert operation["operationId"] == "getApiReference"
    assert operation["tags"] == ["Operations"]
    assert "security" not in operation
    assert list(operation["responses"]["200"]["content"]) == ["text/html"]
    assert [path for path in document["paths"] if path.startswith("/docs/")] == []


async def test_an_unknown_file_under_docs_is_not_served(anonymous: httpx.AsyncClient) -> None:
    # Only the files the page uses: not the package's sample page (it would load the petstore
    # from the internet), nor the files the page does without.
    for path in ("/docs/index.html", "/docs/swagger-ui-standalone-preset.js"):
        assert (await anonymous.get(path)).status_code == 404, path
