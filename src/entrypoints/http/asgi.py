"""What uvicorn imports: the app built from the environment's settings, on demand."""

from __future__ import annotations

from starlette.applications import Starlette

from adapters.notifiers import LoggingNotifier
from adapters.webhooks import HttpWebhookSender
from entrypoints.bootstrap import Settings, bootstrap
from entrypoints.http.app import create_app
from entrypoints.http.throttle import AuthThrottle
from entrypoints.http.tracing import add_tracing, tracer_provider_from_environ
from entrypoints.logs import configure_logging


def app_from_environ() -> Starlette:
    """uvicorn's factory (`--factory`): nothing is built at import time."""
    settings = Settings.from_environ()
    configure_logging(settings.log_format, settings.log_level)
    checkout = bootstrap(
        settings,
        notifier=LoggingNotifier(),
        dispatch_inline=False,
        webhook_sender=HttpWebhookSender(
            timeout=settings.webhook_timeout,
            allow_private_addresses=settings.webhook_allow_private_urls,
        ),
    )
    app = create_app(
        checkout,
        notify_every=settings.notify_every or None,
        reconcile_every=settings.reconcile_every or None,
        reconcile_older_than=settings.reconcile_older_than,
        webhook_secrets=settings.stripe_webhook_secrets,
        auth_throttle=AuthThrottle(max_failures=settings.auth_failures_per_minute),
    )
    tracer_provider = tracer_provider_from_environ()
    if tracer_provider is not None:
        add_tracing(app, tracer_provider)
    return app
