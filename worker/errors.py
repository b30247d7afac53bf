"""Errors the worker package raises on purpose."""

from __future__ import annotations


class ServiceUnavailable(Exception):
    """The screening queue cannot be reached (Redis down, or the service not started)."""
