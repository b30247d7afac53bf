"""Helpers for the bot tests: settings pointing at the emulator, and running a bot in-process.

The bot runs exactly as `python -m bot` runs it (run_polling's steps: initialize, post_init,
start, long polling), but inside the test's event loop so a test can stop and restart it.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from telegram.ext import Application

from bot.app import build_app
from bot.settings import BotSettings
from tests.telegram_emulator import TelegramEmulator
from worker.service import ScreeningService, create_service

TOKEN = "123456:TEST-token_for-the-emulator"
CLINICIAN_CHAT = -1001234567
CLINICIAN = 555
NOT_A_CLINICIAN = 556


def bot_settings(telegram: TelegramEmulator, bundle: Path, database: Path, **overrides: Any) -> BotSettings:
    values: dict[str, Any] = {
        "telegram_token": TOKEN,
        "telegram_base_url": telegram.base_url,
        "telegram_base_file_url": telegram.base_file_url,
        "model_bundle": bundle,
        "redis_url": None,
        "database_path": database,
        "clinician_chat_id": CLINICIAN_CHAT,
        "clinician_user_ids": str(CLINICIAN),
        "delayed_notice_after_s": 30,
        "review_reminder_after_s": 3600,
        "max_retries": 0,
    }
    values.update(overrides)
    return BotSettings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(settings: BotSettings, service: ScreeningService | None = None) -> AsyncIterator[Application]:
    application = build_app(settings, service or create_service(settings, consumer="bot"))
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


async def consented_user(telegram: TelegramEmulator, user_id: int, language: str = "en"):
    """A person who has sent /start and pressed "I agree" (and got the invitation to send a photo)."""
    user = telegram.user(user_id, language_code=language)
    telegram.send_text(user, "/start")
    notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m)
    telegram.press(user, notice, button_data(notice, "consent:"))
    await telegram.wait_for(user.id, lambda m: len(telegram.sent(user.id)) >= 2)
    return user


def text_of(message: dict[str, Any]) -> str:
    return message.get("text") or message.get("caption") or ""


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return [button for row in rows for button in row]


def button_data(message: dict[str, Any], prefix: str) -> str:
    return next(b["callback_data"] for b in buttons(message) if b["callback_data"].startswith(prefix))


def jpeg(color: tuple[int, int, int], size: tuple[int, int] = (320, 320)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()
