"""Telegram's flood limits apply to messages sent: rate-limit those, not the bot's other calls.

When Telegram still answers "retry after N s" (429), AIORateLimiter waits that long and tries
again, up to FLOOD_RETRIES times, so a busy clinicians' chat slows posting down instead of
failing it.
"""

from __future__ import annotations

from typing import Any

from telegram.ext import AIORateLimiter

# Calls that post nothing to a chat: Telegram's ~30 messages/s (20/min per group) do not apply,
# and counting them (getFile and a chat action for every photo) halves the replies per second.
# (PTB already exempts getUpdates.)
UNLIMITED_ENDPOINTS = frozenset(
    {"getFile", "sendChatAction", "answerCallbackQuery", "getMe", "setMyCommands", "deleteWebhook",
     "setWebhook", "getWebhookInfo"}
)


FLOOD_RETRIES = 3


class MessageRateLimiter(AIORateLimiter):
    """AIORateLimiter for message-sending calls; other Bot API calls go straight through."""

    def __init__(self, max_retries: int = FLOOD_RETRIES) -> None:
        super().__init__(max_retries=max_retries)

    async def process_request(self, callback, args, kwargs, endpoint, data, rate_limit_args) -> Any:
        if endpoint in UNLIMITED_ENDPOINTS:
            return await callback(*args, **kwargs)
        return await super().process_request(callback, args, kwargs, endpoint, data, rate_limit_args)
