"""Issue 18 at the edge: a client guessing API keys is slowed down (429), and oversized request
headers are refused (431), both in the one error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from entrypoints.bootstrap import CardCheckout
from entrypoints.http import create_app
from entrypoints.http.throttle import MAX_FAILURES, WINDOW_SECONDS, AuthThrottle, client_of
from tests.helpers import ENV, error_body

GUESSER = "203.0.113.7"
NEIGHBOUR = "198.51.100.4"
ROUTE = "/api/v1/payments"


class Seconds:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Client = Callable[[str], httpx.AsyncClient]


@pytest.fixture
def seconds() -> Seconds:
    return Seconds()


@pytest.fixture
async def key(checkout: CardCheckout) -> str:
    await checkout.create_environment("t", "test", environment_id=ENV)
    return (await checkout.create_api_key("t", [ENV], "admin"))[1]


@pytest.fixture
async def client_from(
    checkout: CardCheckout, seconds: Seconds
) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """Clients of one app, each calling from the address it is given."""
    app = create_app(checkout, notify_every=None, auth_throttle=AuthThrottle(clock=seconds))
    opened: list[httpx.AsyncClient] = []

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        opened.append(httpx.AsyncClient(transport=transport, base_url="http://testserver"))
        return opened[-1]

    yield client
    for each in opened:
        await each.aclose()


def _with(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "X-Environment-ID": ENV}


async def _guess(client: httpx.AsyncClient, times: int) -> list[int]:
    return [
        (await client.get(ROUTE, headers=_with(f"ck_guess_{n}"))).status_code for n in range(times)
    ]


async def test_the_failure_after_the_limit_is_429_with_retry_after_in_the_error_shape(
    client_from: Client, seconds: Seconds
) -> None:
    guesser = client_from(GUESSER)
    assert await _guess(guesser, MAX_FAILURES) == [401] * MAX_FAILURES
    seconds.now += 10

    refused = await guesser.get(ROUTE, headers=_with("ck_guess_next"))

    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(int(WINDOW_SECONDS) - 10)
    assert set(refused.json()) == {"error"}
    error = error_body(refused)
    assert error["code"] == "rate_limited"
    assert error["details"] == {"retry_after": int(WINDOW_SECONDS) - 10}
    assert "API key" in error["message"]
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["x-request-id"]


async def test_writes_and_admin_routes_are_throttled_too_but_public_routes_are_not(
    client_from: Client,
) -> None:
    guesser = client_from(GUESSER)
    await _guess(guesser, MAX_FAILURES)
    write = await guesser.post("/api/v1/customers", json={"external_id": "x"}, headers=_with("k"))
    admin = await guesser.get("/api/v1/webhook_endpoints", headers=_with("k"))
    assert (write.status_code, admin.status_code) == (429, 429)
    assert (await guesser.get("/healthz")).status_code == 200
    assert (await guesser.get("/openapi.json")).status_code == 200


async def test_another_client_with_a_valid_key_is_not_affected(
    client_from: Client, key: str
) -> None:
    guesser, neighbour = client_from(GUESSER), client_from(NEIGHBOUR)
    await _guess(guesser, MAX_FAILURES + 5)

    assert (await neighbour.get(ROUTE, headers=_with(key))).status_code == 200
    assert (await neighbour.get(ROUTE, headers=_with("ck_typo"))).status_code == 401


async def test_a_throttled_client_may_try_again_once_the_window_has_passed(
    client_from: Client, seconds: Seconds
) -> None:
    guesser = client_from(GUESSER)
    await _guess(guesser, MAX_FAILURES)
    assert await _guess(guesser, 1) == [429]

    seconds.now += WINDOW_SECONDS

    # All its failures were at once, so all left the window: a fresh allowance.
    assert await _guess(guesser, MAX_FAILURES) == [401] * MAX_FAILURES
    assert await _guess(guesser, 1) == [429]


async def test_a_valid_key_from_a_throttled_client_is_refused_until_the_window_frees(
    client_from: Client, key: str, seconds: Seconds
) -> None:
    """Else the answer to a right guess would differ from the 429 of a wrong one."""
    guesser = client_from(GUESSER)
    await _guess(guesser, MAX_FAILURES)

    refused = await guesser.get(ROUTE, headers=_with(key))
    seconds.now += WINDOW_SECONDS
    served = await guesser.get(ROUTE, headers=_with(key))

    assert refused.status_code == 429
    assert served.status_code == 200


async def test_successes_and_refusals_of_a_valid_key_are_not_counted(
    client_from: Client, key: str
) -> None:
    client = client_from(GUESSER)
    for _ in range(MAX_FAILURES + 5):
        assert (await client.get(ROUTE, headers=_with(key))).status_code == 200
        forbidden = await client.get(ROUTE, headers={**_with(key), "X-Environment-ID": "env_x"})
        assert forbidden.status_code == 403
    assert await _guess(client, 1) == [401]


def test_failures_leave_the_window_one_by_one() -> None:
    seconds = Seconds()
    throttle = AuthThrottle(max_failures=3, window=60, clock=seconds)
    for _ in range(3):
        assert throttle.retry_after(GUESSER) is None
        throttle.failed(GUESSER)
        seconds.now += 10
    # Failures at 1000, 1010, 1020; now 1030: the first leaves the window at 1060.
    assert throttle.retry_after(GUESSER) == 30
    seconds.now += 29.5
    assert throttle.retry_after(GUESSER) == 1
    seconds.now += 0.5
    assert throttle.retry_after(GUESSER) is None
    throttle.failed(GUESSER)
    assert throttle.retry_after(GUESSER) == 10  # the one at 1010 leaves at 1070


def test_the_clients_tracked_are_bounded_and_the_stalest_is_forgotten_first() -> None:
    seconds = Seconds()
    throttle = AuthThrottle(max_failures=2, window=60, max_clients=3, clock=seconds)
    for address in ("a", "b", "a", "c", "d"):
        throttle.failed(address)
    assert throttle.clients == 3
    assert throttle.retry_after("a") is not None  # failed again after b: kept
    throttle.failed("b")
    assert throttle.retry_after("b") is None  # forgotten when d came, counted anew


def test_clients_whose_failures_all_left_the_window_are_dropped() -> None:
    seconds = Seconds()
    throttle = AuthThrottle(clock=seconds)
    throttle.failed(GUESSER)
    seconds.now += WINDOW_SECONDS
    assert throttle.retry_after(GUESSER) is None
    assert throttle.clients == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Filler": "a" * 64 * 1024}, 431),
        ({f"X-Filler-{n}": "a" * 1024 for n in range(20)}, 431),  # 20 KiB in all
        ({f"X-Header-{n}": "1" for n in range(150)}, 431),
        ({"X-Filler": "a" * 8 * 1024}, 200),
        ({f"X-Header-{n}": "1" for n in range(50)}, 200),
    ],
    ids=["one-64-KiB", "twenty-1-KiB", "150-headers", "one-8-KiB", "50-headers"],
)
async def test_oversized_request_headers_are_431_in_the_error_shape(
    client_from: Client, key: str, headers: dict[str, str], status: int
) -> None:
    client = client_from(GUESSER)
    for path, served in (("/api/v1/payments", 200), ("/healthz", 200), ("/nowhere", 404)):
        response = await client.get(path, headers={**_with(key), **headers})
        assert response.status_code == (served if status == 200 else status), path
        if status == 431:
            assert error_body(response)["code"] == "request_header_fields_too_large"
            assert response.headers["x-content-type-options"] == "nosniff"


def test_ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() -> None:
    assert client_of("2001:db8:1:2:3:4:5:6") == client_of("2001:db8:1:2:ffff::1")
    assert client_of("2001:db8:1:2:3:4:5:6") != client_of("2001:db8:1:3::1")
    assert client_of("::ffff:192.0.2.7") == client_of("192.0.2.7") == "192.0.2.7"


def test_a_limit_of_zero_never_refuses() -> None:
    throttle = AuthThrottle(max_failures=0)
    for _ in range(1000):
        throttle.failed("192.0.2.7")
    assert throttle.retry_after("192.0.2.7") is None
    assert throttle.clients == 0
