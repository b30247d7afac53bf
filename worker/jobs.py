"""The screening job and the callbacks that publish its outcome.

`screen_photo` is what RQ runs (by name, `worker.jobs.screen_photo`) and what the embedded pool
calls: a `ScreeningRequest` in, the model's `ScreeningResult` out. The Screener is loaded and warmed
once per process with `install_screener` before the first job. RQ calls `publish_success` after a
job succeeds and `publish_failure` after each failed try; the latter publishes only once no retry is
left, so each request ends in exactly one outcome on the result stream.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from redis import Redis
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from model.types import ScreeningResult
from worker.outcomes import outcome_for, publish_outcome
from worker.settings import WorkerSettings
from worker.types import FailureKind, ScreeningRequest

# How long the "outcome already published" marker lives: longer than any job can be retried.
PUBLISHED_MARKER_TTL_S = 7 * 86400

log = logging.getLogger(__name__)

_screener: Any = None  # model.Screener; Any so importing this module never pulls in TensorFlow
_screener_lock = threading.Lock()


def limit_tf_threads(threads: int) -> None:
    """Cap TensorFlow's thread pools: one worker process per core scales; each using every core
    (TF's default) makes them fight over the cores. Only possible before TensorFlow first runs."""
    if not threads:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran in this process: keep its pools
        log.warning("TensorFlow already initialised; tf_threads=%d not applied", threads)


def load_screener(settings: WorkerSettings) -> Any:
    """Load and warm the bundle named in the settings (seconds: TensorFlow, LiteRT, a first run)."""
    from model import load_screener as load

    limit_tf_threads(settings.tf_threads)
    start = time.perf_counter()
    screener = load(
        settings.model_bundle,
        heatmap_method=settings.heatmap_method,
        max_photo_bytes=settings.max_photo_bytes,
        litert_threads=settings.litert_threads,
    )
    log.info(
        "screener loaded model_id=%s bundle=%s load_ms=%.0f",
        screener.model_id,
        settings.model_bundle,
        (time.perf_counter() - start) * 1000,
    )
    return screener


def install_screener(screener: Any) -> None:
    """Make `screener` the one this process's jobs use."""
    global _screener
    _screener = screener


def current_screener() -> Any:
    """The installed Screener; a worker started some other way (`rq worker`) loads it on first use."""
    global _screener
    if _screener is None:
        with _screener_lock:
            if _screener is None:
                _screener = load_screener(WorkerSettings())
    return _screener


def screen_photo(request: ScreeningRequest) -> ScreeningResult:
    """Screen the request's photo. Bad photos come back as refusals; only real faults raise."""
    screener = current_screener()
    start = time.perf_counter()
    result = screener.screen_or_raise(request.photo)  # a fault raises: RQ's Retry gets another try
    log.info(
        "job screened request_id=%s verdict=%s reason=%s photo_bytes=%d job_ms=%.1f stages=%s",
        request.request_id,
        result.verdict.value,
        None if result.reason is None else result.reason.value,
        len(request.photo),
        (time.perf_counter() - start) * 1000,
        result.timings.as_dict(),
    )
    return result


def failure_kind(exc_type: type[BaseException] | None) -> FailureKind:
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        return FailureKind.TIMEOUT
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        return FailureKind.WORKER_LOST
    return FailureKind.INTERNAL


def _publish(job: Job, connection: Redis, outcome) -> None:
    meta = job.meta
    publish_outcome(
        connection,
        meta["results_stream"],
        outcome,
        maxlen=int(meta.get("results_stream_maxlen", 100_000)),
        marker_ttl_s=PUBLISHED_MARKER_TTL_S,
    )


def publish_success(job: Job, connection: Redis, result: Any, *args: Any, **kwargs: Any) -> None:
    """RQ on_success callback: publish the result for the bot."""
    request: ScreeningRequest = job.args[0]
    _publish(job, connection, outcome_for(request, result=result))


def publish_failure(
    job: Job, connection: Redis, exc_type: Any, exc_value: Any, tb: Any, *args: Any, **kwargs: Any
) -> None:
    """RQ on_failure callback (also run for abandoned jobs): publish once no retry is left."""
    kind = failure_kind(exc_type)
    request_id = job.id
    if job.retries_left:
        log.warning(
            "job try failed request_id=%s failure=%s retries_left=%s",
            request_id,
            kind,
            job.retries_left,
        )
        return
    log.error("job failed for good request_id=%s failure=%s", request_id, kind)
    try:
        request: ScreeningRequest = job.args[0]
        detail = f"{exc_type.__name__}: {exc_value}" if exc_type is not None else None
        _publish(job, connection, outcome_for(request, failure=kind, failure_detail=detail))
    except Exception:  # a raising callback would abort RQ's own bookkeeping of the failure
        log.exception("could not publish failure request_id=%s", request_id)
