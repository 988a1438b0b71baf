"""What uvicorn imports: the app built from the environment's settings, on demand."""

from __future__ import annotations

import logging

from starlette.applications import Starlette

from adapters.notifiers import LoggingNotifier
from adapters.webhooks import HttpWebhookSender
from entrypoints.bootstrap import Settings, bootstrap
from entrypoints.http.app import create_app


def app_from_environ() -> Starlette:
    """uvicorn's factory (`--factory`): nothing is built at import time."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_environ()
    checkout = bootstrap(
        settings,
        notifier=LoggingNotifier(),
        dispatch_inline=False,
        webhook_sender=HttpWebhookSender(
            timeout=settings.webhook_timeout,
            allow_private_addresses=settings.webhook_allow_private_urls,
        ),
    )
    return create_app(
        checkout,
        notify_every=settings.notify_every or None,
        reconcile_every=settings.reconcile_every or None,
        reconcile_older_than=settings.reconcile_older_than,
        webhook_secrets=settings.stripe_webhook_secrets,
    )
