"""Values that cross the model's boundary: what a screen returns.

Frozen dataclasses so a result can be pickled by RQ, logged, or serialised to JSON for the result
stream without anyone reaching into model internals.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Verdict(enum.StrEnum):
    """What the screen concluded. It is a screen, never a diagnosis."""

    POSITIVE = "positive"  # P(mpox) at or above the bundle's threshold: seek testing.
    INCONCLUSIVE = "inconclusive"  # in the band just below the threshold: see a clinician.
    NEGATIVE = "negative"  # mpox unlikely for this photo.
    RETAKE = "retake"  # the photo cannot be judged; `reason` says why.
    ERROR = "error"  # the bytes are not a usable image (or screening failed); `reason` says why.


class Reason(enum.StrEnum):
    """Why a photo was refused. The bot translates each into advice for the user."""

    EMPTY = "empty"
    TOO_LARGE_FILE = "too_large_file"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    CORRUPT = "corrupt"
    DECOMPRESSION_BOMB = "decompression_bomb"
    TOO_SMALL = "too_small"
    TOO_DARK = "too_dark"
    OVEREXPOSED = "overexposed"
    TOO_BLURRY = "too_blurry"
    NOT_SKIN = "not_skin"
    NOT_A_CLOSE_SKIN_PHOTO = "not_a_close_skin_photo"  # unlike the training photos, or black-and-white
    INTERNAL_ERROR = "internal_error"


# Reasons that mean "take another photo" rather than "this file is not a photo at all".
RETAKE_REASONS = frozenset(
    {
        Reason.TOO_SMALL, Reason.TOO_DARK, Reason.OVEREXPOSED, Reason.TOO_BLURRY, Reason.NOT_SKIN,
        Reason.NOT_A_CLOSE_SKIN_PHOTO,
    }
)


@dataclass(frozen=True)
class StageTimings:
    """Milliseconds spent in each stage of one screen (0 for stages that did not run)."""

    decode_ms: float = 0.0
    quality_ms: float = 0.0
    inference_ms: float = 0.0
    heatmap_ms: float = 0.0
    render_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return (
            self.decode_ms + self.quality_ms + self.inference_ms + self.heatmap_ms + self.render_ms
        )

    def as_dict(self) -> dict[str, float]:
        values = {name: round(value, 3) for name, value in asdict(self).items()}
        values["total_ms"] = round(self.total_ms, 3)
        return values


@dataclass(frozen=True)
class ScreeningResult:
    """The outcome of screening one photo."""

    verdict: Verdict
    model_id: str
    probabilities: dict[str, float] = field(default_factory=dict)
    predicted_class: str | None = None
    positive_probability: float | None = None
    reason: Reason | None = None
    detail: str | None = None  # a short English explanation for logs and the CLI
    heatmap_png: bytes | None = None
    timings: StageTimings = field(default_factory=StageTimings)

    @property
    def is_refusal(self) -> bool:
        return self.verdict in (Verdict.RETAKE, Verdict.ERROR)

    def to_json_dict(self, include_heatmap: bool = False) -> dict[str, Any]:
        """A JSON-safe dict; the heatmap is base64 only when asked for (it is large)."""
        data: dict[str, Any] = {
            "verdict": self.verdict.value,
            "model_id": self.model_id,
            "probabilities": {k: round(float(v), 6) for k, v in self.probabilities.items()},
            "predicted_class": self.predicted_class,
            "positive_probability": (
                None if self.positive_probability is None else round(self.positive_probability, 6)
            ),
            "reason": None if self.reason is None else self.reason.value,
            "detail": self.detail,
            "timings_ms": self.timings.as_dict(),
        }
        if include_heatmap:
            data["heatmap_png_b64"] = (
                None if self.heatmap_png is None else base64.b64encode(self.heatmap_png).decode()
            )
        return data

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> ScreeningResult:
        timings = dict(data.get("timings_ms") or {})
        timings.pop("total_ms", None)
        heatmap_b64 = data.get("heatmap_png_b64")
        return cls(
            verdict=Verdict(data["verdict"]),
            model_id=data["model_id"],
            probabilities={k: float(v) for k, v in (data.get("probabilities") or {}).items()},
            predicted_class=data.get("predicted_class"),
            positive_probability=data.get("positive_probability"),
            reason=None if data.get("reason") is None else Reason(data["reason"]),
            detail=data.get("detail"),
            heatmap_png=None if heatmap_b64 is None else base64.b64decode(heatmap_b64),
            timings=StageTimings(**timings),
        )
