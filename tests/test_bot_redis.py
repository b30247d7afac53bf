"""The bot with Redis-mode screening, over real HTTP: restarts and stopped workers.

Jobs are run by a real SimpleWorker in burst mode (worker.runner.run_worker) in a thread, with the
session's real model; "the worker is down" is simply no worker running.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid

import pytest
import redis

from bot.messages import DISCLAIMER
from tests.bot_harness import bot_settings, consented_user, running_bot, text_of
from tests.telegram_emulator import TelegramEmulator
from worker import jobs
from worker.runner import run_worker
from worker.service import RedisScreeningService, ServiceHealth


@pytest.fixture(scope="module")
def telegram():
    with TelegramEmulator() as emulator:
        yield emulator


@pytest.fixture
def redis_settings(telegram, test_bundle_path, redis_url, tmp_path, screener):
    unique = uuid.uuid4().hex[:10]
    jobs.install_screener(screener)  # what the in-thread worker screens with

    def make(**overrides):
        return bot_settings(
            telegram,
            test_bundle_path,
            tmp_path / "bot.sqlite3",
            redis_url=redis_url,
            queue_name=f"bot-test-{unique}",
            results_stream=f"bot-test:results:{unique}",
            **overrides,
        )

    yield make
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"*{unique}*", count=1000):
        connection.delete(key)


async def run_jobs(settings) -> None:
    """A worker comes up, screens everything queued, and stops (burst mode).

    RQ's worker installs signal handlers, so it runs on the main thread: the bot's event loop
    pauses meanwhile, as if the bot were briefly slow; outcomes wait in the result stream.
    """
    run_worker(settings, redis.Redis.from_url(settings.redis_url), burst=True)



def replies_to(telegram, user, photo_message) -> list[dict]:
    return [
        m for m in telegram.sent(user.id)
        if "photo" in m and m.get("reply_to_message", {}).get("message_id") == photo_message["message_id"]
    ]


async def test_worker_down_user_told_delayed_then_answered(telegram, redis_settings, shared_photo_paths):
    settings = redis_settings()
    async with running_bot(settings):
        user = await consented_user(telegram, 401)
        photo = telegram.send_photo(user, shared_photo_paths[0].read_bytes())
        delayed = await telegram.wait_for(user.id, lambda m: "taking longer" in text_of(m))
        assert "no need to send the photo again" in text_of(delayed)
        await run_jobs(settings)  # the worker is back
        reply = await telegram.wait_for(user.id, lambda m: "photo" in m, timeout=60)
        assert reply["reply_to_message"]["message_id"] == photo["message_id"]
        assert DISCLAIMER in text_of(reply)


async def test_slow_queue_user_told_delayed_after_the_set_time(telegram, redis_settings, shared_photo_paths):
    settings = redis_settings(delayed_notice_after_s=0.5)
    service = RedisScreeningService(settings, consumer="bot")

    async def one_busy_worker() -> ServiceHealth:  # a worker is alive, busy with someone else's job
        return ServiceHealth(queued=1, workers=1)

    service.health = one_busy_worker
    async with running_bot(settings, service):
        user = await consented_user(telegram, 402, language="es")
        telegram.send_photo(user, shared_photo_paths[1].read_bytes())
        await telegram.wait_for(user.id, lambda m: "Analizando" in text_of(m))
        count = len(telegram.sent(user.id))
        delayed = await telegram.wait_for(user.id, lambda m: True, after=count, timeout=10)
        assert "tardando más de lo habitual" in text_of(delayed)
        await run_jobs(settings)
        reply = await telegram.wait_for(user.id, lambda m: "photo" in m, timeout=60)
        assert "no un diagnóstico" in text_of(reply)


async def test_restart_with_results_pending_delivers_each_once(telegram, redis_settings, shared_photo_paths):
    settings = redis_settings()
    first_service = RedisScreeningService(settings, consumer="bot")

    async def crash_before_ack(delivery) -> None:  # the bot dies after answering, before acking
        return None

    first_service.ack = crash_before_ack
    async with running_bot(settings, first_service):
        user = await consented_user(telegram, 403)
        answered_unacked = telegram.send_photo(user, shared_photo_paths[2].read_bytes())
        await telegram.wait_for(user.id, lambda m: "taking longer" in text_of(m))
        await run_jobs(settings)
        await telegram.wait_for(user.id, lambda m: "photo" in m, timeout=60)
        queued = telegram.send_photo(user, shared_photo_paths[3].read_bytes())
        await telegram.wait_for(user.id, lambda m: "Analysing" in text_of(m), after=len(telegram.sent(user.id)) - 1)

    await run_jobs(settings)  # screened while the bot is down: its outcome waits in the stream

    async with running_bot(settings):
        await telegram.wait_for(user.id, lambda m: bool(replies_to(telegram, user, queued)), timeout=60)
        await asyncio.sleep(1.0)  # room for a duplicate to show up, if the bot were to send one
        connection = redis.Redis.from_url(settings.redis_url)
        pending = connection.xpending(settings.results_stream, settings.results_group)
        assert pending["pending"] == 0
    assert len(replies_to(telegram, user, answered_unacked)) == 1
    assert len(replies_to(telegram, user, queued)) == 1


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_bot_waits_for_redis_that_is_not_up_yet(test_bundle_path, tmp_path):
    """Redis down at start-up: the bot keeps retrying (people's messages wait at Telegram)."""
    from bot.app import start_service
    from tests.redis_server import free_port, start_redis
    from worker.settings import WorkerSettings

    port = free_port()
    settings = WorkerSettings(_env_file=None, redis_url=f"redis://127.0.0.1:{port}/0", model_bundle=test_bundle_path)
    service = RedisScreeningService(settings)
    starting = asyncio.create_task(start_service(service, max_delay_s=0.5))
    await asyncio.sleep(1.5)
    assert not starting.done()
    server = start_redis(port, tmp_path)
    try:
        await asyncio.wait_for(starting, timeout=15)
        assert (await service.health()).queued == 0
    finally:
        await service.close()
        server.kill()
