"""Memory of a screen: the peak resident memory of a worker-like process screening the worst files.

For each file, a fresh process loads the bundle as a worker does (TensorFlow, LiteRT, the heatmap
graph, warmed up), notes its resident memory, resets the kernel's peak counter (VmHWM, through
/proc/self/clear_refs), screens the file and reads the peak: the most the process held while
screening it. Files: a 16-bit decompression bomb, a PNG just under the pixel cap, a 48-megapixel
JPEG, a large noisy WebP, a truncated JPEG, a GIF, and a real photo. A worker's resident memory
is about half TensorFlow's shared libraries (RssFile: file pages, shared by every worker on the
host and reclaimable) and half its own (RssAnon); the peak of its own memory is the peak minus
those file pages. Target (issue 15): every screen peaks under 600 MB of the worker's own memory.

    .venv/bin/python -m benchmarks.memory [--bundle models/demo]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.worker import REPO, SHARED_DATA, resolve_bundle

TARGET_MB = 600

_MEASURE = """
import json, sys
from pathlib import Path
def status_mb(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
from worker.jobs import load_screener
from worker.settings import WorkerSettings
screener = load_screener(WorkerSettings(redis_url="redis://unused", model_bundle=sys.argv[1]))
photo = Path(sys.argv[2]).read_bytes()
resting, files = status_mb("VmRSS"), status_mb("RssFile")
Path("/proc/self/clear_refs").write_text("5")  # the peak counter starts again from here
result = screener.screen(photo)
print(json.dumps({"resting_mb": resting, "file_mb": files, "peak_mb": status_mb("VmHWM"),
                  "verdict": result.verdict.value, "reason": None if result.reason is None else result.reason.value}))
"""


def nasty_files(folder: Path) -> dict[str, Path]:
    """The worst inputs a person (or an attacker) can send, written into `folder`."""
    import numpy as np
    from PIL import Image

    from tests.images import animated_gif, encode, real_photo_bytes, sixteen_bit_bomb

    rng = np.random.default_rng(0)
    files = {
        "16-bit PNG bomb, 6300x6300, 75 kB": sixteen_bit_bomb(),
        "PNG 5000x4900 (just under 25 MP)": encode(Image.new("RGB", (5000, 4900), (190, 140, 120)), "PNG"),
        "JPEG 8000x6000 (48 MP)": encode(
            Image.fromarray(rng.integers(120, 200, (6000, 8000, 3), dtype=np.uint8)), "JPEG", quality=70
        ),
        "WebP 4000x3000 (12 MP), noisy": encode(
            Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)), "WEBP", quality=80
        ),
        "truncated JPEG": real_photo_bytes()[:2000],
        "animated GIF": animated_gif(),
        "a real photo": real_photo_bytes(),
    }
    paths = {}
    for n, (name, data) in enumerate(files.items()):
        paths[name] = folder / f"{n}.bin"
        paths[name].write_bytes(data)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path)
    args = parser.parse_args()
    bundle = resolve_bundle(args.bundle)
    print(f"bundle={bundle} shared photos present={SHARED_DATA.is_dir()}", flush=True)
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for name, path in nasty_files(Path(folder)).items():
            done = subprocess.run([sys.executable, "-c", _MEASURE, str(bundle), str(path)], cwd=REPO,
                                  capture_output=True, text=True, timeout=600,
                                  env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin", "HOME": "/tmp"})
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            own_peak = figures["peak_mb"] - figures["file_mb"]
            worst = max(worst, own_peak)
            print(f"{name}: peak {figures['peak_mb']:.0f} MB RSS, of which its own {own_peak:.0f} MB "
                  f"(at rest {figures['resting_mb']:.0f} MB RSS, {figures['resting_mb'] - figures['file_mb']:.0f} MB "
                  f"its own); {figures['verdict']}{' (' + figures['reason'] + ')' if figures['reason'] else ''}",
                  flush=True)
    print(f"worst peak of a worker's own memory {worst:.0f} MB (target under {TARGET_MB} MB)")


if __name__ == "__main__":
    main()
