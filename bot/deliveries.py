"""Answering people: the task that consumes outcomes, and the "taking longer" notices.

An outcome is believed only for a case this bot holds and has not answered: chat, message and
language always come from the store, never from the outcome. Each outcome is recorded, answered,
recorded as answered, and only then acknowledged on the stream, so one left pending by a crash is
read again on restart, and one already answered is skipped. Posting a positive case to the
clinicians is a separate step (`bot.clinicians`): if it fails, the person is not answered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from telegram import Bot, ReplyParameters
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.ext import Application, ContextTypes

from bot import clinicians, messages
from bot.deps import DEPS_KEY, Deps, deps
from bot.i18n import translator
from bot.photos import tell
from bot.queue import Delivery
from bot.sending import with_retries
from bot.store import Case
from model.types import Verdict
from worker.types import ScreeningOutcome

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024  # Telegram's limit on a photo caption
CONCURRENT_REPLIES = 8
SCREENED = (Verdict.POSITIVE, Verdict.INCONCLUSIVE, Verdict.NEGATIVE)


async def send_reply(bot: Bot, d: Deps, case: Case, outcome: ScreeningOutcome) -> str | None:
    """Send the person their result, with the heatmap picture when there is one; returns the
    picture's Telegram file id (clinicians are shown the same picture)."""
    _ = translator(d.language_of_id(case.user_id))
    text = messages.outcome_text(outcome, _)
    reply_to = ReplyParameters(case.message_id, allow_sending_without_reply=True)
    heatmap = outcome.result.heatmap_jpeg if outcome.result is not None else None
    if not heatmap:
        await tell(bot, case, text)
        return None
    if len(text) > CAPTION_LIMIT:
        await tell(bot, case, text)
        text = messages.with_disclaimer(_, _(messages.HEATMAP_LINE))
    sent = await with_retries(
        lambda: bot.send_photo(case.chat_id, heatmap, caption=text, reply_parameters=reply_to, filename="screen.jpg")
    )
    return sent.photo[-1].file_id if sent.photo else None


async def answer(bot: Bot, d: Deps, delivery: Delivery) -> None:
    """Answer one outcome at most once, then acknowledge it."""
    outcome = delivery.outcome
    case = d.store.case(outcome.request_id)
    if case is None:  # not a case of ours (erased, past retention, or forged): never believed
        log.warning("event=outcome_without_case case_id=%s", outcome.request_id)
        await d.queue.drop(delivery.entry_id)
        return
    if (handled := d.in_flight.get(case.case_id)) is not None:
        # Its handler is still acknowledging it: the result must come after "Analysing...".
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(handled.wait(), timeout=30)
        case = d.store.case(case.case_id) or case
    if case.answered_at is None:
        if not case.has_outcome:
            result = outcome.result
            d.store.record_outcome(
                case.case_id,
                None if result is None else result.verdict.value,
                {} if result is None else result.probabilities,
                None if result is None else result.model_id,
                failure=None if outcome.failure is None else outcome.failure.value,
                review_photo=outcome.review_photo,
            )
        if outcome.result is None or outcome.result.verdict not in SCREENED:
            await d.quota.give_back(case.user_id, case.case_id)  # only screened photos count
        try:
            heatmap_file_id = await send_reply(bot, d, case, outcome)
        except (Forbidden, BadRequest) as exc:  # blocked the bot, or the chat is gone
            log.warning("event=undeliverable case_id=%s error=%s", case.case_id, type(exc).__name__)
            heatmap_file_id = None
        d.store.record_answered(case.case_id, heatmap_file_id)
        log.info(
            "event=answered case_id=%s verdict=%s failure=%s",
            case.case_id,
            outcome.result.verdict.value if outcome.result else None,
            outcome.failure.value if outcome.failure else None,
        )
    await d.queue.ack(delivery)
    if outcome.result is not None and outcome.result.verdict is Verdict.POSITIVE:
        await clinicians.announce_quietly(bot, d, case.case_id)


async def consume(application: Application) -> None:
    """Answer every outcome, forever (started in post_init, cancelled at shutdown)."""
    d: Deps = application.bot_data[DEPS_KEY]
    slots = asyncio.Semaphore(CONCURRENT_REPLIES)
    running: set[asyncio.Task] = set()

    async def answer_in_slot(delivery: Delivery) -> None:
        try:
            await answer(application.bot, d, delivery)
        except TelegramError as exc:  # left unacknowledged: tried again with the pending ones
            log.warning("event=answer_failed case_id=%s error=%s", delivery.outcome.request_id, type(exc).__name__)
        except Exception:  # one bad delivery must not stop the others
            log.exception("event=delivery_error case_id=%s", delivery.outcome.request_id)
        finally:
            slots.release()

    while True:
        try:
            async for delivery in d.queue.deliveries():
                await slots.acquire()  # back-pressure: read no faster than we answer
                task = asyncio.create_task(answer_in_slot(delivery))
                running.add(task)
                task.add_done_callback(running.discard)
        except asyncio.CancelledError:
            raise
        except Exception:  # the stream broke: read again (unacknowledged outcomes first), never stop
            log.exception("event=deliveries_failed retry_in_s=1")
            await asyncio.sleep(1.0)


async def notify_delayed(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Tell people whose result is later than DELAYED_NOTICE_AFTER_S that it is coming (a job)."""
    d = deps(context)
    for case in d.store.cases_awaiting_result(time.time() - d.settings.delayed_notice_after_s):
        _ = translator(d.language_of_id(case.user_id))
        d.store.record_delayed_notice(case.case_id)
        await tell(context.bot, case, _(messages.DELAYED))
        log.info("event=delayed case_id=%s", case.case_id)
