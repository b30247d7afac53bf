"""The screening job, and the failure callback that reports a request RQ gave up on.

RQ runs `screen_photo` by name (`worker.contract.SCREEN_JOB`) with the job id as request id: it
reads the photo from its own Redis key, screens it, publishes the outcome, and deletes the photo.
A bad photo is not a failure (it comes back as a refusal with a reason); a fault raises, so RQ's
Retry gets another try, and `publish_failure` publishes a failure once no retry is left. The
Screener is loaded and warmed once per process (`install`) before the first job.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from model.types import HeatmapLabels, Verdict
from worker.contract import photo_key
from worker.outcomes import publish_outcome
from worker.settings import WorkerSettings
from worker.types import FailureKind, ScreeningOutcome

# How long the "outcome already published" marker lives: longer than any job can be retried.
PUBLISHED_MARKER_TTL_S = 7 * 86400

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Installed:
    screener: Any  # model.Screener; Any so that importing this module never loads TensorFlow
    settings: WorkerSettings


_installed: Installed | None = None


def limit_tf_threads(threads: int) -> None:
    """Cap TensorFlow's thread pools: one worker process per core scales; each using every core
    (TF's default) makes them fight over the cores. Only possible before TensorFlow first runs."""
    if not threads:
        return
    from model.runtime import import_tensorflow

    tf = import_tensorflow()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran in this process: keep its pools
        log.warning("event=tf_threads_not_applied threads=%d", threads)


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
        "event=screener_loaded model_id=%s load_ms=%.0f",
        screener.model_id,
        (time.perf_counter() - start) * 1000,
    )
    return screener


def install(screener: Any, settings: WorkerSettings) -> None:
    """Make `screener` and `settings` the ones this process's jobs use."""
    global _installed
    _installed = Installed(screener, settings)


def installed() -> Installed:
    """What this process's jobs use; a worker started some other way (`rq worker`) loads it on
    first use."""
    if _installed is None:
        settings = WorkerSettings()
        install(load_screener(settings), settings)
    return _installed


def _publish(connection: Redis, outcome: ScreeningOutcome) -> None:
    settings = installed().settings
    publish_outcome(
        connection,
        settings.results_stream,
        outcome,
        maxlen=settings.results_stream_maxlen,
        marker_ttl_s=PUBLISHED_MARKER_TTL_S,
    )


def screen_photo(labels: dict[str, Any]) -> dict[str, Any]:
    """Screen the current job's photo and publish the outcome; returns a small JSON summary."""
    job = get_current_job()
    request_id, connection = job.id, job.connection
    photo = connection.get(photo_key(request_id))
    if photo is None:  # erased by the person meanwhile, or expired: nothing to screen or answer
        log.warning("event=photo_gone request_id=%s", request_id)
        return {"verdict": None, "photo": "gone"}
    start = time.perf_counter()
    screener = installed().screener
    result = screener.screen_or_raise(photo, labels=HeatmapLabels.from_json_dict(labels))
    review_photo = None
    if result.verdict is Verdict.POSITIVE:
        from model.imaging import review_copy

        review_photo = review_copy(photo, screener.decode_limits)
    _publish(connection, ScreeningOutcome(request_id, result=result, review_photo=review_photo))
    connection.delete(photo_key(request_id))
    log.info(
        "event=screened request_id=%s verdict=%s reason=%s photo_bytes=%d job_ms=%.1f stages=%s",
        request_id,
        result.verdict.value,
        None if result.reason is None else result.reason.value,
        len(photo),
        (time.perf_counter() - start) * 1000,
        result.timings.as_dict(),
    )
    return {"verdict": result.verdict.value}


def failure_kind(exc_type: type[BaseException] | None) -> FailureKind:
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        return FailureKind.TIMEOUT
    if exc_type is not None and issubclass(exc_type, AbandonedJobError):
        return FailureKind.WORKER_LOST
    return FailureKind.INTERNAL


def publish_failure(
    job: Job, connection: Redis, exc_type: Any, exc_value: Any, tb: Any, *args: Any, **kwargs: Any
) -> None:
    """RQ on_failure callback (also run for abandoned jobs): publish once no retry is left."""
    kind = failure_kind(exc_type)
    if job.retries_left:
        log.warning("event=try_failed request_id=%s failure=%s retries_left=%s", job.id, kind, job.retries_left)
        return
    log.error(
        "event=failed request_id=%s failure=%s error=%s",
        job.id,
        kind,
        None if exc_type is None else exc_type.__name__,
    )
    try:
        _publish(connection, ScreeningOutcome(job.id, failure=kind))
        connection.delete(photo_key(job.id))
    except Exception:  # a raising callback would abort RQ's own bookkeeping of the failure
        log.exception("event=failure_not_published request_id=%s", job.id)
