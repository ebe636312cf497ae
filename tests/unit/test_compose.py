"""docker-compose.yml is the production path; Docker cannot run here, so check it statically:
every NBO_* variable is a real setting with a valid value, every command is a real ``nbo``
sub-command whose arguments parse, and every build and image reference exists."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest
import yaml

from services.cli import COMMANDS
from bootstrap.settings import SECRET_SETTINGS, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OFFICIAL_IMAGES = {"apache/kafka", "redis"}


def _setting_exists(name: str) -> bool:
    if name.endswith("_FILE") and tuple(name.removeprefix("NBO_").removesuffix("_FILE").lower().split("__")) in \
            SECRET_SETTINGS:
        return True  # a secret read from a file
    parts = name.removeprefix("NBO_").lower().split("__")
    model: type = Settings
    for part in parts:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return False
        model = fields[part].annotation  # type: ignore[assignment]
    return True


def _env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_every_secret_is_a_file_and_no_password_is_written_here():
    declared = set(COMPOSE.get("secrets", {}))
    for name, service in SERVICES.items():
        env = _env_of(service)
        for key, value in env.items():
            if key.endswith("_FILE") and key.startswith("NBO_"):
                secret = value.removeprefix("/run/secrets/")
                assert value.startswith("/run/secrets/") and secret in service.get("secrets", []), (name, key)
            assert "PASSWORD" not in key or key.endswith("_FILE"), f"{name}: {key} in clear"
        assert set(service.get("secrets", [])) <= declared, name
    assert all("file" in spec for spec in COMPOSE["secrets"].values())


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_nbo_variable_is_a_real_setting(name):
    env = _env_of(SERVICES[name])
    unknown = [k for k in env if k.startswith("NBO_") and not _setting_exists(k)]
    assert not unknown, f"{name}: no such setting {unknown}"


def test_the_stack_settings_validate(monkeypatch, tmp_path):
    env = _env_of(SERVICES["api"])
    for key, value in env.items():
        if key.startswith("NBO_") and not value.startswith("${"):
            if key.endswith("_FILE"):  # the docker secret, as mounted
                secret = tmp_path / value.removeprefix("/run/secrets/")
                secret.write_text(f"{secret.name}-value\n")
                value = str(secret)
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.kafka.bootstrap == "kafka:9092"
    assert settings.redis.url == "redis://redis:6379/0"
    assert settings.kafka.security_protocol == "SASL_PLAINTEXT"
    assert settings.kafka.sasl_password.get_secret_value() == "kafka_password-value"
    assert settings.redis.username == "nbo" and settings.redis.password.get_secret_value() == "redis_password-value"
    assert settings.api.rate_limit == "shared" and settings.api.control_source == "redis"


@pytest.mark.parametrize("name", sorted(n for n, s in SERVICES.items() if "build" in s))
def test_project_services_run_real_nbo_commands(name):
    command = SERVICES[name]["command"]
    assert command[0] == "nbo", f"{name} must run the nbo console script"
    sub = command[1]
    assert sub in COMMANDS, f"{name}: nbo has no sub-command {sub!r}"
    module = importlib.import_module(COMMANDS[sub][0])
    parser = argparse.ArgumentParser(exit_on_error=False)
    module.add_arguments(parser)
    parser.parse_args(command[2:])  # raises if the compose file passes unknown arguments


def test_dockerfile_builds_from_files_that_exist():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert "console_scripts" in (ROOT / "pyproject.toml").read_text() or "[project.scripts]" in (ROOT / "pyproject.toml").read_text()


def test_the_image_holds_every_package_the_project_installs():
    """A package left out of the image would be an ImportError in production only."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = {line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")}
    missing = [p for p in packages if p not in copied]
    assert not missing, f"Dockerfile does not COPY {missing}"
    layers = config["tool"]["importlinter"]["root_packages"]
    assert sorted(layers) == sorted(packages), "import-linter checks every installed package, and only those"


def test_images_are_official_and_pinned():
    for name, service in SERVICES.items():
        if "image" in service:
            image, _, tag = service["image"].partition(":")
            assert image in OFFICIAL_IMAGES, f"{name}: {image} is not an official image"
            assert re.fullmatch(r"[0-9][0-9.]*", tag), f"{name}: pin a version tag, not {tag!r}"


def test_dependencies_wait_for_health():
    for name, service in SERVICES.items():
        for dep, condition in (service.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            wanted = "service_completed_successfully" if SERVICES[dep].get("restart") == "no" else "service_healthy"
            assert condition["condition"] == wanted, f"{name} -> {dep} must wait for {wanted}"
            if wanted == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{dep} needs a healthcheck"


def test_kafka_runs_in_kraft_mode_and_redis_keeps_an_aof():
    kafka = _env_of(SERVICES["kafka"])
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "ZOOKEEPER" not in " ".join(kafka)
    assert "redis-server --appendonly yes --appendfsync everysec" in " ".join(SERVICES["redis"]["command"])
    assert "--user default off --user nbo on" in " ".join(SERVICES["redis"]["command"])  # ACL: only nbo gets in
