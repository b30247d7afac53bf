"""The bot's side of the screening queue: submit photos, read outcomes, acknowledge, erase.

A request is the photo under its own key plus a JSON RQ job (`worker.contract`); outcomes come
back on a Redis stream read with a consumer group, so every outcome the bot did not acknowledge
is read again after a restart. The bot never runs jobs, never unpickles anything, and believes an
outcome only for a case it holds (bot.deliveries checks that).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from rq import Callback, Queue, Retry, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from bot.settings import BotSettings
from model.types import HeatmapLabels
from worker.contract import (
    FAILURE_CALLBACK,
    SCREEN_JOB,
    MalformedOutcome,
    decode_outcome,
    job_arguments,
    photo_key,
    published_key,
)
from worker.types import ScreeningOutcome

log = logging.getLogger(__name__)

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
# Redis full (maxmemory with noeviction): nothing more can be queued until workers catch up.
REDIS_FULL = (redis.exceptions.OutOfMemoryError,)
CONSUMER = "bot"  # one bot process: its pending entries are found again under this name
PENDING_RESCAN_S = 30.0  # how often outcomes left unanswered (Telegram failed) are tried again
# How long past its own blocking time a Redis reply may take: without a bound, a connection that
# went silent (a half-open socket, a Redis host gone without a reset) would stall the bot's
# outcome loop and health check for good.
REPLY_GRACE_S = 5.0


class QueueUnavailable(Exception):
    """Redis cannot be reached: nothing can be queued or read right now."""


class JobState(enum.StrEnum):
    """Where a request is, as seen from Redis."""

    WAITING = "waiting"  # queued, running, or waiting out a retry's back-off
    PUBLISHED = "published"  # its outcome was published (read, or still on the stream)
    MISSING = "missing"  # neither a job nor an outcome: lost (Redis lost its data) or never queued


@dataclass(frozen=True)
class Delivery:
    outcome: ScreeningOutcome
    entry_id: str  # the stream entry, acknowledged once the person was answered


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ScreeningQueue:
    """Connects on `start()`; every call raises QueueUnavailable while Redis is down."""

    def __init__(self, settings: BotSettings, job_function: str = SCREEN_JOB) -> None:
        self.settings = settings
        self.job_function = job_function  # tests swap in a deliberately failing job
        self._sync = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
        self._async = aioredis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=5,
            socket_timeout=settings.read_block_ms / 1000 + REPLY_GRACE_S,
            retry=AsyncRetry(ExponentialBackoff(cap=2, base=0.1), retries=3),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
        self._queue = Queue(settings.queue_name, connection=self._sync, serializer=JSONSerializer)
        self._group_ready = False

    @property
    def redis(self) -> aioredis.Redis:
        """The asyncio client, for the bot's other uses of the same Redis (the photo quota)."""
        return self._async

    async def start(self) -> None:
        await self._ensure_group()

    async def close(self) -> None:
        await self._async.aclose()
        self._sync.close()

    async def ping(self) -> bool:
        try:
            return bool(await self._async.ping())
        except REDIS_DOWN:
            return False

    async def _ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless it exists."""
        try:
            await self._async.xgroup_create(
                self.settings.results_stream, self.settings.results_group, id="0", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except REDIS_DOWN as exc:
            raise QueueUnavailable(str(exc)) from exc
        self._group_ready = True

    # Requests ----------------------------------------------------------------------------------
    async def submit(self, request_id: str, photo: bytes, labels: HeatmapLabels) -> None:
        """Store the photo and enqueue its job (job id = request id)."""
        try:
            await asyncio.to_thread(self._submit, request_id, photo, labels)
        except REDIS_DOWN + REDIS_FULL as exc:
            raise QueueUnavailable(str(exc)) from exc
        log.info("event=queued case_id=%s photo_bytes=%d", request_id, len(photo))

    def _submit(self, request_id: str, photo: bytes, labels: HeatmapLabels) -> None:
        settings = self.settings
        retry = None
        if settings.max_retries:
            retry = Retry(max=settings.max_retries, interval=settings.retry_intervals_s or 0)
        # One transaction: the job never exists without its photo. (RQ starts the pipeline's
        # MULTI itself, so the job goes in first.)
        with self._sync.pipeline() as pipe:
            self._queue.enqueue(
                self.job_function,
                *job_arguments(labels),
                job_id=request_id,
                job_timeout=settings.job_timeout_s,
                result_ttl=0,  # the outcome is on the stream: delete the finished job at once
                failure_ttl=settings.failure_ttl_s,
                ttl=settings.photo_ttl_s,  # a job waiting longer than its photo is dropped
                retry=retry,
                on_failure=Callback(FAILURE_CALLBACK),
                description=f"screen request {request_id}",  # never the photo
                pipeline=pipe,
            )
            pipe.set(photo_key(request_id), photo, ex=settings.photo_ttl_s)
            pipe.execute()

    async def job_state(self, request_id: str) -> JobState:
        try:
            return await asyncio.to_thread(self._job_state, request_id)
        except REDIS_DOWN as exc:
            raise QueueUnavailable(str(exc)) from exc

    def _job_state(self, request_id: str) -> JobState:
        # Checked in this order: a job publishes its outcome before RQ deletes it. The status is the
        # one fetch read: reading it again races the worker deleting the finished job.
        try:
            status = Job.fetch(request_id, connection=self._sync, serializer=JSONSerializer).get_status(refresh=False)
        except NoSuchJobError:
            status = None
        if status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
            return JobState.WAITING
        if self._sync.exists(published_key(self.settings.results_stream, request_id)):
            return JobState.PUBLISHED
        return JobState.MISSING

    async def live_workers(self) -> int:
        """Workers whose heartbeat is recent: they can take a photo now."""
        try:
            return await asyncio.to_thread(self._live_workers)
        except REDIS_DOWN:
            return 0

    def _live_workers(self) -> int:
        cutoff = time.time() - self.settings.worker_alive_s
        workers = Worker.all(queue=self._queue)
        return sum(1 for w in workers if w.last_heartbeat is not None and w.last_heartbeat.timestamp() >= cutoff)

    async def forget(self, request_ids: list[str]) -> int:
        """Erase every trace of these requests in Redis: photos, jobs (queued, retrying or failed),
        outcome markers and unanswered stream entries. Returns how many were still waiting there
        (a photo, a job or an unanswered outcome)."""
        if not request_ids:
            return 0
        try:
            return await asyncio.to_thread(self._forget, set(request_ids))
        except REDIS_DOWN as exc:
            raise QueueUnavailable(str(exc)) from exc

    def _forget(self, request_ids: set[str]) -> int:
        found: set[str] = set()
        stream = self.settings.results_stream
        for request_id in request_ids:
            self._sync.delete(published_key(stream, request_id))
            if self._sync.delete(photo_key(request_id)):
                found.add(request_id)
            try:
                Job.fetch(request_id, connection=self._sync, serializer=JSONSerializer).delete()
                found.add(request_id)
            except NoSuchJobError:
                pass
        # The stream holds only unanswered outcomes (answered ones are deleted), so it is short.
        for entry_id, fields in self._sync.xrange(stream):
            request_id = _text(fields.get(b"request_id", b""))
            if request_id in request_ids:
                self._sync.xack(stream, self.settings.results_group, entry_id)
                self._sync.xdel(stream, entry_id)
                found.add(request_id)
        return len(found)

    # Outcomes ----------------------------------------------------------------------------------
    async def deliveries(self) -> AsyncIterator[Delivery]:
        """Outcomes, forever: first those read before but never acknowledged (after a restart, or
        when answering failed), then new ones; pending ones are looked at again every so often.
        Waits out Redis outages; recreates the consumer group if Redis lost it."""
        last_rescan = 0.0
        while True:
            if time.monotonic() - last_rescan > PENDING_RESCAN_S:
                last_rescan = time.monotonic()
                async for delivery in self._read_pending():
                    yield delivery
            for entry_id, fields in await self._read(">", block=self.settings.read_block_ms):
                delivery = await self._to_delivery(entry_id, fields)
                if delivery is not None:
                    yield delivery

    async def _read_pending(self) -> AsyncIterator[Delivery]:
        after = "0"
        while entries := await self._read(after, block=None):
            for entry_id, fields in entries:
                after = entry_id
                delivery = await self._to_delivery(entry_id, fields)
                if delivery is not None:
                    yield delivery

    async def _read(self, start: str, block: int | None) -> list[tuple[str, dict]]:
        stream, group = self.settings.results_stream, self.settings.results_group
        try:
            reply = await self._async.xreadgroup(group, CONSUMER, {stream: start}, count=16, block=block)
        except REDIS_DOWN as exc:
            log.warning("event=results_unreachable retry_in_s=1 error=%s", type(exc).__name__)
            self._group_ready = False
            await asyncio.sleep(1.0)
            return []
        except redis.ResponseError as exc:
            # NOGROUP, or UNBLOCKED while a read waited: the stream is gone with the group.
            if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                raise
            # Redis lost its data (restarted without persistence, or flushed): start afresh.
            log.warning("event=results_group_recreated stream=%s", stream)
            await self._ensure_group()
            return []
        if not reply:
            return []
        ((_, entries),) = reply
        return [(_text(entry_id), fields) for entry_id, fields in entries if fields]

    async def _to_delivery(self, entry_id: str, fields: dict) -> Delivery | None:
        try:
            return Delivery(outcome=decode_outcome(fields), entry_id=entry_id)
        except MalformedOutcome as exc:  # nothing to answer: drop it rather than loop on it
            log.warning("event=malformed_outcome_dropped entry=%s error=%s", entry_id, exc)
            await self.drop(entry_id)
            return None

    async def ack(self, delivery: Delivery) -> None:
        await self.drop(delivery.entry_id)
        log.info("event=outcome_acknowledged case_id=%s", delivery.outcome.request_id)

    async def drop(self, entry_id: str) -> None:
        """Acknowledge and delete a stream entry: it may hold a heatmap of someone's skin."""
        stream, group = self.settings.results_stream, self.settings.results_group
        async with self._async.pipeline(transaction=True) as pipe:
            pipe.xack(stream, group, entry_id).xdel(stream, entry_id)
            await pipe.execute()
