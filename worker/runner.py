"""Run a ScreeningWorker on the screening queue, with its housekeeping thread."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from worker.housekeeping import Housekeeping, ScreeningWorker, job_class_for
from worker.settings import WorkerSettings

log = logging.getLogger("worker")


def build_worker(
    settings: WorkerSettings,
    connection: redis.Redis,
    name: str | None = None,
    worker_class: type[ScreeningWorker] = ScreeningWorker,
) -> ScreeningWorker:
    job_class = job_class_for(settings.allowed_job_modules)
    queue = Queue(settings.queue_name, connection=connection, serializer=JSONSerializer, job_class=job_class)
    worker = worker_class(
        [queue],
        connection=connection,
        job_class=job_class,
        name=name or f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}",
        serializer=JSONSerializer,
        maintenance_interval=settings.maintenance_interval_s,
    )
    worker.liveness_ttl_s = settings.liveness_ttl_s
    return worker


def run_worker(
    settings: WorkerSettings,
    connection: redis.Redis,
    burst: bool = False,
    name: str | None = None,
    logging_level: str = "INFO",
) -> bool:
    """Work the queue (the screener must be installed), with Housekeeping running meanwhile.

    Returns False when Redis went away before the worker was asked to stop (the caller exits with
    an error so that it is restarted); a Redis gone while stopping (Ctrl-C reached both) is a clean
    stop: RQ's record of this worker expires with its heartbeat, its jobs stay queued in Redis.
    """
    worker = build_worker(settings, connection, name)
    housekeeping = Housekeeping(worker, settings.housekeeping_period_s, settings.health_file)
    housekeeping.start()
    log.info("event=worker_started name=%s queue=%s burst=%s", worker.name, settings.queue_name, burst)
    try:
        # No with_scheduler: RQ would fork its scheduler; Housekeeping runs that step in a thread.
        worker.work(burst=burst, logging_level=logging_level)
    except redis.ConnectionError as exc:  # RQ's last words to Redis (register_death) went unheard
        log.warning("event=redis_gone name=%s stopping=%s error=%s", worker.name, worker.stop_requested,
                    type(exc).__name__)
        if not worker.stop_requested:
            return False
    finally:
        housekeeping.stop()
    log.info("event=worker_stopped name=%s", worker.name)
    return True
