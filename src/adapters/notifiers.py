"""Notifiers: where outbound events go (a list for tests, the log)."""

from __future__ import annotations

import logging
from collections import deque

import attrs

from core.model import Notification

logger = logging.getLogger("card_checkout.notifications")


@attrs.define
class RecordingNotifier:
    """Keeps the latest `keep` delivered notifications, in order (tests, the library demo).

    The library delivers to one by default, so what it keeps is bounded: keeping every
    notification grew a long-running process without end (four per payment).
    """

    keep: int = 1_000
    _kept: deque[Notification] = attrs.field(init=False)

    @_kept.default
    def _empty(self) -> deque[Notification]:
        return deque(maxlen=self.keep)

    @property
    def delivered(self) -> list[Notification]:
        """The notifications kept, oldest first."""
        return list(self._kept)

    async def notify(self, notification: Notification) -> None:
        self._kept.append(notification)

    def of_type(self, kind: str) -> list[Notification]:
        return [n for n in self._kept if n.type.value == kind]


class LoggingNotifier:
    """Writes each notification as one log line, its fields apart (a JSON log keeps them as
    fields); the line carries whatever the context binds (the request or pass id)."""

    async def notify(self, notification: Notification) -> None:
        logger.info(
            "notification %s %s",
            notification.id,
            notification.type.value,
            extra={
                "notification_id": notification.id,
                "notification_type": notification.type.value,
                "environment_id": notification.environment_id,
                "data": {k: v for k, v in sorted(notification.data.items()) if v is not None},
            },
        )
