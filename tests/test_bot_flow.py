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


async def test_embedded_restart_tells_people_whose_photo_was_lost(telegram, test_bundle_path, tmp_path):
    """Embedded mode keeps outcomes in memory: a photo queued before a restart is answered anyway."""
    from bot.store import Store

    settings = bot_settings(telegram, test_bundle_path, tmp_path / "bot.sqlite3")
    bob = telegram.user(102)
    photo = telegram.send_text(bob, "a message, so the chat exists")  # any earlier message to reply to
    store = Store(settings.database_path)
    store.record_consent(bob.id)
    store.add_case("lost-in-restart", bob.id, bob.id, photo["message_id"], "file-id", False)
    store.close()
    async with running_bot(settings) as application:
        reply = await telegram.wait_for(bob.id, lambda m: "could not be screened" in text_of(m))
        assert "send it again" in text_of(reply) and DISCLAIMER in text_of(reply)
        assert application.bot_data["deps"].store.is_delivered("lost-in-restart")
