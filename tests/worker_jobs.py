"""Job functions for the worker tests, importable by name by a worker in another process."""

from __future__ import annotations

import os
import time

from rq import get_current_job

from model.types import ScreeningResult
from worker.jobs import screen_photo
from worker.types import ScreeningRequest

ATTEMPTS_KEY = "mpox:test:attempts:{request_id}"
STARTED_KEY = "mpox:test:started:{request_id}"


def flaky_screen(request: ScreeningRequest) -> ScreeningResult:
    """Fails its first try (a transient fault), then screens. Counts tries in Redis."""
    connection = get_current_job().connection
    attempts = connection.incr(ATTEMPTS_KEY.format(request_id=request.request_id))
    connection.expire(ATTEMPTS_KEY.format(request_id=request.request_id), 600)
    if attempts == 1:
        raise ConnectionError("transient fault on the first try")
    return screen_photo(request)


def broken_screen(request: ScreeningRequest) -> ScreeningResult:
    """Fails on every try."""
    raise RuntimeError("the job always fails")


def slow_screen(request: ScreeningRequest) -> ScreeningResult:
    """Marks its start in Redis, sleeps CHAOS_SLOW_S seconds (if set), then screens."""
    delay = float(os.environ.get("CHAOS_SLOW_S", "0"))
    if delay:
        job = get_current_job()
        job.connection.set(STARTED_KEY.format(request_id=request.request_id), "1", ex=600)
        time.sleep(delay)
    return screen_photo(request)
