"""Proofs from the security review, each of which must now fail: a forged outcome on the results
stream, a pickled job, a job naming another function. (Forged webhook updates and secrets in
every entry point: tests/test_bot_main.py; a 16-bit decompression bomb: test_model_imaging.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import zlib
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from model.types import ScreeningResult, Verdict
from tests.bot_harness import consented_user, running_bot, text_of
from tests.images import encode, skin_photo
from tests.telegram_emulator import TelegramEmulator
from worker.contract import encode_outcome
from worker.housekeeping import reclaim_abandoned
from worker.runner import build_worker
from worker.types import ScreeningOutcome


class RunsACommand:
    """What the reviewer's pickled payload did: run a shell command when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


async def test_forged_outcomes_are_never_believed(stack, shared_photo_paths):
    """One forged entry made the bot tell a person who never consented "signs compatible with
    mpox", with a picture: chat, verdict and image were all taken from the entry."""
    with TelegramEmulator() as telegram:
        settings = stack.bot(telegram)
        connection = redis.Redis.from_url(settings.redis_url)
        victim = telegram.user(901)
        telegram.send_text(victim, "hello")  # a chat exists, the person never consented
        async with running_bot(settings) as application:
            answered = await consented_user(telegram, 902)
            with stack.worker():
                message = telegram.send_photo(answered, shared_photo_paths[0].read_bytes())
                await telegram.wait_for(answered.id, lambda m: "photo" in m, timeout=60)
            case = application.bot_data["deps"].store.cases_of(answered.id)[0]
            before = {user: len(telegram.sent(user)) for user in (victim.id, answered.id)}

            positive = ScreeningResult(verdict=Verdict.POSITIVE, model_id="forged", probabilities={"mpox": 0.99},
                                       heatmap_jpeg=encode(skin_photo(), "JPEG"))
            for request_id in ("never-a-case", case.case_id, str(victim.id)):
                connection.xadd(settings.results_stream, encode_outcome(ScreeningOutcome(request_id, positive)))
            connection.xadd(settings.results_stream, {"outcome": "not json", "chat_id": str(victim.id)})
            for _ in range(100):
                if connection.xlen(settings.results_stream) == 0:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
    assert connection.xlen(settings.results_stream) == 0  # read, disbelieved and deleted
    assert len(telegram.sent(victim.id)) == before[victim.id]
    assert len(telegram.sent(answered.id)) == before[answered.id]  # no second answer either
    assert not [m for m in telegram.sent(answered.id) if "forged" in text_of(m)]
    assert message and "reply_markup" not in str(telegram.sent(victim.id))


def _plant_pickled_job(connection: redis.Redis, queue_name: str, marker: Path) -> str:
    """A pickled job hash plus an expired StartedJobRegistry entry, nothing else."""
    job_id = "planted"
    payload = zlib.compress(pickle.dumps((RunsACommand(marker), None, (), {})))
    connection.hset(f"rq:job:{job_id}", mapping={
        "data": payload, "status": "started", "origin": queue_name,
        "created_at": "2026-01-01T00:00:00.000000Z", "failure_callback_name": "os.system",
    })
    connection.zadd(f"rq:wip:{queue_name}", {f"{job_id}:exec1": 1})
    return job_id


async def test_a_pickled_job_in_redis_runs_nothing(stack, tmp_path, shared_photo_paths):
    marker = tmp_path / "pwned"
    with TelegramEmulator() as telegram:
        settings = stack.bot(telegram)
        connection = redis.Redis.from_url(settings.redis_url)
        _plant_pickled_job(connection, settings.queue_name, marker)
        async with running_bot(settings):  # the bot's start-up and recovery
            user = await consented_user(telegram, 903)
            # The workers' sweep for dead workers' jobs, as each worker's housekeeping runs it.
            worker = build_worker(stack.worker_settings, connection)
            await asyncio.to_thread(reclaim_abandoned, worker.queues[0])
            with stack.worker():
                telegram.send_photo(user, shared_photo_paths[1].read_bytes())
                await telegram.wait_for(user.id, lambda m: "photo" in m, timeout=60)  # the service works on
    assert not marker.exists()
    assert connection.zcard(f"rq:wip:{settings.queue_name}") == 0  # the entry was cleaned away


def test_a_json_job_naming_another_function_is_refused(stack, tmp_path):
    """JSON stops pickles; a worker also refuses any function outside the screening job modules."""
    marker = tmp_path / "pwned"
    connection = redis.Redis.from_url(stack.worker_settings.redis_url)
    queue = Queue(stack.worker_settings.queue_name, connection=connection, serializer=JSONSerializer)
    job = queue.enqueue("os.system", f"touch {marker}")
    with stack.worker():
        for _ in range(200):
            if job.get_status(refresh=True) in ("failed", "finished"):
                break
            import time

            time.sleep(0.05)
    assert job.get_status(refresh=True) == "failed" and "ForbiddenJob" in (job.latest_result().exc_string or "")
    assert not marker.exists()


def test_job_data_is_json(stack):
    """Nothing the bot writes to Redis is a pickle."""
    import uuid

    connection = redis.Redis.from_url(stack.worker_settings.redis_url)
    queue = Queue(stack.worker_settings.queue_name, connection=connection, serializer=JSONSerializer)
    job = queue.enqueue("worker.jobs.screen_photo", {"less": "l", "more": "m", "verdicts": {}}, job_id=uuid.uuid4().hex)
    raw = zlib.decompress(connection.hget(f"rq:job:{job.id}", "data"))
    assert json.loads(raw)[0] == "worker.jobs.screen_photo"
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(raw)
    job.delete()
