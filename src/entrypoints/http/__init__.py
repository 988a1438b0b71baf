"""The HTTP service: a Starlette app built from a `CardCheckout`."""

from entrypoints.http.app import create_app

__all__ = ["create_app"]
