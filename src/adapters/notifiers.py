"""Notifiers: where outbound events go (a list for tests, the log)."""

from __future__ import annotations

import logging

import attrs

from core.model import Notification

logger = logging.getLogger("card_checkout.notifications")


@attrs.define
class RecordingNotifier:
    """Keeps every delivered notification, in order (tests, the library demo)."""

    delivered: list[Notification] = attrs.Factory(list)

    async def notify(self, notification: Notification) -> None:
        self.delivered.append(notification)

    def of_type(self, kind: str) -> list[Notification]:
        return [n for n in self.delivered if n.type.value == kind]


class LoggingNotifier:
    """Writes each notification as one log line."""

    async def notify(self, notification: Notification) -> None:
        logger.info(
            "notification %s %s environment=%s %s",
            notification.id,
            notification.type.value,
            notification.environment_id,
            " ".join(f"{k}={v}" for k, v in sorted(notification.data.items()) if v is not None),
        )
