"""End-to-end benchmark: simulated people send photos to the bot through the Bot API emulator.

The bot runs as in production (Redis mode, long polling over real HTTP against
tests/telegram_emulator.py on loopback) with 1, then 2 `python -m worker` processes. Each of N
simulated users consents, then sends photos one after another, waiting for each reply and pausing
--think-s seconds on average before the next (0: back to back, the saturation throughput). Prints
p50/p95 photo-to-reply latency (the user's photo arriving at "Telegram" until the bot's result
photo arrives there) and photos/s, and counts failures (no reply, or an error reply).

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

from benchmarks.worker import REPO, SHARED_DATA, percentile, resolve_bundle
from tests.bot_harness import bot_settings, button_data, running_bot
from tests.telegram_emulator import TelegramEmulator
from worker.service import RedisScreeningService


@contextlib.contextmanager
def worker_processes(count: int, env: dict[str, str]):
    workers = [
        subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=env) for _ in range(count)
    ]
    try:
        yield workers
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)


async def wait_for_workers(service: RedisScreeningService, count: int, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while (await service.health()).workers < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{count} workers did not start within {timeout:.0f} s")
        await asyncio.sleep(0.5)


async def simulate_user(telegram, user_id: int, photos: list[bytes], count: int, latencies: list[float],
                        failures: list[str], think_s: float = 0.0) -> None:
    user = telegram.user(user_id)
    telegram.send_text(user, "/start")
    notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m)
    telegram.press(user, notice, button_data(notice, "consent:"))
    await asyncio.sleep(0.5)
    pause = random.Random(user_id)
    for n in range(count):
        # A person looks at the reply and takes the next photo: think_s on average (0.5x to 1.5x).
        await asyncio.sleep(think_s * pause.uniform(0.5, 1.5))
        sent_at = time.monotonic()
        message = telegram.send_photo(user, photos[(user_id + n) % len(photos)])
        try:
            reply = await telegram.wait_for_reply(message, lambda m: "photo" in m or "screened" in m.get("text", ""), 60)
        except TimeoutError:
            failures.append(f"user {user_id}: no reply")
            continue
        if "photo" not in reply:
            failures.append(f"user {user_id}: {reply.get('text', '')[:60]}")
            continue
        latencies.append(telegram.sent_at[(user.id, reply["message_id"])] - sent_at)


async def run(workers: int, args: argparse.Namespace, bundle: Path, photos: list[bytes]) -> None:
    unique = uuid.uuid4().hex[:8]
    queue, stream = f"e2e-{unique}", f"e2e:results:{unique}"
    env = dict(os.environ, REDIS_URL=args.redis_url, SCREENING_QUEUE=queue, RESULTS_STREAM=stream,
               MODEL_BUNDLE=str(bundle), LOG_LEVEL="WARNING")
    with TelegramEmulator() as telegram, tempfile.TemporaryDirectory() as folder, worker_processes(workers, env):
        settings = bot_settings(
            telegram, bundle, Path(folder) / "bot.sqlite3", redis_url=args.redis_url, queue_name=queue,
            results_stream=stream, user_rate_limit=10_000, clinician_chat_id=None,
        )
        service = RedisScreeningService(settings, consumer="bot")
        async with running_bot(settings, service):
            await wait_for_workers(service, workers)
            warm: list[float] = []
            await simulate_user(telegram, 1, photos, 2, warm, [])
            latencies: list[float] = []
            failures: list[str] = []
            started = time.monotonic()
            await asyncio.gather(*(
                simulate_user(telegram, 1000 + n, photos, args.photos_per_user, latencies, failures, args.think_s)
                for n in range(args.users)
            ))
            elapsed = time.monotonic() - started
    connection = redis.Redis.from_url(args.redis_url)
    for key in connection.scan_iter(f"*{unique}*", count=1000):
        connection.delete(key)
    ms = [value * 1000 for value in latencies]
    print(
        f"workers={workers} users={args.users} think_s={args.think_s:g} photos={len(ms)} failures={len(failures)} "
        f"p50_ms={percentile(ms, 50):.0f} p95_ms={percentile(ms, 95):.0f} "
        f"photos_per_s={len(ms) / elapsed:.2f}",
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
