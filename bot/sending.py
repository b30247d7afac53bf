"""Sending to Telegram: retrying network faults, and treating harmless refusals as done.

Telegram's flood limits ("retry after N s") are waited out by PTB's AIORateLimiter (see
bot.ratelimit); here, timeouts and network errors get a few tries with back-off (tenacity), and an
edit that changes nothing ("message is not modified", a button pressed twice) is a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)
T = TypeVar("T")
SEND_TRIES = 4


def _transient(exc: BaseException) -> bool:
    # BadRequest is a NetworkError subclass in PTB, but a refusal, never worth repeating.
    return isinstance(exc, (NetworkError, TimedOut)) and not isinstance(exc, (BadRequest, RetryAfter))


async def with_retries(call: Callable[[], Awaitable[T]]) -> T:
    """`await call()`, tried up to SEND_TRIES times on network faults (1, 2, 4 s apart)."""
    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(SEND_TRIES),
        wait=wait_exponential(multiplier=1, max=8),
        retry=retry_if_exception(_transient),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable")  # AsyncRetrying either returns or re-raises


def is_not_modified(exc: BaseException) -> bool:
    return isinstance(exc, BadRequest) and "not modified" in str(exc).lower()


async def edit_quietly(call: Awaitable[object]) -> None:
    """An edit that may change nothing (pressed twice): Telegram's refusal of that is no error."""
    try:
        await call
    except BadRequest as exc:
        if not is_not_modified(exc):
            raise
