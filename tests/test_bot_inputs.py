"""Every kind of input a person can send, over real HTTP, through the queue to a real worker."""

from __future__ import annotations

import io

import pytest
import pytest_asyncio

from bot.messages import DISCLAIMER
from tests.bot_harness import bot_with_worker, consented_user, eventually, jpeg, replies_to, text_of
from tests.telegram_emulator import TelegramEmulator

pytestmark = pytest.mark.asyncio(loop_scope="module")

MB = 1024 * 1024


@pytest.fixture(scope="module")
def telegram():
    with TelegramEmulator() as emulator:
        yield emulator


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(telegram, redis_url, test_bundle_path, screener, tmp_path_factory):
    database = tmp_path_factory.mktemp("bot") / "bot.sqlite3"
    async with bot_with_worker(
        telegram, redis_url, test_bundle_path, screener, database, max_photo_bytes=5 * MB, user_rate_limit=3
    ) as application:
        yield application


async def answer_to(telegram, user, photo_message, timeout: float = 60.0) -> dict:
    """The bot's reply to a photo once its screening is done (not the acknowledgement)."""
    def answered(m: dict) -> bool:
        return m.get("reply_to_message", {}).get("message_id") == photo_message["message_id"] and not any(
            word in text_of(m) for word in ("Analysing", "busy", "longer than usual")
        )

    return await telegram.wait_for(user.id, answered, timeout=timeout)


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
    assert DISCLAIMER not in text_of(reply)  # guidance, not a result


async def test_unsupported_file_gets_guidance(telegram, bot):
    user = await consented_user(telegram, 220)
    count = len(telegram.sent(user.id))
    telegram.send_document(user, b"%PDF-1.4 ...", "report.pdf", "application/pdf")
    reply = await telegram.wait_for(user.id, lambda m: True, after=count)
    assert "JPEG, PNG, WebP or HEIC" in text_of(reply)


@pytest.mark.parametrize("claimed_size", [25 * MB, 6 * MB], ids=["over-telegram-20MB", "over-service-cap"])
async def test_too_large_photo_is_refused_with_the_limit(telegram, bot, claimed_size):
    user = await consented_user(telegram, 230 + claimed_size // MB)
    count = len(telegram.sent(user.id))
    telegram.send_document(user, jpeg((180, 120, 100)), "big.jpg", "image/jpeg", file_size=claimed_size)
    reply = await telegram.wait_for(user.id, lambda m: True, after=count)
    assert "too large" in text_of(reply) and "5 MB" in text_of(reply)


async def test_size_is_checked_after_download_when_telegram_does_not_say(telegram, bot):
    """Telegram may leave file_size out (or get it wrong): the downloaded bytes are measured."""
    user = await consented_user(telegram, 239)
    big = jpeg((180, 120, 100)) + b"\x00" * (6 * MB)  # a photo followed by 6 MB of padding
    message = telegram.send_document(user, big, "lesion.jpg", "image/jpeg", file_size=1000)
    reply = await telegram.wait_for(user.id, lambda m: "too large" in text_of(m), timeout=30)
    assert reply["reply_to_message"]["message_id"] == message["message_id"]
    store = bot.bot_data["deps"].store
    await eventually(lambda: store.cases_of(user.id)[0].answered_at)
    case = store.cases_of(user.id)[0]
    assert case.queued_at is None and case.failure == "too_large"  # never queued


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
async def test_image_files_are_screened(telegram, bot, shared_photo_paths, fmt):
    from PIL import Image

    user = await consented_user(telegram, 240 + ["PNG", "WEBP", "HEIF"].index(fmt))
    buffer = io.BytesIO()
    Image.open(shared_photo_paths[5]).convert("RGB").save(buffer, fmt)
    mime = {"PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heic"}[fmt]
    message = telegram.send_document(user, buffer.getvalue(), f"lesion.{fmt.lower()}", mime)
    reply = await answer_to(telegram, user, message)
    assert "photo" in reply and DISCLAIMER in text_of(reply)


async def test_corrupt_image_gets_a_clear_message(telegram, bot):
    user = await consented_user(telegram, 250)
    message = telegram.send_document(user, b"\xff\xd8\xff\xe0 not really a jpeg", "photo.jpg", "image/jpeg")
    reply = await answer_to(telegram, user, message)
    assert "could not be screened" in text_of(reply) and "could not be read as a photo" in text_of(reply)


async def test_gif_is_refused_by_name(telegram, bot):
    from tests.images import animated_gif

    user = await consented_user(telegram, 251)
    message = telegram.send_document(user, animated_gif(), "lesion.jpg", "image/jpeg")
    reply = await answer_to(telegram, user, message)
    assert "This type of image cannot be screened" in text_of(reply)


async def test_dark_photo_is_answered_with_retake_advice(telegram, bot):
    user = await consented_user(telegram, 260)
    message = telegram.send_photo(user, jpeg((8, 6, 5)))
    reply = await answer_to(telegram, user, message)
    assert "could not be judged" in text_of(reply)
    assert "daylight" in text_of(reply) and "send a new photo" in text_of(reply)
    assert DISCLAIMER not in text_of(reply)  # advice on the picture, not on health


async def test_rate_limit_counts_screened_photos_and_survives_delete(telegram, bot, shared_photo_paths):
    user = await consented_user(telegram, 270)
    for _ in range(2):  # refused photos do not count against the person
        await answer_to(telegram, user, telegram.send_photo(user, jpeg((8, 6, 5))))
    for index in range(3):
        await answer_to(telegram, user, telegram.send_photo(user, shared_photo_paths[10 + index].read_bytes()))
    message = telegram.send_photo(user, shared_photo_paths[14].read_bytes())
    reply = await telegram.wait_for(user.id, lambda m: "recently" in text_of(m), timeout=30)
    assert "3 photos" in text_of(reply) and "60 minutes" in text_of(reply)
    assert reply["reply_to_message"]["message_id"] == message["message_id"]

    telegram.send_text(user, "/delete")  # erasing your data does not reset the limit
    await telegram.wait_for(user.id, lambda m: "has been erased" in text_of(m))
    user = await consented_user(telegram, 270)
    count = len(telegram.sent(user.id))
    telegram.send_photo(user, shared_photo_paths[15].read_bytes())
    reply = await telegram.wait_for(user.id, lambda m: True, after=count)
    assert "recently" in text_of(reply)


async def test_help_and_privacy_are_short_menus(telegram, bot):
    user = telegram.user(280)
    telegram.send_text(user, "/help")
    help_reply = await telegram.wait_for(user.id, lambda m: "/delete" in text_of(m))
    telegram.send_text(user, "/privacy")
    privacy = await telegram.wait_for(user.id, lambda m: "30 days" in text_of(m))
    assert "never your name" in text_of(privacy)
    assert DISCLAIMER not in text_of(help_reply) + text_of(privacy)


async def test_a_failing_handler_tells_the_person_and_the_bot_carries_on(telegram, bot, shared_photo_paths, monkeypatch):
    user = await consented_user(telegram, 295)
    store = bot.bot_data["deps"].store

    def store_down(*args, **kwargs):
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(store, "add_case", store_down)
    count = len(telegram.sent(user.id))
    telegram.send_photo(user, shared_photo_paths[4].read_bytes())
    reply = await telegram.wait_for(user.id, lambda m: True, after=count)
    assert "something went wrong" in text_of(reply)
    monkeypatch.undo()
    message = telegram.send_photo(user, shared_photo_paths[4].read_bytes())
    assert "photo" in await answer_to(telegram, user, message)


async def test_acknowledgement_comes_once_the_photo_is_queued(telegram, bot, shared_photo_paths):
    user = await consented_user(telegram, 296)
    message = telegram.send_photo(user, shared_photo_paths[6].read_bytes())
    reply = await answer_to(telegram, user, message)
    sent = replies_to(telegram, user.id, message)
    assert [text_of(m) for m in sent[:1]] == ["Photo received. Analysing..."]
    assert sent[-1]["message_id"] == reply["message_id"] and len(sent) == 2
    store = bot.bot_data["deps"].store
    await eventually(lambda: store.cases_of(user.id)[0].answered_at)
    case = store.cases_of(user.id)[0]
    assert case.queued_at <= case.acknowledged_at <= case.answered_at
