"""Deployment files: the compose file, the Dockerfile, the lock files and the container helpers.

No container engine runs in CI, so these check what can be checked without one: the compose file
against the Compose Specification's JSON schema, the promises of docs/OPERATIONS.md (health checks,
secrets only where needed, networks, hardening), the Dockerfile's two targets, the lock files
against pyproject.toml, and the two scripts the images run (health check, install check).
The stack itself is run with podman by ../shared/tools/compose-trial.sh (see docs/OPERATIONS.md).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import tomllib
from importlib import resources

import pytest
import yaml
from packaging.requirements import Requirement

from tests.conftest import REPO

COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
APP_SERVICES = ("bot", "worker")
DOCKERFILE = (REPO / "Dockerfile").read_text()
ENV_EXAMPLE = (REPO / ".env.example").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
HEAVY = {"tensorflow", "tensorflow-cpu", "keras", "tf-keras-vis", "ai-edge-litert", "numpy", "pillow"}
DIGEST = r"@sha256:[0-9a-f]{64}"


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "docker" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, f"write durations as 30s or 2m, not {duration!r}"
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def _lock(name: str) -> dict[str, tuple[str, list[str]]]:
    """{package: (version, hashes)} of requirements/<name>.txt."""
    text = (REPO / "requirements" / f"{name}.txt").read_text()
    pins = {}
    for block in re.split(r"\n(?=[a-z0-9])", text.split("\n", 2)[-1]):
        match = re.match(r"([a-z0-9._-]+)==(\S+)", block)
        if match:
            pins[match.group(1)] = (match.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- the compose file -------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification():
    import jsonschema

    schema_text = (
        resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    ).read_text()
    jsonschema.validate(COMPOSE, json.loads(schema_text))


def test_the_services_are_redis_bot_and_workers_only():
    assert set(SERVICES) == {"redis", "bot", "worker"}  # rq-dashboard removed: docs/OPERATIONS.md


@pytest.mark.parametrize("service", ["redis", "bot", "worker"])
def test_every_service_is_hardened_restarts_and_stops_gracefully(service):
    spec = SERVICES[service]
    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"] and "cap_add" not in spec
    assert "no-new-privileges:true" in spec["security_opt"]
    assert spec["init"] is True  # SIGTERM reaches the service, not an ignoring PID 1
    assert spec["restart"] == "unless-stopped"
    assert re.fullmatch(r"\d+[mg]", spec["mem_limit"])
    assert _seconds(spec["stop_grace_period"]) >= 10
    assert any(mount.startswith("/tmp:") for mount in spec["tmpfs"])  # the only writable path


@pytest.mark.parametrize("service", ["redis", "bot", "worker"])
def test_every_service_has_a_health_check(service):
    check = SERVICES[service]["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    assert _seconds(check["interval"]) <= 10 and check["retries"] >= 3
    assert _seconds(check["start_period"]) > 0


@pytest.mark.parametrize(("service", "touch_every_s", "load_s"), [("bot", 5, 5), ("worker", 5, 10)])
def test_app_health_is_the_age_of_the_file_the_service_touches(service, touch_every_s, load_s):
    spec = SERVICES[service]
    check = spec["healthcheck"]
    assert check["test"][:5] == ["CMD", "python", "-I", "-S", "/app/healthcheck.py"]
    max_age_s = float(check["test"][5])
    assert 2 * touch_every_s <= max_age_s <= 4 * touch_every_s  # one missed touch is not a failure
    assert spec["environment"]["HEALTH_FILE"].startswith("/tmp/")  # tmpfs: no stale file after a restart
    assert _seconds(check["start_period"]) >= 3 * load_s  # TensorFlow loads slower on a busy machine
    assert f'"{check["test"][5]}"]' in DOCKERFILE  # the image's HEALTHCHECK agrees (docker run)


def test_redis_requires_its_password_persists_and_caps_memory():
    redis = SERVICES["redis"]
    assert re.search(DIGEST, redis["image"]), "pin redis by digest"
    script = redis["command"][-1]
    assert redis["command"][:2] == ["sh", "-c"] and script.startswith("exec redis-server - ")
    assert "requirepass $$REDIS_PASSWORD" in script  # on stdin: never on a command line
    assert "--appendonly yes" in script
    assert "--maxmemory-policy noeviction" in script and "--maxmemory " in script
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert "REDISCLI_AUTH" in redis["healthcheck"]["test"][1] and "PONG" in redis["healthcheck"]["test"][1]
    assert redis["user"] == "redis"
    assert redis["volumes"] == ["redis-data:/data"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_bot_and_workers_reach_redis_with_the_password(service):
    spec = SERVICES[service]
    url = spec["environment"]["REDIS_URL"]
    assert url.startswith("redis://:${REDIS_PASSWORD:?") and url.endswith("@redis:6379/0")
    assert spec["depends_on"]["redis"]["condition"] == "service_healthy"
    assert spec["command"][:2] == ["python", "-m"]  # exec form: python gets the signals


def test_networks_keep_redis_and_workers_off_the_outside():
    assert COMPOSE["networks"]["backend"]["internal"] is True
    assert "internal" not in COMPOSE["networks"]["egress"]
    assert SERVICES["redis"]["networks"] == ["backend"]
    assert SERVICES["worker"]["networks"] == ["backend"]
    assert SERVICES["bot"]["networks"] == ["backend", "egress"]
    assert "ports" not in SERVICES["redis"] and "ports" not in SERVICES["worker"]
    assert all(port.startswith("127.0.0.1:") for port in SERVICES["bot"]["ports"])
    assert SERVICES["bot"]["environment"]["WEBHOOK_LISTEN"] == "0.0.0.0"  # published on loopback only


def test_secrets_reach_the_bot_only():
    assert SERVICES["bot"]["env_file"] == ".env"
    assert "env_file" not in SERVICES["worker"] and "env_file" not in SERVICES["redis"]
    assert not {"TELEGRAM_TOKEN", "WEBHOOK_SECRET"} & set(SERVICES["worker"]["environment"])
    assert "TELEGRAM_TOKEN" not in re.sub(r"#.*", "", COMPOSE_TEXT)  # comments may name it
    assert not re.search(r"\d{6,}:[A-Za-z0-9_-]{30,}", COMPOSE_TEXT)  # the shape of a bot token


def test_workers_get_every_worker_setting_and_nothing_else():
    from scripts.write_env_example import setting_names
    from worker.settings import WorkerSettings

    environment = SERVICES["worker"]["environment"]
    assert set(environment) == setting_names(WorkerSettings) | {"HEALTH_FILE"}
    for key, value in environment.items():
        if key not in ("REDIS_URL", "HEALTH_FILE"):
            assert value.startswith("${" + key + ":-"), key  # from .env when set there
    # Unset ones arrive empty, which must mean "the default":
    assert WorkerSettings.model_config.get("env_ignore_empty") is True
    bundle = environment["MODEL_BUNDLE"].removeprefix("${MODEL_BUNDLE:-").removesuffix("}")
    assert f"ENV MODEL_BUNDLE={bundle}" in DOCKERFILE and f"COPY models/demo {bundle}" in DOCKERFILE


def test_volumes_are_named_or_read_only_binds():
    named = set(COMPOSE["volumes"])
    assert named == {"redis-data", "bot-data"}
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in named or volume.endswith(":ro"), volume
    assert "bot-data:/data" in SERVICES["bot"]["volumes"]
    assert SERVICES["bot"]["environment"]["DATABASE_PATH"].startswith("/data/")
    assert not re.search(r"^VOLUME", DOCKERFILE, flags=re.MULTILINE)  # no anonymous volumes


def test_workers_scale_with_deploy_replicas():
    worker = SERVICES["worker"]
    assert worker["deploy"]["mode"] == "replicated"  # podman-compose ignores replicas without it
    assert "WORKER_REPLICAS" in str(worker["deploy"]["replicas"])
    assert _seconds(worker["stop_grace_period"]) >= 60  # the running job finishes first


def test_each_app_service_builds_its_own_target():
    for service in APP_SERVICES:
        assert SERVICES[service]["build"]["target"] == service
        assert SERVICES[service]["image"] == f"mpox-screen-{service}:latest"
        assert re.search(rf"^FROM runtime AS {service}$", DOCKERFILE, flags=re.MULTILINE)


# --- the Dockerfile and what it installs ------------------------------------------------------


def test_base_image_is_pinned_by_digest_and_overridable():
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert default and re.fullmatch(r"python:3\.11-slim" + DIGEST, default.group(1))
    for image in re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.MULTILINE):
        assert image in ("${PYTHON_IMAGE}", "runtime"), image


def test_images_install_the_locked_dependencies_with_hashes():
    installs = re.findall(r"pip install [^\n&]*", DOCKERFILE)
    for line in installs:
        assert "--require-hashes" in line or "--no-deps --no-index /tmp/wheels/" in line, line
    assert "COPY requirements/bot.txt" in DOCKERFILE and "COPY requirements/worker.txt" in DOCKERFILE
    assert DOCKERFILE.count("verify_install.py check") == 2  # the build fails on stale packages


def test_runtime_files_belong_to_root():
    runtime = DOCKERFILE[DOCKERFILE.index("AS runtime") :]
    assert "--chown" not in runtime and "chown" not in runtime.replace("-o app -g app -m 0700 /data", "")
    assert re.search(r"^USER app$", runtime, flags=re.MULTILINE)


def test_docker_build_context_is_an_allow_list():
    lines = (REPO / ".dockerignore").read_text().split("\n")
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*"
    assert not any(p.startswith("!") and (".env" in p or "build" in p) for p in patterns)


@pytest.mark.parametrize("name", ["bot", "worker", "build"])
def test_lock_files_pin_every_package_with_hashes(name):
    pins = _lock(name)
    assert pins
    for package, (version, hashes) in pins.items():
        assert hashes, f"{package}=={version} has no hash"


@pytest.mark.parametrize("extra", ["bot", "worker"])
def test_lock_files_satisfy_pyproject(extra):
    pins = _lock(extra)
    declared = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"][extra]
    for line in declared:
        requirement = Requirement(line)
        version, _ = pins[_normal(requirement.name)]
        assert requirement.specifier.contains(version), f"{line}: locked {version}"
    if extra == "bot":
        assert not HEAVY & set(pins), "the bot's image must not carry TensorFlow's stack"


def test_dependency_lists_split_by_process():
    project = PYPROJECT["project"]
    assert not HEAVY & {_normal(Requirement(r).name) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert {"bot", "worker", "study", "dev"} <= set(extras)
    assert "mpox-screen[bot,worker,study]" in extras["dev"]  # development installs everything
    floors = {_normal(Requirement(r).name): Requirement(r).specifier for r in extras["bot"] + extras["worker"]}
    assert not floors["pillow-heif"].contains("1.6.0")  # bundled libheif: CVE-2025-29482, -68431
    assert not floors["tornado"].contains("6.4.2")  # CVE-2025-47287


# --- the scripts the images run -----------------------------------------------------------------


def test_health_check_reads_the_age_of_the_health_file(tmp_path):
    healthcheck = _load_script("healthcheck")
    path = tmp_path / "health"
    assert healthcheck.verdict(None, 15, now=0)[0] is False
    assert healthcheck.verdict(str(path), 15, now=0)[0] is False  # not ready yet
    path.touch()
    touched = path.stat().st_mtime
    assert healthcheck.verdict(str(path), 15, now=touched + 3) == (True, f"healthy: {path} touched 3.0 s ago")
    healthy, reason = healthcheck.verdict(str(path), 15, now=touched + 40)
    assert not healthy and "40 s ago" in reason


def test_install_check_catches_placeholder_missing_and_stray_files(tmp_path):
    verify = _load_script("verify_install")
    expected = verify.manifest(REPO)
    assert "model/__init__.py" in expected and "bot/locales/en/LC_MESSAGES/mpox.mo" in expected
    site = tmp_path / "site-packages"
    for package in verify.PACKAGES:
        shutil.copytree(REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert verify.check(expected, [str(site)]) == []

    (site / "model" / "__init__.py").write_text("")  # the stale placeholder of issue 14
    (site / "worker" / "jobs.py").unlink()
    (site / "bot" / "old.py").write_text("")
    problems = verify.check(expected, [str(site)])
    assert problems == [
        "model/__init__.py: differs from the checkout (0 bytes installed)",
        f"worker/jobs.py: missing from {site / 'worker'}",
        "bot/old.py: installed but not in the checkout",
    ]


# --- settings and .env.example ------------------------------------------------------------------


def _env_example_keys() -> set[str]:
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE, flags=re.MULTILINE))


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

    for key in COMPOSE_VARIABLES:
        assert "${" + key in COMPOSE_TEXT, key
    assert re.search(r"^REDIS_PASSWORD=$", ENV_EXAMPLE, flags=re.MULTILINE)  # empty: compose refuses


def test_env_example_is_up_to_date():
    from scripts.write_env_example import render

    assert render() == ENV_EXAMPLE, "run: python scripts/write_env_example.py > .env.example"
