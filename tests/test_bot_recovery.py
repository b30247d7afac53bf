"""No photo lost when a process dies: `python -m bot` is killed (SIGKILL) in the middle of each
step of a photo's path, Redis is killed or loses its data between steps, and every photo still
gets exactly one answer. A slow Telegram (the emulator's `delays`) holds the bot inside a step
while the test watches the bot's own store for the moment to kill it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.bot_harness import TOKEN, consented_user, eventually, text_of
from tests.redis_server import free_port, start_redis
from tests.telegram_emulator import TelegramEmulator
from tests.workers import InThreadWorker, worker_settings

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


class Service:
    """A private Redis (append-only), a bot process that can be killed, a worker in a thread."""

    def __init__(self, tmp_path: Path, telegram: TelegramEmulator, bundle: Path, screener) -> None:
        self.tmp_path, self.telegram, self.screener = tmp_path, telegram, screener
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.redis_server = start_redis(self.port, tmp_path)
        self.database = tmp_path / "bot.sqlite3"
        self.worker_settings = worker_settings(self.url, bundle, "recovery")
        self.bot: subprocess.Popen | None = None

    def start_bot(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "TELEGRAM", "CLINICIAN"))}
        env.update(
            PYTHONPATH=str(REPO), TELEGRAM_TOKEN=TOKEN, TELEGRAM_BASE_URL=self.telegram.base_url,
            TELEGRAM_BASE_FILE_URL=self.telegram.base_file_url, REDIS_URL=self.url,
            SCREENING_QUEUE=self.worker_settings.queue_name, RESULTS_STREAM=self.worker_settings.results_stream,
            DATABASE_PATH=str(self.database), RECOVERY_INTERVAL_S="1", READ_BLOCK_MS="200",
        )
        self.bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=self.tmp_path, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill_bot(self) -> None:
        self.bot.send_signal(signal.SIGKILL)
        self.bot.wait()

    def kill_redis(self, restart: bool = True) -> None:
        self.redis_server.kill()  # SIGKILL: no chance to write anything more
        self.redis_server.wait()
        if restart:
            self.redis_server = start_redis(self.port, self.tmp_path)

    def worker(self) -> InThreadWorker:
        return InThreadWorker(self.worker_settings, self.screener)

    def case(self) -> dict | None:
        """The only case in the bot's store, as the bot wrote it (None before there is one)."""
        if not self.database.exists():
            return None
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM cases").fetchone()
        return dict(row) if row else None

    def unhandled_updates(self) -> int:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM inbox WHERE handled_at IS NULL").fetchone()[0]

    def close(self) -> None:
        if self.bot is not None and self.bot.poll() is None:
            self.kill_bot()
        self.redis_server.kill()
        self.redis_server.wait()


@pytest.fixture
def service(tmp_path, test_bundle_path, screener):
    with TelegramEmulator() as telegram:
        running = Service(tmp_path, telegram, test_bundle_path, screener)
        try:
            yield running
        finally:
            running.close()


def results_for(telegram: TelegramEmulator, user, message) -> list[dict]:
    replies = [m for m in telegram.sent(user.id) if m.get("reply_to_message", {}).get("message_id") == message["message_id"]]
    return [m for m in replies if "photo" in m or "could not be" in text_of(m)]


def acknowledgements(telegram: TelegramEmulator, user, message) -> list[dict]:
    replies = [m for m in telegram.sent(user.id) if m.get("reply_to_message", {}).get("message_id") == message["message_id"]]
    return [m for m in replies if "Photo received" in text_of(m)]


STEPS = {
    # step: (the Telegram call held up, how the test sees the bot is inside the step)
    "received": ("sendchataction", lambda s: s.unhandled_updates() > 0 and s.case() is None),
    "downloading": ("download", lambda s: (c := s.case()) is not None and c["queued_at"] is None),
    "acknowledging": ("sendmessage", lambda s: (c := s.case()) is not None and c["queued_at"] and not c["acknowledged_at"]),
    "answering": ("sendphoto", lambda s: (c := s.case()) is not None and c["verdict"] and not c["answered_at"]),
}


@pytest.mark.parametrize("step", list(STEPS))
async def test_bot_killed_inside_each_step_still_answers_once(service, shared_photo_paths, step):
    telegram = service.telegram
    held, inside = STEPS[step]
    service.start_bot()
    user = await consented_user(service.telegram, 401, timeout=60)
    with service.worker():
        telegram.delays[held] = 60.0
        message = telegram.send_photo(user, shared_photo_paths[0].read_bytes())
        await eventually(lambda: inside(service), timeout=60, what=f"the bot inside step {step}")
        service.kill_bot()
        telegram.delays.clear()
        assert results_for(telegram, user, message) == []
        service.start_bot()
        await eventually(lambda: results_for(telegram, user, message), timeout=90, what="the answer")
        await asyncio.sleep(2.0)  # a second answer would come now
    assert len(results_for(telegram, user, message)) == 1
    assert len(acknowledgements(telegram, user, message)) == 1


async def test_redis_killed_between_steps_loses_nothing(service, shared_photo_paths):
    """Queued while no worker runs; Redis is SIGKILLed (its append-only file keeps the job)."""
    telegram = service.telegram
    service.start_bot()
    user = await consented_user(service.telegram, 402, timeout=60)
    message = telegram.send_photo(user, shared_photo_paths[1].read_bytes())
    await eventually(lambda: (c := service.case()) is not None and c["acknowledged_at"], timeout=60, what="the photo queued")
    service.kill_redis()
    with service.worker():
        await eventually(lambda: results_for(telegram, user, message), timeout=90, what="the answer")
        await asyncio.sleep(2.0)
    assert len(results_for(telegram, user, message)) == 1


async def test_redis_losing_its_data_is_recovered_without_a_restart(service, shared_photo_paths):
    """Redis restarted without its data (or FLUSHALL) after the photo was queued: the bot sees the
    job is gone, fetches the photo from Telegram again and queues it again; it goes on reading
    outcomes (its consumer group is recreated), all without restarting."""
    telegram = service.telegram
    service.start_bot()
    user = await consented_user(service.telegram, 403, timeout=60)
    message = telegram.send_photo(user, shared_photo_paths[2].read_bytes())
    await eventually(lambda: (c := service.case()) is not None and c["acknowledged_at"], timeout=60, what="the photo queued")
    redis.Redis.from_url(service.url).flushall()
    with service.worker():
        await eventually(lambda: results_for(telegram, user, message), timeout=90, what="the answer")
        second = telegram.send_photo(user, shared_photo_paths[3].read_bytes())
        await eventually(lambda: results_for(telegram, user, second), timeout=90, what="a later photo's answer")
        await asyncio.sleep(2.0)
    assert len(results_for(telegram, user, message)) == 1 and len(results_for(telegram, user, second)) == 1
    assert service.bot.poll() is None  # never restarted
