"""Errors raised by the model core. Each carries a machine-readable reason."""

from __future__ import annotations

from model.types import Reason


class ModelError(Exception):
    """Base class for every error the model core raises on purpose."""


class BundleError(ModelError):
    """The model bundle is missing, corrupt or inconsistent. The message names the problem."""


class ImageRejected(ModelError):
    """The bytes cannot be screened. `reason` says why, in a form the bot can translate."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
