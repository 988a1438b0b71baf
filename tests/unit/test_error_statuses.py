"""The contract's error table against the app's: every code answers with the contract's status.

The table below is the contract's (API.md, "Errors"), copied whole, plus the codes the contract
names with a status elsewhere in its text. The app may add codes of its own (listed here too, so
that a new one is a decision, not an accident), but never drop or re-status one of the contract's.
The edge's refusals (429, 431), which the contract has no status for, are a set of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest

from core.errors import CheckoutError, error_classes
from entrypoints.bootstrap import CardCheckout, bootstrap
from entrypoints.http import create_app
from entrypoints.http.errors import STATUS_FOR_CODE, status_for
from tests.helpers import ENV

# API.md's error table, row by row: code -> HTTP status.
CONTRACT_TABLE: dict[str, int] = {
    "validation_error": 400,
    "invalid_json": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "invoice_not_found": 404,
    "payment_not_found": 404,
    "customer_not_found": 404,
    "not_found": 404,
    "invoice_not_finalized": 409,
    "invoice_voided": 409,
    "invoice_already_paid": 409,
    "payment_in_progress": 409,
    "invalid_state_transition": 409,
    "idempotency_key_in_use": 409,
    "amount_mismatch": 422,
    "currency_mismatch": 422,
    "customer_not_linked": 422,
    "refund_exceeds_payment": 422,
    "idempotency_key_reused": 422,
    "no_default_payment_method": 402,
    "payment_method_not_found": 402,
    "card_declined": 402,
    "insufficient_funds": 402,
    "authentication_required": 402,
    "expired_card": 402,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "gateway_error": 502,
    "service_unavailable": 503,
    "internal_error": 500,
}
# Codes the contract gives a status in its prose rather than in the table.
CONTRACT_PROSE: dict[str, int] = {
    "missing_environment": 400,
    "gateway_customer_not_owned": 422,
    "webhook_url_not_allowed": 422,
}
CONTRACT: dict[str, int] = {**CONTRACT_TABLE, **CONTRACT_PROSE}

# The contract's codes the app does not have yet (no error class, no status): each is an
# expected failure below, strict, so that implementing one makes the test say to drop it here.
NOT_YET_IMPLEMENTED: frozenset[str] = frozenset()

# Codes of the app's own, not in the contract, with the status each answers.
PROJECT_CODES: dict[str, int] = {
    "method_not_allowed": 405,
    "customer_already_exists": 409,
    "concurrent_update": 409,
    "gateway_not_connected": 409,  # a live environment left without its Stripe connection
}

# Refusals at the edge that the contract has no status for (issue 18 asks for them): kept
# apart from PROJECT_CODES so that extending the contract's statuses stays a decision.
EDGE_CODES: dict[str, int] = {
    "rate_limited": 429,  # a client failing authentication too often, with Retry-After
    "request_header_fields_too_large": 431,  # headers too many or too large
}


def _contract_params() -> list[Any]:
    return [
        pytest.param(
            code,
            status,
            marks=[pytest.mark.xfail(strict=True, reason=f"{code} is not in the app yet")]
            if code in NOT_YET_IMPLEMENTED
            else [],
            id=code,
        )
        for code, status in sorted(CONTRACT.items())
    ]


def _instance(code: str) -> CheckoutError:
    return error_classes()[code]("It went wrong.")


class _Refusing:
    """A CardCheckout whose every authorization raises `error`: any route then answers it."""

    def __init__(self, inner: CardCheckout) -> None:
        self.inner = inner
        self.error: CheckoutError | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def authorize(self, *args: object, **kwargs: object) -> object:
        assert self.error is not None
        raise self.error


@pytest.fixture
async def refusing() -> AsyncIterator[tuple[_Refusing, httpx.AsyncClient]]:
    checkout = _Refusing(bootstrap())
    app = create_app(cast(CardCheckout, checkout), notify_every=None)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": "Bearer k", "X-Environment-ID": ENV}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=headers
    ) as client:
        yield checkout, client


@pytest.mark.parametrize(("code", "status"), _contract_params())
def test_every_contract_error_code_has_its_status(code: str, status: int) -> None:
    assert code in error_classes(), f"no error class declares {code}"
    assert STATUS_FOR_CODE.get(code) == status, f"{code}: the app's table says otherwise"
    assert status_for(_instance(code)) == status


@pytest.mark.parametrize(("code", "status"), _contract_params())
async def test_every_contract_error_code_is_answered_over_http_with_its_status(
    code: str, status: int, refusing: tuple[_Refusing, httpx.AsyncClient]
) -> None:
    checkout, client = refusing
    assert code in error_classes(), f"no error class declares {code}"
    checkout.error = _instance(code)
    response = await client.get("/api/v1/payments/pay_1")
    assert response.json()["error"]["code"] == code
    assert response.status_code == status, f"{code} answered {response.status_code}"


def test_the_apps_status_table_is_the_contracts_and_its_own_codes_nothing_missing() -> None:
    implemented = {c: s for c, s in CONTRACT.items() if c not in NOT_YET_IMPLEMENTED}
    app_table = {c: s for c, s in STATUS_FOR_CODE.items() if c not in NOT_YET_IMPLEMENTED}
    # Contract -> app: no contract code missing, none with another status.
    assert {c: app_table.get(c) for c in implemented} == implemented
    # App -> contract: every other code the app answers is one of its own, as listed here.
    assert {c: s for c, s in app_table.items() if c not in CONTRACT} == {
        **PROJECT_CODES,
        **EDGE_CODES,
    }
    # And every code an error can carry has exactly one status in the app's table.
    assert set(error_classes()) - NOT_YET_IMPLEMENTED == set(app_table)


def test_the_project_codes_do_not_reuse_a_contract_code() -> None:
    assert not set(PROJECT_CODES) & set(CONTRACT)
    assert not set(EDGE_CODES) & (set(CONTRACT) | set(PROJECT_CODES))
