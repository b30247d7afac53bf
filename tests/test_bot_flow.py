"""The bot over real HTTP against the Bot API emulator, embedded screening (a real model)."""

from __future__ import annotations

import pytest

from bot.messages import DISCLAIMER
from tests.bot_harness import bot_settings, button_data, running_bot, text_of
from tests.telegram_emulator import TelegramEmulator


@pytest.fixture(scope="module")
def telegram():
    with TelegramEmulator() as emulator:
        yield emulator


async def consent(telegram, user) -> None:
    telegram.send_text(user, "/start")
    notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m)
    telegram.press(user, notice, button_data(notice, "consent:"))
    await telegram.wait_for(user.id, lambda m: "close up" in text_of(m))


async def test_consent_photo_reply(telegram, test_bundle_path, shared_photo_paths, tmp_path):
    settings = bot_settings(telegram, test_bundle_path, tmp_path / "bot.sqlite3")
    alice = telegram.user(101)
    async with running_bot(settings):
        telegram.send_text(alice, "/start")
        notice = await telegram.wait_for(alice.id, lambda m: "reply_markup" in m)
        assert "screen, not a diagnosis" in text_of(notice)
        telegram.press(alice, notice, button_data(notice, "consent:"))
        await telegram.wait_for(alice.id, lambda m: "close up" in text_of(m))

        photo = telegram.send_photo(alice, shared_photo_paths[0].read_bytes())
        await telegram.wait_for(alice.id, lambda m: "Analysing" in text_of(m))
        reply = await telegram.wait_for(alice.id, lambda m: "photo" in m, timeout=60)
        assert reply["reply_to_message"]["message_id"] == photo["message_id"]
        assert text_of(reply).startswith("Result:")
        assert DISCLAIMER in text_of(reply)
        assert "coloured areas" in text_of(reply)
        assert (alice.id, "typing") in telegram.chat_actions
