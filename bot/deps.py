"""What every handler and job needs (settings, store, queue, quota), kept in application.bot_data."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from telegram import User
from telegram.ext import ContextTypes

from bot.i18n import Translate, pick_language, translator
from bot.queue import ScreeningQueue
from bot.quota import PhotoQuota
from bot.settings import BotSettings
from bot.store import Store

DEPS_KEY = "deps"


@dataclass(frozen=True)
class Deps:
    settings: BotSettings
    store: Store
    queue: ScreeningQueue
    quota: PhotoQuota
    # Case id -> an event set once its handler has queued and acknowledged it: its outcome (a
    # fast worker) waits for that, so "Analysing..." never comes after the result.
    in_flight: dict[str, asyncio.Event] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)

    def language_of(self, user: User | None) -> str:
        if user is None:
            return self.settings.default_language
        return pick_language(self.store.language(user.id), user.language_code, self.settings.default_language)

    def language_of_id(self, user_id: int) -> str:
        return pick_language(self.store.language(user_id), None, self.settings.default_language)

    def translate_for(self, user: User | None) -> Translate:
        return translator(self.language_of(user))

    @property
    def clinician_translate(self) -> Translate:
        return translator(self.settings.default_language)


def deps(context: ContextTypes.DEFAULT_TYPE) -> Deps:
    return context.application.bot_data[DEPS_KEY]
