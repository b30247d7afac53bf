"""Clinicians: positive screens posted to their chat, one-tap review, follow-up to the person.

A case is posted in recorded steps (the metadata-free photo, then the summary with the heatmap and
the review buttons), so a failing post (Telegram allows ~20 messages a minute in a group) is
retried on its own and nothing is posted twice. Reminders reply to the summary instead of posting
the photos again. Only the clinicians listed in CLINICIAN_USER_IDS may review, and only a positive
case that was posted here. The chat never shows a person's name or any Telegram id: cases carry a
pseudonymous id, and reviewers are shown by their first name or @handle.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    ReplyParameters,
    Update,
    User,
)
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import ContextTypes

from bot import messages
from bot.deps import Deps, deps
from bot.i18n import Translate, translator
from bot.sending import edit_quietly, with_retries
from bot.store import Case, ClinicianPost
from model.types import likeliest_classes

log = logging.getLogger(__name__)

REVIEW_PREFIX = "review:"
# Shown in place of an erased case's photos when Telegram no longer lets the bot delete them.
ERASED_PICTURE = Path(__file__).resolve().parent / "erased.jpg"


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
        probabilities=likeliest_classes(case.probabilities),
        model_id=case.model_id or "?",
        time=messages.format_time(case.submitted_at),
    )


async def announce(bot: Bot, d: Deps, case: Case) -> None:
    """Post a positive case: the person's photo (a copy without metadata), then the summary with
    the heatmap and the review buttons. Steps already done are skipped."""
    chat_id = d.settings.clinician_chat_id
    _ = d.clinician_translate
    done = {post.kind for post in d.store.clinician_posts(case.case_id)}
    if "photo" not in done and (photo := d.store.review_photo(case.case_id)) is not None:
        caption = _(messages.CLINICIAN_PHOTO).format(case_id=case.case_id)
        sent = await with_retries(
            lambda: bot.send_photo(chat_id, photo, caption=caption, filename=f"case-{case.case_id}.jpg")
        )
        d.store.record_clinician_post(case.case_id, "photo", sent.message_id, sent.photo[-1].file_id)
    if "summary" not in done:
        summary, keyboard = case_summary(_, case), review_keyboard(_, case.case_id)
        if case.heatmap_file_id:
            sent = await with_retries(
                lambda: bot.send_photo(chat_id, case.heatmap_file_id, caption=summary, reply_markup=keyboard)
            )
        else:
            sent = await with_retries(lambda: bot.send_message(chat_id, summary, reply_markup=keyboard))
        d.store.record_clinician_post(case.case_id, "summary", sent.message_id)
    d.store.record_announced(case.case_id)
    log.info("event=announced case_id=%s", case.case_id)


async def announce_quietly(bot: Bot, d: Deps, case_id: str) -> None:
    """Announce a case if clinicians are set up; a failure is logged and retried by the job."""
    case = d.store.case(case_id)
    if d.settings.clinician_chat_id is None or case is None or case.announced_at is not None:
        return
    try:
        await announce(bot, d, case)
    except TelegramError as exc:
        log.warning("event=announce_failed case_id=%s error=%s", case_id, type(exc).__name__)


async def announce_pending(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Post every answered positive case not yet (fully) posted (a JobQueue job)."""
    d = deps(context)
    for case in d.store.cases_to_announce():
        await announce_quietly(context.bot, d, case.case_id)


async def remind(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Remind the clinicians of positive cases left unreviewed (a JobQueue job): a reply to the
    case's summary, not the photos again."""
    d = deps(context)
    if d.settings.clinician_chat_id is None:
        return
    _ = d.clinician_translate
    for case in d.store.cases_awaiting_review(time.time() - d.settings.review_reminder_after_s):
        summary = next((p for p in d.store.clinician_posts(case.case_id) if p.kind == "summary"), None)
        reply_to = None if summary is None else ReplyParameters(summary.message_id, allow_sending_without_reply=True)
        try:
            sent = await with_retries(
                lambda case=case, reply_to=reply_to: context.bot.send_message(
                    d.settings.clinician_chat_id,
                    _(messages.CLINICIAN_REMINDER).format(case_id=case.case_id),
                    reply_parameters=reply_to,
                )
            )
        except TelegramError as exc:
            log.warning("event=reminder_failed case_id=%s error=%s", case.case_id, type(exc).__name__)
            continue
        d.store.record_clinician_post(case.case_id, "reminder", sent.message_id)
        log.info("event=reminded case_id=%s", case.case_id)


def is_clinician(d: Deps, update: Update) -> bool:
    return (
        d.settings.clinician_chat_id is not None
        and update.effective_chat.id == d.settings.clinician_chat_id
        and update.effective_user.id in d.settings.clinician_user_ids
    )


def display_name(user: User) -> str:
    """How a reviewer is named in the clinicians' chat: first name, else @handle (never an id)."""
    return user.first_name or (f"@{user.username}" if user.username else "?")


async def review(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Record a clinician's decision, show it on the case's posts, and follow up with the person."""
    d = deps(context)
    query = update.callback_query
    _ = d.clinician_translate
    decision, _sep, case_id = (query.data or "").removeprefix(REVIEW_PREFIX).partition(":")
    if not is_clinician(d, update) or decision not in messages.DECISION_BUTTONS:
        log.warning("event=review_refused case_id=%s", case_id)
        await query.answer(_(messages.CLINICIANS_ONLY), show_alert=True)
        return
    case = d.store.case(case_id)
    if case is None:
        await query.answer(_(messages.CASE_GONE), show_alert=True)
        await edit_quietly(query.edit_message_reply_markup(reply_markup=None))
        return
    if case.verdict != "positive" or case.announced_at is None:
        log.warning("event=review_refused case_id=%s reason=not_announced", case_id)
        await query.answer(_(messages.NOT_REVIEWABLE), show_alert=True)
        return
    recorded = d.store.add_review(case_id, update.effective_user.id, decision)
    if recorded is None:  # pressed twice, or by two clinicians: the first review stands
        await query.answer(_(messages.ALREADY_REVIEWED), show_alert=True)
        return
    log.info("event=reviewed case_id=%s decision=%s", case_id, decision)
    await query.answer(_(messages.REVIEW_SAVED))
    reviewed_line = _(messages.CLINICIAN_REVIEWED).format(
        decision=_(messages.DECISION_BUTTONS[decision]),
        reviewer=display_name(update.effective_user),
        time=messages.format_time(recorded.reviewed_at),
    )
    await close_posts(context.bot, d, case, f"{case_summary(_, case)}\n\n{reviewed_line}")
    await follow_up(context.bot, d, case_id)


async def close_posts(bot: Bot, d: Deps, case: Case, text: str) -> None:
    """Show the review on the case's summary and take the buttons off every post of the case."""
    chat_id = d.settings.clinician_chat_id
    for post in d.store.clinician_posts(case.case_id):
        if post.kind != "summary":
            continue
        try:
            if case.heatmap_file_id:
                await edit_quietly(bot.edit_message_caption(chat_id, post.message_id, caption=text, reply_markup=None))
            else:
                await edit_quietly(bot.edit_message_text(text, chat_id, post.message_id, reply_markup=None))
        except TelegramError as exc:
            log.warning("event=post_not_closed case_id=%s error=%s", case.case_id, type(exc).__name__)


async def follow_up(bot: Bot, d: Deps, case_id: str) -> None:
    """Send the person the clinician's advice, once."""
    case, review = d.store.case(case_id), d.store.review(case_id)
    if case is None or review is None or review.followed_up_at is not None:
        return
    _ = translator(d.language_of_id(case.user_id))
    try:
        await with_retries(
            lambda: bot.send_message(
                case.chat_id,
                messages.with_disclaimer(_, _(messages.FOLLOW_UPS[review.decision])),
                reply_parameters=ReplyParameters(case.message_id, allow_sending_without_reply=True),
            )
        )
    except (BadRequest, Forbidden) as exc:  # the person blocked the bot, or the chat is gone
        log.warning("event=follow_up_undeliverable case_id=%s error=%s", case_id, type(exc).__name__)
    except TelegramError as exc:
        log.warning("event=follow_up_failed case_id=%s error=%s", case_id, type(exc).__name__)
        return
    d.store.record_followed_up(case_id)
    log.info("event=followed_up case_id=%s decision=%s", case_id, review.decision)


async def follow_up_pending(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send follow-ups that failed earlier (a JobQueue job)."""
    d = deps(context)
    for review in d.store.reviews_without_follow_up():
        await follow_up(context.bot, d, review.case_id)


async def erase_posts(bot: Bot, d: Deps, posts: tuple[ClinicianPost, ...]) -> int:
    """Delete these posts from the clinicians' chat; where Telegram no longer allows that (old
    messages), replace the photo with a blank one and the text with "erased". Returns how many."""
    chat_id = d.settings.clinician_chat_id
    if chat_id is None:
        return 0
    _ = d.clinician_translate
    erased = 0
    for post in posts:
        try:
            await with_retries(lambda post=post: bot.delete_message(chat_id, post.message_id))
        except BadRequest:
            try:
                await _blank_out(bot, chat_id, post, _(messages.CLINICIAN_ERASED).format(case_id=post.case_id))
            except TelegramError as exc:
                log.warning("event=post_not_erased case_id=%s error=%s", post.case_id, type(exc).__name__)
                continue
        except TelegramError as exc:
            log.warning("event=post_not_erased case_id=%s error=%s", post.case_id, type(exc).__name__)
            continue
        erased += 1
    return erased


async def _blank_out(bot: Bot, chat_id: int, post: ClinicianPost, text: str) -> None:
    if post.kind == "reminder":
        await edit_quietly(bot.edit_message_text(text, chat_id, post.message_id, reply_markup=None))
        return
    try:
        media = InputMediaPhoto(ERASED_PICTURE.read_bytes(), caption=text)
        await edit_quietly(bot.edit_message_media(media, chat_id, post.message_id, reply_markup=None))
    except BadRequest:  # a summary posted as text (no heatmap)
        await edit_quietly(bot.edit_message_text(text, chat_id, post.message_id, reply_markup=None))
