"""`python -m bot` as a process: clear messages for missing or bad settings, secrets that never
reach the terminal or the logs (a rejected token in every entry point), waiting out a Telegram it
cannot reach (one log line per try, with the next delay), webhook mode and its secret, and a bot
process that never loads TensorFlow."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis

from tests.bot_harness import CLINICIAN_CHAT, TOKEN, text_of
from tests.redis_server import free_port
from tests.telegram_emulator import TelegramEmulator

REPO = Path(__file__).resolve().parent.parent
BOT_ENV_NAMES = ("TELEGRAM", "WEBHOOK", "REDIS_URL", "DATABASE_PATH", "CLINICIAN", "HEALTH_FILE", "SCREENING_QUEUE")
WEBHOOK_SECRET = "w" * 12 + uuid.uuid4().hex  # 44 characters


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(BOT_ENV_NAMES)}
    env["PYTHONPATH"] = str(REPO)
    env.update(values)
    return env


def bot_env(telegram_base: str, redis_url: str, tag: str, **values: str) -> dict[str, str]:
    """Environment of a bot process talking to `telegram_base`, on its own queue."""
    return clean_env(
        TELEGRAM_BASE_URL=f"{telegram_base}/bot",
        TELEGRAM_BASE_FILE_URL=f"{telegram_base}/file/bot",
        REDIS_URL=redis_url,
        SCREENING_QUEUE=f"test-{tag}",
        RESULTS_STREAM=f"test:results:{tag}",
        **values,
    )


def run_bot(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_missing_token_is_a_clear_message_and_exit_code_2(tmp_path):
    done = run_bot([], clean_env(), tmp_path, timeout=60)
    assert done.returncode == 2
    assert "TELEGRAM_TOKEN is not set" in done.stderr and "BotFather" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"WEBHOOK_URL": "https://bot.example.org/hook"}, "WEBHOOK_SECRET must be 32 to 256"),
        ({"WEBHOOK_URL": "https://bot.example.org/hook", "WEBHOOK_SECRET": "short-secret"}, "WEBHOOK_SECRET must be"),
        ({"CLINICIAN_CHAT_ID": str(CLINICIAN_CHAT)}, "CLINICIAN_USER_IDS is empty"),
    ],
    ids=["webhook-without-secret", "webhook-short-secret", "clinicians-without-ids"],
)
def test_unsafe_settings_refuse_to_start_with_a_clear_message(tmp_path, values, expected):
    done = run_bot([], clean_env(TELEGRAM_TOKEN=TOKEN, REDIS_URL="redis://127.0.0.1:1/0", **values), tmp_path, 60)
    assert done.returncode == 2 and expected in done.stderr
    assert "Traceback" not in done.stderr and TOKEN not in done.stderr
    assert "short-secret" not in done.stderr  # pydantic would echo input values: it must not


@pytest.mark.parametrize("command", [[], ["export-reviewed", "out"]], ids=["bot", "export-reviewed"])
def test_a_rejected_token_is_a_clear_message_exit_2_and_never_printed(tmp_path, redis_url, tag, command):
    rejected = "123:this-token-was-revoked"
    with TelegramEmulator() as telegram:
        telegram.rejected_tokens.add(rejected)
        env = bot_env(f"http://127.0.0.1:{telegram.port}", redis_url, tag, TELEGRAM_TOKEN=rejected)
        done = run_bot(command, env, tmp_path)
    assert done.returncode == 2
    assert "Telegram rejected TELEGRAM_TOKEN" in done.stderr and "BotFather" in done.stderr
    assert rejected not in done.stdout + done.stderr  # PTB's own exception text holds it: redacted
    assert "Traceback" not in done.stderr


def test_an_unexpected_traceback_is_printed_without_secrets(tmp_path):
    """Whatever escapes (here a crash in a made-up command path) is redacted by the excepthook."""
    script = (
        "import logging, sys\n"
        "from bot.__main__ import protect_secrets\n"
        "logging.basicConfig()\n"
        f"protect_secrets([{TOKEN!r}, 'redis-pass'])\n"
        f"raise RuntimeError('failed with {TOKEN} and redis://:redis-pass@host')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert "RuntimeError" in done.stderr and "[redacted]" in done.stderr
    assert TOKEN not in done.stderr and "redis-pass" not in done.stderr


async def test_telegram_unreachable_at_start_up_is_waited_out_and_logged(tmp_path, redis_url, tag):
    port = free_port()
    env = bot_env(f"http://127.0.0.1:{port}", redis_url, tag, TELEGRAM_TOKEN=TOKEN)
    process = subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        await asyncio.sleep(8)  # the bot starts and finds nothing at its Bot API address
        assert process.poll() is None, "the bot gave up while Telegram was unreachable"
        with TelegramEmulator(port=port) as telegram:
            user = telegram.user(602)
            telegram.send_text(user, "/start")
            notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m, timeout=60)
            assert "not a diagnosis" in text_of(notice)
            await asyncio.sleep(6)  # its repeating jobs run (the first every 5 s)
            process.terminate()
            output = process.communicate(timeout=30)[0]
    finally:
        if process.poll() is None:
            process.kill()
    tries = [line for line in output.splitlines() if "event=telegram_unreachable" in line]
    assert len(tries) >= 2 and all("retry_in_s=" in line for line in tries)  # each failed try, and the wait
    assert TOKEN not in output
    assert "Running job" not in output  # the scheduler's two lines per job run (every few seconds)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_while_telegram_is_unreachable_is_clean(tmp_path, redis_url, tag, signum):
    """Ctrl-C, or SIGTERM from scripts/run's supervisor, docker or systemd."""
    env = bot_env(f"http://127.0.0.1:{free_port()}", redis_url, tag, TELEGRAM_TOKEN=TOKEN)
    log_path = tmp_path / "bot.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 60
            while "event=telegram_unreachable" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "event=telegram_unreachable" in log_path.read_text()
            process.send_signal(signum)
            returncode = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    output = log_path.read_text()
    assert returncode == 0
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert "event=stopped" in output


async def test_webhook_mode_checks_the_secret_and_listens_on_loopback(tmp_path, redis_url, tag):
    port = free_port()
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    with TelegramEmulator() as telegram:
        env = bot_env(f"http://127.0.0.1:{telegram.port}", redis_url, tag, TELEGRAM_TOKEN=TOKEN, WEBHOOK_URL=hook,
                      WEBHOOK_SECRET=WEBHOOK_SECRET, WEBHOOK_PORT=str(port), LOG_LEVEL="DEBUG")
        process = subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 60
            while not telegram.webhook and process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert telegram.webhook == {"url": hook, "secret_token": WEBHOOK_SECRET}
            user = telegram.user(601)
            telegram.send_text(user, "/start")
            notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m, timeout=20)
            assert "not a diagnosis" in text_of(notice)
            assert 200 in telegram.webhook_deliveries

            async with httpx.AsyncClient() as client:
                # A forged update: a /delete "from" someone else, and a clinician's button press.
                forged_delete = {"update_id": 999998, "message": {
                    "message_id": 1, "date": int(time.time()), "chat": {"id": 601, "type": "private"},
                    "from": {"id": 601, "is_bot": False, "first_name": "X"}, "text": "/delete",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 7}]}}
                for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong" * 8}):
                    forged = await client.post(hook, json=forged_delete, headers=headers)
                    assert forged.status_code == 403
            await asyncio.sleep(1.0)
            assert not any("has been erased" in text_of(m) for m in telegram.sent(user.id))
            # Only loopback: the listener is not reachable on another address of this host.
            import socket

            with socket.socket() as probe:
                probe.settimeout(1)
                other = socket.gethostbyname(socket.gethostname())
                if not other.startswith("127."):
                    assert probe.connect_ex((other, port)) != 0
        finally:
            process.terminate()
            output = process.communicate(timeout=30)[0]
    assert TOKEN not in output and WEBHOOK_SECRET not in output  # DEBUG logs included
    assert (tmp_path / "data" / "bot.sqlite3").is_file()


def test_the_bot_process_never_loads_tensorflow_numpy_or_pillow(tmp_path):
    script = (
        "import sys, json\n"
        "import bot.__main__, bot.app, bot.queue, bot.deliveries, bot.clinicians\n"
        "heavy = ('tensorflow', 'keras', 'numpy', 'PIL', 'matplotlib', 'ai_edge_litert', 'tf_keras_vis', 'sklearn')\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy})\n"
        "inner = sorted(m for m in sys.modules if m.startswith(('model.', 'worker.')))\n"
        "print(json.dumps({'heavy': loaded, 'inner': inner}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    report = json.loads(done.stdout)
    assert report["heavy"] == []
    assert set(report["inner"]) <= {"model.types", "model.errors", "worker.types", "worker.contract"}


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(BOT_ENV_NAMES):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _forget_test_keys(redis_url, tag):
    yield
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"*{tag}*", count=1000):
        connection.delete(key)
