"""Languages: catalogues complete and compiled; the language follows Telegram's code and /language."""

from __future__ import annotations

import gettext
import re

import pytest

from bot import messages
from bot.i18n import LOCALES, extract_messages, parse_po, pick_language, translator
from bot.settings import LANGUAGES
from tests.bot_harness import bot_settings, button_data, running_bot, text_of
from tests.telegram_emulator import TelegramEmulator

PLACEHOLDER = re.compile(r"\{\w+\}")


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogue_translates_every_message_and_is_compiled(language):
    po = parse_po(LOCALES / language / "LC_MESSAGES" / "mpox.po")
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


async def test_language_from_telegram_then_changed_with_the_command(telegram, test_bundle_path, redis_url, tmp_path):
    # Redis mode with no worker: nothing here is screened, so the bot starts without loading a model.
    settings = bot_settings(telegram, test_bundle_path, tmp_path / "bot.sqlite3", redis_url=redis_url)
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
        assert "no un diagnóstico" in text_of(help_reply) and "Envíe una foto" in text_of(help_reply)

        unknown = telegram.user(502, language_code="de")  # not offered: the default language
        telegram.send_text(unknown, "hallo")
        reply = await telegram.wait_for(unknown.id, lambda m: True)
        assert "I can only screen photos" in text_of(reply)

    assert any(c["command"] == "delete" for c in telegram.commands)
