"""`python -m model`: JSON lines per photo, bad files reported, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO
from tests.images import BAD_INPUTS


def _run(*args: str, env_bundle=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "model", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_screen_json_lines(test_bundle_path, shared_photo_paths, tmp_path):
    bad = tmp_path / "note.txt"
    bad.write_bytes(BAD_INPUTS["text"]())
    black = tmp_path / "black.jpg"
    black.write_bytes(BAD_INPUTS["all_black"]())
    photo = shared_photo_paths[0]
    done = _run(
        "screen", "--bundle", str(test_bundle_path), "--heatmap-dir", str(tmp_path / "maps"),
        "--json", str(photo), str(bad), str(tmp_path / "missing.jpg"), str(black),
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["file"] for r in records] == [str(photo), str(bad), str(tmp_path / "missing.jpg"), str(black)]
    for record in records:
        assert set(record) >= {
            "file", "verdict", "probabilities", "predicted_class", "reason", "model_id",
            "timings_ms", "heatmap",
        }
    good, text, missing, dark = records
    assert good["verdict"] in ("positive", "negative", "inconclusive")
    assert abs(sum(good["probabilities"].values()) - 1) < 1e-4
    assert good["heatmap"] and (tmp_path / "maps").is_dir()
    assert (text["verdict"], text["reason"]) == ("error", "not_an_image")
    assert missing["verdict"] == "error" and missing["heatmap"] is None
    assert (dark["verdict"], dark["reason"]) == ("retake", "too_dark")


def test_missing_bundle_is_one_clear_error(tmp_path):
    done = _run("info", "--bundle", str(tmp_path / "none"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_info_prints_the_model_card(test_bundle_path):
    done = _run("info", "--bundle", str(test_bundle_path))
    assert done.returncode == 0
    assert "not a diagnosis" in done.stdout


def test_screen_line_ranks_the_demo_conditions_and_sums_the_rest(shared_photo_paths):
    """The demo learns 19 conditions: a screen's line names the five likeliest, then the rest."""
    import re

    from tests.conftest import DEMO_BUNDLE

    photo = next(p for p in shared_photo_paths if p.parent.name == "mpox")
    done = _run("screen", "--bundle", str(DEMO_BUNDLE), str(photo))
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith(str(photo)))
    shown = re.search(r"\[(.*) \(\+14 others, \d+% together\); \d+ ms\]", line)
    assert shown, line
    values = [int(v) for v in re.findall(r" (\d+)%", shown.group(1))]
    assert len(values) == 5 and values == sorted(values, reverse=True), line
