"""The bot's queue client against a real Redis and a real worker (in a thread of this process,
with the session's model): submit, outcomes, retries, failures, timeouts, erasure, lost data."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis

from bot.queue import JobState, QueueUnavailable, ScreeningQueue
from model.types import HeatmapLabels, Reason, Verdict
from worker.contract import photo_key
from worker.types import FailureKind


@pytest.fixture(scope="module")
def photo(shared_photo_paths) -> bytes:
    return next(p for p in shared_photo_paths if p.parent.name == "mpox").read_bytes()


@pytest.fixture
async def queue_for(stack):
    """A started ScreeningQueue with the test's bot settings (overridable)."""
    from tests.telegram_emulator import TelegramEmulator

    started: list[ScreeningQueue] = []
    telegram = TelegramEmulator()  # only for the settings' URLs; never started

    async def make(job_function: str | None = None, **overrides) -> ScreeningQueue:
        settings = stack.bot(telegram, **{"retry_intervals_s": [0], **overrides})
        queue = ScreeningQueue(settings, **({"job_function": job_function} if job_function else {}))
        await queue.start()
        started.append(queue)
        return queue

    yield make
    for queue in started:
        await queue.close()


async def collect(queue: ScreeningQueue, count: int, timeout: float = 30.0) -> list:
    deliveries = queue.deliveries()
    found = []
    try:
        for _ in range(count):
            found.append(await asyncio.wait_for(anext(deliveries), timeout))
    finally:
        await deliveries.aclose()
    return found


async def test_job_state_holds_when_the_job_finishes_while_it_is_read(queue_for, tag, photo, monkeypatch):
    """A worker can finish (and RQ delete the job, result_ttl=0) between reading the job and its
    status; the benchmark's recovery pass once failed there with InvalidJobOperation."""
    from rq.job import Job

    queue = await queue_for()
    connection = redis.Redis.from_url(queue.settings.redis_url)
    await queue.submit(f"f-{tag}", photo, HeatmapLabels(less="moins", more="plus"))
    fetch = Job.fetch

    def fetch_then_finish(job_id, **kwargs):
        job = fetch(job_id, **kwargs)
        connection.delete(f"rq:job:{job_id}")  # what a finished job with result_ttl=0 leaves
        return job

    monkeypatch.setattr(Job, "fetch", staticmethod(fetch_then_finish))
    assert await queue.job_state(f"f-{tag}") is JobState.WAITING  # as read; its outcome comes on the stream


async def test_photo_is_screened_delivered_and_acked(stack, queue_for, tag, photo, screener):
    queue = await queue_for()
    connection = redis.Redis.from_url(queue.settings.redis_url)
    await queue.submit(f"r-{tag}", photo, HeatmapLabels(less="moins", more="plus"))
    assert await queue.job_state(f"r-{tag}") is JobState.WAITING  # no worker yet
    assert connection.exists(photo_key(f"r-{tag}"))
    with stack.worker():
        (delivery,) = await collect(queue, 1)
    outcome = delivery.outcome
    assert outcome.request_id == f"r-{tag}" and outcome.failure is None
    expected = screener.screen(photo)
    assert outcome.result.verdict == expected.verdict
    assert outcome.result.probabilities == pytest.approx(expected.probabilities, abs=1e-5)
    assert outcome.result.heatmap_jpeg[:2] == b"\xff\xd8"
    assert outcome.result.timings.total_ms == 0  # timings stay in the worker's logs
    # The photo is gone from Redis once screened, and the finished job too.
    assert not connection.exists(photo_key(f"r-{tag}")) and not connection.exists(f"rq:job:r-{tag}")
    assert await queue.job_state(f"r-{tag}") is JobState.PUBLISHED
    await queue.ack(delivery)
    assert connection.xlen(queue.settings.results_stream) == 0  # a heatmap is not kept once answered


async def test_job_is_json_and_holds_no_photo(queue_for, tag, photo):
    queue = await queue_for()
    await queue.submit(f"j-{tag}", photo, HeatmapLabels())
    data = redis.Redis.from_url(queue.settings.redis_url).hgetall(f"rq:job:j-{tag}")
    import zlib

    payload = json.loads(zlib.decompress(data[b"data"]))  # RQ compresses; JSON inside, never a pickle
    assert payload[0] == "worker.jobs.screen_photo" and payload[2][0]["less"] == "less influence on the result"
    assert photo[:64] not in data[b"data"] and photo[:64] not in zlib.decompress(data[b"data"])


async def test_bad_photo_comes_back_as_a_refusal_not_a_failure(stack, queue_for, tag):
    queue = await queue_for()
    await queue.submit(f"b-{tag}", b"\x00" * 100, HeatmapLabels())
    with stack.worker():
        (delivery,) = await collect(queue, 1)
    assert delivery.outcome.result.verdict is Verdict.ERROR
    assert delivery.outcome.result.reason is Reason.NOT_AN_IMAGE


async def test_transient_error_is_retried(stack, queue_for, tag, photo):
    queue = await queue_for("tests.worker_jobs.flaky_screen", max_retries=1)
    await queue.submit(f"t-{tag}", photo, HeatmapLabels())
    with stack.worker():
        (delivery,) = await collect(queue, 1)
    assert delivery.outcome.succeeded
    connection = redis.Redis.from_url(queue.settings.redis_url)
    assert int(connection.get(f"mpox:test:attempts:t-{tag}")) == 2
    connection.delete(f"mpox:test:attempts:t-{tag}")


async def test_final_failure_is_reported_once_after_every_retry(stack, queue_for, tag, photo):
    queue = await queue_for("tests.worker_jobs.broken_screen", max_retries=2)
    await queue.submit(f"f-{tag}", photo, HeatmapLabels())
    with stack.worker():
        (delivery,) = await collect(queue, 1)
        await queue.ack(delivery)
        with pytest.raises(TimeoutError):
            await collect(queue, 1, timeout=2.0)
    assert delivery.outcome.failure is FailureKind.INTERNAL and delivery.outcome.result is None
    # The photo is deleted once RQ gives up, although the failed job's record is kept a while.
    assert not redis.Redis.from_url(queue.settings.redis_url).exists(photo_key(f"f-{tag}"))


async def test_job_past_its_timeout_is_reported_as_timeout(stack, queue_for, tag, photo, monkeypatch):
    monkeypatch.setenv("CHAOS_SLOW_S", "4")
    queue = await queue_for("tests.worker_jobs.slow_screen", job_timeout_s=1)
    await queue.submit(f"o-{tag}", photo, HeatmapLabels())
    with stack.worker():
        (delivery,) = await collect(queue, 1)
    assert delivery.outcome.failure is FailureKind.TIMEOUT


async def test_many_requests_each_delivered_once(stack, queue_for, tag, photo):
    queue = await queue_for()
    ids = [f"m-{tag}-{n}" for n in range(8)]
    for request_id in ids:
        await queue.submit(request_id, photo, HeatmapLabels())
    with stack.worker():
        delivered = await collect(queue, len(ids))
    assert sorted(d.outcome.request_id for d in delivered) == sorted(ids)
    for delivery in delivered:
        await queue.ack(delivery)
    with pytest.raises(TimeoutError):
        await collect(queue, 1, timeout=1.0)


async def test_unacknowledged_outcomes_are_delivered_again(stack, queue_for, tag, photo):
    """An outcome read but not acknowledged (the bot died before answering) comes back."""
    queue = await queue_for()
    await queue.submit(f"u-{tag}", photo, HeatmapLabels())
    with stack.worker():
        (first,) = await collect(queue, 1)
    await queue.close()
    again = await queue_for()  # a new bot process
    (second,) = await collect(again, 1)
    assert second.entry_id == first.entry_id and second.outcome == first.outcome


async def test_forget_erases_photos_jobs_and_unanswered_outcomes(stack, queue_for, tag, photo):
    queue = await queue_for()
    connection = redis.Redis.from_url(queue.settings.redis_url)
    await queue.submit(f"e-{tag}-done", photo, HeatmapLabels())
    with stack.worker():
        await collect(queue, 1)  # read, never acknowledged: an outcome waiting to be answered
    await queue.submit(f"e-{tag}-queued", photo, HeatmapLabels())
    assert await queue.forget([f"e-{tag}-done", f"e-{tag}-queued", f"e-{tag}-unknown"]) == 2
    assert connection.xlen(queue.settings.results_stream) == 0
    assert not connection.exists(photo_key(f"e-{tag}-queued"), f"rq:job:e-{tag}-queued")
    assert await queue.job_state(f"e-{tag}-queued") is JobState.MISSING
    with stack.worker(), pytest.raises(TimeoutError):
        await collect(queue, 1, timeout=2.0)  # nothing left to screen or deliver


async def test_results_group_lost_with_redis_data_is_recreated(stack, queue_for, tag, photo, caplog):
    queue = await queue_for()
    connection = redis.Redis.from_url(queue.settings.redis_url)
    deliveries = queue.deliveries()
    reading = asyncio.ensure_future(anext(deliveries))
    await asyncio.sleep(0.5)
    connection.delete(queue.settings.results_stream)  # as after FLUSHALL or a restart without AOF
    await queue.submit(f"g-{tag}", photo, HeatmapLabels())
    with stack.worker():
        delivery = await asyncio.wait_for(reading, 30)
    await deliveries.aclose()
    assert delivery.outcome.request_id == f"g-{tag}"
    assert [r for r in caplog.records if "results_group_recreated" in r.getMessage()]


async def test_live_workers_are_those_with_a_recent_heartbeat(stack, queue_for):
    queue = await queue_for()
    assert await queue.live_workers() == 0
    with stack.worker():
        await asyncio.sleep(0.5)
        assert await queue.live_workers() == 1
    assert await queue.live_workers() == 0


async def test_unreachable_redis_raises_queue_unavailable(tmp_path, tag, photo):
    from tests.bot_harness import bot_settings
    from tests.telegram_emulator import TelegramEmulator

    settings = bot_settings(TelegramEmulator(), tmp_path / "bot.sqlite3", "redis://127.0.0.1:1/0", tag)
    queue = ScreeningQueue(settings)
    with pytest.raises(QueueUnavailable):
        await queue.start()
    with pytest.raises(QueueUnavailable):
        await queue.submit("x", photo, HeatmapLabels())
    assert not await queue.ping()
    await queue.close()


async def test_a_silent_redis_connection_is_given_up_not_waited_on_forever(tmp_path, tag, caplog, monkeypatch):
    """A server that accepts and never answers (a half-open connection): the health check says
    down and the outcome loop logs the outage and keeps trying, instead of hanging."""
    import bot.queue
    from tests.bot_harness import bot_settings

    monkeypatch.setattr(bot.queue, "REPLY_GRACE_S", 0.5)  # the test waits out every retry
    from tests.telegram_emulator import TelegramEmulator

    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = bot_settings(
        TelegramEmulator(), tmp_path / "bot.sqlite3", f"redis://127.0.0.1:{port}/0", tag, read_block_ms=200
    )
    queue = ScreeningQueue(settings)
    try:
        assert await asyncio.wait_for(queue.ping(), 20) is False
        reading = asyncio.ensure_future(anext(queue.deliveries()))
        for _ in range(200):
            if any("results_unreachable" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.1)
        assert any("results_unreachable" in r.getMessage() for r in caplog.records)
        assert not reading.done()  # still waiting out the outage, not failed
        reading.cancel()
    finally:
        await queue.close()
        for writer in accepted:
            writer.close()
        server.close()
