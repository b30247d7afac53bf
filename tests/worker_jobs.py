"""Job functions for the worker tests, importable by name by a worker in another process."""

from __future__ import annotations

import os
import time
from typing import Any

from rq import get_current_job

from worker.jobs import screen_photo

ATTEMPTS_KEY = "mpox:test:attempts:{request_id}"
STARTED_KEY = "mpox:test:started:{request_id}"


def flaky_screen(labels: dict[str, Any]) -> dict[str, Any]:
    """Fails its first try (a transient fault), then screens. Counts tries in Redis."""
    job = get_current_job()
    key = ATTEMPTS_KEY.format(request_id=job.id)
    attempts = job.connection.incr(key)
    job.connection.expire(key, 600)
    if attempts == 1:
        raise ConnectionError("transient fault on the first try")
    return screen_photo(labels)


def broken_screen(labels: dict[str, Any]) -> dict[str, Any]:
    """Fails on every try."""
    raise RuntimeError("the job always fails")


def slow_screen(labels: dict[str, Any]) -> dict[str, Any]:
    """Marks its start in Redis, sleeps CHAOS_SLOW_S seconds (if set), then screens."""
    delay = float(os.environ.get("CHAOS_SLOW_S", "0"))
    if delay:
        job = get_current_job()
        job.connection.set(STARTED_KEY.format(request_id=job.id), "1", ex=600)
        time.sleep(delay)
    return screen_photo(labels)
