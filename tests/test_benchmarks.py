"""The benchmark scripts still run against a real bundle (their figures are printed, never
asserted: timings belong to the scripts, not to tests)."""

from __future__ import annotations

import os

from benchmarks import screen
from benchmarks.worker import resident_mb
from tests.images import encode, skin_photo


def test_screen_benchmark_stages_run_on_a_real_bundle(test_bundle_path, capsys):
    photos = [encode(skin_photo(seed=n), "JPEG") for n in range(3)]
    assert "1 thread(s) p50" in screen._invoke_only(test_bundle_path, photos, threads=(1,))
    screen._typicality_cost(test_bundle_path, photos)
    assert "typicality check" in capsys.readouterr().out


def test_resident_memory_is_split_into_the_processs_own_and_mapped_files():
    memory = resident_mb(os.getpid())
    assert memory.peak >= memory.rss > 0 and memory.anon > 0 and memory.file > 0
    assert abs(memory.anon + memory.file - memory.rss) < 0.1 * memory.rss  # RssShmem is the rest


def test_a_bundle_of_several_sources_counts_each_as_trained_on():
    assert screen.training_sources({"source": "mpox-web-2022"}) == {"mpox-web-2022"}
    assert screen.training_sources({"source": "mpox-web-2022+msld-v1+msid"}) == {"mpox-web-2022", "msld-v1", "msid"}
    assert screen.training_sources({}) == set()
