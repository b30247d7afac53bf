"""Container health check: healthy while the service keeps touching its health file.

    python -I -S /app/healthcheck.py MAX_AGE_S

The bot touches $HEALTH_FILE every 5 s while it polls Telegram (or serves its webhook)
and Redis answers; a worker at least every 5 s while its model is loaded and its heartbeat reaches
Redis. So a file younger than MAX_AGE_S means "can do its job"; a missing or stale one means not
ready yet, or stuck. The process decides what healthy means and this only reads a time stamp:
no project imports, no network, a few milliseconds (-I -S: nothing but the standard library).
"""

from __future__ import annotations

import os
import sys
import time


def verdict(path: str | None, max_age_s: float, now: float) -> tuple[bool, str]:
    """(healthy, the reason shown by `docker inspect`)."""
    if not path:
        return False, "unhealthy: HEALTH_FILE is not set, so the service reports nothing"
    try:
        age = now - os.stat(path).st_mtime
    except FileNotFoundError:
        return False, f"unhealthy: {path} does not exist (starting, or never became ready)"
    if age > max_age_s:
        return False, f"unhealthy: {path} last touched {age:.0f} s ago (limit {max_age_s:g} s)"
    return True, f"healthy: {path} touched {age:.1f} s ago"


def main(argv: list[str]) -> int:
    try:
        max_age_s = float(argv[0])
    except (IndexError, ValueError):
        print("usage: healthcheck.py MAX_AGE_S", file=sys.stderr)
        return 2
    healthy, reason = verdict(os.environ.get("HEALTH_FILE"), max_age_s, time.time())
    print(reason)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
