"""Languages: catalogues complete and compiled; the language follows Telegram's code and /language."""

from __future__ import annotations

import gettext
import re

import pytest

from bot import messages
from bot.i18n import LOCALES, extract_messages, pick_language, read_catalogue, translator
from bot.settings import LANGUAGES
from tests.bot_harness import bot_settings, button_data, running_bot, text_of
from tests.telegram_emulator import TelegramEmulator

PLACEHOLDER = re.compile(r"\{\w+\}")


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_translates_every_message_and_is_compiled(language):
    catalogue = read_catalogue(language)
    po = {message.id: message.string for message in catalogue if message.id}
    with open(LOCALES / language / "LC_MESSAGES" / "mpox.mo", "rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    for msgid in extract_messages():
        assert po.get(msgid), f"{language}: no translation of {msgid!r}"
        assert sorted(PLACEHOLDER.findall(po[msgid])) == sorted(PLACEHOLDER.findall(msgid))
        assert compiled.gettext(msgid) == po[msgid], f"{language}: .mo is stale, run python -m bot compile-catalogues"
        if language != "en" and len(msgid) > 20:
            assert po[msgid] != msgid, f"{language}: {msgid!r} left in English"


def test_disclaimer_says_screen_not_diagnosis_in_every_language():
    words = {"en": "not a diagnosis", "fr": "pas un diagnostic", "pt": "não um diagnóstico", "es": "no un diagnóstico"}
    for language, phrase in words.items():
        assert phrase in translator(language)(messages.DISCLAIMER)


def test_pick_language():
    assert pick_language(None, "pt-BR", "en") == "pt"
    assert pick_language(None, "de", "fr") == "fr"
    assert pick_language("es", "fr", "en") == "es"
    assert pick_language(None, None, "en") == "en"


@pytest.fixture(scope="module")
def telegram():
    with TelegramEmulator() as emulator:
        yield emulator


async def test_language_from_telegram_then_changed_with_the_command(telegram, redis_url, tag, tmp_path):
    # No worker: nothing here is screened.
    settings = bot_settings(telegram, tmp_path / "bot.sqlite3", redis_url, tag)
    async with running_bot(settings):
        user = telegram.user(501, language_code="fr-CA")
        telegram.send_text(user, "/start")
        notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m)
        assert "pas un diagnostic" in text_of(notice)
        assert notice["reply_markup"]["inline_keyboard"][0][0]["text"] == "J'accepte"

        telegram.send_text(user, "/language")
        chooser = await telegram.wait_for(user.id, lambda m: "Choisissez" in text_of(m))
        assert [b["text"] for b in chooser["reply_markup"]["inline_keyboard"][0]] == [
            "English", "Français", "Português", "Español"
        ]
        telegram.press(user, chooser, button_data(chooser, "language:es"))
        await telegram.wait_for(user.id, lambda m: text_of(m).startswith("Idioma cambiado a español."))
        count = len(telegram.sent(user.id))
        telegram.send_text(user, "/help")
        help_reply = await telegram.wait_for(user.id, lambda m: True, after=count)
        assert "Envíe una foto" in text_of(help_reply)

        unknown = telegram.user(502, language_code="de")  # not offered: the default language
        telegram.send_text(unknown, "hallo")
        reply = await telegram.wait_for(unknown.id, lambda m: True)
        assert "I can only screen photos" in text_of(reply)

    assert any(c["command"] == "delete" for c in telegram.commands)


@pytest.mark.parametrize("language", LANGUAGES)
def test_heatmap_words_are_translated_and_drawn(language, tmp_path):
    """The heatmap picture is worded in the person's language: legend, verdict, note."""
    import io

    import numpy as np
    from PIL import Image

    from model.render import render_overlay
    from model.types import Verdict
    from tests.images import skin_photo

    labels = messages.heatmap_labels(translator(language))
    assert labels.less != labels.more and labels.verdicts["positive"] and labels.note
    if language != "en":
        assert labels.less != "less influence on the result"
    heatmap = np.linspace(0, 1, 49).reshape(7, 7)
    picture = Image.open(io.BytesIO(render_overlay(skin_photo(), heatmap, Verdict.POSITIVE, labels)))
    picture.save(tmp_path / f"heatmap-{language}.png")
    english = Image.open(io.BytesIO(render_overlay(skin_photo(), heatmap, Verdict.POSITIVE)))
    if language != "en":  # other words, other pixels: in the corner and in the legend
        difference = np.abs(np.asarray(picture, int) - np.asarray(english, int)).sum(axis=2) > 60
        assert difference[:60].any() and difference[picture.height - 60 :].any()
