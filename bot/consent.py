"""Consent: the first-contact notice with an "I agree" button, and recording the agreement.

Photos sent before agreeing are kept as Telegram file references (never downloaded); an album, or
several photos in a row, gets one notice. Once the person agrees, `bot.photos.screen_kept_photos`
(the next handler group for the same button) screens them.
"""

from __future__ import annotations

import logging
import time

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot import messages
from bot.deps import deps
from bot.i18n import Translate
from bot.sending import edit_quietly
from bot.store import WaitingPhoto

log = logging.getLogger(__name__)

AGREE = "consent:agree"
NOTICE_REPEAT_AFTER_S = 120  # photos within this time of a notice (an album) get no new notice


def consent_keyboard(_: Translate) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(_(messages.AGREE_BUTTON), callback_data=AGREE)]])


def consent_notice(_: Translate, retention_days: float) -> str:
    return _(messages.CONSENT_NOTICE).format(days=f"{retention_days:g}")


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Show the notice and the "I agree" button (/start)."""
    d = deps(context)
    user = update.effective_user
    _ = d.translate_for(user)
    if d.store.has_consented(user.id):
        await update.effective_message.reply_text(
            consent_notice(_, d.settings.retention_days) + "\n\n" + _(messages.CONSENT_THANKS)
        )
        return
    d.store.record_consent_notice(user.id)
    await update.effective_message.reply_text(
        consent_notice(_, d.settings.retention_days), reply_markup=consent_keyboard(_)
    )


async def keep_until_consent(update: Update, context: ContextTypes.DEFAULT_TYPE, photo: WaitingPhoto) -> None:
    """A photo came before consent: keep it for later and, once per album, show the notice."""
    d = deps(context)
    d.store.add_waiting_photo(photo)
    if d.store.consent_notice_sent_since(photo.user_id, time.time() - NOTICE_REPEAT_AFTER_S):
        return
    d.store.record_consent_notice(photo.user_id)  # before any await: the album's other photos see it
    _ = d.translate_for(update.effective_user)
    await update.effective_message.reply_text(
        _(messages.CONSENT_NEEDED) + "\n\n" + consent_notice(_, d.settings.retention_days),
        reply_markup=consent_keyboard(_),
    )


async def agree(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Record consent (the "I agree" button) and invite a photo, or say the kept ones are coming."""
    d = deps(context)
    user, query = update.effective_user, update.callback_query
    await query.answer()
    await edit_quietly(query.edit_message_reply_markup(reply_markup=None))
    if d.store.has_consented(user.id):
        return  # pressed twice: nothing more to do
    language = d.language_of(user)
    d.store.record_consent(user.id)
    d.store.set_language(user.id, language)
    log.info("event=consent language=%s", language)
    _ = d.translate_for(user)
    waiting = d.store.count_waiting_photos(user.id)
    await update.effective_chat.send_message(_(messages.CONSENT_THANKS_WAITING if waiting else messages.CONSENT_THANKS))
