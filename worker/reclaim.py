"""Jobs of dead workers: liveness keys, and the sweep that hands their jobs back to RQ.

RQ alone notices a SimpleWorker killed mid-job only when the job's StartedJobRegistry entry
expires (job timeout + 60 s) and some worker's maintenance runs. To notice sooner, each worker
process refreshes `mpox:worker-alive:<name>` (TTL `liveness_ttl_s`) from a thread. The sweep finds
started jobs whose worker's key has expired, marks their registry entries expired, and lets RQ's
own `StartedJobRegistry.cleanup` retry them or fail them (running the job's failure callback, which
publishes a WORKER_LOST outcome once no retry is left). Workers run the sweep, and so does the bot.
"""

from __future__ import annotations

import logging
import threading

from redis import Redis
from rq import Queue
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.timeouts import TimerDeathPenalty

log = logging.getLogger(__name__)

LIVENESS_KEY = "mpox:worker-alive:{name}"
# One sweeper at a time per queue, RQ's maintenance included (it cleans the same registry), so a
# job is not retried twice: RQ's maintenance lock key, but held for seconds, not RQ's 15 minutes,
# so a sweeper killed while holding it blocks the others only briefly.
SWEEP_LOCK_TTL_S = 10


def started_registry(queue: Queue) -> StartedJobRegistry:
    # A timer, not SIGALRM, bounds the failure callback: the sweep runs outside the main thread.
    return StartedJobRegistry(
        queue.name, connection=queue.connection, death_penalty_class=TimerDeathPenalty
    )


def is_alive(connection: Redis, worker_name: str) -> bool:
    return bool(worker_name) and bool(connection.exists(LIVENESS_KEY.format(name=worker_name)))


def reclaim_abandoned(queue: Queue) -> list[str]:
    """Retry or fail every started job whose worker is dead; returns their job ids."""
    connection = queue.connection
    lock = queue.registry_cleaning_key
    if not connection.set(lock, "1", nx=True, ex=SWEEP_LOCK_TTL_S):
        return []  # another process is sweeping this queue right now
    try:
        return _reclaim(queue)
    finally:
        connection.delete(lock)


def _reclaim(queue: Queue) -> list[str]:
    connection = queue.connection
    registry = started_registry(queue)
    abandoned: list[tuple[str, str]] = []
    for entry in connection.zrange(registry.key, 0, -1):
        composite = entry.decode()
        job_id, _, execution_id = composite.partition(":")
        worker_name = connection.hget(f"rq:execution:{composite}", "worker_name")
        if worker_name is None:
            continue  # no execution record: RQ's expiry-based cleanup handles it
        if not is_alive(connection, worker_name.decode()):
            abandoned.append((composite, job_id))
    if abandoned:
        # Expire the entries now (XX: only if still present), then let RQ decide retry or failure.
        connection.zadd(registry.key, {composite: 0 for composite, _ in abandoned}, xx=True)
        log.warning(
            "abandoned jobs found queue=%s request_ids=%s", queue.name, [j for _, j in abandoned]
        )
    registry.cleanup()
    return [job_id for _, job_id in abandoned]


class Housekeeping:
    """A worker's background thread: liveness key, dead-worker sweep, and due retries.

    RQ's own scheduler (which moves retries waiting out their back-off to the queue) runs as a
    forked process, and a fork of a TensorFlow process is unsafe; worse, it outlives a SIGKILLed
    worker. So the same scheduling step (`RQScheduler.enqueue_scheduled_jobs`, under RQ's
    scheduler lock) runs here, in a thread.
    """

    def __init__(self, queue: Queue, worker_name: str, ttl_s: int, sweep_interval_s: float) -> None:
        self.queue = queue
        self.key = LIVENESS_KEY.format(name=worker_name)
        self.ttl_s = ttl_s
        self.sweep_interval_s = sweep_interval_s
        self.scheduler = RQScheduler([queue], connection=queue.connection, name=worker_name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="housekeeping", daemon=True)

    def start(self) -> None:
        self.queue.connection.set(self.key, "1", ex=self.ttl_s)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.scheduler.release_locks()
        self.queue.connection.delete(self.key)

    def _run(self) -> None:
        period = min(self.ttl_s / 3, self.sweep_interval_s)
        while not self._stop.wait(period):
            try:
                self.queue.connection.set(self.key, "1", ex=self.ttl_s)
                reclaim_abandoned(self.queue)
                self.scheduler.acquire_locks()  # acquires, refreshes, or leaves it to its holder
                self.scheduler.enqueue_scheduled_jobs()
            except Exception:  # Redis away for a moment: keep trying, never kill the worker
                log.exception("housekeeping failed key=%s", self.key)
