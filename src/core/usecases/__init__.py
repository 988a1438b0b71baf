"""The use cases: what Card Checkout does, on any storage and any gateway.

One module per area, each a set of functions over one frozen `Deps`. Every write follows
one rule: read and validate, call the gateway with no transaction open, then record the
outcome in one short transaction.
"""

from core.usecases.common import Deps
from core.usecases.idempotency import Answer
from core.usecases.policies import Policies, WebhookPolicy
from core.usecases.reconciliation import ReconcileReport
from core.usecases.webhook_delivery import WebhookReport

__all__ = ["Answer", "Deps", "Policies", "ReconcileReport", "WebhookPolicy", "WebhookReport"]
