"""Run the bot: `python -m bot` (long polling, or a webhook when WEBHOOK_URL is set).

Other commands:
    python -m bot export-reviewed DIR    write reviewed cases' photos into DIR/<class>/
    python -m bot compile-catalogues     rebuild bot/locales/*/LC_MESSAGES/mpox.mo from the .po files
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ValidationError

from bot.settings import BotSettings

log = logging.getLogger("bot")
# Telegram unreachable at start-up (network or DNS down): PTB retries for ever with back-off (up
# to 30 s between tries) instead of the process dying; a token it rejects is not retried.
BOOTSTRAP_RETRIES = -1
LOG_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s"


class RedactingFormatter(logging.Formatter):
    """Formats a record, tracebacks included, with each secret replaced: python-telegram-bot puts
    the token in some exceptions (a rejected token), and the logs must never hold it."""

    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        self.secrets = [secret for secret in secrets if secret]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text


def load_settings() -> BotSettings:
    try:
        return BotSettings()
    except ValidationError as exc:
        missing_token = any(err["loc"] == ("telegram_token",) for err in exc.errors())
        if missing_token:
            print(
                "TELEGRAM_TOKEN is not set. Create a bot with @BotFather, then run:\n"
                "  TELEGRAM_TOKEN=<the token from BotFather> python -m bot\n(see docs/BOT.md)",
                file=sys.stderr,
            )
        else:
            print(f"Invalid bot settings:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None


def run(settings: BotSettings) -> None:
    from telegram import Update
    from telegram.error import InvalidToken

    from bot.app import build_app
    from worker.service import create_service

    application = build_app(settings, create_service(settings, consumer="bot"))
    log.info("connecting to the Telegram Bot API; while it cannot be reached, start-up is retried")
    try:
        if settings.webhook_url:
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
            application.run_webhook(
                listen=settings.webhook_listen,
                port=settings.webhook_port,
                url_path=urlsplit(settings.webhook_url).path.lstrip("/"),
                webhook_url=settings.webhook_url,
                secret_token=secret,
                allowed_updates=Update.ALL_TYPES,
                bootstrap_retries=BOOTSTRAP_RETRIES,
            )
        else:
            application.run_polling(allowed_updates=Update.ALL_TYPES, bootstrap_retries=BOOTSTRAP_RETRIES)
    except InvalidToken:
        print(
            "Telegram rejected TELEGRAM_TOKEN (mistyped, or revoked). Copy the token from @BotFather "
            "again (see docs/BOT.md).",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


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

    if args.command == "compile-catalogues":
        from bot.i18n import compile_catalogues

        for path in compile_catalogues():
            print(path)
        return
    settings = load_settings()
    token = settings.telegram_token.get_secret_value()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(RedactingFormatter(LOG_FORMAT, [token]))
    if args.command == "export-reviewed":
        from bot.export import export_reviewed

        counts = asyncio.run(export_reviewed(settings, args.folder))
        print(" ".join(f"{name}={count}" for name, count in sorted(counts.items())) or "no reviewed cases")
        return
    run(settings)


if __name__ == "__main__":
    main()
