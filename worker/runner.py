"""Run a SimpleWorker on the screening queue, holding a liveness key while it works."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import redis
from rq import Queue, SimpleWorker

from worker.reclaim import Housekeeping
from worker.settings import WorkerSettings

log = logging.getLogger("worker")


def build_worker(
    settings: WorkerSettings, connection: redis.Redis, name: str | None = None
) -> SimpleWorker:
    queue = Queue(settings.queue_name, connection=connection)
    return SimpleWorker(
        [queue],
        connection=connection,
        name=name or f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}",
        default_result_ttl=settings.result_ttl_s,
        maintenance_interval=settings.maintenance_interval_s,
    )


def run_worker(
    settings: WorkerSettings,
    connection: redis.Redis,
    burst: bool = False,
    name: str | None = None,
    logging_level: str = "INFO",
) -> None:
    """Work the queue (the Screener must be installed), with Housekeeping running meanwhile."""
    worker = build_worker(settings, connection, name)
    housekeeping = Housekeeping(
        worker.queues[0], worker.name, settings.liveness_ttl_s, settings.sweep_interval_s
    )
    housekeeping.start()
    log.info("worker starting name=%s queue=%s burst=%s", worker.name, settings.queue_name, burst)
    try:
        # No with_scheduler: RQ would fork its scheduler; Housekeeping runs that step in a thread.
        worker.work(burst=burst, logging_level=logging_level)
    finally:
        housekeeping.stop()
    log.info("worker stopped name=%s", worker.name)
