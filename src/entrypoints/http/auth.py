"""Who is calling: the API key (Bearer or x-api-key) and the environment it asks for."""

from __future__ import annotations

from starlette.requests import Request

from core.model import Role
from entrypoints.bootstrap import CardCheckout

ROLE_FOR_METHOD = {"GET": Role.READ, "HEAD": Role.READ}


def api_key_of(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


async def authorize(checkout: CardCheckout, request: Request, needs: Role | None = None) -> None:
    """Let the request act in the environment it names only with a key that may, with `needs`
    (by default, what its method needs), or 401/403. Keyed routes do this before their
    handler runs, as their operation's access says (`routing`)."""
    environment_id = request.headers.get("x-environment-id") or None
    needs = needs or ROLE_FOR_METHOD.get(request.method, Role.WRITE)
    await checkout.authorize(api_key_of(request), environment_id, needs)
    assert environment_id is not None  # authorize refuses a missing environment
    request.state.environment_id = environment_id


def environment_of(request: Request) -> str:
    """The environment a keyed route's request was let act in."""
    environment_id: str = request.state.environment_id
    return environment_id
