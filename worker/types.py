"""Values that cross between the bot and the workers: a request to screen, and its outcome.

The bot builds a `ScreeningRequest` and keeps everything about the person (chat, message,
language) in its own store; the worker returns a `ScreeningOutcome` naming only the request. How
both travel through Redis is `worker.contract`. Importing this module loads no TensorFlow, NumPy
or Pillow: the bot imports it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from model.types import HeatmapLabels, ScreeningResult


class FailureKind(enum.StrEnum):
    """Why a request ended without a screening result."""

    TIMEOUT = "timeout"  # the job ran past its time limit on every try
    WORKER_LOST = "worker_lost"  # the worker died mid-job (SIGKILL, OOM) on every try
    INTERNAL = "internal"  # an unexpected error on every try


@dataclass(frozen=True)
class ScreeningRequest:
    """One photo to screen: an id (the bot's case id), the bytes, and the heatmap's captions in the
    person's language (the worker draws them; it needs nothing else about the person)."""

    request_id: str
    photo: bytes = field(repr=False)
    labels: HeatmapLabels = field(default_factory=HeatmapLabels)


@dataclass(frozen=True)
class ScreeningOutcome:
    """What happened to a request: a result, or a final failure the bot can explain."""

    request_id: str
    result: ScreeningResult | None = None  # its heatmap_jpeg travels as bytes of its own
    failure: FailureKind | None = None
    # For a positive screen: the photo re-encoded as JPEG without metadata (no EXIF, GPS, device
    # or file name), which is what clinicians are shown.
    review_photo: bytes | None = field(default=None, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.result is not None
