"""Settings of a worker process, read from the environment (see .env.example)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from model.settings import ModelSettings
from worker.contract import DEFAULT_QUEUE, DEFAULT_RESULTS_STREAM

HEALTH_TOUCH_EVERY_S = 5.0


class WorkerSettings(ModelSettings):
    """How a worker takes photos from the queue and publishes outcomes. Every field is an
    environment variable; a worker needs no Telegram token or webhook secret."""

    # The environment only, never .env: that file holds the bot's secrets (the supervisor of
    # `scripts/run` and docker-compose.yml hand a worker exactly what it needs).
    model_config = SettingsConfigDict(env_file=None, extra="ignore", env_ignore_empty=True, populate_by_name=True)

    redis_url: str = Field(description="Redis of the queue and the results stream, e.g. redis://:PASSWORD@host:6379/0.")
    queue_name: str = Field(DEFAULT_QUEUE, validation_alias="SCREENING_QUEUE", description="RQ queue of screening jobs.")
    results_stream: str = Field(DEFAULT_RESULTS_STREAM, description="Redis stream the outcomes are published to.")
    results_stream_maxlen: int = Field(
        100_000, gt=0, description="Approximate cap on the results stream (answered entries are deleted)."
    )
    tf_threads: int = Field(1, ge=0, description="TensorFlow threads per process (heatmaps); 0: TF's default (all cores).")
    liveness_ttl_s: int = Field(
        15, gt=0, description="A worker (and its job) silent this long is dead; its job is retried or failed."
    )
    sweep_interval_s: float = Field(5.0, gt=0, description="How often a worker looks for jobs of dead workers.")
    maintenance_interval_s: int = Field(60, gt=0, description="How often a worker runs RQ's registry maintenance.")
    health_file: Path | None = Field(
        None, description="File touched every few seconds while the model is loaded and Redis answers (health checks)."
    )
    log_level: str = Field("INFO", description="Logging level: DEBUG, INFO, WARNING, ERROR.")
    allowed_job_modules: Annotated[list[str], NoDecode] = Field(
        ["worker.jobs"], description="Modules whose functions a job may name (comma list); any other job is refused."
    )

    @field_validator("allowed_job_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def housekeeping_period_s(self) -> float:
        """Heartbeats come at least three times per liveness TTL, and the health file is touched
        at least every HEALTH_TOUCH_EVERY_S (the container's check allows 15 s)."""
        return min(self.liveness_ttl_s / 3, self.sweep_interval_s, HEALTH_TOUCH_EVERY_S)
