"""The tunable rules of the use cases: when to call for a person, how webhooks retry."""

from __future__ import annotations

from datetime import timedelta

import attrs


@attrs.frozen
class WebhookPolicy:
    """When a failed webhook delivery is tried again, and when it (and its endpoint) stop.

    With the defaults a delivery is tried 15 times over about 24 hours: after 30 s, 1 min,
    2 min... then every 4 hours. It is given up after 15 failed attempts or 24 hours of failing,
    and its endpoint is disabled if it answered no delivery at all in that time.
    """

    retry_base: timedelta = timedelta(seconds=30)
    retry_cap: timedelta = timedelta(hours=4)
    max_attempts: int = 15
    give_up_after: timedelta = timedelta(hours=24)
    # A dispatcher holds the deliveries it sends for this long; past it (a crash) another may.
    lease: timedelta = timedelta(minutes=2)
    # Endpoints called at once in a pass (each endpoint's deliveries go one after another).
    parallel_endpoints: int = 8
    # Endpoints may be registered at loopback and private addresses (local development, tests).
    allow_private_urls: bool = False

    def retry_delay(self, failures: int) -> timedelta:
        """The wait after the `failures`-th failed attempt: base, 2 base, 4 base... capped."""
        return min(self.retry_base * (1 << min(max(failures - 1, 0), 30)), self.retry_cap)


@attrs.frozen
class IdempotencyPolicy:
    """How long a request holds its Idempotency-Key without a sign of life.

    A request renews its claim's lease every `renew_every` while it runs; once the lease has
    run out (the request died), a retry answers what it recorded, or runs again."""

    lease: timedelta = timedelta(seconds=30)
    renew_every: timedelta = timedelta(seconds=10)


@attrs.frozen
class Policies:
    # Past this, a card payment still `processing` after reconciliation is reported for a
    # person: a charge's outcome is known within seconds, so minutes mean something is wrong.
    attention_after: timedelta = timedelta(minutes=5)
    webhooks: WebhookPolicy = attrs.Factory(WebhookPolicy)
    idempotency: IdempotencyPolicy = attrs.Factory(IdempotencyPolicy)
