"""Answering people: the task that consumes the service's outcomes, and the "delayed" notices.

Each outcome is answered, recorded as delivered, then acknowledged, so an outcome left pending by a
crash is redelivered on restart, and one already answered is skipped (never sent twice).
"""

from __future__ import annotations

import asyncio
import logging
import time

from telegram import Bot, ReplyParameters
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application, ContextTypes

from bot import clinicians, messages
from bot.deps import DEPS_KEY, Deps, deps
from bot.i18n import translator
from model.types import Verdict
from worker.service import Delivery

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024  # Telegram's limit on a photo caption
CONCURRENT_REPLIES = 8
SEND_TRIES = 5


async def send_outcome(bot: Bot, d: Deps, delivery: Delivery) -> None:
    """Send the person their result (with the heatmap when there is one) and escalate positives."""
    outcome = delivery.outcome
    _ = translator(outcome.language)
    text = messages.outcome_text(outcome, _)
    reply_to = ReplyParameters(outcome.message_id, allow_sending_without_reply=True)
    result = outcome.result
    heatmap_file_id = None
    if result is not None and result.heatmap_png:
        if len(text) > CAPTION_LIMIT:
            await bot.send_message(outcome.chat_id, text, reply_parameters=reply_to)
            text = messages.with_disclaimer(_, _(messages.HEATMAP_LINE))
        sent = await bot.send_photo(outcome.chat_id, result.heatmap_png, caption=text, reply_parameters=reply_to)
        heatmap_file_id = sent.photo[-1].file_id if sent.photo else None
    else:
        await bot.send_message(outcome.chat_id, text, reply_parameters=reply_to)
    case = d.store.case(outcome.request_id)
    if case is not None and result is not None:
        d.store.record_result(case.case_id, result.verdict.value, result.probabilities, result.model_id)
        if heatmap_file_id:
            d.store.record_heatmap(case.case_id, heatmap_file_id)
        if result.verdict is Verdict.POSITIVE and d.settings.clinician_chat_id is not None:
            await clinicians.announce(bot, d, d.store.case(case.case_id))
    log.info(
        "event=answered case_id=%s verdict=%s failure=%s",
        outcome.request_id,
        result.verdict.value if result else None,
        outcome.failure.value if outcome.failure else None,
    )


async def answer(bot: Bot, d: Deps, delivery: Delivery) -> None:
    """Answer one delivery once, then ack it; transient Telegram errors are retried with back-off."""
    request_id = delivery.outcome.request_id
    if not d.store.is_delivered(request_id):
        for attempt in range(SEND_TRIES):
            try:
                await send_outcome(bot, d, delivery)
                break
            except (Forbidden, BadRequest) as exc:  # blocked the bot, or chat gone: cannot answer
                log.warning("event=undeliverable case_id=%s error=%s", request_id, type(exc).__name__)
                break
            except TelegramError as exc:
                if attempt == SEND_TRIES - 1:
                    # Left unacknowledged: it is delivered again when the bot restarts.
                    log.error("event=answer_failed case_id=%s error=%s", request_id, type(exc).__name__)
                    return
                await asyncio.sleep(2**attempt)
        d.store.mark_delivered(request_id)
    await d.service.ack(delivery)


async def consume(application: Application) -> None:
    """Answer every delivery of the service, forever (started in post_init, cancelled at shutdown)."""
    d: Deps = application.bot_data[DEPS_KEY]
    slots = asyncio.Semaphore(CONCURRENT_REPLIES)
    running: set[asyncio.Task] = set()

    async def answer_in_slot(delivery: Delivery) -> None:
        async with slots:
            try:
                await answer(application.bot, d, delivery)
            except Exception:  # one bad delivery must not stop the others
                log.exception("event=delivery_error case_id=%s", delivery.outcome.request_id)

    while True:
        try:
            async for delivery in d.service.deliveries():
                await slots.acquire()  # back-pressure: read no faster than we answer
                slots.release()
                task = asyncio.create_task(answer_in_slot(delivery))
                running.add(task)
                task.add_done_callback(running.discard)
        except asyncio.CancelledError:
            raise
        except Exception:  # the stream broke: read again (unacked outcomes come first), never stop
            log.exception("event=deliveries_failed retry_in_s=1")
            await asyncio.sleep(1.0)


async def answer_lost_requests(bot: Bot, d: Deps) -> None:
    """Embedded mode keeps outcomes in memory: photos queued before a restart are lost; say so."""
    for case in d.store.cases_without_reply():
        _ = translator(d.store.language(case.user_id) or d.settings.default_language)
        d.store.mark_delivered(case.case_id)
        try:
            await bot.send_message(
                case.chat_id,
                messages.with_disclaimer(_, _(messages.FAILED)),
                reply_parameters=ReplyParameters(case.message_id, allow_sending_without_reply=True),
            )
        except TelegramError as exc:
            log.warning("event=undeliverable case_id=%s error=%s", case.case_id, type(exc).__name__)
        log.info("event=lost_on_restart case_id=%s", case.case_id)


async def notify_delayed(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Tell people whose result is later than DELAYED_NOTICE_AFTER_S that it is coming (a job)."""
    d = deps(context)
    for case in d.store.cases_awaiting_result(time.time() - d.settings.delayed_notice_after_s):
        _ = translator(d.store.language(case.user_id) or d.settings.default_language)
        d.store.record_delayed_notice(case.case_id)
        await context.bot.send_message(
            case.chat_id,
            messages.with_disclaimer(_, _(messages.DELAYED)),
            reply_parameters=ReplyParameters(case.message_id, allow_sending_without_reply=True),
        )
        log.info("event=delayed case_id=%s", case.case_id)


async def purge_expired(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Delete case records past RETENTION_DAYS (a daily job, also run at start)."""
    d = deps(context)
    purged = d.store.purge(time.time() - d.settings.retention_days * 86400)
    if purged:
        log.info("event=purged cases=%d", purged)
