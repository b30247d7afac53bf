"""Workers for tests: a real ScreeningWorker in a thread of the test process (the session's model
is installed there), or `python -m worker` processes.

The in-thread worker is the production worker class with the two things only a main thread may
do swapped out: it installs no signal handlers, and it bounds a job's time with a timer instead
of SIGALRM. It runs its housekeeping thread as `python -m worker` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import redis
from rq.exceptions import StopRequested
from rq.timeouts import TimerDeathPenalty

from worker import jobs
from worker.housekeeping import Housekeeping, ScreeningWorker
from worker.runner import build_worker
from worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parent.parent


class ThreadWorker(ScreeningWorker):
    death_penalty_class = TimerDeathPenalty
    _working_thread: int | None = None

    def _install_signal_handlers(self) -> None:
        """Only the main thread may install signal handlers."""

    def work(self, *args: Any, **kwargs: Any) -> bool:
        self._working_thread = threading.get_ident()
        return super().work(*args, **kwargs)

    def request_stop(self, signum: Any, frame: Any) -> None:
        """Stop after the current job: RQ's warm shutdown, which a signal would start."""
        self._stop_requested = True

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        # The idle worker heartbeats between blocking dequeues: where a signal handler would
        # raise StopRequested, this does.
        if self._stop_requested and threading.get_ident() == self._working_thread:
            raise StopRequested()
        super().heartbeat(timeout, pipeline)


class InThreadWorker:
    """`with InThreadWorker(settings, screener):` a worker works the queue until the block ends."""

    def __init__(self, settings: WorkerSettings, screener: Any) -> None:
        self.settings = settings
        jobs.install(screener, settings)
        connection = redis.Redis.from_url(settings.redis_url)
        self.worker = build_worker(settings, connection, f"test-{uuid.uuid4().hex[:8]}", ThreadWorker)
        self.worker.worker_ttl = 16  # its blocking dequeue waits 1 s, so a stop is quick
        self.housekeeping = Housekeeping(self.worker, settings.housekeeping_period_s)
        self._thread = threading.Thread(target=self.worker.work, kwargs={"logging_level": "WARNING"}, daemon=True)

    def __enter__(self) -> InThreadWorker:
        self._thread.start()
        self.housekeeping.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.request_stop(None, None)
        self._thread.join(timeout=30)
        self.housekeeping.stop()


def worker_settings(redis_url: str, bundle: Path, tag: str, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = dict(
        redis_url=redis_url,
        queue_name=f"test-{tag}",
        results_stream=f"test:results:{tag}",
        model_bundle=bundle,
        liveness_ttl_s=2,
        sweep_interval_s=0.5,
        allowed_job_modules=["worker.jobs", "tests.worker_jobs"],
    )
    values.update(overrides)
    return WorkerSettings(**values)


def worker_env(settings: WorkerSettings, **extra: str) -> dict[str, str]:
    # TF_CPP_MIN_LOG_LEVEL is left to the worker, which quiets TensorFlow itself as it would for an operator.
    dropped = ("TELEGRAM_TOKEN", "WEBHOOK_SECRET", "TF_CPP_MIN_LOG_LEVEL")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(
        REDIS_URL=settings.redis_url,
        SCREENING_QUEUE=settings.queue_name,
        RESULTS_STREAM=settings.results_stream,
        MODEL_BUNDLE=str(settings.model_bundle),
        LIVENESS_TTL_S=str(settings.liveness_ttl_s),
        SWEEP_INTERVAL_S=str(settings.sweep_interval_s),
        ALLOWED_JOB_MODULES=",".join(settings.allowed_job_modules),
    )
    env.update(extra)
    return env


def start_worker(settings: WorkerSettings, *args: str, **extra: str) -> subprocess.Popen:
    """`python -m worker` with these settings, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        cwd=REPO,
        env=worker_env(settings, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
