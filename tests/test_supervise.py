"""`scripts/run`'s local service (python -m scripts.supervise): Redis, a worker and the bot come up
together, a photo is answered, the worker never sees the bot's secrets, and they stop together, in
order, on a terminal's Ctrl-C; and a child outlives no supervisor."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bot_harness import TOKEN, consented_user, text_of
from tests.redis_server import free_port
from tests.telegram_emulator import TelegramEmulator

REPO = Path(__file__).resolve().parent.parent


def children_of(pid: int) -> dict[str, int]:
    """{"redis-server" | "worker" | "bot": pid} of a process's children (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
            continue
        words = [w.decode() for w in cmdline if w]
        name = "redis-server" if "redis-server" in words[0] else words[2] if len(words) > 2 else words[0]
        found[name] = int(entry.name)
    return found


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
async def test_run_starts_redis_a_worker_and_the_bot_and_stops_them(tmp_path, test_bundle_path, shared_photo_paths):
    with TelegramEmulator() as telegram:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "TELEGRAM", "WEBHOOK"))}
        env.update(
            TELEGRAM_TOKEN=TOKEN,
            WEBHOOK_SECRET="not-used-but-secret-" + "x" * 20,
            TELEGRAM_BASE_URL=telegram.base_url,
            TELEGRAM_BASE_FILE_URL=telegram.base_file_url,
            LOCAL_REDIS_PORT=str(free_port()),
            LOCAL_REDIS_DIR=str(tmp_path / "redis"),
            DATABASE_PATH=str(tmp_path / "bot.sqlite3"),
            MODEL_BUNDLE=str(test_bundle_path),
        )
        # Its own session, as a terminal's foreground job: Ctrl-C signals that whole group.
        process = subprocess.Popen([sys.executable, "-m", "scripts.supervise"], cwd=REPO, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        try:
            user = await consented_user(telegram, 801)
            telegram.send_photo(user, shared_photo_paths[0].read_bytes())
            reply = await telegram.wait_for(user.id, lambda m: "photo" in m, timeout=120)
            assert text_of(reply).startswith("Result:")
            children = children_of(process.pid)
            assert {"redis-server", "worker", "bot"} <= set(children)
            worker_env = Path(f"/proc/{children['worker']}/environ").read_bytes()
            assert TOKEN.encode() not in worker_env and b"WEBHOOK_SECRET" not in worker_env
            assert (tmp_path / "redis" / "appendonlydir").is_dir()  # photos and results survive a restart
            assert (tmp_path / "redis" / "redis.conf").stat().st_mode & 0o077 == 0  # its password is private
        finally:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
            output = process.communicate(timeout=90)[0]
    assert process.returncode == 0, output
    # Stopped by the supervisor, in order: Redis last, so the worker's last words reach it.
    stops = [line.rsplit("process=", 1)[1].split()[0] for line in output.splitlines() if "event=stopped process=" in line]
    assert stops == ["bot", "worker", "redis"], output
    assert "Traceback" not in output and "event=redis_gone" not in output
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in children.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [name for name, pid in children.items() if Path(f"/proc/{pid}").exists()]
    assert TOKEN not in output


def test_a_child_is_stopped_when_the_supervisor_dies():
    """A supervisor killed with SIGKILL cannot stop its children; the kernel does (it would
    otherwise leave Redis holding its port, and the next `scripts/run` would fail)."""
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys; from scripts.supervise import _terminate_with_parent; "
         "child = subprocess.Popen(['sleep', '60'], preexec_fn=_terminate_with_parent); "
         "print(child.pid, flush=True); child.wait()"],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while running(child):
        assert time.monotonic() < deadline, "the child outlived its supervisor"
        time.sleep(0.05)


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit may wait for whoever reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
