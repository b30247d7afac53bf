"""The one wiring point: build_app(settings, service) returns the configured Application."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from telegram import BotCommand, Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import clinicians, commands, consent, deliveries, messages
from bot.deps import DEPS_KEY, Deps, deps
from bot.i18n import translator
from bot.photos import IMAGE_MIME_TYPES, photo
from bot.ratelimit import MessageRateLimiter
from bot.settings import LANGUAGES, BotSettings
from bot.store import Store
from worker.errors import ServiceUnavailable
from worker.service import ScreeningService

log = logging.getLogger(__name__)

CONSUMER_KEY = "deliveries_task"
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
            await context.bot.send_message(
                update.effective_chat.id, messages.with_disclaimer(_, _(messages.SOMETHING_WENT_WRONG))
            )
        except Exception:  # telling them failed too (e.g. Telegram unreachable): logged above
            log.warning("event=error_report_failed")


async def start_service(service: ScreeningService, max_delay_s: float = 30.0) -> None:
    """Start the screening service, waiting for its Redis if it is not up yet.

    Until it answers the bot does not poll, so people's messages wait safely at Telegram.
    """
    delay = 1.0
    while True:
        try:
            await service.start()
            return
        except ServiceUnavailable as exc:
            log.warning("event=queue_unreachable retry_in_s=%.0f error=%s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)


async def post_init(application: Application) -> None:
    d: Deps = application.bot_data[DEPS_KEY]
    await start_service(d.service)
    if d.settings.embedded:
        await deliveries.answer_lost_requests(application.bot, d)
    # The command menu in each language (Telegram picks it from the user's app language).
    for language in (None, *LANGUAGES):
        _ = translator(language or d.settings.default_language)
        await application.bot.set_my_commands(
            [BotCommand(name, _(text)) for name, text in COMMANDS.items()], language_code=language
        )
    application.bot_data[CONSUMER_KEY] = asyncio.create_task(
        deliveries.consume(application), name="answer-deliveries"
    )


async def post_shutdown(application: Application) -> None:
    d: Deps = application.bot_data[DEPS_KEY]
    task = application.bot_data.pop(CONSUMER_KEY, None)
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await d.service.close()
    d.store.close()


def build_app(settings: BotSettings, service: ScreeningService) -> Application:
    builder = (
        Application.builder()
        .token(settings.telegram_token.get_secret_value())
        .rate_limiter(MessageRateLimiter())
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    if settings.telegram_base_url:
        builder = builder.base_url(settings.telegram_base_url)
    if settings.telegram_base_file_url:
        builder = builder.base_file_url(settings.telegram_base_file_url)
    application = builder.build()
    application.bot_data[DEPS_KEY] = Deps(settings, Store(settings.database_path), service)

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
    application.add_error_handler(on_error)

    jobs = application.job_queue
    check_every = max(0.2, min(5.0, settings.delayed_notice_after_s / 4))
    jobs.run_repeating(deliveries.notify_delayed, interval=check_every, first=check_every)
    remind_every = max(0.5, min(300.0, settings.review_reminder_after_s / 4))
    jobs.run_repeating(clinicians.remind, interval=remind_every, first=remind_every)
    jobs.run_repeating(deliveries.purge_expired, interval=dt.timedelta(days=1), first=0)
    return application
