"""Every kind of input a person can send, over real HTTP (one embedded bot for the module)."""

from __future__ import annotations

import pytest
import pytest_asyncio

from bot.messages import DISCLAIMER
from tests.bot_harness import bot_settings, button_data, consented_user, jpeg, running_bot, text_of
from tests.telegram_emulator import TelegramEmulator

pytestmark = pytest.mark.asyncio(loop_scope="module")

MB = 1024 * 1024


@pytest.fixture(scope="module")
def telegram():
    with TelegramEmulator() as emulator:
        yield emulator


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(telegram, test_bundle_path, tmp_path_factory):
    settings = bot_settings(
        telegram,
        test_bundle_path,
        tmp_path_factory.mktemp("bot") / "bot.sqlite3",
        max_photo_bytes=5 * MB,
        user_rate_limit=3,
    )
    async with running_bot(settings) as application:
        yield application



async def reply_after(telegram, user, predicate, timeout: float = 30.0):
    return await telegram.wait_for(user.id, predicate, timeout=timeout, after=len(telegram.sent(user.id)))


async def test_photo_before_consent_is_not_screened(telegram, bot, shared_photo_paths):
    user = telegram.user(201)
    telegram.send_photo(user, shared_photo_paths[1].read_bytes())
    notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m)
    assert "send your photo again" in text_of(notice)
    assert button_data(notice, "consent:")
    assert not any("Analysing" in text_of(m) for m in telegram.sent(user.id))


@pytest.mark.parametrize("send", ["text", "sticker", "video", "voice"])
async def test_other_content_gets_guidance(telegram, bot, send):
    user = await consented_user(telegram, 210 + ["text", "sticker", "video", "voice"].index(send))
    count = len(telegram.sent(user.id))
    if send == "text":
        telegram.send_text(user, "hello, is this mpox?")
    else:
        getattr(telegram, f"send_{send}")(user)
    reply = await telegram.wait_for(user.id, lambda m: True, after=count)
    assert "I can only screen photos of skin" in text_of(reply)


async def test_unsupported_file_gets_guidance(telegram, bot):
    user = await consented_user(telegram, 220)
    count = len(telegram.sent(user.id))
    telegram.send_document(user, b"%PDF-1.4 ...", "report.pdf", "application/pdf")
    reply = await telegram.wait_for(user.id, lambda m: True, after=count)
    assert "JPEG, PNG or WebP" in text_of(reply)


@pytest.mark.parametrize("claimed_size", [25 * MB, 6 * MB], ids=["over-telegram-20MB", "over-service-cap"])
async def test_too_large_photo_is_refused_with_the_limit(telegram, bot, claimed_size):
    user = await consented_user(telegram, 230 + claimed_size // MB)
    count = len(telegram.sent(user.id))
    telegram.send_document(user, jpeg((180, 120, 100)), "big.jpg", "image/jpeg", file_size=claimed_size)
    reply = await telegram.wait_for(user.id, lambda m: True, after=count)
    assert "too large" in text_of(reply) and "5 MB" in text_of(reply)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
async def test_image_files_are_screened(telegram, bot, shared_photo_paths, fmt):
    import io

    from PIL import Image

    user = await consented_user(telegram, 240 + len(fmt))
    buffer = io.BytesIO()
    Image.open(shared_photo_paths[5]).convert("RGB").save(buffer, fmt)
    telegram.send_document(user, buffer.getvalue(), f"lesion.{fmt.lower()}", f"image/{fmt.lower()}")
    reply = await telegram.wait_for(user.id, lambda m: "photo" in m, timeout=60)
    assert DISCLAIMER in text_of(reply)


async def test_corrupt_image_gets_a_clear_message(telegram, bot):
    user = await consented_user(telegram, 250)
    telegram.send_document(user, b"\xff\xd8\xff\xe0 not really a jpeg", "photo.jpg", "image/jpeg")
    reply = await telegram.wait_for(user.id, lambda m: "could not be screened" in text_of(m), timeout=60)
    assert "could not be read as a photo" in text_of(reply)
    assert DISCLAIMER in text_of(reply)


async def test_dark_photo_is_answered_with_retake_advice(telegram, bot):
    user = await consented_user(telegram, 260)
    telegram.send_photo(user, jpeg((8, 6, 5)))
    reply = await telegram.wait_for(user.id, lambda m: "could not be judged" in text_of(m), timeout=60)
    assert "daylight" in text_of(reply) and "send a new photo" in text_of(reply)
    assert DISCLAIMER in text_of(reply)


async def test_rate_limit_tells_the_user_to_wait(telegram, bot):
    user = await consented_user(telegram, 270)
    for _ in range(4):
        telegram.send_photo(user, jpeg((8, 6, 5)))
    reply = await telegram.wait_for(user.id, lambda m: "recently" in text_of(m), timeout=60)
    assert "3 photos" in text_of(reply) and "60 minutes" in text_of(reply)


async def test_help_and_privacy(telegram, bot):
    user = telegram.user(280)
    telegram.send_text(user, "/help")
    help_reply = await telegram.wait_for(user.id, lambda m: "/delete" in text_of(m))
    assert DISCLAIMER in text_of(help_reply)
    telegram.send_text(user, "/privacy")
    privacy = await telegram.wait_for(user.id, lambda m: "30 days" in text_of(m))
    assert "never your name" in text_of(privacy)


async def test_delete_erases_consent_and_cases(telegram, bot, shared_photo_paths):
    user = await consented_user(telegram, 290)
    telegram.send_photo(user, shared_photo_paths[2].read_bytes())
    await telegram.wait_for(user.id, lambda m: "photo" in m, timeout=60)
    store = bot.bot_data["deps"].store
    assert store.photos_since(user.id, 0) == 1
    telegram.send_text(user, "/delete")
    await telegram.wait_for(user.id, lambda m: "has been erased" in text_of(m))
    assert store.photos_since(user.id, 0) == 0 and not store.has_consented(user.id)
    count = len(telegram.sent(user.id))
    telegram.send_photo(user, shared_photo_paths[2].read_bytes())
    notice = await telegram.wait_for(user.id, lambda m: True, after=count)
    assert "I agree" in str(notice["reply_markup"])


async def test_a_failing_handler_tells_the_user_and_the_bot_carries_on(telegram, bot, shared_photo_paths, monkeypatch):
    user = await consented_user(telegram, 295)
    store = bot.bot_data["deps"].store

    def store_down(*args, **kwargs):
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(store, "photos_since", store_down)
    count = len(telegram.sent(user.id))
    telegram.send_photo(user, shared_photo_paths[4].read_bytes())
    reply = await telegram.wait_for(user.id, lambda m: True, after=count)
    assert "something went wrong" in text_of(reply)
    monkeypatch.undo()
    telegram.send_photo(user, shared_photo_paths[4].read_bytes())
    await telegram.wait_for(user.id, lambda m: "photo" in m, timeout=60)


async def test_every_message_people_received_says_it_is_not_a_diagnosis(telegram, bot):
    """Runs last in this module: looks at everything the bot sent to people above."""
    from bot.i18n import translator

    plain = {translator(code)(DISCLAIMER) for code in ("en", "fr", "pt", "es")}
    plain.add("This is a screen, not a diagnosis.")  # the consent notice states it in its body
    to_people = [m for m in telegram.sent() if m["chat"]["id"] > 0 and text_of(m)]
    assert len(to_people) > 20
    missing = [text_of(m) for m in to_people if not any(p in text_of(m) for p in plain)]
    assert missing == []
