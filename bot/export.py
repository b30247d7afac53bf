"""export-reviewed: clinicians' labels as a folder-per-class dataset for the next model.

Decision -> folder: likely_mpox -> mpox/, unlikely -> not_mpox/; "photo not usable" is skipped.
Photos are fetched from Telegram by file id (the service does not keep them): the copy posted to
the clinicians, re-encoded without metadata, named by case id. The folders and files are private
to the user running the export (umask 077): they are health data.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from telegram import Bot
from telegram.error import TelegramError

from bot.settings import BotSettings
from bot.store import Store

log = logging.getLogger(__name__)

CLASS_FOLDERS = {"likely_mpox": "mpox", "unlikely": "not_mpox"}
PRIVATE_UMASK = 0o077


async def export_reviewed(settings: BotSettings, folder: Path) -> dict[str, int]:
    """Download every reviewed case's photo into folder/<class>/<case id>.jpg; returns counts."""
    store = Store(settings.database_path)
    counts: dict[str, int] = {}
    kwargs = {}
    if settings.telegram_base_url:
        kwargs["base_url"] = settings.telegram_base_url
    if settings.telegram_base_file_url:
        kwargs["base_file_url"] = settings.telegram_base_file_url
    previous_umask = os.umask(PRIVATE_UMASK)
    try:
        async with Bot(settings.telegram_token.get_secret_value(), **kwargs) as bot:
            for case, review in store.reviewed_cases():
                class_name = CLASS_FOLDERS.get(review.decision)
                if class_name is None or case.review_photo_file_id is None:
                    continue
                try:
                    telegram_file = await bot.get_file(case.review_photo_file_id)
                except TelegramError as exc:  # expired or too large: skip it, keep the rest
                    log.warning("event=not_exported case_id=%s error=%s", case.case_id, type(exc).__name__)
                    continue
                target = folder / class_name / f"{case.case_id}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                await telegram_file.download_to_drive(target)
                counts[class_name] = counts.get(class_name, 0) + 1
    finally:
        os.umask(previous_umask)
        store.close()
    return counts
