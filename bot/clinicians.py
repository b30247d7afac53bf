"""Clinicians: positive screens posted to their chat, one-tap review, follow-up to the person.

Posts carry a pseudonymous case id, never the person's name or handle. Only presses from the
clinicians' chat (and from CLINICIAN_USER_IDS when set) are accepted.
"""

from __future__ import annotations

import logging
import time

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters, Update
from telegram.ext import ContextTypes

from bot import messages
from bot.deps import Deps, deps
from bot.i18n import Translate, translator
from bot.store import Case

log = logging.getLogger(__name__)

REVIEW_PREFIX = "review:"


def review_keyboard(_: Translate, case_id: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(_(label), callback_data=f"{REVIEW_PREFIX}{decision}:{case_id}")]
            for decision, label in messages.DECISION_BUTTONS.items()
        ]
    )


def case_summary(_: Translate, case: Case) -> str:
    return _(messages.CLINICIAN_CASE).format(
        case_id=case.case_id,
        probabilities=messages.format_probabilities(case.probabilities),
        model_id=case.model_id or "?",
        time=messages.format_time(case.submitted_at),
    )


async def announce(bot: Bot, d: Deps, case: Case, reminder: bool = False) -> None:
    """Post a positive case to the clinicians: the person's photo, then the heatmap with buttons."""
    chat_id = d.settings.clinician_chat_id
    _ = d.clinician_translate
    photo_caption = _(messages.CLINICIAN_PHOTO).format(case_id=case.case_id)
    if case.photo_is_document:
        await bot.send_document(chat_id, case.photo_file_id, caption=photo_caption)
    else:
        await bot.send_photo(chat_id, case.photo_file_id, caption=photo_caption)
    summary = case_summary(_, case)
    if reminder:
        summary = _(messages.CLINICIAN_REMINDER) + "\n\n" + summary
    keyboard = review_keyboard(_, case.case_id)
    if case.heatmap_file_id:
        await bot.send_photo(chat_id, case.heatmap_file_id, caption=summary, reply_markup=keyboard)
    else:
        await bot.send_message(chat_id, summary, reply_markup=keyboard)
    d.store.record_announced(case.case_id)
    log.info("event=announced case_id=%s reminder=%s", case.case_id, reminder)


def is_clinician(d: Deps, update: Update) -> bool:
    allowed_users = d.settings.clinician_user_ids
    return (
        d.settings.clinician_chat_id is not None
        and update.effective_chat.id == d.settings.clinician_chat_id
        and (not allowed_users or update.effective_user.id in allowed_users)
    )


async def review(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Record a clinician's decision, show it on the post, and follow up with the person."""
    d = deps(context)
    query = update.callback_query
    _ = d.clinician_translate
    decision, _sep, case_id = query.data.removeprefix(REVIEW_PREFIX).partition(":")
    if not is_clinician(d, update) or decision not in messages.DECISION_BUTTONS:
        log.warning("event=review_refused case_id=%s chat_id=%s", case_id, update.effective_chat.id)
        await query.answer(_(messages.CLINICIANS_ONLY), show_alert=True)
        return
    case = d.store.case(case_id)
    if case is None:
        await query.answer(_(messages.CASE_GONE), show_alert=True)
        await query.edit_message_reply_markup(reply_markup=None)
        return
    recorded = d.store.add_review(case_id, update.effective_user.id, decision)
    if recorded is None:
        await query.answer(_(messages.ALREADY_REVIEWED), show_alert=True)
        return
    log.info("event=reviewed case_id=%s decision=%s", case_id, decision)
    await query.answer(_(messages.REVIEW_SAVED))
    reviewed_line = _(messages.CLINICIAN_REVIEWED).format(
        decision=_(messages.DECISION_BUTTONS[decision]),
        reviewer=update.effective_user.id,
        time=messages.format_time(recorded.reviewed_at),
    )
    edited = f"{case_summary(_, case)}\n\n{reviewed_line}"
    if query.message.photo:
        await query.edit_message_caption(caption=edited, reply_markup=None)
    else:
        await query.edit_message_text(edited, reply_markup=None)
    user_ = translator(d.store.language(case.user_id) or d.settings.default_language)
    await context.bot.send_message(
        case.chat_id,
        messages.with_disclaimer(user_, user_(messages.FOLLOW_UPS[decision])),
        reply_parameters=ReplyParameters(case.message_id, allow_sending_without_reply=True),
    )


async def remind(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Re-announce positive cases left unreviewed for REVIEW_REMINDER_AFTER_S (a JobQueue job)."""
    d = deps(context)
    if d.settings.clinician_chat_id is None:
        return
    for case in d.store.cases_awaiting_review(time.time() - d.settings.review_reminder_after_s):
        await announce(context.bot, d, case, reminder=True)
