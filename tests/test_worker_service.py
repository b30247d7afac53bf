"""The screening service's interface, in both modes: Redis (RQ + result stream) and embedded.

Redis mode runs jobs with an in-process SimpleWorker in burst mode (the session's real model is
installed in this process), so each test drains the queue where the embedded mode needs nothing.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from model.types import Reason, Verdict
from worker import jobs
from worker.errors import ServiceUnavailable
from worker.runner import run_worker
from worker.service import (
    EmbeddedScreeningService,
    RedisScreeningService,
    ServiceHealth,
    create_service,
)
from worker.settings import WorkerSettings
from worker.types import FailureKind, ScreeningRequest

MODES = ["redis", "embedded"]


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_settings(redis_url, test_bundle_path, unique):
    created: list[WorkerSettings] = []

    def make(mode: str, **overrides) -> WorkerSettings:
        values = dict(
            redis_url=redis_url if mode == "redis" else None,
            queue_name=f"test-{unique}",
            results_stream=f"test:results:{unique}",
            model_bundle=test_bundle_path,
            retry_intervals_s=[0],
            sweep_interval_s=0.5,
        )
        values.update(overrides)
        settings = WorkerSettings(**values)
        created.append(settings)
        return settings

    yield make
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"*{unique}*", count=1000):
        connection.delete(key)


class Harness:
    """A started service, a way to run its queued jobs, and its delivery iterator."""

    def __init__(self, service, settings: WorkerSettings) -> None:
        self.service = service
        self.settings = settings
        self.deliveries = service.deliveries()

    def run_jobs(self) -> None:
        if self.settings.redis_url:
            connection = redis.Redis.from_url(self.settings.redis_url)
            run_worker(self.settings, connection, burst=True)

    async def next(self, timeout: float = 30.0):
        return await asyncio.wait_for(anext(self.deliveries), timeout)


@pytest.fixture
async def harness(make_settings, screener):
    started: list[Harness] = []

    async def start(mode: str, **overrides) -> Harness:
        settings = make_settings(mode, **overrides)
        jobs.install_screener(screener)
        if mode == "redis":
            service = RedisScreeningService(settings, consumer="bot")
        else:
            service = EmbeddedScreeningService(settings, screener=screener)
        await service.start()
        started.append(Harness(service, settings))
        return started[-1]

    yield start
    for item in started:
        await item.deliveries.aclose()
        await item.service.close()


def request_for(unique: str, photo: bytes, n: int = 0) -> ScreeningRequest:
    return ScreeningRequest(
        request_id=f"req-{unique}-{n}",
        chat_id=1000 + n,
        message_id=7 + n,
        language="en",
        photo=photo,
    )


@pytest.fixture(scope="module")
def photo(shared_photo_paths) -> bytes:
    return next(p for p in shared_photo_paths if p.parent.name == "mpox").read_bytes()


@pytest.mark.parametrize("mode", MODES)
async def test_photo_is_screened_delivered_and_acked(harness, mode, unique, photo, screener):
    h = await harness(mode)
    request = request_for(unique, photo)
    await h.service.submit(request)
    if mode == "redis":  # nothing works the queue until run_jobs()
        assert (await h.service.health()).queued == 1
    h.run_jobs()
    delivery = await h.next()
    outcome = delivery.outcome
    assert (outcome.request_id, outcome.chat_id, outcome.message_id, outcome.language) == (
        request.request_id,
        request.chat_id,
        request.message_id,
        "en",
    )
    assert outcome.succeeded and outcome.failure is None
    expected = screener.screen(photo)
    assert outcome.result.verdict == expected.verdict
    assert outcome.result.verdict in (Verdict.POSITIVE, Verdict.INCONCLUSIVE, Verdict.NEGATIVE)
    assert outcome.result.probabilities == pytest.approx(expected.probabilities, abs=1e-5)
    assert outcome.result.heatmap_png.startswith(b"\x89PNG")
    await h.service.ack(delivery)
    health = await h.service.health()
    assert isinstance(health, ServiceHealth) and health.queued == 0


@pytest.mark.parametrize("mode", MODES)
async def test_bad_photo_comes_back_as_a_refusal_not_a_failure(harness, mode, unique):
    h = await harness(mode)
    await h.service.submit(request_for(unique, b"this is not a photo"))
    h.run_jobs()
    delivery = await h.next()
    assert delivery.outcome.result.verdict is Verdict.ERROR
    assert delivery.outcome.result.reason is Reason.NOT_AN_IMAGE
    await h.service.ack(delivery)


@pytest.mark.parametrize("mode", MODES)
async def test_transient_error_is_retried(harness, mode, unique, photo, monkeypatch):
    tries: list[str] = []
    real = jobs.screen_photo

    def flaky(request):
        tries.append(request.request_id)
        if len(tries) == 1:
            raise ConnectionError("transient")
        return real(request)

    monkeypatch.setattr(jobs, "screen_photo", flaky)  # RQ resolves the job function by name
    h = await harness(mode, max_retries=2)
    await h.service.submit(request_for(unique, photo))
    h.run_jobs()
    delivery = await h.next()
    assert delivery.outcome.succeeded
    assert len(tries) == 2
    await h.service.ack(delivery)


@pytest.mark.parametrize("mode", MODES)
async def test_fault_inside_the_model_is_retried_then_reported(harness, mode, unique, photo, screener, monkeypatch):
    """A fault of the model itself (here LiteRT) must reach the job runner, not become an answer:
    the first request succeeds on its second try, the second fails every try and is reported."""
    calls: list[int] = []
    real = screener.classifier.predict_views_with_embedding

    def faulty(views):
        calls.append(1)
        if len(calls) == 1 or len(calls) >= 3:
            raise RuntimeError("LiteRT invoke failed")
        return real(views)

    monkeypatch.setattr(screener.classifier, "predict_views_with_embedding", faulty)
    h = await harness(mode, max_retries=1)
    await h.service.submit(request_for(unique, photo, 0))
    h.run_jobs()
    delivery = await h.next()
    assert delivery.outcome.succeeded and len(calls) == 2
    await h.service.ack(delivery)

    await h.service.submit(request_for(unique, photo, 1))
    h.run_jobs()
    delivery = await h.next()
    assert not delivery.outcome.succeeded and delivery.outcome.failure is FailureKind.INTERNAL
    assert "LiteRT invoke failed" in delivery.outcome.failure_detail and len(calls) == 4
    await h.service.ack(delivery)


@pytest.mark.parametrize("mode", MODES)
async def test_final_failure_is_reported_once_after_every_retry(
    harness, mode, unique, photo, monkeypatch
):
    tries: list[str] = []

    def broken(request):
        tries.append(request.request_id)
        raise RuntimeError("always")

    monkeypatch.setattr(jobs, "screen_photo", broken)
    h = await harness(mode, max_retries=2)
    await h.service.submit(request_for(unique, photo))
    h.run_jobs()
    delivery = await h.next()
    assert not delivery.outcome.succeeded
    assert delivery.outcome.failure is FailureKind.INTERNAL
    assert "RuntimeError" in delivery.outcome.failure_detail
    assert len(tries) == 3
    await h.service.ack(delivery)
    with pytest.raises(TimeoutError):
        await h.next(timeout=1.0)  # one outcome per request, never one per try


@pytest.mark.parametrize("mode", MODES)
async def test_job_past_its_timeout_is_reported_as_timeout(
    harness, mode, unique, photo, monkeypatch
):
    import time

    def stuck(request):
        time.sleep(3)
        raise AssertionError("should have been stopped by the timeout")

    monkeypatch.setattr(jobs, "screen_photo", stuck)
    h = await harness(mode, max_retries=0, job_timeout_s=1)
    await h.service.submit(request_for(unique, photo))
    h.run_jobs()
    delivery = await h.next()
    assert delivery.outcome.failure is FailureKind.TIMEOUT
    await h.service.ack(delivery)


@pytest.mark.parametrize("mode", MODES)
async def test_many_requests_each_delivered_once(harness, mode, unique, photo):
    h = await harness(mode, embedded_threads=2)
    requests = [request_for(unique, photo if n % 2 else b"", n) for n in range(6)]
    for request in requests:
        await h.service.submit(request)
    h.run_jobs()
    seen = []
    for _ in requests:
        delivery = await h.next()
        seen.append(delivery.outcome.request_id)
        await h.service.ack(delivery)
    assert sorted(seen) == sorted(r.request_id for r in requests)


async def test_create_service_picks_the_mode(make_settings):
    assert isinstance(create_service(make_settings("redis")), RedisScreeningService)
    assert isinstance(create_service(make_settings("embedded")), EmbeddedScreeningService)


async def test_unreachable_redis_raises_service_unavailable(make_settings, unique, photo):
    settings = make_settings("redis", redis_url="redis://127.0.0.1:1/0")
    service = RedisScreeningService(settings)
    with pytest.raises(ServiceUnavailable):
        await service.start()
    with pytest.raises(ServiceUnavailable):
        await service.submit(request_for(unique, photo))
    await service.close()


async def test_embedded_start_loads_the_bundle_named_in_settings(make_settings, unique, photo):
    service = EmbeddedScreeningService(make_settings("embedded"))
    await service.start()
    try:
        await service.submit(request_for(unique, photo))
        deliveries = service.deliveries()
        delivery = await asyncio.wait_for(anext(deliveries), 60)
        assert delivery.outcome.result.model_id.startswith("test-mobilenet-v2-035")
        assert await service.health() == ServiceHealth(queued=0, workers=1)
    finally:
        await service.close()
