"""Security headers: JSON answers are neither sniffed nor cached; the sandbox's hosted pages
cannot be framed, run scripts or post elsewhere, and their own style still applies."""

from __future__ import annotations

import base64
import hashlib
import re

from entrypoints.bootstrap import CardCheckout
from tests.helpers import ENV, VISA, api_client


async def test_json_answers_are_not_sniffed_nor_stored(checkout: CardCheckout) -> None:
    async with api_client(checkout, "read") as client:
        listed = await client.get("/api/v1/payments")
        refused = await client.get("/api/v1/payments", headers={"Authorization": "Bearer no"})

    for answer in (listed, refused):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
    assert (listed.status_code, refused.status_code) == (200, 401)


async def test_the_hosted_page_cannot_be_framed_nor_run_what_it_does_not_carry(
    checkout: CardCheckout,
) -> None:
    async with api_client(checkout) as client:
        customer = await checkout.create_customer(ENV, {"external_id": "framed"})
        setup = await checkout.setup_card(ENV, customer.id)
        page = await client.get(f"/sandbox/checkout/{setup.id}")

    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy
    assert "form-action 'self'" in policy
    assert "script-src" not in policy  # no script at all
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    # The page's one inline style is the one the policy allows, so the page is not broken.
    [style] = re.findall(r"<style>(.*?)</style>", page.text, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy


async def test_the_hosted_form_is_taken_only_with_its_sessions_token(
    checkout: CardCheckout,
) -> None:
    async with api_client(checkout) as client:
        customer = await checkout.create_customer(ENV, {"external_id": "forged"})
        setup = await checkout.setup_card(ENV, customer.id)
        url = f"/sandbox/checkout/{setup.id}"
        page = await client.get(url)
        [token] = re.findall(r'name="form_token" value="([^"]+)"', page.text)
        # As a page of another site would post it: it cannot read the token.
        unsigned = await client.post(url, data={"card_number": VISA})
        guessed = await client.post(url, data={"card_number": VISA, "form_token": "x" * 22})
        assert checkout.sandbox is not None
        still_open = (await checkout.sandbox.checkout_page(setup.id))["status"]
        taken = await client.post(url, data={"card_number": VISA, "form_token": token})

    assert (unsigned.status_code, guessed.status_code) == (403, 403)
    assert still_open == "open"
    assert taken.status_code == 200
    assert "Card saved." in taken.text
    assert len(await checkout.list_payment_methods(ENV, customer.id)) == 1
