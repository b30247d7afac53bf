"""Helpers for the bot tests: settings pointing at the emulator and a test Redis, and running a
bot in-process.

The bot runs exactly as `python -m bot` runs it (run_polling's steps: initialize, post_init,
start, long polling), but inside the test's event loop so a test can stop and restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from telegram.ext import Application

from bot.app import build_app
from bot.queue import ScreeningQueue
from bot.settings import BotSettings
from tests.telegram_emulator import TelegramEmulator

TOKEN = "123456:TEST-token_for-the-emulator"
CLINICIAN_CHAT = -1001234567
# Ids as long as real ones, so that "this id is not in the chat" cannot fail on a random case id.
CLINICIAN = 5550001234
NOT_A_CLINICIAN = 5560004321


def bot_settings(
    telegram: TelegramEmulator, database: Path, redis_url: str, tag: str, **overrides: Any
) -> BotSettings:
    """Settings of a bot using the emulator and its own queue and stream (named by `tag`)."""
    values: dict[str, Any] = {
        "telegram_token": TOKEN,
        "telegram_base_url": telegram.base_url,
        "telegram_base_file_url": telegram.base_file_url,
        "redis_url": redis_url,
        "queue_name": f"test-{tag}",
        "results_stream": f"test:results:{tag}",
        "database_path": database,
        "clinician_chat_id": CLINICIAN_CHAT,
        "clinician_user_ids": str(CLINICIAN),
        "delayed_notice_after_s": 30,
        "review_reminder_after_s": 3600,
        "max_retries": 0,
        "read_block_ms": 200,
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(settings: BotSettings, queue: ScreeningQueue | None = None) -> AsyncIterator[Application]:
    application = build_app(settings, queue)
    await application.initialize()
    await application.post_init(application)
    await application.start()
    await application.updater.start_polling(poll_interval=0.0, timeout=2)
    try:
        yield application
    finally:
        await application.updater.stop()
        await application.stop()
        await application.shutdown()
        await application.post_shutdown(application)


async def consented_user(
    telegram: TelegramEmulator, user_id: int, language: str = "en", first_name: str = "Test", timeout: float = 30.0
):
    """A person who has sent /start and pressed "I agree" (and got the invitation to send a photo)."""
    user = telegram.user(user_id, first_name=first_name, language_code=language)
    count = len(telegram.sent(user.id))
    telegram.send_text(user, "/start")
    notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m, timeout=timeout, after=count)
    count = len(telegram.sent(user.id))
    telegram.press(user, notice, button_data(notice, "consent:"))
    await telegram.wait_for(user.id, lambda m: True, timeout=timeout, after=count)
    return user


def text_of(message: dict[str, Any]) -> str:
    return message.get("text") or message.get("caption") or ""


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return [button for row in rows for button in row]


def button_data(message: dict[str, Any], prefix: str) -> str:
    return next(b["callback_data"] for b in buttons(message) if b["callback_data"].startswith(prefix))


def replies_to(telegram: TelegramEmulator, chat_id: int, message: dict[str, Any]) -> list[dict[str, Any]]:
    """What the bot sent to chat_id in reply to `message`."""
    return [m for m in telegram.sent(chat_id) if m.get("reply_to_message", {}).get("message_id") == message["message_id"]]


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (320, 320)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


@contextlib.asynccontextmanager
async def bot_with_worker(
    telegram: TelegramEmulator, redis_url: str, bundle: Path, screener: Any, database: Path, **overrides: Any
) -> AsyncIterator[Application]:
    """A running bot and a worker in a thread (with `screener`), on a queue of their own; their
    Redis keys are deleted afterwards."""
    import uuid

    import redis

    from tests.workers import InThreadWorker, worker_settings

    tag = uuid.uuid4().hex[:10]
    settings = bot_settings(telegram, database, redis_url, tag, **overrides)
    try:
        with InThreadWorker(worker_settings(redis_url, bundle, tag), screener):
            async with running_bot(settings) as application:
                yield application
    finally:
        connection = redis.Redis.from_url(redis_url)
        for key in connection.scan_iter(f"*{tag}*", count=1000):
            connection.delete(key)


def case_of(application: Application, chat_id: int, message: dict[str, Any]):
    """The store's case for a person's photo message."""
    store = application.bot_data["deps"].store
    return next((c for c in store.cases_of(chat_id) if c.message_id == message["message_id"]), None)


async def eventually(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
    """Wait until condition() is true: the bot records a step just after the message it follows
    (a message that could not be sent must leave the step undone), so a test that has seen the
    message may look at the store a moment early; a process under test may take longer."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.05)
