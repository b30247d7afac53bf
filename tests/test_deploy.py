"""Deployment files: the compose file is valid and complete, every setting is documented and
reaches the service that reads it, and the image is built as promised. No Docker engine runs
here, so the compose file is checked against the Compose Specification's JSON schema."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest
import yaml

from tests.conftest import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()
ENV_EXAMPLE = (REPO / ".env.example").read_text()


def _env_example_keys() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE, flags=re.MULTILINE))


def test_compose_file_matches_the_compose_specification():
    import jsonschema

    schema_text = (
        resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    ).read_text()
    jsonschema.validate(COMPOSE, json.loads(schema_text))


def test_redis_persists_and_reports_health():
    redis = COMPOSE["services"]["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert redis["healthcheck"]["test"]


@pytest.mark.parametrize("service", ["bot", "worker"])
def test_app_services_wait_for_redis_and_restart(service):
    spec = COMPOSE["services"][service]
    assert spec["depends_on"]["redis"]["condition"] == "service_healthy"
    assert spec["restart"] in ("unless-stopped", "always", "on-failure")
    assert spec["env_file"] == ".env"  # every setting in .env reaches the process
    assert spec["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert any(volume.endswith(":/bundles:ro") for volume in spec["volumes"])


def test_bot_keeps_its_database_on_a_volume():
    bot = COMPOSE["services"]["bot"]
    assert bot["environment"]["DATABASE_PATH"].startswith("/data/")
    assert "bot-data:/data" in bot["volumes"] and "bot-data" in COMPOSE["volumes"]


def test_workers_scale_and_stop_gracefully():
    worker = COMPOSE["services"]["worker"]
    assert worker["command"] == ["python", "-m", "worker"]
    assert "WORKER_REPLICAS" in str(worker["deploy"]["replicas"])
    assert worker["stop_grace_period"]
    assert worker["healthcheck"]["test"][-1] == "worker"


def test_dashboard_is_optional():
    assert COMPOSE["services"]["rq-dashboard"]["profiles"] == ["dashboard"]


def test_no_secret_in_the_compose_file():
    text = (REPO / "docker-compose.yml").read_text()
    assert "TELEGRAM_TOKEN" not in text
    assert not re.search(r"\d{6,}:[A-Za-z0-9_-]{30,}", text)  # the shape of a bot token


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck():
    assert len(re.findall(r"^FROM python:3\.11-slim", DOCKERFILE, flags=re.MULTILINE)) == 2
    assert re.search(r"^USER app$", DOCKERFILE, flags=re.MULTILINE)
    assert "HEALTHCHECK" in DOCKERFILE
    assert "COPY --chown=app:app models/demo" in DOCKERFILE
    assert '"tensorflow-cpu' in (REPO / "pyproject.toml").read_text()


def test_every_setting_is_documented_and_nothing_stale():
    from bot.settings import BotSettings
    from scripts.write_env_example import COMPOSE_VARIABLES, LOCAL_VARIABLES, setting_names
    from worker.settings import WorkerSettings

    documented = _env_example_keys()
    read_by_code = setting_names(BotSettings) | setting_names(WorkerSettings)  # the worker's include the model's
    assert read_by_code - documented == set(), "settings missing from .env.example"
    stale = documented - read_by_code - set(COMPOSE_VARIABLES) - set(LOCAL_VARIABLES)
    assert stale == set(), "settings in .env.example that no code reads"


def test_local_variables_are_read_by_the_local_service():
    from scripts.write_env_example import LOCAL_VARIABLES

    text = (REPO / "scripts" / "supervise.py").read_text()
    for key in LOCAL_VARIABLES:
        assert f'"{key}"' in text, key


def test_compose_variables_are_used_by_the_compose_file():
    from scripts.write_env_example import COMPOSE_VARIABLES

    text = (REPO / "docker-compose.yml").read_text()
    for key in COMPOSE_VARIABLES:
        assert "${" + key in text, key


def test_env_example_is_up_to_date():
    from scripts.write_env_example import render

    assert render() == ENV_EXAMPLE, "run: python scripts/write_env_example.py > .env.example"
