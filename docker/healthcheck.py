"""Container health check: `python healthcheck.py bot|worker`. Exit 0 when healthy.

bot: the model bundle's manifest is readable and Redis answers (when REDIS_URL is set).
worker: Redis answers and an RQ worker of this container (same hostname) is registered.
Kept free of TensorFlow so it runs in well under a second.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path


def _redis():
    import redis

    url = os.environ.get("REDIS_URL") or ""
    if not url:
        return None
    connection = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    connection.ping()
    return connection


def check_bot() -> None:
    bundle = Path(os.environ.get("MODEL_BUNDLE", "/app/models/demo"))
    json.loads((bundle / "bundle.json").read_text())
    _redis()


def check_worker() -> None:
    from rq import Worker

    connection = _redis()
    if connection is None:
        raise RuntimeError("REDIS_URL is not set")
    host = socket.gethostname()
    if not any(worker.hostname == host for worker in Worker.all(connection=connection)):
        raise RuntimeError(f"no RQ worker registered from {host}")


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else "bot"
    try:
        check_worker() if role == "worker" else check_bot()
    except Exception as exc:  # any failure is "unhealthy", with the reason in docker inspect
        print(f"unhealthy: {exc}")
        sys.exit(1)
    print("healthy")
