"""Consent: the first-contact notice with an "I agree" button, and recording the agreement."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot import messages
from bot.deps import deps
from bot.i18n import Translate

log = logging.getLogger(__name__)

AGREE = "consent:agree"


def consent_keyboard(_: Translate) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(_(messages.AGREE_BUTTON), callback_data=AGREE)]])


def consent_notice(_: Translate, retention_days: float) -> str:
    return _(messages.CONSENT_NOTICE).format(days=f"{retention_days:g}")


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Show the notice and the "I agree" button (/start)."""
    d = deps(context)
    _ = d.translate_for(update.effective_user)
    if d.store.has_consented(update.effective_user.id):
        await update.effective_message.reply_text(
            consent_notice(_, d.settings.retention_days) + "\n\n" + _(messages.CONSENT_THANKS)
        )
        return
    await update.effective_message.reply_text(
        consent_notice(_, d.settings.retention_days), reply_markup=consent_keyboard(_)
    )


async def ask_consent_for_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo came before consent: it is not screened; show the notice and ask to resend."""
    d = deps(context)
    _ = d.translate_for(update.effective_user)
    await update.effective_message.reply_text(
        _(messages.CONSENT_NEEDED) + "\n\n" + consent_notice(_, d.settings.retention_days),
        reply_markup=consent_keyboard(_),
    )


async def agree(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Record consent (the "I agree" button) and invite a photo."""
    d = deps(context)
    user = update.effective_user
    language = d.language_of(user)
    d.store.record_consent(user.id)
    d.store.set_language(user.id, language)
    log.info("event=consent language=%s", language)
    _ = d.translate_for(user)
    await update.callback_query.answer()
    await update.callback_query.edit_message_reply_markup(reply_markup=None)
    await update.effective_chat.send_message(messages.with_disclaimer(_, _(messages.CONSENT_THANKS)))
