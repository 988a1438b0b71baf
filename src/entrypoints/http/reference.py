"""The API reference at `/docs`: Swagger UI reading `/openapi.json`, served by the service.

Swagger UI's files come from the `openapi-ui-bundles` package, so the page works offline:
its scripts, styles and icon are served from here, and its policy lets it load nothing else.
"""

from __future__ import annotations

from typing import Final

from openapi_ui_bundles.swagger_ui import static_path
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from entrypoints.http.headers import reference_headers

PREFIX: Final = "/docs"
# The package's files the page uses (nothing else of the package is served).
_VENDORED: Final = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png")
# Ours, as files rather than inline so that the policy needs no exception: the page's own
# style, and the script that starts Swagger UI.
_STYLE_NAME: Final = "page.css"
_STYLE: Final = """\
html{box-sizing:border-box;overflow-y:scroll}*,*::before,*::after{box-sizing:inherit}
body{margin:0;background:#fafafa}
.swagger-ui .opblock .opblock-summary-operation-id{white-space:nowrap}
"""
_START_NAME: Final = "start.js"
_START: Final = """\
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    displayOperationId: true,
    filter: true,
    validatorUrl: null,
  });
});
"""
_PAGE: Final = f"""\
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Card Checkout API reference</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" type="image/png" href="{PREFIX}/favicon-32x32.png">
<link rel="stylesheet" href="{PREFIX}/swagger-ui.css">
<link rel="stylesheet" href="{PREFIX}/{_STYLE_NAME}">
</head>
<body>
<noscript>This page needs JavaScript. The API's OpenAPI document is at
<a href="/openapi.json">/openapi.json</a>.</noscript>
<div id="swagger-ui"></div>
<script src="{PREFIX}/swagger-ui-bundle.js"></script>
<script src="{PREFIX}/{_START_NAME}"></script>
</body>
</html>
"""
# The files change only with the package's version: a browser may keep them a day.
_ASSET_HEADERS: Final = {"Cache-Control": "public, max-age=86400"}
_PAGE_HEADERS: Final = reference_headers()


def reference_page() -> Response:
    return HTMLResponse(_PAGE, headers=_PAGE_HEADERS)


def reference_assets() -> list[Route]:
    """The page's scripts, styles and icon, each at `/docs/<name>` (not API operations)."""
    return [
        *(_vendored(name) for name in _VENDORED),
        _own(_STYLE_NAME, _STYLE, "text/css"),
        _own(_START_NAME, _START, "text/javascript"),
    ]


def _own(name: str, text: str, media_type: str) -> Route:
    async def serve(request: Request) -> Response:
        return Response(text, media_type=media_type, headers=_ASSET_HEADERS)

    return Route(f"{PREFIX}/{name}", serve, methods=["GET"], include_in_schema=False)


def _vendored(name: str) -> Route:
    path = static_path / name
    if not path.is_file():  # the package changed its layout: refuse to start, not 404 later
        raise FileNotFoundError(f"openapi-ui-bundles has no {name} at {path}")

    async def serve(request: Request) -> Response:
        return FileResponse(path, headers=_ASSET_HEADERS)

    return Route(f"{PREFIX}/{name}", serve, methods=["GET"], include_in_schema=False)
