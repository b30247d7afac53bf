"""End-to-end benchmark: simulated people send photos to the bot through the Bot API emulator.

Everything runs as in production, as separate processes: `python -m bot` (long polling over real
HTTP against tests/telegram_emulator.py on loopback) and 1, then 2 `python -m worker` processes,
on one Redis. Each of N simulated people consents, then sends photos one after another, waiting
for each result and pausing --think-s seconds on average before the next (0: back to back, the
saturation throughput). Prints p50/p95 photo-to-result latency (the photo arriving at "Telegram"
until the bot's result photo arrives there), photos/s, failures (no result, or an error reply),
and the resident memory of the bot and of a worker.

    .venv/bin/python -m benchmarks.e2e [--users 20] [--photos-per-user 5] [--workers 1 2]

Needs a Redis (REDIS_URL or redis://127.0.0.1:6379/15). Target: p50 <= 300 ms at 20 concurrent
users with 2 workers, and no failures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from benchmarks.worker import REPO, SHARED_DATA, percentile, resident_mb, resolve_bundle
from bot.queue import ScreeningQueue
from bot.settings import BotSettings
from tests.bot_harness import TOKEN, button_data
from tests.telegram_emulator import TelegramEmulator


@contextlib.contextmanager
def processes(commands: list[list[str]], env: dict[str, str]):
    started = [subprocess.Popen(command, cwd=REPO, env=env) for command in commands]
    try:
        yield started
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(60)


async def wait_for_workers(queue: ScreeningQueue, count: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while await queue.live_workers() < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{count} workers did not start within {timeout:.0f} s")
        await asyncio.sleep(0.5)


async def simulate_user(telegram, user_id: int, photos: list[bytes], count: int, latencies: list[float],
                        failures: list[str], think_s: float = 0.0) -> None:
    user = telegram.user(user_id)
    telegram.send_text(user, "/start")
    notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m, timeout=60)
    telegram.press(user, notice, button_data(notice, "consent:"))
    await telegram.wait_for(user.id, lambda m: "close up" in (m.get("text") or ""), timeout=60)
    pause = random.Random(user_id)
    for n in range(count):
        # A person looks at the reply and takes the next photo: think_s on average (0.5x to 1.5x).
        await asyncio.sleep(think_s * pause.uniform(0.5, 1.5))
        sent_at = time.monotonic()
        message = telegram.send_photo(user, photos[(user_id + n) % len(photos)])
        try:
            reply = await telegram.wait_for_reply(
                message, lambda m: "photo" in m or "screened" in (m.get("text") or ""), 60
            )
        except TimeoutError:
            failures.append(f"user {user_id}: no reply")
            continue
        if "photo" not in reply:
            failures.append(f"user {user_id}: {reply.get('text', '')[:60]}")
            continue
        latencies.append(telegram.sent_at[(user.id, reply["message_id"])] - sent_at)


async def run(workers: int, args: argparse.Namespace, bundle: Path, photos: list[bytes]) -> None:
    tag = uuid.uuid4().hex[:8]
    with TelegramEmulator() as telegram, tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ, REDIS_URL=args.redis_url, SCREENING_QUEUE=f"e2e-{tag}", RESULTS_STREAM=f"e2e:results:{tag}",
                   MODEL_BUNDLE=str(bundle), LOG_LEVEL="WARNING", TF_CPP_MIN_LOG_LEVEL="2")
        bot_env = dict(env, TELEGRAM_TOKEN=TOKEN, TELEGRAM_BASE_URL=telegram.base_url,
                       TELEGRAM_BASE_FILE_URL=telegram.base_file_url, DATABASE_PATH=f"{folder}/bot.sqlite3",
                       USER_RATE_LIMIT="10000")
        queue = ScreeningQueue(BotSettings(_env_file=None, telegram_token=TOKEN, redis_url=args.redis_url,
                                           queue_name=f"e2e-{tag}", results_stream=f"e2e:results:{tag}"))
        with processes([[sys.executable, "-m", "worker"]] * workers, env) as worker_processes, \
                processes([[sys.executable, "-m", "bot"]], bot_env) as (bot,):
            await wait_for_workers(queue, workers)
            await simulate_user(telegram, 1, photos, 2, [], [])  # warm-up
            latencies: list[float] = []
            failures: list[str] = []
            started = time.monotonic()
            await asyncio.gather(*(
                simulate_user(telegram, 1000 + n, photos, args.photos_per_user, latencies, failures, args.think_s)
                for n in range(args.users)
            ))
            elapsed = time.monotonic() - started
            bot_rss, worker_rss = resident_mb(bot.pid), resident_mb(worker_processes[0].pid)
        await queue.close()
    connection = redis.Redis.from_url(args.redis_url)
    for key in connection.scan_iter(f"*{tag}*", count=1000):
        connection.delete(key)
    ms = [value * 1000 for value in latencies]
    print(
        f"workers={workers} users={args.users} think_s={args.think_s:g} photos={len(ms)} failures={len(failures)} "
        f"p50_ms={percentile(ms, 50):.0f} p95_ms={percentile(ms, 95):.0f} "
        f"photos_per_s={len(ms) / elapsed:.2f} bot_rss_mb={bot_rss.rss:.0f} (peak {bot_rss.peak:.0f}) "
        f"worker_rss_mb={worker_rss.rss:.0f} (peak {worker_rss.peak:.0f}, anonymous {worker_rss.anon:.0f})",
        flush=True,
    )
    for failure in failures[:5]:
        print(f"  failure: {failure}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--photos-per-user", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--think-s", type=float, default=3.0,
                        help="mean pause between a reply and the person's next photo (0: back to back)")
    parser.add_argument("--bundle", type=Path)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bundle = resolve_bundle(args.bundle)
    photos = [p.read_bytes() for p in sorted(SHARED_DATA.rglob("*")) if p.is_file()][:40]
    for workers in args.workers:
        asyncio.run(run(workers, args, bundle, photos))


if __name__ == "__main__":
    main()
