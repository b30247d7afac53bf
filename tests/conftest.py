"""Shared test fixtures: a real model bundle, the shared photos, and a real Redis."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.bundles import SHARED_DATA, build_test_bundle

REPO = Path(__file__).resolve().parent.parent
DEMO_BUNDLE = REPO / "models" / "demo"


@pytest.fixture(scope="session")
def test_bundle_path(tmp_path_factory) -> Path:
    """A small real bundle (MobileNetV2-0.35, int8 TFLite + Keras), built once per session; while
    developing, TEST_BUNDLE=DIR builds it once into DIR and reuses it in later runs."""
    from model.bundle import load_bundle
    from model.errors import BundleError

    if reuse := os.environ.get("TEST_BUNDLE"):
        try:
            return load_bundle(reuse).path
        except BundleError:
            return build_test_bundle(Path(reuse)).path
    return build_test_bundle(tmp_path_factory.mktemp("bundle") / "test-bundle").path


@pytest.fixture(scope="session")
def screener(test_bundle_path):
    from model import load_screener

    return load_screener(test_bundle_path)


@pytest.fixture(scope="session")
def positive_bundle_path(test_bundle_path, tmp_path_factory) -> Path:
    """The session's real model with its operating point at 0: every screenable photo is positive.

    Only the thresholds change (same TFLite and Keras files, re-checksummed), so escalation can be
    tested with a real model without searching for a photo it happens to call positive.
    """
    import dataclasses

    from model.bundle import Thresholds, load_bundle, write_bundle

    source = load_bundle(test_bundle_path)
    manifest = dataclasses.replace(source.manifest, thresholds=Thresholds(positive=0.0, inconclusive=0.0))
    folder = tmp_path_factory.mktemp("bundle") / "positive-bundle"
    return write_bundle(
        folder, manifest, source.tflite_path.read_bytes(), source.keras_path, source.card_path.read_text()
    ).path


@pytest.fixture(scope="session")
def positive_screener(positive_bundle_path):
    from model import load_screener

    return load_screener(positive_bundle_path)


@pytest.fixture(scope="session")
def shared_photo_paths() -> list[Path]:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data/mpox-web-2022 is not present")
    return sorted(p for p in SHARED_DATA.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def redis_url() -> str:
    """REDIS_URL of a real Redis (.ci/run starts one); tests use database 15 and flush it."""
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError as exc:
        pytest.fail(f"no Redis at {url}: {exc} (run the tests through .ci/run, which starts one)")
    return url


@pytest.fixture
def tag(redis_url):
    """A unique name for this test's queue, stream and keys; its Redis keys are deleted after."""
    import uuid

    import redis

    value = uuid.uuid4().hex[:10]
    yield value
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"*{value}*", count=1000):
        connection.delete(key)


@pytest.fixture
def stack(redis_url, test_bundle_path, tag, tmp_path, screener):
    """Settings of a bot and a worker sharing this test's queue; `stack.worker()` runs a worker in
    a thread of this process (with the session's model) for the length of a `with` block."""
    from tests.bot_harness import bot_settings
    from tests.workers import InThreadWorker, worker_settings

    class Stack:
        def __init__(self) -> None:
            self.worker_settings = worker_settings(redis_url, test_bundle_path, tag)

        def bot(self, telegram, **overrides):
            return bot_settings(telegram, tmp_path / "bot.sqlite3", redis_url, tag, **overrides)

        def worker(self, **overrides):
            settings = self.worker_settings.model_copy(update=overrides) if overrides else self.worker_settings
            return InThreadWorker(settings, screener)

    return Stack()
