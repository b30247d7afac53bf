"""export-reviewed: clinicians' labels as a folder-per-class dataset for the next model.

Decision -> folder: likely_mpox -> mpox/, unlikely -> not_mpox/; "photo not usable" is skipped.
Photos are fetched from Telegram by file id (the service does not keep them).
"""

from __future__ import annotations

import logging
from pathlib import Path

from telegram import Bot
from telegram.error import TelegramError

from bot.settings import BotSettings
from bot.store import Store

log = logging.getLogger(__name__)

CLASS_FOLDERS = {"likely_mpox": "mpox", "unlikely": "not_mpox"}


async def export_reviewed(settings: BotSettings, folder: Path) -> dict[str, int]:
    """Download every reviewed case's photo into folder/<class>/<case id><ext>; returns counts."""
    store = Store(settings.database_path)
    counts: dict[str, int] = {}
    kwargs = {}
    if settings.telegram_base_url:
        kwargs["base_url"] = settings.telegram_base_url
    if settings.telegram_base_file_url:
        kwargs["base_file_url"] = settings.telegram_base_file_url
    try:
        async with Bot(settings.telegram_token.get_secret_value(), **kwargs) as bot:
            for case, review in store.reviewed_cases():
                class_name = CLASS_FOLDERS.get(review.decision)
                if class_name is None:
                    continue
                try:
                    telegram_file = await bot.get_file(case.photo_file_id)
                except TelegramError as exc:  # expired or too large: skip it, keep the rest
                    log.warning("event=not_exported case_id=%s error=%s", case.case_id, exc)
                    continue
                suffix = Path(telegram_file.file_path or "").suffix.lower() or ".jpg"
                target = folder / class_name / f"{case.case_id}{suffix}"
                target.parent.mkdir(parents=True, exist_ok=True)
                await telegram_file.download_to_drive(target)
                counts[class_name] = counts.get(class_name, 0) + 1
    finally:
        store.close()
    return counts
