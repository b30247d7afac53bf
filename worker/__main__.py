"""Run a screening worker: `python -m worker [--burst]`.

Loads and warms the model bundle once, then works the RQ queue with a ScreeningWorker (a
SimpleWorker: no fork, since a forked child hangs once TensorFlow ran in the parent). SIGTERM (or
Ctrl-C) lets the current job finish, then exits; `--burst` drains the queue and exits. Settings
come from the environment only (REDIS_URL, SCREENING_QUEUE, MODEL_BUNDLE, ...; see .env.example).
Redis not answering at start is waited out (one log line per try, with the next delay), so a
worker started before Redis, or while it restarts, is not a crash loop that reloads TensorFlow.
Exit status: 0 after a clean stop (also when Redis went away while stopping), 2 for bad settings,
3 when the model cannot be loaded, 4 when Redis went away while working (to be restarted).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import redis
from pydantic import ValidationError
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from tenacity import Retrying, retry_if_exception_type, wait_exponential

from worker import jobs
from worker.runner import run_worker
from worker.settings import WorkerSettings

log = logging.getLogger("worker")
LOG_FORMAT = "ts=%(asctime)s level=%(levelname)s logger=%(name)s pid=%(process)d msg=%(message)s"
EXIT_BAD_SETTINGS = 2
EXIT_MODEL_NOT_LOADED = 3
EXIT_REDIS_LOST = 4
REDIS_WAIT_MAX_S = 30.0


def connect(url: str) -> redis.Redis:
    """A client that rides out short Redis outages (a restart, a failover) with back-off; a few
    seconds, not more, so a worker asked to stop while Redis is gone stops soon."""
    return redis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=2, base=0.2), retries=4),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        health_check_interval=30,
    )


def wait_for_redis(connection: redis.Redis) -> None:
    """Ping until Redis answers, waiting 1 s, then twice as long each try (at most 30 s)."""
    # AuthenticationError is a ConnectionError: a wrong password is waited out and logged too.
    for attempt in Retrying(
        wait=wait_exponential(multiplier=1, max=REDIS_WAIT_MAX_S),
        retry=retry_if_exception_type((redis.ConnectionError, redis.TimeoutError)),
        before_sleep=lambda state: log.warning(
            "event=redis_unreachable attempt=%d retry_in_s=%.0f error=%s",
            state.attempt_number,
            state.next_action.sleep,
            type(state.outcome.exception()).__name__,
        ),
    ):
        with attempt:
            connection.ping()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="drain the queue, then exit")
    parser.add_argument("--name", help="worker name (default: host.pid.random)")
    args = parser.parse_args(argv)
    try:
        settings = WorkerSettings()
    except ValidationError as exc:
        logging.basicConfig(format=LOG_FORMAT)
        fields = ",".join(".".join(map(str, err["loc"])) for err in exc.errors())
        log.error("event=bad_settings fields=%s (REDIS_URL is required; see .env.example)", fields)
        return EXIT_BAD_SETTINGS
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    if settings.tf_threads:  # oneDNN's OpenMP pool too; read once, when TensorFlow loads
        os.environ.setdefault("OMP_NUM_THREADS", str(settings.tf_threads))
    try:
        jobs.install(jobs.load_screener(settings), settings)
    except Exception as exc:  # noqa: BLE001 - any failure to load is reported the same way
        log.error("event=model_load_failed bundle=%s error=%s", settings.model_bundle, exc)
        return EXIT_MODEL_NOT_LOADED
    connection = connect(settings.redis_url)
    wait_for_redis(connection)
    stopped_cleanly = run_worker(
        settings, connection, burst=args.burst, name=args.name, logging_level=settings.log_level.upper()
    )
    return 0 if stopped_cleanly else EXIT_REDIS_LOST


if __name__ == "__main__":
    sys.exit(main())
