"""Settings of the model core, read from the environment (see .env.example)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.explain import HeatmapMethod

DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "demo"


class ModelSettings(BaseSettings):
    """How a process screens photos (`python -m model`); a worker's settings extend it."""

    # An empty variable (KEY= in .env) means "use the default", not "an empty value".
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    model_bundle: Path = Field(DEFAULT_BUNDLE, description="Folder of the model bundle to serve.")
    heatmap_method: HeatmapMethod = Field(
        HeatmapMethod.GRADCAM_PLUS_PLUS, description="gradcam++, gradcam, faster-scorecam, smoothgrad"
    )
    max_photo_bytes: int = Field(20 * 1024 * 1024, gt=0, description="Largest photo accepted.")
    litert_threads: int = Field(1, ge=1, description="LiteRT threads per interpreter.")
