"""`python -m bot` as a process: clear messages for a missing or rejected token, waiting out a
Telegram it cannot reach at start-up, and webhook mode with the secret token."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis

from tests.bot_harness import TOKEN, text_of
from tests.telegram_emulator import TelegramEmulator

REPO = Path(__file__).resolve().parent.parent
BOT_ENV_NAMES = ("TELEGRAM", "WEBHOOK", "REDIS_URL", "DATABASE_PATH", "CLINICIAN")


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(BOT_ENV_NAMES)}
    env["PYTHONPATH"] = str(REPO)
    env.update(values)
    return env


def test_missing_token_is_a_clear_message_and_exit_code_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "TELEGRAM_TOKEN is not set" in done.stderr and "BotFather" in done.stderr
    assert "Traceback" not in done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_mode_env(telegram_base: str, redis_url: str, unique: str, bundle: Path, **values: str) -> dict[str, str]:
    """Environment for a bot process in Redis mode (it loads no model), talking to `telegram_base`."""
    return clean_env(
        TELEGRAM_BASE_URL=f"{telegram_base}/bot",
        TELEGRAM_BASE_FILE_URL=f"{telegram_base}/file/bot",
        REDIS_URL=redis_url,
        SCREENING_QUEUE=f"bot-main-{unique}",
        RESULTS_STREAM=f"bot-main:results:{unique}",
        MODEL_BUNDLE=str(bundle),
        **values,
    )


def test_rejected_token_is_a_clear_message_exit_code_2_and_never_logged(tmp_path, test_bundle_path, redis_url):
    rejected = "123:this-token-was-revoked"
    with TelegramEmulator() as telegram:
        telegram.rejected_tokens.add(rejected)
        env = redis_mode_env(f"http://127.0.0.1:{telegram.port}", redis_url, uuid.uuid4().hex[:8], test_bundle_path,
                             TELEGRAM_TOKEN=rejected)
        done = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 2
    assert "Telegram rejected TELEGRAM_TOKEN" in done.stderr and "BotFather" in done.stderr
    assert rejected not in done.stdout + done.stderr  # PTB's own exception text holds it: redacted


async def test_telegram_unreachable_at_start_up_is_waited_out(tmp_path, test_bundle_path, redis_url):
    port, unique = free_port(), uuid.uuid4().hex[:8]
    env = redis_mode_env(f"http://127.0.0.1:{port}", redis_url, unique, test_bundle_path, TELEGRAM_TOKEN=TOKEN)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        await asyncio.sleep(8)  # the bot starts and finds nothing at its Bot API address
        assert process.poll() is None, "the bot gave up while Telegram was unreachable"
        with TelegramEmulator(port=port) as telegram:
            user = telegram.user(602)
            telegram.send_text(user, "/start")
            notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m, timeout=60)
            assert "not a diagnosis" in text_of(notice)
            process.terminate()
            process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"*{unique}*", count=1000):
        connection.delete(key)


async def test_webhook_mode_checks_the_secret_token(tmp_path, test_bundle_path, redis_url):
    port, secret, unique = free_port(), "s3cret-" + uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    with TelegramEmulator() as telegram:
        env = clean_env(
            TELEGRAM_TOKEN=TOKEN,
            TELEGRAM_BASE_URL=telegram.base_url,
            TELEGRAM_BASE_FILE_URL=telegram.base_file_url,
            WEBHOOK_URL=hook,
            WEBHOOK_SECRET=secret,
            WEBHOOK_LISTEN="127.0.0.1",
            WEBHOOK_PORT=str(port),
            REDIS_URL=redis_url,  # Redis mode: this bot process loads no model
            SCREENING_QUEUE=f"bot-main-{unique}",
            RESULTS_STREAM=f"bot-main:results:{unique}",
            MODEL_BUNDLE=str(test_bundle_path),
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "bot"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 60
            while not telegram.webhook and process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert telegram.webhook == {"url": hook, "secret_token": secret}
            user = telegram.user(601)
            telegram.send_text(user, "/start")
            notice = await telegram.wait_for(user.id, lambda m: "reply_markup" in m, timeout=20)
            assert "not a diagnosis" in text_of(notice)
            assert 200 in telegram.webhook_deliveries

            async with httpx.AsyncClient() as client:  # an update forged without the secret
                forged = await client.post(hook, json={"update_id": 999999, "message": {}})
            assert forged.status_code == 403
        finally:
            process.terminate()
            output = process.communicate(timeout=30)[0].decode(errors="replace")
        assert TOKEN not in output  # the token never reaches the logs
        assert (tmp_path / "data" / "bot.sqlite3").is_file()
    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter(f"*{unique}*", count=1000):
        connection.delete(key)


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(BOT_ENV_NAMES):
            monkeypatch.delenv(name)
