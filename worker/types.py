"""Values that cross the worker's boundary: a request to screen, and its outcome.

The bot builds a `ScreeningRequest`, the worker returns a `ScreeningOutcome` (the model's
`ScreeningResult`, or a final failure), and the bot answers the chat named in it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from model.types import ScreeningResult


class FailureKind(enum.StrEnum):
    """Why a request ended without a screening result."""

    TIMEOUT = "timeout"  # the job ran past its time limit on every try
    WORKER_LOST = "worker_lost"  # the worker died mid-job (SIGKILL, OOM) on every try
    INTERNAL = "internal"  # an unexpected error on every try


@dataclass(frozen=True)
class ScreeningRequest:
    """One photo to screen, and where the answer goes. Holds no user name or handle."""

    request_id: str  # unique, also used as the RQ job id and as the pseudonymous case id
    chat_id: int
    message_id: int  # the user's photo message, to reply to
    language: str  # IETF code, e.g. "en", "fr", "pt", "es"
    photo: bytes = field(repr=False)


@dataclass(frozen=True)
class ScreeningOutcome:
    """What happened to a request: a result, or a final failure the bot can explain."""

    request_id: str
    chat_id: int
    message_id: int
    language: str
    result: ScreeningResult | None = None
    failure: FailureKind | None = None
    failure_detail: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.result is not None
