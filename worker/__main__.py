"""Run a screening worker: `python -m worker [--burst]`.

Loads and warms the model bundle once, then works the RQ queue with a SimpleWorker (no fork:
a forked child hangs once TensorFlow ran in the parent). SIGTERM (or Ctrl-C) lets the current job
finish, then exits; `--burst` drains the queue and exits. Settings come from the environment
(REDIS_URL, SCREENING_QUEUE, MODEL_BUNDLE, ...; see worker/settings.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import redis

from worker import jobs
from worker.runner import run_worker
from worker.settings import WorkerSettings

log = logging.getLogger("worker")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="drain the queue, then exit")
    parser.add_argument("--name", help="worker name (default: host.pid.random)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s pid=%(process)d msg=%(message)s",
    )

    settings = WorkerSettings()
    if not settings.redis_url:
        log.error(
            "REDIS_URL is not set: the bot screens in-process (embedded mode), no worker needed"
        )
        return 2
    if settings.tf_threads:  # oneDNN's OpenMP pool too; read once, when TensorFlow loads
        os.environ.setdefault("OMP_NUM_THREADS", str(settings.tf_threads))
    connection = redis.Redis.from_url(settings.redis_url)
    jobs.install_screener(jobs.load_screener(settings))

    run_worker(settings, connection, burst=args.burst, name=args.name, logging_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
