"""Commands: /help, /privacy, /language (with its buttons), /delete; guidance for other content."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot import messages
from bot.deps import deps
from bot.i18n import translator
from bot.settings import LANGUAGES

log = logging.getLogger(__name__)

LANGUAGE_PREFIX = "language:"
# Each language is offered in its own name, so it is found by someone who cannot read the others.
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "pt": "Português", "es": "Español"}


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """How to take and send a photo, and the commands (/help)."""
    _ = deps(context).translate_for(update.effective_user)
    await update.effective_message.reply_text(messages.with_disclaimer(_, _(messages.HELP)))


async def privacy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """What is stored, for how long, and who sees it (/privacy)."""
    d = deps(context)
    _ = d.translate_for(update.effective_user)
    await update.effective_message.reply_text(
        messages.with_disclaimer(_, _(messages.PRIVACY).format(days=f"{d.settings.retention_days:g}"))
    )


async def language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Offer the languages as buttons (/language)."""
    _ = deps(context).translate_for(update.effective_user)
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(LANGUAGE_NAMES[code], callback_data=LANGUAGE_PREFIX + code) for code in LANGUAGES]]
    )
    await update.effective_message.reply_text(
        messages.with_disclaimer(_, _(messages.CHOOSE_LANGUAGE)), reply_markup=keyboard
    )


async def set_language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Store the chosen language (a /language button) and confirm in it."""
    code = update.callback_query.data.removeprefix(LANGUAGE_PREFIX)
    if code not in LANGUAGES:
        await update.callback_query.answer()
        return
    deps(context).store.set_language(update.effective_user.id, code)
    await update.callback_query.answer()
    chosen = translator(code)
    await update.callback_query.edit_message_text(
        messages.with_disclaimer(chosen, chosen(messages.LANGUAGE_SET))
    )


async def delete(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Erase everything stored about the user and confirm (/delete)."""
    d = deps(context)
    _ = d.translate_for(update.effective_user)  # before erasing: the language is part of it
    erased = d.store.erase_user(update.effective_user.id)
    log.info("event=erased cases=%d", erased)
    await update.effective_message.reply_text(messages.with_disclaimer(_, _(messages.DELETED)))


async def other_content(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything that is not a photo or a command: explain what the bot can do."""
    _ = deps(context).translate_for(update.effective_user)
    message = update.effective_message
    text = messages.UNSUPPORTED_FILE if message.document else messages.OTHER_CONTENT
    await message.reply_text(messages.with_disclaimer(_, _(text)))
