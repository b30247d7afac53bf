"""The whole service under kill -9 (benchmarks.chaos, small): bot, workers and Redis killed at
random while photos are in flight; every photo is answered exactly once."""

from __future__ import annotations

import shutil

import pytest

from benchmarks.chaos import run_chaos

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


async def test_kill_9_anything_answers_every_photo_once(test_bundle_path):
    from tests.images import encode, skin_photo

    photos = [encode(skin_photo(seed=n), "JPEG") for n in range(6)]
    report = await run_chaos(test_bundle_path, photos, count=16, users=4, kills=6, workers=2, seed=7)
    assert sum(report.kills.values()) == 6
    assert (report.unanswered, report.answered_twice) == (0, 0), report.line()
    assert report.answered_once == 16
