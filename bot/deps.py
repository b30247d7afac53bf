"""What every handler needs (settings, store, screening service), kept in application.bot_data."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import User
from telegram.ext import ContextTypes

from bot.i18n import Translate, pick_language, translator
from bot.settings import BotSettings
from bot.store import Store
from worker.service import ScreeningService

DEPS_KEY = "deps"


@dataclass(frozen=True)
class Deps:
    settings: BotSettings
    store: Store
    service: ScreeningService

    def language_of(self, user: User | None) -> str:
        if user is None:
            return self.settings.default_language
        return pick_language(self.store.language(user.id), user.language_code, self.settings.default_language)

    def translate_for(self, user: User | None) -> Translate:
        return translator(self.language_of(user))

    @property
    def clinician_translate(self) -> Translate:
        return translator(self.settings.default_language)


def deps(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    return context.application.bot_data[DEPS_KEY]
