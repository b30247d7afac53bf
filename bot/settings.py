"""Settings of the bot process, read from the environment (see .env.example)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from worker.settings import WorkerSettings

LANGUAGES = ("en", "fr", "pt", "es")


class BotSettings(WorkerSettings):
    """How the Telegram bot runs. Extends the worker's settings (it may run the worker embedded)."""

    telegram_token: SecretStr = Field(description="Bot token from BotFather (TELEGRAM_TOKEN).")
    clinician_chat_id: int | None = Field(
        None, description="Chat where positive screens are posted for review; unset disables it."
    )
    clinician_user_ids: Annotated[frozenset[int], NoDecode] = Field(
        frozenset(), description="Comma list of Telegram user ids allowed to review; empty: anyone in the chat."
    )
    database_path: Path = Field(Path("data/bot.sqlite3"), description="SQLite file of the bot's store.")
    retention_days: float = Field(30, gt=0, description="Days case records are kept before purging.")
    user_rate_limit: int = Field(10, ge=1, description="Photos one user may send per window.")
    user_rate_window_s: float = Field(3600, gt=0, description="Length of the rate-limit window (s).")
    delayed_notice_after_s: float = Field(
        60, gt=0, description="Tell the user their result is delayed after this many seconds."
    )
    review_reminder_after_s: float = Field(
        4 * 3600, gt=0, description="Re-announce an unreviewed positive case after this many seconds."
    )
    webhook_url: str | None = Field(None, description="Public HTTPS URL: set to run a webhook, unset to poll.")
    webhook_secret: SecretStr | None = Field(
        None, description="Secret token Telegram sends in X-Telegram-Bot-Api-Secret-Token."
    )
    webhook_listen: str = Field("0.0.0.0", description="Address the webhook server binds.")
    webhook_port: int = Field(8443, description="Port the webhook server binds.")
    telegram_base_url: str | None = Field(
        None, description="Bot API base URL, e.g. http://127.0.0.1:8081/bot (local server or emulator)."
    )
    telegram_base_file_url: str | None = Field(
        None, description="Bot API file base URL, e.g. http://127.0.0.1:8081/file/bot."
    )
    default_language: str = Field("en", description="Language for users whose language is not en/fr/pt/es.")

    @field_validator("clinician_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("telegram_token")
    @classmethod
    def _token_given(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("TELEGRAM_TOKEN is empty")
        return value

    @field_validator("default_language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"must be one of {', '.join(LANGUAGES)}")
        return value
