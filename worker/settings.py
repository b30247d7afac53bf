"""Settings of a worker process (and of the bot's side of the queue), read from the environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from model.settings import ModelSettings


class WorkerSettings(ModelSettings):
    """How photos travel to workers and results back. Every field is an environment variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    redis_url: str | None = Field(
        None, description="Redis of the queue and the result stream; unset or empty: embedded mode."
    )
    queue_name: str = Field(
        "screening", validation_alias="SCREENING_QUEUE", description="RQ queue of screening jobs."
    )
    job_timeout_s: int = Field(60, gt=0, description="A try running longer than this is killed.")
    # A job's arguments hold the user's photo: a finished job is deleted at once (its outcome
    # is already on the result stream), a failed one kept only briefly for diagnosis.
    result_ttl_s: int = Field(
        0, ge=0, description="How long RQ keeps a finished job and its photo (0: deleted at once)."
    )
    failure_ttl_s: int = Field(
        3600, ge=0, description="How long RQ keeps a failed job and its photo, for diagnosis."
    )
    max_retries: int = Field(
        2, ge=0, description="Tries after the first, for errors, timeouts, lost workers."
    )
    retry_intervals_s: Annotated[list[int], NoDecode] = Field(
        [5, 30], description="Back-off before each retry (seconds, comma list); 0 requeues at once."
    )
    results_stream: str = Field(
        "mpox:results", description="Redis stream the outcomes are published to."
    )
    results_group: str = Field(
        "bot", description="Consumer group the bot reads the result stream with."
    )
    results_stream_maxlen: int = Field(
        100_000,
        gt=0,
        description="Approximate cap on the result stream (acked entries are deleted).",
    )
    tf_threads: int = Field(
        1,
        ge=0,
        description="TensorFlow threads per process (heatmaps); 0: TF's default (all cores).",
    )
    embedded_threads: int = Field(1, ge=1, description="Embedded mode: threads screening photos.")
    liveness_ttl_s: int = Field(
        15,
        gt=0,
        description="A worker whose liveness key is this old is dead; its job is reclaimed.",
    )
    sweep_interval_s: float = Field(
        5.0, gt=0, description="How often workers and the bot look for jobs of dead workers."
    )
    maintenance_interval_s: int = Field(
        60, gt=0, description="How often a worker runs RQ's registry maintenance."
    )
    read_block_ms: int = Field(
        2000, gt=0, description="Longest wait of one read of the result stream."
    )

    @field_validator("retry_intervals_s", mode="before")
    @classmethod
    def _split_intervals(cls, value: object) -> object:
        if isinstance(value, str):  # "5,30" from the environment
            return [int(part) for part in value.strip("[] ").split(",") if part.strip()]
        return value

    @property
    def embedded(self) -> bool:
        return not self.redis_url
