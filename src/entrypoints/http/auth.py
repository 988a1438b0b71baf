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


async def environment_of(
    checkout: CardCheckout, request: Request, needs: Role | None = None
) -> str:
    """The environment this request may act in with `needs` (by default, what its method
    needs), or 401/403."""
    environment_id = request.headers.get("x-environment-id") or None
    needs = needs or ROLE_FOR_METHOD.get(request.method, Role.WRITE)
    await checkout.authorize(api_key_of(request), environment_id, needs)
    assert environment_id is not None  # authorize refuses a missing environment
    return environment_id
