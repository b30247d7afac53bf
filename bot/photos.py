"""Photos: check consent, rate and size, acknowledge at once, and queue the photo for screening.

The answer itself comes later, from the result consumer (bot/deliveries.py).
"""

from __future__ import annotations

import logging
import time
import uuid

from telegram import Message, Update
from telegram.constants import ChatAction
from telegram.ext import ContextTypes

from bot import messages
from bot.consent import ask_consent_for_photo
from bot.deps import Deps, deps
from worker.errors import ServiceUnavailable
from worker.types import ScreeningRequest

log = logging.getLogger(__name__)

TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024  # getFile refuses larger files
IMAGE_MIME_TYPES = ("image/jpeg", "image/png", "image/webp")
MB = 1024 * 1024


def photo_file(message: Message) -> tuple[str, int | None, bool]:
    """(file id, size when known, sent as a document) of the largest version of the image."""
    if message.photo:
        largest = message.photo[-1]
        return largest.file_id, largest.file_size, False
    return message.document.file_id, message.document.file_size, True


def size_limit(d: Deps) -> int:
    return min(TELEGRAM_DOWNLOAD_LIMIT, d.settings.max_photo_bytes)


async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Screen a photo (compressed, or an image file): acknowledge, download, queue."""
    d = deps(context)
    user, message = update.effective_user, update.effective_message
    if not d.store.has_consented(user.id):
        await ask_consent_for_photo(update, context)
        return
    _ = d.translate_for(user)
    settings = d.settings
    recent = d.store.photos_since(user.id, time.time() - settings.user_rate_window_s)
    if recent >= settings.user_rate_limit:
        minutes = max(1, round(settings.user_rate_window_s / 60))
        await message.reply_text(
            messages.with_disclaimer(_, _(messages.RATE_LIMITED).format(count=recent, minutes=minutes))
        )
        return
    file_id, file_size, is_document = photo_file(message)
    if file_size is not None and file_size > size_limit(d):
        await message.reply_text(
            messages.with_disclaimer(
                _, _(messages.TOO_LARGE).format(size=f"{file_size / MB:.1f}", limit=f"{size_limit(d) / MB:g}")
            )
        )
        return
    await message.reply_text(messages.with_disclaimer(_, _(messages.ANALYSING)))
    await message.chat.send_action(ChatAction.TYPING)
    photo_bytes = bytes(await (await context.bot.get_file(file_id)).download_as_bytearray())
    request = ScreeningRequest(
        request_id=uuid.uuid4().hex,
        chat_id=message.chat_id,
        message_id=message.message_id,
        language=d.language_of(user),
        photo=photo_bytes,
    )
    d.store.add_case(request.request_id, user.id, message.chat_id, message.message_id, file_id, is_document)
    try:
        await d.service.submit(request)
    except ServiceUnavailable:
        d.store.delete_case(request.request_id)
        log.warning("event=submit_failed case_id=%s", request.request_id)
        await message.reply_text(messages.with_disclaimer(_, _(messages.QUEUE_UNAVAILABLE)))
        return
    log.info("event=queued case_id=%s bytes=%d", request.request_id, len(photo_bytes))
    if (await d.service.health()).workers == 0:
        d.store.record_delayed_notice(request.request_id)
        await message.reply_text(messages.with_disclaimer(_, _(messages.DELAYED)))
