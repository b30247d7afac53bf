"""Updates are written down before Telegram forgets them, and handled once.

With long polling, the next getUpdates call confirms what the previous one returned, and Telegram
then forgets it: an update whose handler was cut short by a crash would be lost. `InboxBot` writes
every update it fetches to the store before returning it; `InboxUpdateProcessor` marks an update
handled once its handler finished, and skips one already handled (Telegram sends an unconfirmed
update again after a restart). At start-up, `replay` hands the unhandled ones to the application.
(In webhook mode Telegram's own redelivery of unanswered webhooks does this job.)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import Application, BaseUpdateProcessor, ExtBot

from bot.store import Store

log = logging.getLogger(__name__)


class InboxBot(ExtBot):
    """ExtBot whose getUpdates records each update in the store before anyone sees it."""

    def __init__(self, *args: Any, store: Store, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._inbox = store
        self._last_poll_at: float | None = None

    @property
    def last_poll_at(self) -> float | None:
        """time.monotonic() of the last successful getUpdates (None before the first)."""
        return self._last_poll_at

    async def get_updates(self, *args: Any, **kwargs: Any) -> tuple[Update, ...]:
        updates = await super().get_updates(*args, **kwargs)
        self._inbox.add_to_inbox([(update.update_id, update.to_json()) for update in updates])
        self._last_poll_at = time.monotonic()
        return updates


class InboxUpdateProcessor(BaseUpdateProcessor):
    """Handles up to `max_concurrent_updates` updates at once, each at most once."""

    def __init__(self, store: Store, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self.store = store
        self._active: set[int] = set()

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        update_id = getattr(update, "update_id", None)
        if update_id is None:
            await coroutine
            return
        if update_id in self._active or self.store.is_handled(update_id):
            coroutine.close()  # type: ignore[attr-defined]  # a duplicate: never run
            log.info("event=duplicate_update_skipped update_id=%s", update_id)
            return
        self._active.add(update_id)
        try:
            await coroutine
        except asyncio.CancelledError:  # cut short at shutdown: handle it again after the restart
            raise
        else:
            self.store.mark_handled(update_id)
        finally:
            self._active.discard(update_id)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


async def replay(application: Application, store: Store) -> int:
    """Queue the updates received before a crash but never handled; returns how many."""
    pending = store.unhandled_updates()
    for data in pending:
        await application.update_queue.put(Update.de_json(json.loads(data), application.bot))
    if pending:
        log.warning("event=updates_replayed count=%d", len(pending))
    return len(pending)
