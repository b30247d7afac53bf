"""Photos: record the case first, take a quota slot, download, queue, then acknowledge.

Each step is recorded in the store as it completes, so a photo is never lost between steps: a
crash anywhere leaves a case that `bot.recovery` finishes (queues it, or answers it). The person is
told "Analysing..." only once the photo is safely queued. The answer itself comes later, from the
outcome consumer (`bot.deliveries`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from telegram import Bot, Message, ReplyParameters, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import consent, messages
from bot.deps import Deps, deps
from bot.i18n import translator
from bot.queue import QueueUnavailable
from bot.sending import with_retries
from bot.store import Case, WaitingPhoto

log = logging.getLogger(__name__)

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses larger files
# What people can send as a file; HEIC is what iPhones save.
IMAGE_MIME_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic", "image/heif")
MB = 1024 * 1024
# Workers load TensorFlow and the model for up to a minute after the service starts: until then,
# no live worker does not mean "busy" (the delayed notice covers a start that takes longer).
WORKERS_STARTING_S = 120.0


def photo_file(message: Message) -> tuple[str, int | None, bool]:
    """(file id, size when known, sent as a document) of the largest version of the image."""
    if message.photo:
        largest = message.photo[-1]
        return largest.file_id, largest.file_size, False
    return message.document.file_id, message.document.file_size, True


def size_limit(d: Deps) -> int:
    return min(TELEGRAM_DOWNLOAD_LIMIT, d.settings.max_photo_bytes)


def _reply_to(message_id: int) -> ReplyParameters:
    return ReplyParameters(message_id, allow_sending_without_reply=True)


async def tell(bot: Bot, case_or_chat: Case | int, text: str, message_id: int | None = None) -> None:
    """Send `text` to a person, as a reply to their photo when there is one."""
    if isinstance(case_or_chat, Case):
        chat_id, message_id = case_or_chat.chat_id, case_or_chat.message_id
    else:
        chat_id = case_or_chat
    await with_retries(
        lambda: bot.send_message(chat_id, text, reply_parameters=None if message_id is None else _reply_to(message_id))
    )


async def _too_large(bot: Bot, d: Deps, chat_id: int, message_id: int, size: int, language: str) -> None:
    _ = translator(language)
    text = _(messages.TOO_LARGE).format(size=f"{size / MB:.1f}", limit=f"{size_limit(d) / MB:g}")
    await tell(bot, chat_id, text, message_id)


async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo (compressed, or an image file): kept until consent, else screened."""
    d = deps(context)
    user, message = update.effective_user, update.effective_message
    file_id, file_size, is_document = photo_file(message)
    waiting = WaitingPhoto(message.chat_id, message.message_id, user.id, file_id, is_document)
    if not d.store.has_consented(user.id):
        await consent.keep_until_consent(update, context, waiting)
        return
    await message.chat.send_action(ChatAction.TYPING)
    await screen_new_photo(context.bot, d, waiting, file_size, d.language_of(user))


async def screen_kept_photos(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """After "I agree" (the handler group after consent.agree): screen the photos kept until now."""
    d = deps(context)
    user = update.effective_user
    if not d.store.has_consented(user.id):
        return
    for waiting in d.store.take_waiting_photos(user.id):
        await screen_new_photo(context.bot, d, waiting, None, d.language_of(user))


async def screen_new_photo(bot: Bot, d: Deps, photo: WaitingPhoto, file_size: int | None, language: str) -> None:
    """Record, check quota, queue and acknowledge one photo (from a message, or kept until consent)."""
    if file_size is not None and file_size > size_limit(d):
        await _too_large(bot, d, photo.chat_id, photo.message_id, file_size, language)
        return
    case = d.store.add_case(
        uuid.uuid4().hex, photo.user_id, photo.chat_id, photo.message_id, photo.photo_file_id, photo.photo_is_document
    )
    if case.queued_at is not None or case.has_outcome:
        return  # the same message seen twice (a replayed update): already on its way
    used = await d.quota.take(photo.user_id, case.case_id)
    if used is not None:
        d.store.erase_case(case.case_id)
        _ = translator(language)
        minutes = max(1, round(d.settings.user_rate_window_s / 60))
        await tell(bot, case, _(messages.RATE_LIMITED).format(count=used, minutes=minutes))
        return
    done = d.in_flight.setdefault(case.case_id, asyncio.Event())
    try:
        busy = await no_worker_up(d)
        queued = await queue_case(bot, d, case)
        if queued is not None:
            await acknowledge(bot, d, case, busy=busy or not queued)
    finally:
        done.set()
        d.in_flight.pop(case.case_id, None)


async def queue_case(bot: Bot, d: Deps, case: Case) -> bool | None:
    """Download the case's photo and queue it. True: queued; False: kept for later (Telegram or
    Redis unreachable: `bot.recovery` tries again); None: closed (the file is too large)."""
    try:
        telegram_file = await with_retries(lambda: bot.get_file(case.photo_file_id))
        photo_bytes = bytes(await with_retries(telegram_file.download_as_bytearray))
    except TelegramError as exc:
        log.warning("event=download_failed case_id=%s error=%s", case.case_id, type(exc).__name__)
        return False
    if len(photo_bytes) > size_limit(d):  # Telegram did not say its size, or said it wrong
        language = d.language_of_id(case.user_id)
        await _too_large(bot, d, case.chat_id, case.message_id, len(photo_bytes), language)
        d.store.record_outcome(case.case_id, None, {}, None, failure="too_large")
        d.store.record_answered(case.case_id, None)
        await d.quota.give_back(case.user_id, case.case_id)
        return None
    labels = messages.heatmap_labels(translator(d.language_of_id(case.user_id)))
    try:
        await d.queue.submit(case.case_id, photo_bytes, labels)
    except QueueUnavailable as exc:
        log.warning("event=queue_unavailable case_id=%s error=%s", case.case_id, exc)
        return False
    d.store.record_queued(case.case_id)
    return True


async def no_worker_up(d: Deps) -> bool:
    """No worker can take a photo now (and none is just starting with the service)."""
    if time.monotonic() - d.started_at < WORKERS_STARTING_S:
        return False
    return await d.queue.live_workers() == 0


async def acknowledge(bot: Bot, d: Deps, case: Case, busy: bool) -> None:
    """Tell the person their photo is on its way: "Analysing..." when a worker can take it now,
    else (`busy`) that it will take a while, and then no later "delayed" notice."""
    _ = translator(d.language_of_id(case.user_id))
    await tell(bot, case, _(messages.QUEUED_SLOW if busy else messages.ANALYSING))
    d.store.record_acknowledged(case.case_id)
    if busy:
        d.store.record_delayed_notice(case.case_id)
