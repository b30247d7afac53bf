"""Settings of the bot process, read from the environment or .env (see .env.example).

The bot's own: it never screens, so nothing here loads the model or TensorFlow.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from worker.contract import DEFAULT_QUEUE, DEFAULT_RESULTS_GROUP, DEFAULT_RESULTS_STREAM

LANGUAGES = ("en", "fr", "pt", "es")
# Telegram accepts 1-256 of these in a webhook's secret token; we ask for at least 32.
WEBHOOK_SECRET_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32,256}$")


class BotSettings(BaseSettings):
    """How the Telegram bot runs. Every field is an environment variable (upper case)."""

    # An empty variable (KEY= in .env) means "use the default", not "an empty value".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True, populate_by_name=True)

    telegram_token: SecretStr = Field(description="Bot token from BotFather (TELEGRAM_TOKEN).")
    redis_url: str = Field(
        description="Redis of the screening queue, e.g. redis://:PASSWORD@127.0.0.1:6379/0 (scripts/run starts one)."
    )
    clinician_chat_id: int | None = Field(
        None, description="Chat where positive screens are posted for review; unset: no escalation."
    )
    clinician_user_ids: Annotated[frozenset[int], NoDecode] = Field(
        frozenset(), description="Comma list of the Telegram user ids allowed to review (required with CLINICIAN_CHAT_ID)."
    )
    database_path: Path = Field(Path("data/bot.sqlite3"), description="SQLite file of the bot's store.")
    retention_days: float = Field(30, gt=0, description="Days case records (and inactive people's consent) are kept.")
    user_rate_limit: int = Field(10, ge=1, description="Screened photos one person may send per window.")
    user_rate_window_s: float = Field(3600, gt=0, description="Length of the rate-limit window (s).")
    max_photo_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest photo accepted (bytes).")
    delayed_notice_after_s: float = Field(
        60, gt=0, description="Tell the person their result is delayed after this many seconds."
    )
    review_reminder_after_s: float = Field(
        4 * 3600, gt=0, description="Remind the clinicians of an unreviewed positive case after this many seconds."
    )
    recovery_interval_s: float = Field(
        15, gt=0, description="How often photos without an outcome are checked (and requeued when their job is gone)."
    )
    give_up_after_s: float = Field(
        6 * 3600, gt=0, description="A photo that could not be queued for this long is answered with an apology."
    )
    queue_name: str = Field(DEFAULT_QUEUE, validation_alias="SCREENING_QUEUE", description="RQ queue of screening jobs.")
    job_timeout_s: int = Field(60, gt=0, description="A screening try running longer than this is stopped.")
    failure_ttl_s: int = Field(3600, ge=0, description="How long RQ keeps a failed job's record (it holds no photo).")
    photo_ttl_s: int = Field(
        6 * 3600, gt=0, description="How long a queued photo waits in Redis for a worker before it is fetched again."
    )
    max_retries: int = Field(2, ge=0, description="Tries after the first, for errors, timeouts, lost workers.")
    retry_intervals_s: Annotated[list[int], NoDecode] = Field(
        [5, 30], description="Back-off before each retry (seconds, comma list); 0 requeues at once."
    )
    results_stream: str = Field(DEFAULT_RESULTS_STREAM, description="Redis stream the outcomes are published to.")
    results_group: str = Field(DEFAULT_RESULTS_GROUP, description="Consumer group the bot reads the results with.")
    read_block_ms: int = Field(2000, gt=0, description="Longest wait of one read of the results stream.")
    worker_alive_s: float = Field(
        20, gt=0, description="A worker whose last heartbeat is older than this is not counted as able to screen."
    )
    webhook_url: str | None = Field(None, description="Public HTTPS URL: set to run a webhook, unset to poll.")
    webhook_secret: SecretStr | None = Field(
        None, description="Secret Telegram sends with each update (32+ characters of A-Z a-z 0-9 _ -); required with WEBHOOK_URL."
    )
    webhook_listen: str = Field("127.0.0.1", description="Address the webhook server binds (behind a TLS proxy).")
    webhook_port: int = Field(8443, description="Port the webhook server binds.")
    telegram_base_url: str | None = Field(
        None, description="Bot API base URL, e.g. http://127.0.0.1:8081/bot (local server or emulator)."
    )
    telegram_base_file_url: str | None = Field(
        None, description="Bot API file base URL, e.g. http://127.0.0.1:8081/file/bot."
    )
    default_language: str = Field("en", description="Language for people whose language is not en/fr/pt/es.")
    health_file: Path | None = Field(
        None, description="File touched every few seconds while Telegram updates arrive and Redis answers (health checks)."
    )
    log_level: str = Field("INFO", description="Logging level: DEBUG, INFO, WARNING, ERROR.")

    @field_validator("clinician_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("retry_intervals_s", mode="before")
    @classmethod
    def _split_intervals(cls, value: object) -> object:
        if isinstance(value, str):  # "5,30" from the environment
            return [int(part) for part in value.strip("[] ").split(",") if part.strip()]
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

    @model_validator(mode="after")
    def _consistent(self) -> BotSettings:
        if self.clinician_chat_id is not None and not self.clinician_user_ids:
            raise ValueError(
                "CLINICIAN_CHAT_ID is set but CLINICIAN_USER_IDS is empty: list the Telegram user ids of the "
                "clinicians allowed to review (anyone else in that chat could otherwise press the buttons)"
            )
        if self.webhook_url:
            secret = self.webhook_secret.get_secret_value() if self.webhook_secret else ""
            if not WEBHOOK_SECRET_PATTERN.match(secret):
                raise ValueError(
                    "WEBHOOK_URL is set, so WEBHOOK_SECRET must be 32 to 256 characters of A-Z, a-z, 0-9, _ "
                    "and - (without it anyone could send the bot forged updates); e.g. "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
        return self

    @property
    def secrets(self) -> list[str]:
        """Values that must never appear in a log or an error message."""
        values = [self.telegram_token.get_secret_value()]
        if self.webhook_secret is not None:
            values.append(self.webhook_secret.get_secret_value())
        if (password := _password_in(self.redis_url)) is not None:
            values.append(password)
        return [value for value in values if value]


def _password_in(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    password = urlsplit(url).password
    return unquote(password) if password else None
