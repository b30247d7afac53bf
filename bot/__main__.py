"""Run the bot: `python -m bot` (long polling, or a webhook when WEBHOOK_URL is set).

Other commands:
    python -m bot export-reviewed DIR    write reviewed cases' photos into DIR/<class>/
    python -m bot compile-catalogues     rebuild bot/locales/*/LC_MESSAGES/mpox.mo from the .po files

Secrets (the token, the webhook secret, Redis' password) never reach a log line or the terminal:
every log record and every uncaught traceback is printed with them replaced.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import traceback
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from bot.settings import BotSettings

log = logging.getLogger("bot")
LOG_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"
EXIT_BAD_SETTINGS = 2
REJECTED_TOKEN = (
    "Telegram rejected TELEGRAM_TOKEN (mistyped, or revoked). Copy the token from @BotFather again (see docs/BOT.md)."
)


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return text


class RedactingFormatter(logging.Formatter):
    """Formats a record, tracebacks included, with each secret replaced: python-telegram-bot puts
    the token in some exceptions and (at DEBUG) the webhook's parameters in its logs."""

    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        self.secrets = [secret for secret in secrets if secret]

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def protect_secrets(secrets: list[str]) -> None:
    """Redact secrets from every log line and from any traceback that escapes."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(LOG_FORMAT, secrets))

    def excepthook(kind, value, tb) -> None:
        sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb)), secrets))

    sys.excepthook = excepthook


def load_settings() -> BotSettings:
    try:
        return BotSettings()
    except ValidationError as exc:
        problems = {".".join(map(str, err["loc"])) or "settings": err["msg"] for err in exc.errors()}
        if "telegram_token" in problems:
            print(
                "TELEGRAM_TOKEN is not set. Create a bot with @BotFather, then run:\n"
                "  TELEGRAM_TOKEN=<the token from BotFather> scripts/run\n(see docs/BOT.md)",
                file=sys.stderr,
            )
        elif "redis_url" in problems:
            print(
                "REDIS_URL is not set. scripts/run starts the whole service (a local Redis, a worker and "
                "the bot); to run only the bot, point REDIS_URL at the Redis your workers use.",
                file=sys.stderr,
            )
        else:  # messages only: pydantic would echo the input values, secrets included
            print("Invalid bot settings:", file=sys.stderr)
            for field, message in problems.items():
                print(f"  {field.upper()}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_SETTINGS) from None


async def wait_for_telegram(settings: BotSettings) -> None:
    """Check the token with getMe, retrying with back-off while Telegram cannot be reached and
    logging each failed try with the next delay; a rejected token exits at once."""
    from telegram import Bot
    from telegram.error import InvalidToken, NetworkError
    from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

    options = {}
    if settings.telegram_base_url:
        options["base_url"] = settings.telegram_base_url
    log.info("event=connecting_to_telegram")
    async for attempt in AsyncRetrying(
        wait=wait_exponential(multiplier=1, max=30),
        retry=retry_if_exception(lambda exc: isinstance(exc, NetworkError) and not isinstance(exc, InvalidToken)),
        before_sleep=lambda state: log.warning(
            "event=telegram_unreachable attempt=%d retry_in_s=%.0f error=%s",
            state.attempt_number,
            state.next_action.sleep,
            type(state.outcome.exception()).__name__,
        ),
    ):
        with attempt:
            async with Bot(settings.telegram_token.get_secret_value(), **options) as bot:
                await bot.get_me()
    log.info("event=telegram_reachable")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def wait_for_telegram_unless_stopped(settings: BotSettings) -> bool:
    """`wait_for_telegram`, or False as soon as SIGTERM asks the bot to stop.

    The signal only sets an event; the wait is then cancelled at an await point, and cancelled
    again every second until it ends (`cancel_and_wait`). Before, the handler raised
    KeyboardInterrupt at whatever line was running, event loop and HTTP client internals
    included; once, in a CI run under load, the bot had not exited 30 s after SIGTERM."""
    from bot.app import cancel_and_wait

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: loop.call_soon_threadsafe(stop.set))
    waiting = asyncio.create_task(wait_for_telegram(settings))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for task in (waiting, stopping):
            await cancel_and_wait(task)
    if stop.is_set():
        return False
    waiting.result()  # a rejected token raises here
    return True


def run(settings: BotSettings) -> None:
    from telegram import Update

    from bot.app import POLL_TIMEOUT_S, build_app

    # Ctrl-C or SIGTERM (scripts/run, docker, systemd) while Telegram is unreachable is an
    # ordinary stop, as it is once polling (where PTB handles both). Until the wait has its own
    # handler, and after it, SIGTERM interrupts as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        reachable = asyncio.run(wait_for_telegram_unless_stopped(settings))
    except KeyboardInterrupt:
        reachable = False
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not reachable:
        log.info("event=stopped reason=interrupted_before_telegram_answered")
        return
    application = build_app(settings)
    if settings.webhook_url:
        application.run_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            url_path=urlsplit(settings.webhook_url).path.lstrip("/"),
            webhook_url=settings.webhook_url,
            secret_token=settings.webhook_secret.get_secret_value(),
            allowed_updates=Update.ALL_TYPES,
            bootstrap_retries=-1,
        )
    else:
        application.run_polling(allowed_updates=Update.ALL_TYPES, bootstrap_retries=-1, timeout=POLL_TIMEOUT_S)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    export = sub.add_parser("export-reviewed", help="write reviewed cases' photos, folder per class")
    export.add_argument("folder", type=Path)
    sub.add_parser("compile-catalogues", help="compile the gettext .po files to .mo")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # httpx logs every request URL, and Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # The job queue's scheduler logs two lines per run of every job (several a second in all).
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

    if args.command == "compile-catalogues":
        from bot.i18n import compile_catalogues

        for path in compile_catalogues():
            print(path)
        return
    settings = load_settings()
    logging.getLogger().setLevel(settings.log_level.upper())
    protect_secrets(settings.secrets)
    from telegram.error import InvalidToken

    try:
        if args.command == "export-reviewed":
            from bot.export import export_reviewed

            counts = asyncio.run(export_reviewed(settings, args.folder))
            print(" ".join(f"{name}={count}" for name, count in sorted(counts.items())) or "no reviewed cases")
            return
        run(settings)
    except InvalidToken:
        print(REJECTED_TOKEN, file=sys.stderr)
        raise SystemExit(EXIT_BAD_SETTINGS) from None


if __name__ == "__main__":
    main()
