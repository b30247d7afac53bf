"""SIGKILL workers mid-job: every request must still end in a result or a reported failure.

Each round starts `victims` worker processes (`python -m worker`, with a job that sleeps a few
seconds before screening, so a kill lands mid-job), waits until each victim is running a job, kills
it with SIGKILL at a random moment, then lets a surviving worker (in this process) reclaim and
finish the retried jobs. The whole service (bot, workers and Redis killed at random while 50
photos are in flight) is `python -m benchmarks.chaos`.
Requests alternate between one retry left (the retry must produce a result) and none (a
WORKER_LOST failure must be published). The test runs a few trials; for the 20+ trial run:

    .venv/bin/python -m tests.test_worker_chaos --trials 24 [--bundle models/demo]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis
from rq import Worker

from bot.app import cancel_and_wait
from bot.queue import ScreeningQueue
from model.types import HeatmapLabels
from tests.bot_harness import bot_settings
from tests.telegram_emulator import TelegramEmulator
from tests.workers import InThreadWorker, start_worker, worker_settings
from worker.housekeeping import reclaim_abandoned
from worker.runner import build_worker
from worker.types import FailureKind

SLOW_S = 3.0  # the victims' job sleeps this long, so a kill within it is mid-job


@dataclass
class ChaosReport:
    trials: int = 0
    killed_mid_job: int = 0
    results: int = 0
    worker_lost: int = 0
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)


def _running(connection, worker_name: str) -> bool:
    """Whether the worker is in the middle of a job (RQ's record of the worker)."""
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + worker_name, connection=connection)
    return worker is not None and worker.get_current_job_id() is not None


def _running_workers(connection, names) -> list[str]:
    return [name for name in names if _running(connection, name)]


async def pump(queue: ScreeningQueue, into: asyncio.Queue) -> None:
    # One long-lived iteration: cancelling a step of an async generator would end it.
    async for delivery in queue.deliveries():
        await into.put(delivery)


async def run_round(redis_url, bundle, photo, victims, report, rng, screener) -> None:
    tag = uuid.uuid4().hex[:10]
    settings = worker_settings(redis_url, bundle, tag)
    connection = redis.Redis.from_url(redis_url)
    database = Path(tempfile.mkdtemp()) / "bot.sqlite3"
    with_retry, without_retry = (
        ScreeningQueue(
            bot_settings(TelegramEmulator(), database, redis_url, tag, max_retries=retries, retry_intervals_s=[0]),
            job_function="tests.worker_jobs.slow_screen",
        )
        for retries in (1, 0)
    )
    await with_retry.start()
    await without_retry.start()
    expected: dict[str, bool] = {}  # request id -> retried (so it must succeed)
    processes = []
    try:
        for n in range(victims):
            request_id = f"req-{tag}-{n}"
            retried = (report.trials + n) % 2 == 0
            await (with_retry if retried else without_retry).submit(request_id, photo, HeatmapLabels())
            expected[request_id] = retried
        names = [f"victim-{tag}-{n}" for n in range(victims)]
        processes = {
            name: start_worker(settings, "--name", name, CHAOS_SLOW_S=str(SLOW_S)) for name in names
        }
        kill_at: dict[str, float] = {}
        killed: set[str] = set()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            all_started = all(
                connection.exists(f"mpox:test:started:{rid}") for rid in expected
            ) and not connection.llen(f"rq:queue:{settings.queue_name}")
            running = _running_workers(connection, processes)
            for name in processes:
                if all_started and name not in kill_at and name not in running:
                    kill_at[name] = time.monotonic()  # no job left for this victim
            for name in running:
                if name not in kill_at:
                    kill_at[name] = time.monotonic() + rng.uniform(0.0, SLOW_S * 0.8)
            for name, when in kill_at.items():
                process = processes[name]
                if time.monotonic() >= when and name not in killed:
                    busy = _running(connection, name)
                    process.send_signal(signal.SIGKILL)
                    killed.add(name)
                    report.killed_mid_job += busy
            if all(p.poll() is not None for p in processes.values()):
                break
            await asyncio.sleep(0.05)
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            process.wait()
        report.trials += victims

        # The survivor, a worker in this process, reclaims the victims' jobs (their heartbeats
        # expire) and works the queue.
        outcomes: dict[str, list] = {rid: [] for rid in expected}
        received: asyncio.Queue = asyncio.Queue()
        reader = asyncio.create_task(pump(with_retry, received))
        deadline = time.monotonic() + 60
        survivor_queue = build_worker(settings, connection).queues[0]
        with InThreadWorker(settings, screener):
            while any(not found for found in outcomes.values()) and time.monotonic() < deadline:
                await asyncio.to_thread(reclaim_abandoned, survivor_queue)
                try:
                    delivery = await asyncio.wait_for(received.get(), 1.0)
                except TimeoutError:
                    continue
                outcomes[delivery.outcome.request_id].append(delivery.outcome)
                await with_retry.ack(delivery)
        try:  # anything more is a duplicate
            while True:
                delivery = await asyncio.wait_for(received.get(), 1.5)
                outcomes[delivery.outcome.request_id].append(delivery.outcome)
        except TimeoutError:
            pass
        # One cancel() can be dropped by Python 3.11 inside redis-py's reads; the reader then read
        # on and this test hung until its timeout (CI, 2026-11-29). The bot stops its reader so too.
        await cancel_and_wait(reader)
        for rid, found in outcomes.items():
            if not found:
                report.missing.append(rid)
                continue
            if len(found) > 1:
                report.duplicates.append(rid)
            outcome = found[0]
            if outcome.succeeded:
                report.results += 1
            elif outcome.failure is FailureKind.WORKER_LOST:
                report.worker_lost += 1
            if expected[rid] and not outcome.succeeded:
                report.wrong.append(f"{rid}: retried but {outcome.failure}")
            if not outcome.succeeded and outcome.failure is not FailureKind.WORKER_LOST:
                report.wrong.append(f"{rid}: {outcome.failure}")
    finally:
        for process in processes.values() if processes else []:
            if process.poll() is None:
                process.kill()
        await with_retry.close()
        await without_retry.close()
        for key in connection.scan_iter(f"*{tag}*", count=1000):
            connection.delete(key)


async def run_chaos(redis_url, bundle, photo, trials, screener, victims=2, seed=0) -> ChaosReport:
    report = ChaosReport()
    rng = random.Random(seed)
    while report.trials < trials:
        await run_round(redis_url, bundle, photo, min(victims, trials - report.trials), report, rng, screener)
    return report


async def test_sigkilled_workers_never_lose_a_request(
    redis_url, test_bundle_path, screener, shared_photo_paths
):
    photo = next(p for p in shared_photo_paths if p.parent.name == "mpox").read_bytes()
    report = await run_chaos(redis_url, test_bundle_path, photo, trials=4, screener=screener, victims=2)
    assert report.trials == 4
    assert not report.missing and not report.duplicates and not report.wrong, report
    assert report.results + report.worker_lost == 4
    assert report.killed_mid_job >= 3, report  # the kills really landed mid-job


def main() -> None:
    import logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--victims", type=int, default=4, help="worker processes killed per round")
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from model import load_screener
    from tests.bundles import SHARED_DATA, build_test_bundle

    bundle = args.bundle
    if bundle is None:
        demo = Path(__file__).resolve().parent.parent / "models" / "demo"
        bundle = demo if demo.is_dir() else build_test_bundle(Path(tempfile.mkdtemp()) / "b").path
    screener = load_screener(bundle)
    photo = sorted((SHARED_DATA / "mpox").iterdir())[0].read_bytes()
    start = time.monotonic()
    report = asyncio.run(run_chaos(args.redis_url, bundle, photo, args.trials, screener, args.victims))
    print(
        f"trials={report.trials} killed_mid_job={report.killed_mid_job} results={report.results} "
        f"worker_lost={report.worker_lost} missing={len(report.missing)} "
        f"duplicates={len(report.duplicates)} wrong={len(report.wrong)} "
        f"seconds={time.monotonic() - start:.0f}"
    )
    if report.missing or report.duplicates or report.wrong:
        print(report)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
