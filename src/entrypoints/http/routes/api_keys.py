"""API keys: an admin lists and revokes the keys that may use its environment.

Scoping: the keys of the environment's tenant that may use the environment (X-Environment-ID),
revoked ones too. A key that cannot use it is never shown nor revoked from it (404, as if it
did not exist); a key that may use several environments is seen from each. Keys are created by
the operator's CLI (`card-checkout api-keys create`), not here.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import NotFound
from entrypoints.http import params, wire
from entrypoints.http.auth import environment_of
from entrypoints.http.routing import Access, Context, Routes, Tag
from entrypoints.http.schemas import list_of, ref

api_keys = Routes(
    Tag("API keys", "The keys that may use the environment: listed, and revoked (admin keys)."),
    access=Access.ADMIN_KEY,
)


@api_keys.route(
    "GET",
    "/api_keys",
    "listApiKeys",
    "The keys that may use the environment, newest first; never the keys themselves",
    {200: list_of("ApiKey")},
    query=params.PAGE,
)
async def list_api_keys(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    page = await context.checkout.list_api_keys(environment, **params.page_args(request))
    return JSONResponse(wire.page_json(page, wire.api_key_json))


@api_keys.route(
    "DELETE",
    "/api_keys/{api_key_id}",
    "revokeApiKey",
    "Revoke a key (admin keys); revoking it again answers it as it is",
    {200: ref("ApiKey")},
    errors=(NotFound,),
)
async def revoke_api_key(request: Request, context: Context) -> Response:
    environment = environment_of(request)
    key = await context.checkout.revoke_api_key(
        request.path_params["api_key_id"], environment_id=environment
    )
    return JSONResponse(wire.api_key_json(key))
