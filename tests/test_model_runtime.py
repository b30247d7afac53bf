"""model.runtime: TensorFlow loads without its start-up notes, and anything else it prints shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT = "from model.runtime import import_tensorflow; import_tensorflow()"


def _run(code: str, *extra_path: Path) -> subprocess.CompletedProcess:
    env_path = ":".join([*(str(p) for p in extra_path), str(ROOT)])
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": env_path, "HOME": str(Path.home())})


def test_tensorflow_loads_without_its_start_up_notes():
    done = _run(IMPORT + "; import tensorflow as tf; print(tf.constant(2) * 3)")
    assert done.returncode == 0, done.stderr
    assert "tf.Tensor(6" in done.stdout
    for note in ("oneDNN", "cpu_feature_guard", "absl::InitializeLog"):
        assert note not in done.stderr, done.stderr


def test_other_output_of_the_import_still_shows(tmp_path):
    """A stand-in `tensorflow` writing to file descriptor 2, as TensorFlow's C++ runtime does."""
    (tmp_path / "tensorflow.py").write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on. You may see ...\\n')\n"
        "os.write(2, b'E0000 something real went wrong\\n')\n")
    done = _run(IMPORT + "; import sys; print('imported', 'tensorflow' in sys.modules)", tmp_path)
    assert done.returncode == 0 and "imported True" in done.stdout
    assert done.stderr == "E0000 something real went wrong\n"
