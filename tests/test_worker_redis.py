"""Redis mode with real worker processes: `python -m worker`, restarts of the bot's consumer,
SIGTERM, and a Redis restarted with AOF on. Worker subprocesses load TensorFlow (~10 s each), so
each test starts as few as it can.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from rq import Queue

from tests.redis_server import free_port, start_redis
from worker import jobs
from worker.runner import run_worker
from worker.service import RedisScreeningService
from worker.settings import WorkerSettings
from worker.types import ScreeningRequest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def unique(redis_url):
    tag = uuid.uuid4().hex[:10]
    yield tag
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"*{tag}*", count=1000):
        connection.delete(key)


def settings_for(redis_url: str, bundle: Path, tag: str, **overrides) -> WorkerSettings:
    values = dict(
        redis_url=redis_url,
        queue_name=f"test-{tag}",
        results_stream=f"test:results:{tag}",
        model_bundle=bundle,
        retry_intervals_s=[0],
        liveness_ttl_s=2,
        sweep_interval_s=0.5,
        read_block_ms=200,
    )
    values.update(overrides)
    return WorkerSettings(**values)


def worker_env(settings: WorkerSettings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REDIS_URL=settings.redis_url,
        SCREENING_QUEUE=settings.queue_name,
        RESULTS_STREAM=settings.results_stream,
        MODEL_BUNDLE=str(settings.model_bundle),
        RETRY_INTERVALS_S=",".join(map(str, settings.retry_intervals_s)),
        LIVENESS_TTL_S=str(settings.liveness_ttl_s),
        SWEEP_INTERVAL_S=str(settings.sweep_interval_s),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    env.update(extra)
    return env


def start_worker(settings: WorkerSettings, *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        cwd=REPO,
        env=worker_env(settings, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def request_for(tag: str, photo: bytes, n: int) -> ScreeningRequest:
    return ScreeningRequest(f"req-{tag}-{n}", chat_id=n, message_id=n, language="pt", photo=photo)


@pytest.fixture(scope="module")
def photo(shared_photo_paths) -> bytes:
    return next(p for p in shared_photo_paths if p.parent.name == "mpox").read_bytes()


async def collect(service: RedisScreeningService, count: int, timeout: float = 30.0) -> list:
    deliveries = service.deliveries()
    found = []
    try:
        for _ in range(count):
            found.append(await asyncio.wait_for(anext(deliveries), timeout))
    finally:
        await deliveries.aclose()
    return found


async def test_worker_process_results_survive_a_consumer_restart(
    redis_url, test_bundle_path, unique, photo
):
    settings = settings_for(redis_url, test_bundle_path, unique)
    first = RedisScreeningService(settings, consumer="bot")
    await first.start()
    requests = [request_for(unique, photo if n else b"\x00" * 10, n) for n in range(3)]
    for request in requests:
        await first.submit(request)

    worker = start_worker(settings, "--burst")
    output, _ = worker.communicate(timeout=180)
    assert worker.returncode == 0, output
    assert "request_id=" in output and str(photo[:16]) not in output  # ids and sizes, never bytes
    assert Queue(settings.queue_name, connection=redis.Redis.from_url(redis_url)).count == 0

    delivered = await collect(first, 3)
    assert sorted(d.outcome.request_id for d in delivered) == sorted(r.request_id for r in requests)
    await first.ack(delivered[0])
    await first.close()  # the bot dies before answering the other two

    second = RedisScreeningService(settings, consumer="bot")
    await second.start()
    again = await collect(second, 2)
    assert {d.delivery_id for d in again} == {d.delivery_id for d in delivered[1:]}
    by_id = {d.delivery_id: d.outcome for d in delivered}
    assert all(d.outcome == by_id[d.delivery_id] for d in again)
    for delivery in again:
        await second.ack(delivery)
    await second.close()

    third = RedisScreeningService(settings, consumer="bot")
    await third.start()
    with pytest.raises(TimeoutError):
        await collect(third, 1, timeout=1.5)  # acknowledged once, never delivered again
    await third.close()


async def test_sigterm_lets_the_current_job_finish(redis_url, test_bundle_path, unique, photo):
    settings = settings_for(redis_url, test_bundle_path, unique)
    service = RedisScreeningService(settings, job_function="tests.worker_jobs.slow_screen")
    await service.start()
    worker = start_worker(settings, "--name", f"w-{unique}", CHAOS_SLOW_S="3")
    try:
        deadline = time.monotonic() + 120
        while (await service.health()).workers < 1:
            assert worker.poll() is None and time.monotonic() < deadline, "worker did not start"
            await asyncio.sleep(0.2)
        await service.submit(request_for(unique, photo, 0))
        connection = redis.Redis.from_url(redis_url)
        while not connection.exists(f"mpox:test:started:req-{unique}-0"):
            assert time.monotonic() < deadline, "job did not start"
            await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, output
        (delivery,) = await collect(service, 1)
        assert delivery.outcome.succeeded
        assert (await service.health()).workers == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        await service.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_queued_jobs_survive_a_redis_restart_with_aof(
    tmp_path, test_bundle_path, screener, photo
):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    settings = settings_for(url, test_bundle_path, "aof")
    server = start_redis(port, tmp_path)
    try:
        service = RedisScreeningService(settings)
        await service.start()
        requests = [request_for("aof", photo, n) for n in range(3)]
        for request in requests:
            await service.submit(request)
        await service.close()
        server.kill()  # SIGKILL: no chance to save anything more
        server.wait()
        server = start_redis(port, tmp_path)

        assert Queue(settings.queue_name, connection=redis.Redis(port=port)).count == 3
        jobs.install_screener(screener)
        run_worker(settings, redis.Redis(port=port), burst=True)
        service = RedisScreeningService(settings)
        await service.start()
        delivered = await collect(service, 3)
        assert sorted(d.outcome.request_id for d in delivered) == [r.request_id for r in requests]
        assert all(d.outcome.succeeded for d in delivered)
        await service.close()
    finally:
        server.kill()
        server.wait()


async def test_retry_with_back_off_is_requeued_by_housekeeping(
    redis_url, test_bundle_path, unique, photo, screener
):
    """Back-off retries wait in RQ's ScheduledJobRegistry; a worker's housekeeping thread (not a
    forked scheduler) moves them back to the queue when due."""
    from worker.reclaim import Housekeeping

    settings = settings_for(redis_url, test_bundle_path, unique, retry_intervals_s=[4])
    service = RedisScreeningService(settings, job_function="tests.worker_jobs.flaky_screen")
    await service.start()
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(settings.queue_name, connection=connection)
    try:
        await service.submit(request_for(unique, photo, 0))
        jobs.install_screener(screener)
        run_worker(settings, connection, burst=True)  # first try fails: scheduled for later
        assert queue.count == 0 and queue.scheduled_job_registry.count == 1
        housekeeping = Housekeeping(queue, f"hk-{unique}", ttl_s=3, sweep_interval_s=0.2)
        housekeeping.start()
        try:
            deadline = time.monotonic() + 20
            while queue.count == 0:
                assert time.monotonic() < deadline, "the retry was never requeued"
                await asyncio.sleep(0.1)
        finally:
            housekeeping.stop()
        run_worker(settings, connection, burst=True)
        (delivery,) = await collect(service, 1)
        assert delivery.outcome.succeeded
        assert int(connection.get(f"mpox:test:attempts:req-{unique}-0")) == 2
    finally:
        await service.close()
        connection.delete(f"mpox:test:attempts:req-{unique}-0")
