"""The one wiring point: build_app(settings, queue) returns the configured Application."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import HTTPXRequest
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from bot import clinicians, commands, consent, deliveries, inbox, messages, recovery
from bot.deps import DEPS_KEY, Deps, deps
from bot.i18n import translator
from bot.photos import IMAGE_MIME_TYPES, photo, screen_kept_photos
from bot.queue import QueueUnavailable, ScreeningQueue
from bot.quota import PhotoQuota
from bot.ratelimit import MessageRateLimiter
from bot.settings import LANGUAGES, BotSettings
from bot.store import Store

log = logging.getLogger(__name__)

CONSUMER_KEY = "deliveries_task"
CONCURRENT_UPDATES = 8
# Health (docker-compose.yml: unhealthy when HEALTH_FILE is older than 15 s, i.e. two missed
# touches): touched every HEALTH_TOUCH_EVERY_S while updates can arrive and Redis answers. A long
# poll returns within POLL_TIMEOUT_S even when nobody writes, so polling that has not returned for
# POLL_FRESH_S has stopped (Telegram unreachable, token revoked, a hung connection).
HEALTH_TOUCH_EVERY_S = 5.0
POLL_TIMEOUT_S = 10
POLL_FRESH_S = POLL_TIMEOUT_S + 5.0
COMMANDS = {
    "start": messages.N_("About this service"),
    "help": messages.N_("How to send a photo"),
    "privacy": messages.N_("What happens to your data"),
    "language": messages.N_("Change language"),
    "delete": messages.N_("Erase everything stored about you"),
}


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error (no names, no photos) and tell the person something went wrong."""
    log.error("event=handler_error error=%s", type(context.error).__name__, exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        _ = deps(context).translate_for(update.effective_user)
        try:
            await context.bot.send_message(update.effective_chat.id, _(messages.SOMETHING_WENT_WRONG))
        except Exception:  # telling them failed too (e.g. Telegram unreachable): logged above
            log.warning("event=error_report_failed")


async def start_queue(queue: ScreeningQueue) -> None:
    """Connect to the queue's Redis, waiting for it (with back-off) if it is not up yet.

    Until it answers the bot does not poll, so people's messages wait safely at Telegram."""
    async for attempt in AsyncRetrying(
        wait=wait_exponential(multiplier=1, max=30),
        retry=retry_if_exception_type(QueueUnavailable),
        before_sleep=lambda state: log.warning(
            "event=queue_unreachable attempt=%d retry_in_s=%.0f error=%s",
            state.attempt_number,
            state.next_action.sleep,
            state.outcome.exception(),
        ),
    ):
        with attempt:
            await queue.start()


async def post_init(application: Application) -> None:
    d: Deps = application.bot_data[DEPS_KEY]
    await start_queue(d.queue)
    # The command menu in each language (Telegram picks it from the person's app language).
    for language in (None, *LANGUAGES):
        _ = translator(language or d.settings.default_language)
        await application.bot.set_my_commands(
            [BotCommand(name, _(text)) for name, text in COMMANDS.items()], language_code=language
        )
    await inbox.replay(application, d.store)
    await recovery.recover_cases(application.bot, d)
    application.bot_data[CONSUMER_KEY] = asyncio.create_task(deliveries.consume(application), name="answer-outcomes")


async def post_shutdown(application: Application) -> None:
    d: Deps = application.bot_data[DEPS_KEY]
    task = application.bot_data.pop(CONSUMER_KEY, None)
    if task is not None:
        await cancel_and_wait(task)
    await d.queue.close()
    d.store.close()


async def cancel_and_wait(task: asyncio.Task, every_s: float = 1.0) -> None:
    """Cancel `task` and wait until it has ended, cancelling again every `every_s` seconds.

    One cancel() is not always enough: Python 3.11's asyncio.wait_for, which redis-py uses for
    every write when the client has a socket timeout, drops a cancellation that arrives just as
    the write completes (fixed in 3.12). The outcome loop then read on, and the bot hung at
    shutdown after SIGTERM (3 of 42 stops under load)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=every_s)
    await asyncio.gather(task, return_exceptions=True)  # its exception, if any, is retrieved


def receiving_updates(webhook: bool, updater_running: bool, last_poll_at: float | None, now: float) -> bool:
    """Updates can reach the bot: its webhook server runs, or its polling returned lately."""
    if not updater_running:
        return False
    return webhook or (last_poll_at is not None and now - last_poll_at < POLL_FRESH_S)


async def touch_health_file(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Mark the bot healthy (HEALTH_FILE) while updates arrive and Redis answers (a job)."""
    d = deps(context)
    updater = context.application.updater
    receiving = receiving_updates(
        webhook=d.settings.webhook_url is not None,
        updater_running=updater is not None and updater.running,
        last_poll_at=getattr(context.bot, "last_poll_at", None),
        now=time.monotonic(),
    )
    if receiving and await d.queue.ping():
        d.settings.health_file.touch()


async def purge_expired(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Delete what is past RETENTION_DAYS, in the store, in Redis and in the clinicians' chat
    (a daily job, also run at start)."""
    d = deps(context)
    cutoff = time.time() - d.settings.retention_days * 86400
    expired = d.store.expired(cutoff)
    if expired.case_ids:
        try:
            await d.queue.forget(list(expired.case_ids))
        except QueueUnavailable:
            log.warning("event=purge_queue_unavailable")
        await clinicians.erase_posts(context.bot, d, expired.clinician_posts)
    purged = d.store.purge(cutoff)
    if purged:
        log.info("event=purged cases=%d", purged)


def build_bot(settings: BotSettings, store: Store) -> inbox.InboxBot:
    """The ExtBot, recording updates in the store's inbox, rate-limited for Telegram's floods."""
    options = {}
    if settings.telegram_base_url:
        options["base_url"] = settings.telegram_base_url
    if settings.telegram_base_file_url:
        options["base_file_url"] = settings.telegram_base_file_url
    return inbox.InboxBot(
        settings.telegram_token.get_secret_value(),
        store=store,
        rate_limiter=MessageRateLimiter(),
        request=HTTPXRequest(connection_pool_size=32),
        get_updates_request=HTTPXRequest(connection_pool_size=1),
        **options,
    )


def build_app(settings: BotSettings, queue: ScreeningQueue | None = None) -> Application:
    store = Store(settings.database_path)
    queue = queue or ScreeningQueue(settings)
    secret = settings.telegram_token.get_secret_value().encode()
    quota = PhotoQuota(queue.redis, settings.user_rate_limit, settings.user_rate_window_s, secret, settings.queue_name)
    application = (
        Application.builder()
        .bot(build_bot(settings, store))
        .concurrent_updates(inbox.InboxUpdateProcessor(store, CONCURRENT_UPDATES))
        .post_init(post_init)
        .post_shutdown(post_shutdown)
        .build()
    )
    application.bot_data[DEPS_KEY] = Deps(settings, store, queue, quota)

    # New messages in private chats only: an edited photo is not screened a second time.
    private = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
    image_file = filters.Document.MimeType(IMAGE_MIME_TYPES[0])
    for mime in IMAGE_MIME_TYPES[1:]:
        image_file |= filters.Document.MimeType(mime)
    application.add_handlers(
        [
            CommandHandler("start", consent.start, filters=private),
            CommandHandler("help", commands.help_command, filters=private),
            CommandHandler("privacy", commands.privacy, filters=private),
            CommandHandler("language", commands.language, filters=private),
            CommandHandler("delete", commands.delete, filters=private),
            CallbackQueryHandler(consent.agree, pattern=f"^{consent.AGREE}$"),
            CallbackQueryHandler(commands.set_language, pattern=f"^{commands.LANGUAGE_PREFIX}"),
            CallbackQueryHandler(clinicians.review, pattern=f"^{clinicians.REVIEW_PREFIX}"),
            MessageHandler(private & (filters.PHOTO | image_file), photo),
            MessageHandler(private & ~filters.StatusUpdate.ALL, commands.other_content),
        ]
    )
    # Then, for the same press, the photos kept until consent (group 1 runs after group 0).
    application.add_handler(CallbackQueryHandler(screen_kept_photos, pattern=f"^{consent.AGREE}$"), group=1)
    application.add_error_handler(on_error)

    jobs = application.job_queue
    check_every = max(0.2, min(5.0, settings.delayed_notice_after_s / 4))
    jobs.run_repeating(deliveries.notify_delayed, interval=check_every, first=check_every)
    jobs.run_repeating(recovery.recover, interval=settings.recovery_interval_s, first=settings.recovery_interval_s)
    if settings.clinician_chat_id is not None:
        remind_every = max(0.5, min(300.0, settings.review_reminder_after_s / 4))
        jobs.run_repeating(clinicians.remind, interval=remind_every, first=remind_every)
        jobs.run_repeating(clinicians.announce_pending, interval=10, first=10)
        jobs.run_repeating(clinicians.follow_up_pending, interval=30, first=30)
    if settings.health_file is not None:
        jobs.run_repeating(touch_health_file, interval=HEALTH_TOUCH_EVERY_S, first=1)
    jobs.run_repeating(purge_expired, interval=dt.timedelta(days=1), first=0)
    return application
