"""The settings: everything that can be configured, read from environment variables and
checked as they are read, each refusal one line that names its variable (`SettingsError`)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Final

import attrs
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from adapters.sandbox import SandboxFaults
from adapters.sql.engine import (
    LOCK_TIMEOUT_MS,
    POOL_TIMEOUT_SECONDS,
    STATEMENT_TIMEOUT_MS,
    normalize_url,
)
from adapters.sql.uow import EXECUTORS
from adapters.webhooks import DEFAULT_TIMEOUT_SECONDS
from entrypoints.logs import LOG_FORMATS, LOG_LEVELS

__all__ = ["DEFAULT_DATABASE_URL", "DEFAULT_PUBLIC_BASE_URL", "Settings", "SettingsError"]

DEFAULT_DATABASE_URL: Final = "sqlite+aiosqlite:///card-checkout.sqlite3"
DEFAULT_PUBLIC_BASE_URL: Final = "http://127.0.0.1:8000"
_TRUE: Final = ("1", "true", "yes", "on")
_FALSE: Final = ("", "0", "false", "no", "off")
_DATABASES: Final = ("sqlite", "postgresql")


class SettingsError(ValueError):
    """A setting that cannot be used; the message names its variable, in one line."""


@attrs.frozen
class Settings:
    """Everything that can be configured, with the embedded defaults."""

    # None: in-memory storage (the library's default). The CLI defaults to a SQLite file.
    database_url: str | None = None
    database_pool_size: int = 10
    # How SQL runs: "sqlalchemy" (the reference) or "asyncpg" (PostgreSQL only); None: asyncpg
    # on PostgreSQL, SQLAlchemy elsewhere.
    database_executor: str | None = None
    # PostgreSQL: a statement running longer, or waiting longer for a lock, fails (503)
    # instead of stalling its request (0: no limit); how long a request waits for a pooled
    # connection.
    database_statement_timeout_ms: int = STATEMENT_TIMEOUT_MS
    database_lock_timeout_ms: int = LOCK_TIMEOUT_MS
    database_pool_timeout_seconds: float = POOL_TIMEOUT_SECONDS
    # How long a live API key is trusted without reading it again (0: read on every request).
    api_key_cache_seconds: float = 5.0
    stripe_secret_key: str | None = None
    stripe_api_base: str | None = None
    # The service's address as clients reach it (hosted pages, the demo's curl lines). The
    # CLI's `serve` and `demo` derive it from their host and port unless PUBLIC_BASE_URL is set.
    public_base_url: str = DEFAULT_PUBLIC_BASE_URL
    # Secrets that sign Stripe's webhooks (more than one while they rotate).
    stripe_webhook_secrets: tuple[str, ...] = ()
    # Seconds between reconciliation passes inside `serve` (0: never).
    reconcile_every: float = 60.0
    # Only payments untouched this long are asked about (younger ones may still be answered).
    reconcile_older_than: float = 30.0
    # The sandbox's injected latency and faults (tests, drills, benchmarks).
    sandbox_latency_ms: float = 0.0
    sandbox_latency_on: str = ""
    sandbox_faults: str = ""
    # The sandbox announces each charge by event too, as Stripe's webhooks do.
    sandbox_charge_events: bool = False
    # Where the sandbox keeps its state: None (beside ours), another database URL, or "memory".
    # Apart from ours, benchmarks count only the service's own commits.
    sandbox_database_url: str | None = None
    # Seconds between deliveries of the outbox inside `serve` (0: never).
    notify_every: float = 1.0
    # Seconds before a failed outbound webhook is tried again (doubling each time, to 4 hours),
    # and how long a subscriber has to answer one.
    webhook_retry_base: float = 30.0
    webhook_timeout: float = DEFAULT_TIMEOUT_SECONDS
    # Outbound webhooks may go to loopback, private and link-local addresses (local development
    # and tests only: in production they would let a subscriber probe the inside network).
    webhook_allow_private_urls: bool = False
    # Keys that seal stored secrets (Fernet keys; the first seals, all open). None given: a
    # SQLite file gets a key file beside it, PostgreSQL stores no secret until keys are set.
    encryption_keys: tuple[str, ...] = ()
    # How long an environment's gateway connection is trusted without reading it again.
    connection_cache_seconds: float = 5.0
    # The service's logs: "text" (for a person) or "json" (one object a line); the least level.
    log_format: str = "text"
    log_level: str = "INFO"
    # Failed authentications a client may make in a minute before it gets 429 (0: no limit).
    auth_failures_per_minute: int = 20
    # Proxies whose X-Forwarded-For names the client (addresses, or "*"): serve trusts them.
    trusted_proxies: tuple[str, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings the variables give; `SettingsError` for the first that cannot be used."""
        read = _Reader(os.environ if environ is None else environ)
        database_url = read.database_url("DATABASE_URL") or DEFAULT_DATABASE_URL
        executor = read.one_of("DATABASE_EXECUTOR", tuple(EXECUTORS), "") or None
        if executor is not None and _backend(database_url) not in EXECUTORS[executor]:
            raise SettingsError(
                f"DATABASE_EXECUTOR {executor} runs on {', '.join(EXECUTORS[executor])} only"
            )
        sandbox_url = read.text("SANDBOX_DATABASE_URL") or None
        if sandbox_url not in (None, "memory"):
            read.database_url("SANDBOX_DATABASE_URL")
        return cls(
            database_url=database_url,
            database_pool_size=read.whole("DATABASE_POOL_SIZE", 10, least=1),
            database_executor=executor,
            database_statement_timeout_ms=read.whole(
                "DATABASE_STATEMENT_TIMEOUT_MS", STATEMENT_TIMEOUT_MS
            ),
            database_lock_timeout_ms=read.whole("DATABASE_LOCK_TIMEOUT_MS", LOCK_TIMEOUT_MS),
            database_pool_timeout_seconds=read.seconds(
                "DATABASE_POOL_TIMEOUT_SECONDS", POOL_TIMEOUT_SECONDS
            ),
            api_key_cache_seconds=read.seconds("API_KEY_CACHE_SECONDS", 5),
            stripe_secret_key=read.text("STRIPE_SECRET_KEY") or None,
            stripe_api_base=read.web_url("STRIPE_API_BASE") or None,
            public_base_url=read.web_url("PUBLIC_BASE_URL") or DEFAULT_PUBLIC_BASE_URL,
            stripe_webhook_secrets=_listed(read.text("STRIPE_WEBHOOK_SECRET")),
            reconcile_every=read.seconds("RECONCILE_EVERY_SECONDS", 60),
            reconcile_older_than=read.seconds("RECONCILE_OLDER_THAN_SECONDS", 30),
            sandbox_latency_ms=read.seconds("SANDBOX_LATENCY_MS", 0, unit="milliseconds"),
            sandbox_latency_on=read.sandbox("SANDBOX_LATENCY_ON", latency_on=True),
            notify_every=read.seconds("NOTIFY_EVERY_SECONDS", 1),
            sandbox_faults=read.sandbox("SANDBOX_FAULTS"),
            sandbox_charge_events=read.flag("SANDBOX_CHARGE_EVENTS"),
            sandbox_database_url=sandbox_url,
            webhook_retry_base=read.seconds("WEBHOOK_RETRY_BASE_SECONDS", 30),
            webhook_timeout=read.seconds(
                "WEBHOOK_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS, positive=True
            ),
            webhook_allow_private_urls=read.flag("WEBHOOK_ALLOW_PRIVATE_URLS"),
            encryption_keys=_listed(read.text("CARD_CHECKOUT_ENCRYPTION_KEYS")),
            connection_cache_seconds=read.seconds("CONNECTION_CACHE_SECONDS", 5),
            log_format=read.one_of("LOG_FORMAT", LOG_FORMATS, "text").lower(),
            log_level=read.one_of("LOG_LEVEL", LOG_LEVELS, "INFO").upper(),
            auth_failures_per_minute=read.whole("AUTH_FAILURES_PER_MINUTE", 20),
            trusted_proxies=_listed(read.text("TRUSTED_PROXIES")),
        )


@attrs.frozen
class _Reader:
    """Reads variables as the type each setting needs; an empty variable is an unset one."""

    env: Mapping[str, str]

    def text(self, name: str) -> str:
        return self.env.get(name, "").strip()

    def whole(self, name: str, default: int, *, least: int = 0) -> int:
        raw = self.text(name)
        if not raw:
            return default
        if not re.fullmatch(r"-?[0-9]+", raw):
            raise SettingsError(f"{name} must be a whole number, not {raw!r}")
        if int(raw) < least:
            raise SettingsError(f"{name} must be {least} or more, not {raw!r}")
        return int(raw)

    def seconds(self, name: str, default: float, *, positive: bool = False,
                unit: str = "seconds") -> float:  # fmt: skip
        raw = self.text(name)
        if not raw:
            return float(default)
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise SettingsError(f"{name} must be a number of {unit}, not {raw!r}")
        if value < 0 or (positive and value == 0):
            least = "more than 0" if positive else "0 or more"
            raise SettingsError(f"{name} must be {least}, not {raw!r}")
        return value

    def flag(self, name: str) -> bool:
        raw = self.text(name).lower()
        if raw not in _TRUE + _FALSE:
            raise SettingsError(f"{name} must be 1 or 0 (true or false), not {raw!r}")
        return raw in _TRUE

    def one_of(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """The value (any case), else `default`."""
        value = self.text(name) or default
        if value.lower() not in (choice.lower() for choice in (*choices, default)):
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
        return value

    def web_url(self, name: str) -> str:
        raw = self.text(name)
        scheme, _, rest = raw.partition("://")
        if raw and (scheme not in ("http", "https") or not rest.strip("/")):
            raise SettingsError(f"{name} must be an http:// or https:// URL, not {raw!r}")
        return raw

    def database_url(self, name: str) -> str:
        """The URL; refused without echoing it whole, as it may hold a password."""
        raw = self.text(name)
        if not raw:
            return raw
        try:
            backend = _backend(raw)
        except (ArgumentError, ValueError):
            backend = None
        if backend not in _DATABASES:
            scheme, found, _ = raw.partition("://")
            shown = f"{scheme}://..." if found else "a text without ://"
            raise SettingsError(
                f"{name} must be a sqlite:// or postgresql:// URL, such as "
                f"postgresql://user:password@host:5432/database, not {shown}"
            )
        return raw

    def sandbox(self, name: str, *, latency_on: bool = False) -> str:
        raw = self.text(name)
        try:
            SandboxFaults.parse("", 0, raw) if latency_on else SandboxFaults.parse(raw)
        except ValueError as error:
            raise SettingsError(f"{name}: {error}") from None
        return raw


def _backend(url: str) -> str:
    """The database a URL names ("sqlite", "postgresql"), however its driver is spelt."""
    return make_url(normalize_url(url)).get_backend_name()


def _listed(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())
