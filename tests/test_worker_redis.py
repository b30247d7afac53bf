"""`python -m worker` processes against a real Redis: a consumer restart, SIGTERM, Redis restarted
with AOF, retries with back-off, and how a worker that cannot start says why. Worker processes
load TensorFlow (~10 s each), so each test starts as few as it can."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from bot.queue import ScreeningQueue
from model.types import HeatmapLabels
from tests.bot_harness import bot_settings
from tests.redis_server import free_port, start_redis
from tests.telegram_emulator import TelegramEmulator
from tests.test_bot_queue import collect
from tests.workers import InThreadWorker, start_worker, worker_settings
from worker.housekeeping import reclaim_abandoned
from worker.runner import build_worker


@pytest.fixture(scope="module")
def photo(shared_photo_paths) -> bytes:
    return next(p for p in shared_photo_paths if p.parent.name == "mpox").read_bytes()


def queue_for(redis_url: str, tag: str, tmp_path, **overrides) -> ScreeningQueue:
    job_function = overrides.pop("job_function", None)
    overrides = {"retry_intervals_s": [0], **overrides}
    settings = bot_settings(TelegramEmulator(), tmp_path / "bot.sqlite3", redis_url, tag, **overrides)
    return ScreeningQueue(settings, **({"job_function": job_function} if job_function else {}))


async def test_worker_process_screens_and_logs_no_photo(redis_url, test_bundle_path, tag, photo, tmp_path):
    queue = queue_for(redis_url, tag, tmp_path)
    await queue.start()
    for n in range(2):
        await queue.submit(f"p-{tag}-{n}", photo if n else b"\x00" * 10, HeatmapLabels())
    worker = start_worker(worker_settings(redis_url, test_bundle_path, tag), "--burst")
    output, _ = worker.communicate(timeout=180)
    assert worker.returncode == 0, output
    assert "event=screened" in output and str(photo[:16]) not in output  # ids and sizes, never bytes
    assert "oneDNN" not in output and "cpu_feature_guard" not in output  # TensorFlow's start-up chatter
    delivered = await collect(queue, 2)
    assert sorted(d.outcome.request_id for d in delivered) == [f"p-{tag}-0", f"p-{tag}-1"]
    await queue.close()


async def test_sigterm_lets_the_current_job_finish(redis_url, test_bundle_path, tag, photo, tmp_path):
    queue = queue_for(redis_url, tag, tmp_path, job_function="tests.worker_jobs.slow_screen")
    await queue.start()
    worker = start_worker(worker_settings(redis_url, test_bundle_path, tag), "--name", f"w-{tag}", CHAOS_SLOW_S="3")
    try:
        deadline = time.monotonic() + 120
        while await queue.live_workers() < 1:
            assert worker.poll() is None and time.monotonic() < deadline, "worker did not start"
            await asyncio.sleep(0.2)
        await queue.submit(f"s-{tag}", photo, HeatmapLabels())
        connection = redis.Redis.from_url(redis_url)
        while not connection.exists(f"mpox:test:started:s-{tag}"):
            assert time.monotonic() < deadline, "job did not start"
            await asyncio.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, output
        (delivery,) = await collect(queue, 1)
        assert delivery.outcome.succeeded
        assert await queue.live_workers() == 0
        connection.delete(f"mpox:test:started:s-{tag}")
    finally:
        if worker.poll() is None:
            worker.kill()
        await queue.close()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_queued_jobs_survive_a_redis_restart_with_aof(tmp_path, test_bundle_path, screener, photo):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = start_redis(port, tmp_path)
    try:
        queue = queue_for(url, "aof", tmp_path)
        await queue.start()
        for n in range(3):
            await queue.submit(f"a-{n}", photo, HeatmapLabels())
        await queue.close()
        server.kill()  # SIGKILL: no chance to save anything more
        server.wait()
        server = start_redis(port, tmp_path)
        assert Queue("test-aof", connection=redis.Redis(port=port), serializer=JSONSerializer).count == 3
        queue = queue_for(url, "aof", tmp_path)
        await queue.start()
        with InThreadWorker(worker_settings(url, test_bundle_path, "aof"), screener):
            delivered = await collect(queue, 3)
        assert sorted(d.outcome.request_id for d in delivered) == ["a-0", "a-1", "a-2"]
        assert all(d.outcome.succeeded for d in delivered)
        await queue.close()
    finally:
        server.kill()
        server.wait()


async def test_retry_with_back_off_is_requeued_by_housekeeping(redis_url, test_bundle_path, tag, photo, screener, tmp_path):
    """Back-off retries wait in RQ's ScheduledJobRegistry; a worker's housekeeping thread (not a
    forked scheduler) moves them back to the queue when due."""
    queue = queue_for(redis_url, tag, tmp_path, job_function="tests.worker_jobs.flaky_screen", max_retries=1,
                      retry_intervals_s=[3])
    await queue.start()
    connection = redis.Redis.from_url(redis_url)
    try:
        await queue.submit(f"r-{tag}", photo, HeatmapLabels())
        with InThreadWorker(worker_settings(redis_url, test_bundle_path, tag), screener):
            (delivery,) = await collect(queue, 1, timeout=30)
        assert delivery.outcome.succeeded
        assert int(connection.get(f"mpox:test:attempts:r-{tag}")) == 2
    finally:
        await queue.close()
        connection.delete(f"mpox:test:attempts:r-{tag}")


async def test_a_killed_workers_job_is_retried_within_seconds(redis_url, test_bundle_path, tag, photo, screener, tmp_path):
    """Its execution's heartbeat lasts LIVENESS_TTL_S (2 s here), not the job's timeout + 60 s."""
    queue = queue_for(redis_url, tag, tmp_path, job_function="tests.worker_jobs.slow_screen", max_retries=1)
    await queue.start()
    settings = worker_settings(redis_url, test_bundle_path, tag)
    victim = start_worker(settings, "--name", f"v-{tag}", CHAOS_SLOW_S="30")
    connection = redis.Redis.from_url(redis_url)
    try:
        await queue.submit(f"k-{tag}", photo, HeatmapLabels())
        deadline = time.monotonic() + 120
        while not connection.exists(f"mpox:test:started:k-{tag}"):
            assert victim.poll() is None and time.monotonic() < deadline, "job did not start"
            await asyncio.sleep(0.1)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        killed_at = time.monotonic()
        survivor_queue = build_worker(settings, connection).queues[0]
        while not Queue(settings.queue_name, connection=connection, serializer=JSONSerializer).count:
            reclaim_abandoned(survivor_queue)
            assert time.monotonic() - killed_at < 15, "the job was not reclaimed"
            await asyncio.sleep(0.2)
        with InThreadWorker(settings, screener):
            (delivery,) = await collect(queue, 1)
        assert delivery.outcome.succeeded
    finally:
        if victim.poll() is None:
            victim.kill()
        connection.delete(f"mpox:test:started:k-{tag}")
        await queue.close()


def test_a_worker_that_cannot_load_its_model_says_why(redis_url, tmp_path, tag):
    worker = start_worker(worker_settings(redis_url, tmp_path / "no-bundle-here", tag))
    output, _ = worker.communicate(timeout=120)
    assert worker.returncode == 3
    assert "event=model_load_failed" in output and "does not exist" in output


def test_a_worker_started_before_redis_waits_for_it_and_says_so(tmp_path, test_bundle_path):
    import threading

    port = free_port()
    worker = start_worker(worker_settings(f"redis://127.0.0.1:{port}/0", test_bundle_path, "early"), "--burst")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(worker.stdout), daemon=True)
    reader.start()
    server = None
    try:
        deadline = time.monotonic() + 180  # the model loads first (~10 s, more on a busy machine)
        while sum("event=redis_unreachable" in line for line in lines) < 2:
            assert worker.poll() is None, "the worker gave up while Redis was down:\n" + "".join(lines)
            assert time.monotonic() < deadline, "no redis_unreachable lines:\n" + "".join(lines)
            time.sleep(0.2)
        server = start_redis(port, tmp_path)
        worker.wait(timeout=60)  # --burst: it reaches Redis, finds the queue empty and stops
        reader.join(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
        if server is not None:
            server.kill()
            server.wait()
    output = "".join(lines)
    assert worker.returncode == 0, output
    tries = [line for line in output.splitlines() if "event=redis_unreachable" in line]
    assert all("retry_in_s=" in line for line in tries) and "attempt=2 retry_in_s=2" in tries[1]
    assert "Traceback" not in output


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_a_worker_stopped_as_redis_goes_away_stops_cleanly(tmp_path, test_bundle_path):
    """Ctrl-C in a terminal reaches Redis and the worker at once: Redis may be gone before the
    worker's last words to it. That is still a clean stop, not a traceback."""
    port = free_port()
    server = start_redis(port, tmp_path)
    worker = start_worker(worker_settings(f"redis://127.0.0.1:{port}/0", test_bundle_path, "gone"))
    try:
        deadline = time.monotonic() + 180
        connection = redis.Redis(port=port)
        while not connection.smembers("rq:workers"):  # registered, with housekeeping running
            assert worker.poll() is None and time.monotonic() < deadline, "worker did not start"
            time.sleep(0.2)
        time.sleep(1.5)  # a housekeeping step has taken the scheduler's locks it must give back
        server.send_signal(signal.SIGINT)
        server.wait(timeout=10)
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
        if server.poll() is None:
            server.kill()
            server.wait()
    assert worker.returncode == 0, output
    assert "event=redis_gone" in output and "stopping=True" in output
    assert "event=worker_stopped" in output and "Traceback" not in output


@pytest.mark.parametrize("stopping", [True, False], ids=["while-stopping", "while-working"])
def test_redis_lost_is_a_clean_stop_only_when_asked_to_stop(redis_url, tag, tmp_path, monkeypatch, stopping):
    """Redis gone as RQ says its last words: fine during a requested stop (exit 0); otherwise
    run_worker reports it (the worker exits 4, to be restarted)."""
    from worker.housekeeping import ScreeningWorker
    from worker.runner import run_worker

    def work(self, **kwargs):
        self.stop_requested = stopping
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(ScreeningWorker, "work", work)
    settings = worker_settings(redis_url, tmp_path, tag)
    assert run_worker(settings, redis.Redis.from_url(redis_url)) is stopping


def test_a_worker_without_redis_url_says_why(tmp_path):
    import os
    import subprocess
    import sys

    from tests.workers import REPO

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run([sys.executable, "-m", "worker"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "REDIS_URL is required" in result.stderr
