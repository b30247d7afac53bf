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
    """A small real bundle (MobileNetV2-0.35, int8 TFLite + Keras), built once per session."""
    return build_test_bundle(tmp_path_factory.mktemp("bundle") / "test-bundle").path


@pytest.fixture(scope="session")
def screener(test_bundle_path):
    from model import load_screener

    return load_screener(test_bundle_path)


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
