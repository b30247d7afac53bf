"""Loading TensorFlow once per process, without its start-up notes on an operator's screen.

TensorFlow 2.21 prints "oneDNN custom operations are on" and the CPU-features note through absl
before its own log level (TF_CPP_MIN_LOG_LEVEL) applies, on some machines whatever that is set
to. They are notes for TensorFlow's developers, printed on every start; an operator reading a
worker's log should see the worker's lines. So the first import runs with the process's stderr
(file descriptor 2, where the C++ runtime writes) captured, and every captured line except those
notes is written back: a real error still shows.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from types import ModuleType

START_UP_NOTES = re.compile(
    r"oneDNN custom operations are on|cpu_feature_guard|absl::InitializeLog\(\) is called"
    r"|^To enable the following instructions:.*rebuild TensorFlow"
)


def import_tensorflow() -> ModuleType:
    """`import tensorflow`, its start-up notes dropped; any other output it makes passes through."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not START_UP_NOTES.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
    return tensorflow
