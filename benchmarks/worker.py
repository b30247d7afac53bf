"""Benchmark the worker: throughput, queue wait and job time with 1 and 2 worker processes.

Screens the shared photos in-process first (the core's own screen time), then through Redis with
1 and 2 `python -m worker` processes, and prints photos/s, p50/p95 submit-to-outcome time, job
time (each worker logs it: `event=screened ... job_ms=`), the ratio of job time to screen time,
and one worker's resident memory (its own, and mapped library files).

    .venv/bin/python -m benchmarks.worker [--bundle models/demo] [--photos 93] [--workers 1 2]

Needs a Redis (REDIS_URL or redis://127.0.0.1:6379/15). Targets: job time within 10 % of the
screen time; 2 workers >= 1.8x the throughput of one on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import redis

from bot.queue import ScreeningQueue
from bot.settings import BotSettings
from model.types import HeatmapLabels
from worker.settings import WorkerSettings

JOB_MS = re.compile(r"event=screened .* job_ms=([0-9.]+)")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data" / "mpox-web-2022"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def resolve_bundle(bundle: Path | None) -> Path:
    if bundle is not None:
        return bundle
    demo = REPO / "models" / "demo"
    if demo.is_dir():
        return demo
    from tests.bundles import build_test_bundle

    print("models/demo is absent: building a test bundle", flush=True)
    return build_test_bundle(Path(tempfile.mkdtemp()) / "bundle").path


def screen_in_process(settings: WorkerSettings, photos: list[bytes]) -> list[float]:
    """The core's own screen time, with the Screener loaded as a worker loads it."""
    from worker.jobs import load_screener

    if settings.tf_threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(settings.tf_threads))
    screener = load_screener(settings)
    times = []
    for photo in photos:
        start = time.perf_counter()
        screener.screen(photo)
        times.append((time.perf_counter() - start) * 1000)
    return times


class Resident(NamedTuple):
    """A process's resident memory in MB. `file` is mapped files (TensorFlow's shared libraries
    mostly): shared and reclaimable, so a container's usage as podman or docker report it leaves
    most of it out; `anon` is the process's own memory."""

    rss: float
    peak: float
    anon: float
    file: float


def resident_mb(pid: int) -> Resident:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    kb = [int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM", "RssAnon", "RssFile")]
    return Resident(*(value / 1024 for value in kb))


async def run_workers(settings: WorkerSettings, photos: list[bytes], count: int) -> dict:
    env = dict(
        os.environ,
        REDIS_URL=settings.redis_url,
        SCREENING_QUEUE=settings.queue_name,
        RESULTS_STREAM=settings.results_stream,
        MODEL_BUNDLE=str(settings.model_bundle),
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    queue = ScreeningQueue(BotSettings(
        _env_file=None, telegram_token="0:bench", redis_url=settings.redis_url, queue_name=settings.queue_name,
        results_stream=settings.results_stream, read_block_ms=200,
    ))
    await queue.start()
    with contextlib.ExitStack() as files:
        logs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(count)]
        return await _measure(queue, env, photos, count, logs)


async def _measure(queue: ScreeningQueue, env: dict[str, str], photos: list[bytes], count: int, logs: list) -> dict:
    workers = [
        subprocess.Popen([sys.executable, "-m", "worker"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                         text=True)
        for log in logs
    ]
    try:
        while await queue.live_workers() < count:
            await asyncio.sleep(0.2)
        tag = uuid.uuid4().hex[:8]
        submitted: dict[str, float] = {}
        outcome_ms: list[float] = []
        start = time.perf_counter()
        for n, photo in enumerate(photos):
            submitted[f"bench-{tag}-{n}"] = time.perf_counter()
            await queue.submit(f"bench-{tag}-{n}", photo, HeatmapLabels())
        async for delivery in queue.deliveries():
            outcome_ms.append((time.perf_counter() - submitted.pop(delivery.outcome.request_id)) * 1000)
            await queue.ack(delivery)
            if not submitted:
                break
        wall = time.perf_counter() - start
        memory = resident_mb(workers[0].pid)
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(timeout=60)
        await queue.close()
    job_ms = []
    for log in logs:
        log.seek(0)
        job_ms += [float(found) for found in JOB_MS.findall(log.read())]
    return {"wall_s": wall, "outcome_ms": outcome_ms, "job_ms": job_ms, "memory": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--photos", type=int, default=0, help="how many shared photos (0: all)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    args = parser.parse_args()

    bundle = resolve_bundle(args.bundle)
    paths = sorted(p for p in SHARED_DATA.rglob("*") if p.is_file())
    photos = [p.read_bytes() for p in (paths[: args.photos] if args.photos else paths)]
    print(f"bundle={bundle} photos={len(photos)} cpus={os.cpu_count()}", flush=True)

    screen_ms = screen_in_process(WorkerSettings(redis_url=args.redis_url, model_bundle=bundle), photos)
    screen_p50 = statistics.median(screen_ms)
    print(
        f"in-process screen: p50={screen_p50:.1f} ms p95={percentile(screen_ms, 95):.1f} ms "
        f"throughput={len(photos) / (sum(screen_ms) / 1000):.2f} photos/s",
        flush=True,
    )

    tag = uuid.uuid4().hex[:8]
    connection = redis.Redis.from_url(args.redis_url)
    throughput = {}
    try:
        for count in args.workers:
            settings = WorkerSettings(
                redis_url=args.redis_url,
                queue_name=f"bench-{tag}-{count}",
                results_stream=f"bench:results:{tag}:{count}",
                model_bundle=bundle,
            )
            run = asyncio.run(run_workers(settings, photos, count))
            throughput[count] = len(photos) / run["wall_s"]
            job_p50 = statistics.median(run["job_ms"])
            print(
                f"workers={count} throughput={throughput[count]:.2f} photos/s "
                f"submit-to-outcome p50={percentile(run['outcome_ms'], 50):.0f} ms "
                f"p95={percentile(run['outcome_ms'], 95):.0f} ms "
                f"job p50={job_p50:.1f} ms p95={percentile(run['job_ms'], 95):.1f} ms "
                f"job/screen={job_p50 / screen_p50:.3f} "
                f"worker_rss={run['memory'].rss:.0f} MB (peak {run['memory'].peak:.0f} MB; "
                f"anonymous {run['memory'].anon:.0f} MB, mapped files {run['memory'].file:.0f} MB)",
                flush=True,
            )
    finally:
        for key in connection.scan_iter(f"*{tag}*", count=1000):
            connection.delete(key)
    if 1 in throughput and 2 in throughput:
        print(f"scaling 2 workers / 1 = {throughput[2] / throughput[1]:.2f}x")


if __name__ == "__main__":
    main()
