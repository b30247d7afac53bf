"""The whole service on one machine: a local Redis, one worker and the bot, supervised together.

    scripts/run            (what it runs: python -m scripts.supervise)

With REDIS_URL set (in the environment or .env), Redis and the workers are someone else's: only the
bot runs. Without it, this starts:
- redis-server (the system's, from Debian's package: scripts/run installs it when absent) on
  127.0.0.1:LOCAL_REDIS_PORT (6380), with a password generated once into LOCAL_REDIS_DIR/redis.conf
  (data/redis/, readable by this user only) and an append-only file beside it, so queued photos
  and unanswered results survive a restart;
- one `python -m worker`, given only the settings a worker needs (never the Telegram token or the
  webhook secret);
- `python -m bot`.
A worker or Redis that dies is restarted (with back-off); when the bot stops, or on Ctrl-C /
SIGTERM / SIGHUP, everything is stopped in order (bot, worker, then Redis, which writes its file).
The children run in their own process group, so a terminal's Ctrl-C (sent to the whole foreground
group) reaches only this supervisor and the order holds; each child gets SIGTERM should this
supervisor die without stopping them (Linux).
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO / "data" / "redis"  # LOCAL_REDIS_DIR
DEFAULT_PORT = 6380  # LOCAL_REDIS_PORT: beside a system Redis on 6379
SECRETS = ("TELEGRAM_TOKEN", "WEBHOOK_SECRET")
STOP_GRACE_S = 30
log = logging.getLogger("supervise")
PR_SET_PDEATHSIG = 1


def _terminate_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (even by SIGKILL)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised process and how to start it again."""

    name: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    started: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, process_group=0,
                                        preexec_fn=_terminate_with_parent)
        self.started.append(time.monotonic())
        log.info("event=started process=%s pid=%d", self.name, self.process.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # the worker finishes its job; Redis saves
        try:
            self.process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log.warning("event=killed process=%s after_s=%d", self.name, STOP_GRACE_S)
            self.process.kill()
            self.process.wait()
        log.info("event=stopped process=%s", self.name)


def settings_environment() -> dict[str, str]:
    """The process environment with .env under it (the environment wins, as in the settings)."""
    values = {k: v for k, v in dotenv_values(REPO / ".env").items() if v is not None}
    return {**values, **os.environ}


def worker_environment(base: dict[str, str], redis_url: str) -> dict[str, str]:
    """What a worker may see: the base environment without the bot's secrets."""
    env = {k: v for k, v in base.items() if k not in SECRETS}
    env["REDIS_URL"] = redis_url
    return env


def local_redis(port: int, data: Path) -> tuple[list[str], str]:
    """The redis-server command and the URL (with its password) of the local Redis."""
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed: run scripts/run (it installs Debian's redis-server)")
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = data / "redis.conf"
    if not config.is_file():
        config.touch(mode=0o600)
        config.write_text(
            f"# Written once by scripts/supervise.py; the password is this Redis' own.\n"
            f"requirepass {secrets.token_urlsafe(32)}\n"
        )
    password = next(line.split(None, 1)[1].strip() for line in config.read_text().splitlines()
                    if line.startswith("requirepass "))
    # As in docker-compose.yml: a memory cap that refuses new work rather than dropping queued work.
    command = [server, str(config), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
               "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--protected-mode", "yes",
               "--maxmemory", "256mb", "--maxmemory-policy", "noeviction"]
    return command, f"redis://:{password}@127.0.0.1:{port}/0"


def wait_for_redis(url: str, child: Child, timeout: float = 20.0) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process is not None and child.process.poll() is not None:
            raise SystemExit(f"redis-server exited with status {child.process.returncode} (port taken? see above)")
        try:
            client.ping()
            return
        except redis.RedisError:
            time.sleep(0.2)
    raise SystemExit("redis-server did not answer in time")


def supervise(children: list[Child], bot: Child) -> int:
    """Keep the children running until the bot exits or we are told to stop; returns its status."""
    stopping = False

    def request_stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, request_stop)
    status = 0
    while not stopping:
        if bot.process.poll() is not None:
            status = bot.process.returncode
            log.info("event=bot_exited status=%d", status)
            break
        for child in children:
            if child is bot or child.process.poll() is None:
                continue
            if child.next_start == 0.0:
                delay = min(60.0, 2.0 ** min(child.restarts, 6))
                child.next_start = time.monotonic() + delay
                log.warning("event=exited process=%s status=%d restart_in_s=%.0f",
                            child.name, child.process.returncode, delay)
            elif time.monotonic() >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()
        time.sleep(0.5)
    for child in (bot, *[c for c in reversed(children) if c is not bot]):
        child.stop()
    return status


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="ts=%(asctime)s level=%(levelname)s logger=%(name)s msg=%(message)s")
    base = settings_environment()
    python = sys.executable
    if base.get("REDIS_URL"):
        log.info("event=external_redis (REDIS_URL is set: start workers with `scripts/run worker`)")
        os.execv(python, [python, "-m", "bot", *sys.argv[1:]])
    port = int(base.get("LOCAL_REDIS_PORT", DEFAULT_PORT))
    data = Path(base.get("LOCAL_REDIS_DIR") or DEFAULT_DATA)
    redis_command, redis_url = local_redis(port, data)
    redis_child = Child("redis", redis_command, {"PATH": os.environ.get("PATH", "")})
    redis_child.start()
    try:
        wait_for_redis(redis_url, redis_child)
    except SystemExit:
        redis_child.stop()
        raise
    worker = Child("worker", [python, "-m", "worker"], worker_environment(base, redis_url))
    bot = Child("bot", [python, "-m", "bot", *sys.argv[1:]], {**base, "REDIS_URL": redis_url})
    worker.start()
    bot.start()
    return supervise([redis_child, worker, bot], bot)


if __name__ == "__main__":
    sys.exit(main())
