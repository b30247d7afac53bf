"""The bot's side of the queue: submit requests, receive outcomes, acknowledge them.

`create_service(settings)` picks the mode. With REDIS_URL, `RedisScreeningService` enqueues RQ jobs
and reads outcomes from the result stream with a consumer group (durable: every unacknowledged
outcome is delivered again after a restart). Without it, `EmbeddedScreeningService` runs the same
job function in a small thread pool inside the bot's process (not durable: outcomes not yet
acknowledged are lost with the process).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
from rq import Callback, Queue, Retry, Worker

from worker import jobs
from worker.errors import ServiceUnavailable
from worker.outcomes import OUTCOME_FIELD, outcome_for, outcome_from_json
from worker.reclaim import is_alive, reclaim_abandoned
from worker.settings import WorkerSettings
from worker.types import FailureKind, ScreeningOutcome, ScreeningRequest

log = logging.getLogger(__name__)

SCREEN_JOB = "worker.jobs.screen_photo"
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)


@dataclass(frozen=True)
class Delivery:
    outcome: ScreeningOutcome
    delivery_id: str  # stream entry id (redis) or a counter (embedded)


@dataclass(frozen=True)
class ServiceHealth:
    queued: int  # requests waiting
    workers: int  # live workers able to take them (embedded: pool size)


class ScreeningService(Protocol):
    async def start(self) -> None: ...
    async def submit(self, request: ScreeningRequest) -> None: ...
    def deliveries(self) -> AsyncIterator[Delivery]: ...
    async def ack(self, delivery: Delivery) -> None: ...
    async def health(self) -> ServiceHealth: ...
    async def close(self) -> None: ...


def create_service(settings: WorkerSettings, consumer: str = "bot") -> ScreeningService:
    """RedisScreeningService when settings.redis_url is set, else EmbeddedScreeningService."""
    if settings.redis_url:
        return RedisScreeningService(settings, consumer)
    return EmbeddedScreeningService(settings)


def enqueue_request(
    queue: Queue,
    settings: WorkerSettings,
    request: ScreeningRequest,
    job_function: str = SCREEN_JOB,
):
    """Enqueue one screening job (job id = request id) with its timeout, TTLs, retries, callbacks."""
    retry = None
    if settings.max_retries:
        retry = Retry(max=settings.max_retries, interval=settings.retry_intervals_s or 0)
    return queue.enqueue(
        job_function,
        request,
        job_id=request.request_id,
        job_timeout=settings.job_timeout_s,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.failure_ttl_s,
        retry=retry,
        on_success=Callback(jobs.publish_success),
        on_failure=Callback(jobs.publish_failure),
        meta={
            "results_stream": settings.results_stream,
            "results_stream_maxlen": settings.results_stream_maxlen,
        },
        description=f"screen request {request.request_id}",  # never the photo bytes
    )


class RedisScreeningService:
    """Requests as RQ jobs; outcomes from a Redis stream read with a consumer group."""

    def __init__(
        self, settings: WorkerSettings, consumer: str = "bot", job_function: str = SCREEN_JOB
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.job_function = job_function
        self._sync: redis.Redis | None = None
        self._async: aioredis.Redis | None = None
        self._queue: Queue | None = None
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        url = self.settings.redis_url
        self._sync = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._async = aioredis.Redis.from_url(url, socket_connect_timeout=5)
        self._queue = Queue(self.settings.queue_name, connection=self._sync)
        try:
            await self._async.xgroup_create(
                self.settings.results_stream, self.settings.results_group, id="0", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except _REDIS_DOWN as exc:
            raise ServiceUnavailable(f"Redis cannot be reached: {exc}") from exc
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="reclaim-abandoned")
        log.info(
            "screening service started mode=redis queue=%s stream=%s consumer=%s",
            self.settings.queue_name,
            self.settings.results_stream,
            self.consumer,
        )

    async def submit(self, request: ScreeningRequest) -> None:
        if self._queue is None:
            raise ServiceUnavailable("the screening service is not started")
        try:
            await asyncio.to_thread(
                enqueue_request, self._queue, self.settings, request, self.job_function
            )
        except _REDIS_DOWN as exc:
            raise ServiceUnavailable(f"the screening queue cannot be reached: {exc}") from exc
        log.info(
            "request queued request_id=%s queue=%s photo_bytes=%d",
            request.request_id,
            self.settings.queue_name,
            len(request.photo),
        )

    async def deliveries(self) -> AsyncIterator[Delivery]:
        """Unacknowledged outcomes of earlier runs of this consumer, then new ones, forever.

        Iterate it with one long-lived `async for`: cancelling a step (asyncio.wait_for around
        anext) ends an async generator; nothing is lost, the next iterator re-reads pending ones.
        """
        # "0" re-reads this consumer's pending entries (delivered before a restart, never acked);
        # once they are exhausted, ">" waits for new ones.
        last_pending = "0"
        while last_pending is not None:
            entries = await self._read(last_pending, block=None)
            if not entries:
                last_pending = None
            for entry_id, fields in entries:
                last_pending = entry_id
                delivery = await self._to_delivery(entry_id, fields)
                if delivery is not None:
                    yield delivery
        while True:
            for entry_id, fields in await self._read(">", block=self.settings.read_block_ms):
                delivery = await self._to_delivery(entry_id, fields)
                if delivery is not None:
                    yield delivery

    async def _read(self, start: str, block: int | None) -> list[tuple[str, dict]]:
        stream = self.settings.results_stream
        while True:
            try:
                reply = await self._async.xreadgroup(
                    self.settings.results_group,
                    self.consumer,
                    {stream: start},
                    count=16,
                    block=block,
                )
                break
            except _REDIS_DOWN as exc:  # wait for Redis to come back rather than end the stream
                log.warning("result stream unreachable, retrying in 1 s error=%s", exc)
                await asyncio.sleep(1.0)
        if not reply:
            return []
        ((_, entries),) = reply
        return [(_text(entry_id), fields) for entry_id, fields in entries]

    async def _to_delivery(self, entry_id: str, fields: dict) -> Delivery | None:
        try:
            outcome = outcome_from_json(fields[OUTCOME_FIELD.encode()])
        except Exception:  # nothing a bot can answer: log it and drop it rather than loop on it
            log.exception("unreadable result entry dropped entry=%s", entry_id)
            await self._async.xack(
                self.settings.results_stream, self.settings.results_group, entry_id
            )
            return None
        return Delivery(outcome=outcome, delivery_id=entry_id)

    async def ack(self, delivery: Delivery) -> None:
        stream, group = self.settings.results_stream, self.settings.results_group
        async with self._async.pipeline(transaction=True) as pipe:
            # The entry holds a heatmap of someone's skin: delete it once answered.
            pipe.xack(stream, group, delivery.delivery_id).xdel(stream, delivery.delivery_id)
            await pipe.execute()
        log.info(
            "outcome acknowledged request_id=%s entry=%s",
            delivery.outcome.request_id,
            delivery.delivery_id,
        )

    async def health(self) -> ServiceHealth:
        return await asyncio.to_thread(self._health)

    def _health(self) -> ServiceHealth:
        queue = self._queue
        live = [w for w in Worker.all(queue=queue) if is_alive(queue.connection, w.name)]
        return ServiceHealth(queued=queue.count, workers=len(live))

    async def sweep(self) -> list[str]:
        """Hand the jobs of dead workers back to RQ now (also runs every sweep_interval_s)."""
        return await asyncio.to_thread(reclaim_abandoned, self._queue)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep for abandoned jobs failed")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        if self._async is not None:
            await self._async.aclose()
        if self._sync is not None:
            self._sync.close()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class EmbeddedScreeningService:
    """The job function in a thread pool of the bot's own process; outcomes kept in memory only."""

    def __init__(self, settings: WorkerSettings, screener: Any = None) -> None:
        self.settings = settings
        self._screener = (
            screener  # an already loaded model.Screener (tests); else loaded in start()
        )
        self._pool: ThreadPoolExecutor | None = None
        self._outcomes: asyncio.Queue[Delivery] = asyncio.Queue()
        self._counter = itertools.count(1)
        self._slots: asyncio.Semaphore | None = None
        self._waiting = 0  # requests submitted but not yet given a thread
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        if self._screener is None:
            self._screener = await asyncio.to_thread(jobs.load_screener, self.settings)
        jobs.install_screener(self._screener)
        self._pool = ThreadPoolExecutor(self.settings.embedded_threads, thread_name_prefix="screen")
        self._slots = asyncio.Semaphore(self.settings.embedded_threads)
        log.info(
            "screening service started mode=embedded threads=%d", self.settings.embedded_threads
        )

    async def submit(self, request: ScreeningRequest) -> None:
        if self._pool is None:
            raise ServiceUnavailable("the screening service is not started")
        self._waiting += 1
        task = asyncio.create_task(self._run(request), name=f"screen-{request.request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        log.info(
            "request queued request_id=%s mode=embedded photo_bytes=%d",
            request.request_id,
            len(request.photo),
        )

    async def _run(self, request: ScreeningRequest) -> None:
        async with self._slots:
            self._waiting -= 1
            outcome = await self._screen(request)
        delivery = Delivery(outcome=outcome, delivery_id=str(next(self._counter)))
        await self._outcomes.put(delivery)

    async def _screen(self, request: ScreeningRequest) -> ScreeningOutcome:
        """The job function with the Redis mode's timeout and retries (no back-off in-process)."""
        loop = asyncio.get_running_loop()
        outcome = None
        for attempt in range(self.settings.max_retries + 1):
            future = loop.run_in_executor(self._pool, jobs.screen_photo, request)
            try:
                result = await asyncio.wait_for(future, self.settings.job_timeout_s)
                outcome = outcome_for(request, result=result)
                break
            except TimeoutError:  # the thread runs on; the request is answered as timed out
                kind, detail = (
                    FailureKind.TIMEOUT,
                    f"no result after {self.settings.job_timeout_s} s",
                )
            except Exception as exc:
                kind, detail = FailureKind.INTERNAL, f"{type(exc).__name__}: {exc}"
            log.warning(
                "job try failed request_id=%s attempt=%d failure=%s",
                request.request_id,
                attempt + 1,
                kind,
            )
            outcome = outcome_for(request, failure=kind, failure_detail=detail)
        return outcome

    async def deliveries(self) -> AsyncIterator[Delivery]:
        while True:
            yield await self._outcomes.get()

    async def ack(self, delivery: Delivery) -> None:
        """Nothing to do: in-memory outcomes are gone once handed out (none survive a restart)."""

    async def health(self) -> ServiceHealth:
        return ServiceHealth(queued=self._waiting, workers=self.settings.embedded_threads)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
