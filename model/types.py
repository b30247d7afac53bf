"""Values that cross the model's boundary: what a screen returns, and the text on its heatmap.

Frozen dataclasses, serialisable to JSON for the result stream and the command line, so nobody
reaches into model internals. Importing this module loads only the standard library.
"""

from __future__ import annotations

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
        Reason.TOO_SMALL,
        Reason.TOO_DARK,
        Reason.OVEREXPOSED,
        Reason.TOO_BLURRY,
        Reason.NOT_SKIN,
        Reason.NOT_A_CLOSE_SKIN_PHOTO,
    }
)


@dataclass(frozen=True)
class HeatmapLabels:
    """The words drawn on the heatmap picture, in the person's language (the bot translates them).

    `verdicts` maps a verdict's value ("positive", ...) to the short line shown in the corner;
    `note` is printed under the legend, so a forwarded picture still says what it is.
    """

    less: str = "less influence on the result"
    more: str = "more influence on the result"
    verdicts: dict[str, str] = field(
        default_factory=lambda: {
            "positive": "Signs compatible with mpox",
            "inconclusive": "Inconclusive",
            "negative": "mpox unlikely",
        }
    )
    note: str = "A screen, not a diagnosis."

    def to_json_dict(self) -> dict[str, Any]:
        return {"less": self.less, "more": self.more, "verdicts": dict(self.verdicts), "note": self.note}

    @classmethod
    def from_json_dict(cls, data: dict[str, Any]) -> HeatmapLabels:
        return cls(
            less=str(data["less"]),
            more=str(data["more"]),
            verdicts={str(k): str(v) for k, v in dict(data["verdicts"]).items()},
            note=str(data.get("note", "")),
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


def likeliest_classes(probabilities: dict[str, float], shown: int = 5) -> str:
    """"mpox 40%, herpes_simplex 20%, ...": the `shown` most probable classes first, then how many
    others there are and their summed probability. A model of many conditions (the demo has 19)
    would otherwise fill a clinician's message or a screen's line with 0 % entries."""
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    text = ", ".join(f"{name} {value:.0%}" for name, value in ranked[:shown])
    rest = ranked[shown:]
    if rest:
        text += f" (+{len(rest)} others, {sum(value for _, value in rest):.0%} together)"
    return text


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
    heatmap_jpeg: bytes | None = None
    timings: StageTimings = field(default_factory=StageTimings)

    @property
    def is_refusal(self) -> bool:
        return self.verdict in (Verdict.RETAKE, Verdict.ERROR)

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of everything but the heatmap (bytes travel on their own)."""
        return {
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

    @classmethod
    def from_json_dict(cls, data: dict[str, Any], heatmap_jpeg: bytes | None = None) -> ScreeningResult:
        timings = dict(data.get("timings_ms") or {})
        timings.pop("total_ms", None)
        positive_probability = data.get("positive_probability")
        return cls(
            verdict=Verdict(data["verdict"]),
            model_id=str(data["model_id"]),
            probabilities={str(k): float(v) for k, v in (data.get("probabilities") or {}).items()},
            predicted_class=data.get("predicted_class"),
            positive_probability=None if positive_probability is None else float(positive_probability),
            reason=None if data.get("reason") is None else Reason(data["reason"]),
            detail=data.get("detail"),
            heatmap_jpeg=heatmap_jpeg,
            timings=StageTimings(**{k: float(v) for k, v in timings.items()}),
        )
