"""Commands: /help, /privacy, /language (with its buttons), /delete; guidance for other content."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import ContextTypes

from bot import clinicians, messages
from bot.deps import deps
from bot.i18n import translator
from bot.queue import QueueUnavailable
from bot.sending import edit_quietly
from bot.settings import LANGUAGES

log = logging.getLogger(__name__)

LANGUAGE_PREFIX = "language:"
# Each language is offered in its own name, so it is found by someone who cannot read the others.
LANGUAGE_NAMES = {"en": "English", "fr": "Français", "pt": "Português", "es": "Español"}


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """How to take and send a photo, and the commands (/help)."""
    _ = deps(context).translate_for(update.effective_user)
    await update.effective_message.reply_text(_(messages.HELP))


async def privacy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """What is stored, for how long, and who sees it (/privacy)."""
    d = deps(context)
    _ = d.translate_for(update.effective_user)
    await update.effective_message.reply_text(_(messages.PRIVACY).format(days=f"{d.settings.retention_days:g}"))


async def language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Offer the languages as buttons (/language)."""
    _ = deps(context).translate_for(update.effective_user)
    keyboard = InlineKeyboardMarkup(
        [[InlineKeyboardButton(LANGUAGE_NAMES[code], callback_data=LANGUAGE_PREFIX + code) for code in LANGUAGES]]
    )
    await update.effective_message.reply_text(_(messages.CHOOSE_LANGUAGE), reply_markup=keyboard)


async def set_language(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Store the chosen language (a /language button) and confirm in it."""
    query = update.callback_query
    code = (query.data or "").removeprefix(LANGUAGE_PREFIX)
    await query.answer()
    if code not in LANGUAGES:
        return
    deps(context).store.set_language(update.effective_user.id, code)
    chosen = translator(code)
    await edit_quietly(query.edit_message_text(chosen(messages.LANGUAGE_SET)))


async def delete(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Erase everything stored about the person, wherever it is, and say what was erased (/delete)."""
    d = deps(context)
    _ = d.translate_for(update.effective_user)  # before erasing: the language is part of it
    erased = d.store.erase_user(update.effective_user.id)
    try:
        queued = await d.queue.forget(list(erased.case_ids))
    except QueueUnavailable:  # its photos expire from Redis, and their outcomes are never believed
        log.warning("event=erase_queue_unavailable cases=%d", len(erased.case_ids))
        queued = 0
    posts = await clinicians.erase_posts(context.bot, d, erased.clinician_posts)
    log.info("event=erased cases=%d waiting=%d queued=%d posts=%d", erased.cases, erased.waiting_photos, queued, posts)
    await update.effective_message.reply_text(
        _(messages.DELETED).format(cases=erased.cases, waiting=erased.waiting_photos, posts=posts, queued=queued)
    )


async def other_content(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Anything that is not a photo or a command: explain what the bot can do."""
    _ = deps(context).translate_for(update.effective_user)
    message = update.effective_message
    text = messages.UNSUPPORTED_FILE if message.document else messages.OTHER_CONTENT
    await message.reply_text(_(text))
