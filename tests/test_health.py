"""Health files: the bot and the workers touch theirs only while they can do their job, often
enough for the containers' check (docker/healthcheck.py, stale after 15 s in docker-compose.yml).

The bot: while updates can arrive (its polling returns, or its webhook server runs) and Redis
answers. A worker: while its heartbeat reaches Redis (it only starts once its model is loaded).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis

from bot.app import (
    HEALTH_TOUCH_EVERY_S,
    POLL_FRESH_S,
    POLL_TIMEOUT_S,
    receiving_updates,
    touch_health_file,
)
from bot.deps import DEPS_KEY
from tests.conftest import REPO
from tests.redis_server import free_port, start_redis
from tests.workers import worker_settings
from worker.housekeeping import Housekeeping
from worker.runner import build_worker
from worker.settings import HEALTH_TOUCH_EVERY_S as WORKER_TOUCH_EVERY_S

OLD = 1_000_000.0  # a file time long before the test


def compose_max_age_s(service: str) -> float:
    """The MAX_AGE_S that docker-compose.yml's check gives docker/healthcheck.py."""
    import yaml

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return float(compose["services"][service]["healthcheck"]["test"][-1])


def test_touches_leave_room_for_one_missed_touch_within_the_compose_check():
    for service, every_s in (("bot", HEALTH_TOUCH_EVERY_S), ("worker", WORKER_TOUCH_EVERY_S)):
        assert 2 * every_s <= compose_max_age_s(service), service
    # A long poll that returns on time is never taken for stopped polling.
    assert POLL_TIMEOUT_S < POLL_FRESH_S <= compose_max_age_s("bot")


@pytest.mark.parametrize(
    ("webhook", "running", "last_poll_ago_s", "expected"),
    [
        (False, True, 2.0, True),  # polling, a getUpdates just returned
        (False, True, POLL_TIMEOUT_S + 1.0, True),  # a long poll with nothing to say, late by a second
        (False, True, POLL_FRESH_S + 1.0, False),  # polling stopped returning
        (False, True, None, False),  # never polled yet
        (False, False, 1.0, False),  # the updater stopped
        (True, True, None, True),  # webhook server running: Telegram pushes, nothing polls
        (True, False, None, False),  # webhook server stopped
    ],
)
def test_the_bot_receives_updates_while_polling_returns_or_its_webhook_runs(webhook, running, last_poll_ago_s, expected):
    now = 5000.0
    last_poll_at = None if last_poll_ago_s is None else now - last_poll_ago_s
    assert receiving_updates(webhook, running, last_poll_at, now) is expected


class _Queue:
    def __init__(self, answers: bool) -> None:
        self.answers = answers

    async def ping(self) -> bool:
        return self.answers


def _bot_context(health_file: Path, redis_answers: bool, last_poll_ago_s: float | None):
    import time

    settings = SimpleNamespace(health_file=health_file, webhook_url=None)
    deps = SimpleNamespace(settings=settings, queue=_Queue(redis_answers))
    last_poll_at = None if last_poll_ago_s is None else time.monotonic() - last_poll_ago_s
    application = SimpleNamespace(bot_data={DEPS_KEY: deps}, updater=SimpleNamespace(running=True))
    return SimpleNamespace(application=application, bot=SimpleNamespace(last_poll_at=last_poll_at))


@pytest.mark.parametrize(
    ("redis_answers", "last_poll_ago_s", "touched"),
    [(True, 1.0, True), (False, 1.0, False), (True, POLL_FRESH_S + 5, False), (True, None, False)],
    ids=["polling-and-redis", "redis-down", "polling-stopped", "not-polling-yet"],
)
async def test_the_bot_touches_its_health_file_only_while_it_can_work(tmp_path, redis_answers, last_poll_ago_s, touched):
    health = tmp_path / "health"
    health.touch()
    os.utime(health, (OLD, OLD))
    await touch_health_file(_bot_context(health, redis_answers, last_poll_ago_s))
    assert (health.stat().st_mtime > OLD) is touched


def test_a_worker_touches_its_health_file_only_while_its_heartbeat_reaches_redis(tmp_path):
    port = free_port()
    server = start_redis(port, tmp_path)
    health = tmp_path / "health"
    try:
        settings = worker_settings(f"redis://127.0.0.1:{port}/0", tmp_path / "unused-bundle", "health")
        worker = build_worker(settings, redis.Redis(port=port, socket_connect_timeout=1))
        housekeeping = Housekeeping(worker, settings.housekeeping_period_s, health)
        housekeeping.heartbeat()
        assert health.is_file()
        assert worker.connection.exists(worker.key)  # the heartbeat the bot counts

        os.utime(health, (OLD, OLD))
        server.kill()  # Redis stops answering
        server.wait()
        with pytest.raises(redis.ConnectionError):
            housekeeping.heartbeat()
        assert health.stat().st_mtime == OLD
    finally:
        server.kill()
        server.wait()


def test_a_worker_touches_its_health_file_every_5_s_whatever_its_other_periods(redis_url, tmp_path, tag):
    slow = worker_settings(redis_url, tmp_path, tag, liveness_ttl_s=120, sweep_interval_s=60)
    assert slow.housekeeping_period_s == WORKER_TOUCH_EVERY_S
