"""Finishing what a crash or a lost Redis left undone: no photo without an answer.

Every photo is a case in the store before anything else can fail. This job (at start-up, then
every RECOVERY_INTERVAL_S) looks at each case still without an outcome: one never queued (Redis or
Telegram was unreachable, or the bot died before queueing) is downloaded again and queued; one
whose job and outcome have both vanished from Redis (Redis restarted without its data, or the
photo expired before a worker took it) is queued again; one queued but never acknowledged is
acknowledged. A case that cannot be queued for GIVE_UP_AFTER_S is answered with an apology.
Outcomes that arrived but were not answered are the results stream's pending entries, which
`bot.deliveries` reads again by itself.
"""

from __future__ import annotations

import logging
import time

from telegram import Bot
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import messages
from bot.deps import Deps, deps
from bot.i18n import translator
from bot.photos import acknowledge, no_worker_up, queue_case, tell
from bot.queue import JobState, QueueUnavailable
from bot.store import Case

log = logging.getLogger(__name__)


async def recover(context: ContextTypes.DEFAULT_TYPE) -> None:
    """The JobQueue job."""
    await recover_cases(context.bot, deps(context))


async def recover_cases(bot: Bot, d: Deps) -> None:
    for case in d.store.cases_without_outcome():
        if case.case_id in d.in_flight:
            continue  # its handler is queueing it right now
        try:
            await _recover(bot, d, case)
        except QueueUnavailable:
            log.warning("event=recovery_paused reason=redis_unreachable")
            return
        except TelegramError as exc:
            log.warning("event=recovery_failed case_id=%s error=%s", case.case_id, type(exc).__name__)


async def _recover(bot: Bot, d: Deps, case: Case) -> None:
    if case.queued_at is not None:
        state = await d.queue.job_state(case.case_id)
        if state is not JobState.MISSING:
            if case.acknowledged_at is None:
                await acknowledge(bot, d, case, busy=await no_worker_up(d))
            return
        log.warning("event=job_lost case_id=%s", case.case_id)
    elif time.time() - case.submitted_at > d.settings.give_up_after_s:
        await _give_up(bot, d, case)
        return
    queued = await queue_case(bot, d, case)
    if queued:
        log.info("event=requeued case_id=%s", case.case_id)
    if queued is not None and case.acknowledged_at is None:
        await acknowledge(bot, d, case, busy=not queued or await no_worker_up(d))


async def _give_up(bot: Bot, d: Deps, case: Case) -> None:
    _ = translator(d.language_of_id(case.user_id))
    await tell(bot, case, _(messages.FAILED))
    d.store.record_outcome(case.case_id, None, {}, None, failure="not_queued")
    d.store.record_answered(case.case_id, None)
    await d.quota.give_back(case.user_id, case.case_id)
    log.error("event=given_up case_id=%s", case.case_id)
