"""The sandbox's hosted pages: where a person (or a test) types a Stripe test card.

Submitting the form completes the checkout exactly as Stripe's `checkout.session.completed`
would. The card number goes to the sandbox's test-card table only; it is never logged or kept.
"""

from __future__ import annotations

import hmac
from html import escape
from typing import Final

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from core.errors import CheckoutError
from core.money import CURRENCIES, Money
from entrypoints.bodies.text import check_name
from entrypoints.bootstrap import CardCheckout
from entrypoints.http.headers import page_headers

_STYLE: Final = """
body{font-family:system-ui,sans-serif;background:#f6f8fa;margin:0;display:flex;
justify-content:center;padding-top:8vh;color:#1f2328}
main{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:2rem;width:22rem}
h1{font-size:1.2rem;margin:0 0 .3rem}.amount{font-size:1.8rem;font-weight:600;margin:.5rem 0 1rem}
label{display:block;font-size:.9rem;margin-bottom:.3rem}
input{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;border:1px solid #d0d7de;
border-radius:6px;letter-spacing:.05em}
button{margin-top:1rem;width:100%;padding:.7rem;font-size:1rem;border:0;border-radius:6px;
background:#635bff;color:#fff;cursor:pointer}.note{color:#59636e;font-size:.8rem;margin-top:1rem}
.error{color:#cf222e;margin:.5rem 0}.done{color:#1a7f37}
"""


_PAGE_HEADERS: Final = page_headers(_STYLE)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f'</title><meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<style>{_STYLE}</style></head><body><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)


def _no_such_checkout() -> HTMLResponse:
    return _page("Not found", "<h1>This checkout does not exist.</h1>", 404)


def _form(session: dict[str, object], error: str | None = None) -> str:
    if session["mode"] == "payment":
        amount = Money.from_minor_units(
            int(str(session["amount"])), CURRENCIES[str(session["currency"])]
        )
        heading = "<h1>Pay with card</h1>"
        shown = f"{amount} {amount.currency.code.upper()}"
        what = f'<div class="amount">{escape(shown)}</div>'
        button = "Pay"
    else:
        heading, what, button = (
            "<h1>Save a card</h1>",
            "<p>It becomes your default card.</p>",
            "Save card",
        )
    problem = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    token = escape(str(session.get("form_token", "")))
    return (
        f"{heading}{what}{problem}"
        '<form method="post">'
        f'<input type="hidden" name="form_token" value="{token}">'
        '<label for="card_number">Card number</label>'
        '<input id="card_number" name="card_number" inputmode="numeric" autocomplete="off" '
        'placeholder="4242 4242 4242 4242" required>'
        f'<button type="submit">{button}</button></form>'
        '<p class="note">Sandbox: use a Stripe test card. Nothing is charged.</p>'
    )


def _posted_from_its_page(session: dict[str, object], form: FormData) -> bool:
    """Whether the form carries its session's token (a session made before tokens has none)."""
    expected = session.get("form_token")
    if not isinstance(expected, str):
        return True
    given = form.get("form_token")
    return isinstance(given, str) and hmac.compare_digest(given, expected)


def sandbox_routes(checkout: CardCheckout) -> list[Route]:
    sandbox = checkout.sandbox
    assert sandbox is not None

    async def session_of(request: Request) -> tuple[str, dict[str, object]] | None:
        """The checkout the path names (its id and page), or None if there is none."""
        try:
            # A NUL or control character cannot name a session (nor be looked up in PostgreSQL).
            session_id = check_name("session_id", request.path_params["session_id"])
            return session_id, await sandbox.checkout_page(session_id)
        except CheckoutError:
            return None

    async def show(request: Request) -> Response:
        if (found := await session_of(request)) is None:
            return _no_such_checkout()
        _, session = found
        if session["status"] != "open":
            return _page("Checkout", f"<h1>This checkout is {escape(str(session['status']))}.</h1>")
        return _page("Checkout", _form(session))

    async def submit(request: Request) -> Response:
        if (found := await session_of(request)) is None:
            return _no_such_checkout()
        session_id, session = found
        form = await request.form()
        if session["status"] == "open" and not _posted_from_its_page(session, form):
            expired = "<h1>This form has expired.</h1><p>Open the checkout link again.</p>"
            return _page("Checkout", expired, 403)
        card_number = str(form.get("card_number", ""))
        try:
            await checkout.complete_sandbox_checkout(session_id, card_number)
        except CheckoutError as error:
            return _page("Checkout", _form(session, error.message), 402)
        if session.get("success_url"):
            return RedirectResponse(str(session["success_url"]), status_code=303)
        done = "Payment complete." if session["mode"] == "payment" else "Card saved."
        return _page("Done", f'<h1 class="done">{done}</h1><p>You can close this page.</p>')

    path = "/sandbox/checkout/{session_id}"
    return [
        Route(path, show, methods=["GET"], include_in_schema=False),
        Route(path, submit, methods=["POST"], include_in_schema=False),
    ]
