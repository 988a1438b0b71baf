"""The real card gateway: Stripe, through its official SDK (async)."""

from adapters.stripe_gateway.gateway import STRIPE_API_VERSION, StripePaymentGateway
from adapters.stripe_gateway.webhooks import parse_webhook

__all__ = ["STRIPE_API_VERSION", "StripePaymentGateway", "parse_webhook"]
