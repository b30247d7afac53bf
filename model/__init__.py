"""The model core: screen a skin photo with the quantized classifier and explain the answer.

Pure: it knows nothing of Telegram or queues. `load_screener(path).screen(photo_bytes)` returns a
`ScreeningResult`. Importing `model` (or `model.types`) stays light: the inference stack
(LiteRT, TensorFlow, matplotlib) loads only when a Screener is asked for, so the bot process can
read results without pulling in TensorFlow.
"""

from model.errors import BundleError, ImageRejected, ModelError
from model.types import Reason, ScreeningResult, StageTimings, Verdict

__all__ = [
    "BundleError",
    "HeatmapMethod",
    "ImageRejected",
    "ModelError",
    "Reason",
    "Screener",
    "ScreeningResult",
    "StageTimings",
    "Verdict",
    "load_bundle",
    "load_screener",
]

_LAZY = {
    "Screener": "model.screening",
    "load_screener": "model.screening",
    "load_bundle": "model.bundle",
    "HeatmapMethod": "model.explain",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")
