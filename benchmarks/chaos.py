"""Chaos: kill -9 the bot, a worker or Redis at random while photos are in flight; count answers.

Runs the service as deployed, as processes: Redis with its append-only file (fsync every second,
as docker-compose.yml and scripts/run run it), `python -m bot` against the Bot API emulator, and
`python -m worker` processes. Simulated people consent, then send photos; meanwhile, at random
moments, one component is killed with SIGKILL and started again a little later. When every kill
is done, it waits for the answers and prints, over all photos, how many were answered once, not at
all, or more than once.

    .venv/bin/python -m benchmarks.chaos [--photos 50] [--users 10] [--kills 9] [--workers 2] [--seed 0]

Needs redis-server. Target (issue 12): 0 unanswered and 0 answered twice.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.worker import REPO, SHARED_DATA, resolve_bundle
from tests.bot_harness import TOKEN, consented_user, text_of
from tests.redis_server import free_port
from tests.telegram_emulator import TelegramEmulator

ANSWER_WORDS = ("could not be", "Result:")  # a result (with or without heatmap), or a refusal


@dataclass
class ChaosReport:
    photos: int = 0
    answered_once: int = 0
    unanswered: int = 0
    answered_twice: int = 0
    kills: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def line(self) -> str:
        kills = " ".join(f"{name}={count}" for name, count in sorted(self.kills.items()))
        return (f"photos={self.photos} answered_once={self.answered_once} unanswered={self.unanswered} "
                f"answered_twice={self.answered_twice} kills: {kills} seconds={self.seconds:.0f}")


class Stack:
    """Redis, workers and the bot as processes, each of which can be killed and started again."""

    def __init__(self, folder: Path, telegram: TelegramEmulator, bundle: Path, workers: int) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "TELEGRAM", "CLINICIAN"))}
        common = dict(base, REDIS_URL=self.url, LOG_LEVEL="WARNING", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
        self.worker_env = dict(common, MODEL_BUNDLE=str(bundle), LIVENESS_TTL_S="6", SWEEP_INTERVAL_S="1")
        self.bot_env = dict(common, TELEGRAM_TOKEN=TOKEN, TELEGRAM_BASE_URL=telegram.base_url,
                            TELEGRAM_BASE_FILE_URL=telegram.base_file_url, DATABASE_PATH=str(folder / "bot.sqlite3"),
                            RECOVERY_INTERVAL_S="2", USER_RATE_LIMIT="1000", RETRY_INTERVALS_S="1,2")
        self.processes: dict[str, subprocess.Popen] = {}
        self.names = ["redis", "bot", *[f"worker-{n}" for n in range(workers)]]

    def start(self, name: str) -> None:
        if name == "redis":
            command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                       "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
            env = {"PATH": os.environ.get("PATH", "")}
        elif name == "bot":
            command, env = [sys.executable, "-m", "bot"], self.bot_env
        else:
            command, env = [sys.executable, "-m", "worker"], self.worker_env
        self.processes[name] = subprocess.Popen(command, cwd=self.folder, env=env, stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL)

    def kill(self, name: str) -> None:
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        for name in reversed(self.names):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()


def answers_to(telegram: TelegramEmulator, chat_id: int, message_id: int) -> int:
    return sum(
        1 for m in telegram.sent(chat_id)
        if m.get("reply_to_message", {}).get("message_id") == message_id
        and ("photo" in m or any(word in text_of(m) for word in ANSWER_WORDS))
    )


async def unleash(stack: Stack, kills: int, window_s: float, rng: random.Random, report: ChaosReport) -> None:
    """`kills` SIGKILLs at random moments within `window_s`, each victim restarted 1-4 s later."""
    moments = sorted(rng.uniform(0, window_s) for _ in range(kills))
    started = time.monotonic()
    for moment in moments:
        await asyncio.sleep(max(0.0, started + moment - time.monotonic()))
        victim = rng.choice(stack.names)
        stack.kill(victim)
        report.kills[victim.split("-")[0]] += 1
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        stack.start(victim)


async def run_chaos(bundle: Path, photos: list[bytes], count: int = 50, users: int = 10, kills: int = 9,
                    workers: int = 2, seed: int = 0, answer_timeout_s: float = 300.0) -> ChaosReport:
    rng = random.Random(seed)
    report = ChaosReport(photos=count)
    start = time.monotonic()
    with TelegramEmulator() as telegram, tempfile.TemporaryDirectory() as folder:
        stack = Stack(Path(folder), telegram, bundle, workers)
        for name in stack.names:
            stack.start(name)
        try:
            people = [await consented_user(telegram, 7000 + n, timeout=120) for n in range(users)]
            sent: list[tuple[int, int]] = []
            send_window_s = count * 0.4

            async def send_photos() -> None:
                for n in range(count):
                    person = people[n % users]
                    message = telegram.send_photo(person, photos[n % len(photos)])
                    sent.append((person.id, message["message_id"]))
                    await asyncio.sleep(rng.uniform(0.1, 0.7))

            await asyncio.gather(send_photos(), unleash(stack, kills, send_window_s + 10, rng, report))
            deadline = time.monotonic() + answer_timeout_s
            while any(answers_to(telegram, chat, message) == 0 for chat, message in sent):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(5.0)  # a second answer to anything would come now
            counts = [answers_to(telegram, chat, message) for chat, message in sent]
        finally:
            stack.stop()
    report.answered_once = sum(1 for c in counts if c == 1)
    report.unanswered = sum(1 for c in counts if c == 0)
    report.answered_twice = sum(1 for c in counts if c > 1)
    report.seconds = time.monotonic() - start
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=50)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--kills", type=int, default=9)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bundle", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    bundle = resolve_bundle(args.bundle)
    photos = [p.read_bytes() for p in sorted(SHARED_DATA.rglob("*")) if p.is_file()][:40]
    if not photos:
        from tests.images import encode, skin_photo

        photos = [encode(skin_photo(seed=n), "JPEG") for n in range(10)]
    report = asyncio.run(run_chaos(bundle, photos, args.photos, args.users, args.kills, args.workers, args.seed))
    print(report.line())
    if report.unanswered or report.answered_twice:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
