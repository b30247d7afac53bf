"""A worker's background thread: heartbeats, dead workers' jobs, due retries, and the health file.

A SimpleWorker runs its job on the main thread and, left alone, only heartbeats between jobs; a
worker killed mid-job is then noticed when its execution's heartbeat expires (job timeout + 60 s).
`ScreeningWorker` shortens that heartbeat to `liveness_ttl_s`, and this thread keeps it (and the
worker's own) fresh while a job runs. Dead workers' jobs are then found by RQ's own
`StartedJobRegistry.cleanup`, which retries them or fails them (its failure callback publishes a
WORKER_LOST outcome once no retry is left). RQ's scheduler, which moves retries out of their
back-off, would run as a forked process (unsafe with TensorFlow, and it outlives a SIGKILLed
worker), so its step runs here too, under RQ's scheduler lock.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer
from rq.timeouts import TimerDeathPenalty
from rq.utils import import_attribute

log = logging.getLogger(__name__)

# One cleaner at a time per queue, RQ's maintenance included (it takes the same key), so a job
# is not retried twice; held seconds, not RQ's 15 minutes, so a cleaner killed while holding it
# blocks the others only briefly.
CLEANING_LOCK_TTL_S = 10


class ForbiddenJob(Exception):
    """A job naming a function outside this service's job modules: never run."""


class ScreeningJob(Job):
    """A job that runs, and calls back, only functions of `allowed_modules`.

    RQ runs whatever function a job names, so anyone able to write to Redis could make a worker
    run `os.system`; JSON serialisation stops pickled payloads, this stops named ones. A forged
    job fails with ForbiddenJob; a forged callback is ignored (and logged), so the cleaning of
    dead workers' jobs, which calls failure callbacks, cannot be stalled by one.
    """

    allowed_modules: tuple[str, ...] = ("worker.jobs",)

    def _allowed(self, name: str | None) -> bool:
        return name is not None and name.rpartition(".")[0] in self.allowed_modules

    @property
    def func(self):
        if self.instance is not None or not self._allowed(self.func_name):
            raise ForbiddenJob(f"job {self.id} names {self.func_name!r}, not a screening job")
        return import_attribute(self.func_name)

    def _callback(self, name: str | None):
        if not name:
            return None
        if not self._allowed(name):
            log.warning("event=forbidden_callback_ignored job=%s", self.id)
            return None
        return import_attribute(name)

    @property
    def success_callback(self):
        return self._callback(self._success_callback_name)

    @property
    def failure_callback(self):
        return self._callback(self._failure_callback_name)

    @property
    def stopped_callback(self):
        return self._callback(self._stopped_callback_name)


def job_class_for(modules: list[str]) -> type[ScreeningJob]:
    """ScreeningJob allowing these modules' functions (tests add their own job module)."""
    return type("ScreeningJob", (ScreeningJob,), {"allowed_modules": tuple(modules)})


class ScreeningWorker(SimpleWorker):
    """SimpleWorker (no fork: a forked child hangs once TensorFlow ran in the parent) whose job
    heartbeat lasts `liveness_ttl_s` instead of the job's whole timeout."""

    liveness_ttl_s = 15
    stop_requested = False  # set by SIGTERM / Ctrl-C (RQ's warm shutdown)

    def get_heartbeat_ttl(self, job: Job) -> int:
        return self.liveness_ttl_s

    def handle_warm_shutdown_request(self) -> None:
        self.stop_requested = True
        super().handle_warm_shutdown_request()


def reclaim_abandoned(queue: Queue) -> None:
    """Retry or fail the started jobs whose heartbeat has expired (their worker died)."""
    connection = queue.connection
    if not connection.set(queue.registry_cleaning_key, 1, nx=True, ex=CLEANING_LOCK_TTL_S):
        return  # someone else is cleaning this queue right now
    try:
        # A timer, not SIGALRM, bounds the failure callback: this runs outside the main thread.
        StartedJobRegistry(
            queue.name,
            connection=connection,
            job_class=queue.job_class,
            serializer=JSONSerializer,
            death_penalty_class=TimerDeathPenalty,
        ).cleanup()
    finally:
        connection.delete(queue.registry_cleaning_key)


class Housekeeping:
    """Runs every `period_s` beside a ScreeningWorker until stopped."""

    def __init__(self, worker: ScreeningWorker, period_s: float, health_file: Path | None = None) -> None:
        self.worker = worker
        self.queue = worker.queues[0]
        self.period_s = period_s
        self.health_file = health_file
        self.scheduler = RQScheduler(
            [self.queue], connection=worker.connection, serializer=JSONSerializer, name=worker.name
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.scheduler.release_locks()
        except redis.RedisError as exc:  # Redis already gone: the locks expire on their own
            log.warning("event=scheduler_locks_left_to_expire error=%s", type(exc).__name__)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.step()
            except Exception as exc:  # Redis away for a moment: keep trying, never kill the worker
                log.warning("event=housekeeping_failed error=%s", type(exc).__name__)

    def step(self) -> None:
        self.heartbeat()
        reclaim_abandoned(self.queue)
        self.scheduler.acquire_locks()  # acquires, refreshes, or leaves it to its holder
        self.scheduler.enqueue_scheduled_jobs()

    def heartbeat(self) -> None:
        """Refresh the worker's heartbeat, and its current job's, then the health file."""
        worker = self.worker
        job = worker.get_current_job() if worker.execution is not None else None
        if job is None:
            worker.heartbeat(worker.liveness_ttl_s)
        else:
            try:
                worker.maintain_heartbeats(job)
            except AttributeError:  # the job finished between the two lines: nothing to refresh
                worker.heartbeat(worker.liveness_ttl_s)
        if self.health_file is not None:
            self.health_file.touch()
