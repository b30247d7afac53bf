"""The conversation as a person lives it, over real HTTP: consent, photos kept until consent, one
notice per album, buttons pressed twice, where the disclaimer appears, erasure."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from bot.messages import DISCLAIMER
from tests.bot_harness import bot_with_worker, button_data, consented_user, replies_to, text_of
from tests.telegram_emulator import TelegramEmulator

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def telegram():
    with TelegramEmulator() as emulator:
        yield emulator


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(telegram, redis_url, test_bundle_path, screener, tmp_path_factory):
    database = tmp_path_factory.mktemp("bot") / "bot.sqlite3"
    async with bot_with_worker(telegram, redis_url, test_bundle_path, screener, database) as application:
        yield application


def screened(m: dict) -> bool:
    return "photo" in m and m.get("reply_to_message") is not None


async def test_consent_then_photo_then_result_with_heatmap(telegram, bot, shared_photo_paths):
    alice = telegram.user(101)
    telegram.send_text(alice, "/start")
    notice = await telegram.wait_for(alice.id, lambda m: "reply_markup" in m)
    assert "screen, not a diagnosis" in text_of(notice)
    telegram.press(alice, notice, button_data(notice, "consent:"))
    thanks = await telegram.wait_for(alice.id, lambda m: "close up" in text_of(m))
    assert DISCLAIMER not in text_of(thanks)
    assert "reply_markup" not in telegram.sent(alice.id)[0]  # the button is gone once pressed

    photo = telegram.send_photo(alice, shared_photo_paths[0].read_bytes())
    reply = await telegram.wait_for(alice.id, screened, timeout=60)
    assert reply["reply_to_message"]["message_id"] == photo["message_id"]
    assert text_of(reply).startswith("Result:") and text_of(reply).endswith(DISCLAIMER)
    assert "coloured areas" in text_of(reply)
    heatmap = telegram.file_bytes(reply["photo"][-1]["file_id"])
    assert heatmap[:2] == b"\xff\xd8"  # a JPEG picture
    (ack,) = [m for m in replies_to(telegram, alice.id, photo) if m is not reply and "photo" not in m]
    assert text_of(ack) == "Photo received. Analysing..."  # short: no disclaimer on acknowledgements
    assert (alice.id, "typing") in telegram.chat_actions


async def test_photos_before_consent_are_kept_and_screened_after_agreeing(telegram, bot, shared_photo_paths):
    bob = telegram.user(102)
    album = [telegram.send_photo(bob, shared_photo_paths[i].read_bytes(), media_group_id="album-1") for i in (1, 2, 3)]
    notice = await telegram.wait_for(bob.id, lambda m: "reply_markup" in m)
    assert "as soon as you agree" in text_of(notice)
    await asyncio.sleep(1.0)  # the album's other photos are handled meanwhile
    notices = [m for m in telegram.sent(bob.id) if "reply_markup" in m]
    assert len(notices) == 1  # one notice for the album, not one per photo
    assert bot.bot_data["deps"].store.cases_of(bob.id) == []  # nothing screened before consent

    telegram.press(bob, notice, button_data(notice, "consent:"))
    await telegram.wait_for(bob.id, lambda m: "already sent are being screened" in text_of(m))
    for photo in album:
        await telegram.wait_for(
            bob.id, lambda m, photo=photo: screened(m) and m["reply_to_message"]["message_id"] == photo["message_id"],
            timeout=60,
        )
    assert len([m for m in telegram.sent(bob.id) if screened(m)]) == 3


async def test_pressing_agree_or_a_language_twice_is_harmless(telegram, bot):
    carol = telegram.user(103, language_code="fr")
    telegram.send_text(carol, "/start")
    notice = await telegram.wait_for(carol.id, lambda m: "reply_markup" in m)
    first = telegram.press(carol, notice, button_data(notice, "consent:"))
    second = telegram.press(carol, notice, button_data(notice, "consent:"))
    await telegram.wait_for_answer(first)
    await telegram.wait_for_answer(second)
    telegram.send_text(carol, "/language")
    menu = await telegram.wait_for(carol.id, lambda m: "Français" in str(m.get("reply_markup")))
    for _ in range(2):
        await telegram.wait_for_answer(telegram.press(carol, menu, "language:pt"))
    await telegram.wait_for(carol.id, lambda m: "Português" in text_of(m) or "português" in text_of(m))
    texts = [text_of(m) for m in telegram.sent(carol.id)]
    assert not any("went wrong" in t or "erreur" in t.lower() for t in texts)
    assert len([t for t in texts if t.startswith("Merci")]) == 1  # thanked once


async def test_delete_erases_and_says_what(telegram, bot, shared_photo_paths):
    dan = await consented_user(telegram, 104)
    telegram.send_photo(dan, shared_photo_paths[2].read_bytes())
    await telegram.wait_for(dan.id, screened, timeout=60)
    store = bot.bot_data["deps"].store
    assert len(store.cases_of(dan.id)) == 1
    telegram.send_text(dan, "/delete")
    reply = await telegram.wait_for(dan.id, lambda m: "has been erased" in text_of(m))
    assert "screened photos, with their results and reviews: 1" in text_of(reply)
    assert store.cases_of(dan.id) == [] and not store.has_consented(dan.id) and store.language(dan.id) is None
    count = len(telegram.sent(dan.id))
    telegram.send_photo(dan, shared_photo_paths[2].read_bytes())
    notice = await telegram.wait_for(dan.id, lambda m: True, after=count)
    assert "I agree" in str(notice["reply_markup"])


async def test_the_disclaimer_ends_results_and_only_results(telegram, bot, shared_photo_paths):
    """Runs last in this module: looks at everything the bot sent to people above (the results
    come from the tests above that send real photos, so it needs the shared photos as they do)."""
    from bot.i18n import translator

    disclaimers = {translator(code)(DISCLAIMER) for code in ("en", "fr", "pt", "es")}
    to_people = [m for m in telegram.sent() if m["chat"]["id"] > 0 and text_of(m)]
    results = [m for m in to_people if "photo" in m]
    others = [m for m in to_people if "photo" not in m]
    assert results and others
    assert all(any(text_of(m).endswith(d) for d in disclaimers) for m in results)
    # Menus and acknowledgements stay short; the consent notice says it once, in its body.
    assert not any(any(d in text_of(m) for d in disclaimers) for m in others)
    assert all("screen, not a diagnosis" in text_of(m) for m in others if "I agree" in str(m.get("reply_markup")))
