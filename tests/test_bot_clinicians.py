"""Escalation over real HTTP: positive screen -> clinicians' chat -> review -> follow-up; refusals;
reminders; Telegram's group flood limit; erasure reaching the clinicians' chat; export."""

from __future__ import annotations

import asyncio
import io
import stat

import pytest
import pytest_asyncio
from PIL import Image

from bot.__main__ import main as bot_main
from tests.bot_harness import (
    CLINICIAN,
    CLINICIAN_CHAT,
    NOT_A_CLINICIAN,
    TOKEN,
    bot_with_worker,
    button_data,
    case_of,
    consented_user,
    eventually,
    replies_to,
    text_of,
)
from tests.images import encode
from tests.telegram_emulator import TelegramEmulator

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def telegram():
    with TelegramEmulator() as emulator:
        emulator.add_group(CLINICIAN_CHAT)
        yield emulator


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    return tmp_path_factory.mktemp("bot") / "bot.sqlite3"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(telegram, redis_url, positive_bundle_path, positive_screener, database):
    """Every screenable photo is positive (the real model, its threshold at 0)."""
    async with bot_with_worker(
        telegram, redis_url, positive_bundle_path, positive_screener, database, review_reminder_after_s=2.0
    ) as application:
        yield application


def posts_of(telegram, case_id: str) -> list[dict]:
    return [m for m in telegram.sent(CLINICIAN_CHAT) if case_id in text_of(m)]


async def positive_case(telegram, bot, user, photo: bytes):
    """Send a photo, wait for its result and its two posts; returns (case, result, photo post, summary)."""
    message = telegram.send_photo(user, photo)
    result = await telegram.wait_for(user.id, lambda m: "photo" in m and "reply_to_message" in m, timeout=60)
    case = case_of(bot, user.id, message)
    summary = await telegram.wait_for(
        CLINICIAN_CHAT, lambda m: case.case_id in text_of(m) and "reply_markup" in m, timeout=30
    )
    photo_post = next(m for m in posts_of(telegram, case.case_id) if "the person's photo" in text_of(m))
    return case, result, photo_post, summary


def with_exif(photo: bytes) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0)}  # GPS latitude
    return encode(Image.open(io.BytesIO(photo)).convert("RGB"), "JPEG", exif=exif.tobytes())


def test_a_case_shows_the_most_probable_conditions_first_and_sums_the_rest():
    """The demo learns 19 conditions: a clinician sees the five likeliest, not a list of zeros."""
    from model.types import likeliest_classes

    conditions = {f"condition_{i:02d}": 0.01 for i in range(14)} | {
        "mpox": 0.40, "herpes_simplex": 0.20, "scabies": 0.12, "orf": 0.08, "syphilis": 0.06}
    assert likeliest_classes(conditions) == (
        "mpox 40%, herpes_simplex 20%, scabies 12%, orf 8%, syphilis 6% (+14 others, 14% together)")
    assert likeliest_classes({"normal": 0.3, "mpox": 0.7}) == "mpox 70%, normal 30%"


async def test_positive_is_posted_reviewed_by_name_and_followed_up(telegram, bot, shared_photo_paths):
    # An id as long as real ones: a short one ("301") turned up by chance in random case ids.
    user = await consented_user(telegram, 7301994312, language="pt-br", first_name="Maria")
    original = with_exif(shared_photo_paths[3].read_bytes())
    case, result, photo_post, summary = await positive_case(telegram, bot, user, original)
    assert "não um diagnóstico" in text_of(result)

    # The clinicians see a metadata-free copy, the heatmap, the case, and nobody's name or id.
    shown = telegram.file_bytes(photo_post["photo"][-1]["file_id"])
    assert shown != original and not Image.open(io.BytesIO(shown)).getexif()
    assert summary["photo"][-1]["file_id"] == result["photo"][-1]["file_id"]  # the same heatmap
    assert "Screen: positive" in text_of(summary) and "test-mobilenet-v2-035" in text_of(summary)
    chat = str(telegram.sent(CLINICIAN_CHAT))
    assert "Maria" not in chat and "user7301994312" not in chat and str(user.id) not in chat
    assert len(summary["reply_markup"]["inline_keyboard"]) == 3

    # Someone in the chat who is not a listed clinician, and a forged press elsewhere: refused.
    query = telegram.press(telegram.user(NOT_A_CLINICIAN), summary, button_data(summary, "review:likely_mpox"))
    refusal = await telegram.wait_for_answer(query)
    assert refusal["show_alert"] and "Only the service's clinicians" in refusal["text"]
    query = telegram.press(user, result, button_data(summary, "review:likely_mpox"))
    assert (await telegram.wait_for_answer(query))["show_alert"]
    store = bot.bot_data["deps"].store
    assert store.review(case.case_id) is None

    clinician = telegram.user(CLINICIAN, first_name="Ana")
    count = len(telegram.sent(user.id))
    query = telegram.press(clinician, summary, button_data(summary, "review:likely_mpox"))
    assert (await telegram.wait_for_answer(query))["show_alert"] is False
    follow_up = await telegram.wait_for(user.id, lambda m: True, after=count)
    assert "viu a sua foto" in text_of(follow_up) and text_of(follow_up).endswith("Só um profissional de saúde pode diagnosticar mpox.")
    edited = next(m for m in telegram.sent(CLINICIAN_CHAT) if m["message_id"] == summary["message_id"])
    assert "Reviewed: Likely mpox: advise testing, by Ana" in text_of(edited)
    assert str(CLINICIAN) not in text_of(edited) and "reply_markup" not in edited
    await eventually(lambda: store.review(case.case_id).followed_up_at)
    review = store.review(case.case_id)
    assert (review.reviewer_id, review.decision) == (CLINICIAN, "likely_mpox")

    # A second press (an old screenshot of the buttons, another clinician) changes nothing.
    query = telegram.press(clinician, summary, button_data(summary, "review:unlikely"))
    assert "already reviewed" in (await telegram.wait_for_answer(query))["text"]
    assert store.review(case.case_id).decision == "likely_mpox"
    assert len([m for m in telegram.sent(user.id) if "viu a sua foto" in text_of(m)]) == 1


async def test_reminder_replies_to_the_case_instead_of_posting_it_again(telegram, bot, shared_photo_paths):
    user = await consented_user(telegram, 302)
    case, _result, _photo, summary = await positive_case(telegram, bot, user, shared_photo_paths[4].read_bytes())
    reminder = await telegram.wait_for(CLINICIAN_CHAT, lambda m: "Reminder" in text_of(m) and case.case_id in text_of(m), timeout=20)
    assert reminder["reply_to_message"]["message_id"] == summary["message_id"]
    assert "photo" not in reminder
    assert len([m for m in posts_of(telegram, case.case_id) if "photo" in m]) == 2  # never re-posted


async def test_a_refused_review_of_a_case_that_was_never_posted(telegram, bot, shared_photo_paths):
    user = await consented_user(telegram, 303)
    message = telegram.send_photo(user, encode(Image.new("RGB", (300, 300), (5, 5, 5)), "JPEG"))  # too dark
    await telegram.wait_for(user.id, lambda m: "could not be judged" in text_of(m), timeout=60)
    case = case_of(bot, user.id, message)
    _case, _result, _photo, summary = await positive_case(telegram, bot, user, shared_photo_paths[5].read_bytes())
    forged = f"review:likely_mpox:{case.case_id}"  # a real case id, but not a posted positive
    answer = await telegram.wait_for_answer(telegram.press(telegram.user(CLINICIAN), summary, forged))
    assert "Only positive screens posted here" in answer["text"]
    assert bot.bot_data["deps"].store.review(case.case_id) is None


async def test_flood_limit_in_the_clinicians_chat_never_repeats_the_persons_reply(telegram, bot, shared_photo_paths):
    """Telegram allows ~20 messages a minute in a group: it answers 429 "retry after"."""
    user = await consented_user(telegram, 304)
    telegram.flood(CLINICIAN_CHAT, sends=3, retry_after=1)
    message = telegram.send_photo(user, shared_photo_paths[6].read_bytes())
    store = bot.bot_data["deps"].store
    await eventually(lambda: (case := case_of(bot, user.id, message)) and store.case(case.case_id).announced_at, 30)
    case = case_of(bot, user.id, message)
    results = [m for m in replies_to(telegram, user.id, message) if "photo" in m]
    assert len(results) == 1  # the person was answered once, whatever the clinicians' chat did
    kinds = [("photo" in m, "reply_markup" in m) for m in posts_of(telegram, case.case_id)]
    assert kinds == [(True, False), (True, True)]  # each post made once


async def test_delete_removes_the_cases_posts_from_the_clinicians_chat(telegram, bot, shared_photo_paths):
    user = await consented_user(telegram, 305)
    case, _result, photo_post, summary = await positive_case(telegram, bot, user, shared_photo_paths[7].read_bytes())
    telegram.send_text(user, "/delete")
    reply = await telegram.wait_for(user.id, lambda m: "has been erased" in text_of(m))
    assert "posts in the clinicians' chat: 2" in text_of(reply)
    assert posts_of(telegram, case.case_id) == []
    deleted = {m["message_id"] for m in telegram.deleted}
    assert {photo_post["message_id"], summary["message_id"]} <= deleted


async def test_delete_blanks_out_posts_too_old_to_delete(telegram, bot, shared_photo_paths):
    user = await consented_user(telegram, 306)
    case, _result, photo_post, summary = await positive_case(telegram, bot, user, shared_photo_paths[8].read_bytes())
    telegram.delete_window_s = 0.0  # as after Telegram's 48 hours
    try:
        telegram.send_text(user, "/delete")
        reply = await telegram.wait_for(user.id, lambda m: "has been erased" in text_of(m))
    finally:
        telegram.delete_window_s = 48 * 3600.0
    assert "posts in the clinicians' chat: 2" in text_of(reply)
    for post in (photo_post, summary):
        now = telegram.messages[(CLINICIAN_CHAT, post["message_id"])]
        assert "erased at the person's request" in text_of(now) and "reply_markup" not in now
        assert now["photo"][-1]["file_id"] != post["photo"][-1]["file_id"]  # the picture is replaced


async def test_export_gets_the_metadata_free_copy_privately(telegram, bot, shared_photo_paths, database, tmp_path, monkeypatch):
    user = await consented_user(telegram, 307)
    case, _result, photo_post, summary = await positive_case(telegram, bot, user, with_exif(shared_photo_paths[9].read_bytes()))
    await telegram.wait_for_answer(telegram.press(telegram.user(CLINICIAN), summary, button_data(summary, "review:unlikely")))
    for name, value in {
        "TELEGRAM_TOKEN": TOKEN,
        "REDIS_URL": "redis://127.0.0.1:1/0",  # the export needs no Redis
        "TELEGRAM_BASE_URL": telegram.base_url,
        "TELEGRAM_BASE_FILE_URL": telegram.base_file_url,
        "DATABASE_PATH": str(database),
        "CLINICIAN_CHAT_ID": str(CLINICIAN_CHAT),
        "CLINICIAN_USER_IDS": str(CLINICIAN),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    await asyncio.to_thread(bot_main, ["export-reviewed", str(tmp_path / "dataset")])
    exported = tmp_path / "dataset" / "not_mpox" / f"{case.case_id}.jpg"
    assert exported.read_bytes() == telegram.file_bytes(photo_post["photo"][-1]["file_id"])
    assert not Image.open(exported).getexif()
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600
    assert stat.S_IMODE(exported.parent.stat().st_mode) == 0o700
