"""Escalation over real HTTP: positive screen -> clinicians' chat -> review -> follow-up; refusals;
re-announcement of unreviewed cases; export of reviewed photos as a folder-per-class dataset."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from bot.__main__ import main as bot_main
from bot.messages import DISCLAIMER
from model.bundle import Thresholds, load_bundle, write_bundle
from tests.bot_harness import (
    CLINICIAN,
    CLINICIAN_CHAT,
    NOT_A_CLINICIAN,
    TOKEN,
    bot_settings,
    button_data,
    consented_user,
    running_bot,
    text_of,
)
from tests.telegram_emulator import TelegramEmulator


@pytest.fixture(scope="session")
def positive_bundle_path(test_bundle_path, tmp_path_factory):
    """The session's real model with its operating point at 0: every screenable photo is positive.

    Only the thresholds change (same TFLite and Keras files, re-checksummed), so escalation can be
    tested with a real model without searching for a photo it happens to call positive.
    """
    source = load_bundle(test_bundle_path)
    manifest = dataclasses.replace(source.manifest, thresholds=Thresholds(positive=0.0, inconclusive=0.0))
    folder = tmp_path_factory.mktemp("bundle") / "positive-bundle"
    return write_bundle(
        folder, manifest, source.tflite_path.read_bytes(), source.keras_path, source.card_path.read_text()
    ).path


@pytest.fixture(scope="module")
def telegram():
    with TelegramEmulator() as emulator:
        emulator.add_group(CLINICIAN_CHAT)
        yield emulator



def case_post(telegram, case_id: str | None = None) -> dict:
    posts = [m for m in telegram.sent(CLINICIAN_CHAT) if m.get("reply_markup")]
    return next(m for m in reversed(posts) if case_id is None or case_id in text_of(m))


async def test_positive_is_escalated_reviewed_and_followed_up(
    telegram, positive_bundle_path, shared_photo_paths, tmp_path, monkeypatch
):
    settings = bot_settings(telegram, positive_bundle_path, tmp_path / "bot.sqlite3", review_reminder_after_s=1.0)
    async with running_bot(settings) as application:
        user = await consented_user(telegram, 301, language="pt-br")
        telegram.send_photo(user, shared_photo_paths[3].read_bytes())
        reply = await telegram.wait_for(user.id, lambda m: "photo" in m, timeout=60)
        assert DISCLAIMER not in text_of(reply)  # Portuguese...
        assert "não um diagnóstico" in text_of(reply)

        post = await telegram.wait_for(CLINICIAN_CHAT, lambda m: "reply_markup" in m, timeout=30)
        store = application.bot_data["deps"].store
        (case_id,) = [c for c in [store.cases_awaiting_review(1e12)[0].case_id]]
        summary = text_of(post)
        assert case_id in summary and "mpox" in summary and "test-mobilenet-v2-035" in summary
        assert "user301" not in str(telegram.sent(CLINICIAN_CHAT)) and "Test" not in summary
        person_photo = telegram.sent(CLINICIAN_CHAT)[-2]
        assert person_photo["photo"][0]["file_id"] == telegram.messages[(user.id, reply["reply_to_message"]["message_id"])]["photo"][-1]["file_id"]
        assert len(post["reply_markup"]["inline_keyboard"]) == 3

        # Unreviewed for longer than REVIEW_REMINDER_AFTER_S: announced again.
        reminder = await telegram.wait_for(CLINICIAN_CHAT, lambda m: "Reminder" in text_of(m), timeout=15)
        assert case_id in text_of(reminder)

        # Someone in the chat who is not a listed clinician, and anyone outside the chat: refused.
        outsider = telegram.user(NOT_A_CLINICIAN)
        query = telegram.press(outsider, post, button_data(post, "review:likely_mpox"))
        refusal = await telegram.wait_for_answer(query)
        assert refusal["show_alert"] and "Only the service's clinicians" in refusal["text"]
        query = telegram.press(user, reply, button_data(post, "review:likely_mpox"))  # forged, in the user's chat
        assert (await telegram.wait_for_answer(query))["show_alert"]
        assert store.review(case_id) is None

        clinician = telegram.user(CLINICIAN, first_name="Dr")
        count = len(telegram.sent(user.id))
        query = telegram.press(clinician, post, button_data(post, "review:likely_mpox"))
        assert (await telegram.wait_for_answer(query))["show_alert"] is False
        follow_up = await telegram.wait_for(user.id, lambda m: True, after=count)
        assert "clínico" in text_of(follow_up) and "não um diagnóstico" in text_of(follow_up)
        edited = next(m for m in telegram.sent(CLINICIAN_CHAT) if m["message_id"] == post["message_id"])
        assert "Reviewed: Likely mpox: advise testing" in text_of(edited) and str(CLINICIAN) in text_of(edited)
        assert "reply_markup" not in edited
        review = store.review(case_id)
        assert (review.reviewer_id, review.decision) == (CLINICIAN, "likely_mpox")

        # A second press (e.g. on the reminder) does not record a second review.
        query = telegram.press(clinician, reminder, button_data(reminder, "review:unlikely"))
        assert "already reviewed" in (await telegram.wait_for_answer(query))["text"]
        assert store.review(case_id).decision == "likely_mpox"

        # A second case, judged unusable: skipped by the export.
        telegram.send_photo(user, shared_photo_paths[7].read_bytes())
        post2 = await telegram.wait_for(
            CLINICIAN_CHAT, lambda m: "reply_markup" in m and case_id not in text_of(m), timeout=60
        )
        query = telegram.press(clinician, post2, button_data(post2, "review:unusable"))
        await telegram.wait_for_answer(query)

    # export-reviewed fetches the photo by file id through the Bot API (the emulator's file server).
    for name, value in {
        "TELEGRAM_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": telegram.base_url,
        "TELEGRAM_BASE_FILE_URL": telegram.base_file_url,
        "DATABASE_PATH": str(settings.database_path),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    await asyncio.to_thread(bot_main, ["export-reviewed", str(tmp_path / "dataset")])
    exported = sorted((tmp_path / "dataset").rglob("*.*"))
    assert [p.relative_to(tmp_path / "dataset").parent.name for p in exported] == ["mpox"]
    assert exported[0].stem == case_id
    assert exported[0].read_bytes() == shared_photo_paths[3].read_bytes()
