"""docker-compose.feast.yml matches the enterprise profile's settings and defaults."""
from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from course_lib import compose
from course_lib.config import ENV_DEFAULTS, REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.feast.yml"
INIT_SCRIPT = REPO_ROOT / "docker" / "postgres-init" / "01-create-databases.sh"
# `$$` escapes a `$` for the container's shell; everything else is compose interpolation.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")


def strings(node: object) -> list[str]:
    """Every string value in a parsed YAML tree (compose interpolates values, not comments)."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


@pytest.fixture(scope="module")
def compose_text() -> str:
    """All string values of the compose file, with container-side `$$` escapes removed."""
    return "\n".join(strings(yaml.safe_load(COMPOSE_FILE.read_text()))).replace("$$", "")


@pytest.fixture(scope="module")
def services() -> dict:
    """The parsed `services:` section."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def test_every_variable_is_a_profile_setting_with_the_same_default(compose_text: str) -> None:
    used = INTERPOLATION.findall(compose_text)
    assert used, "expected ${VAR:-default} interpolations"
    for name, default in used:
        assert name in ENV_DEFAULTS, f"{name} is not a setting of course_lib.config.ENV_DEFAULTS"
        assert default == ENV_DEFAULTS[name], f"{name} defaults to {default!r}, the profile to {ENV_DEFAULTS[name]!r}"
    leftover = INTERPOLATION.sub("", compose_text)
    assert "$" not in leftover, "every interpolation must be ${VAR:-default}; escape container variables as $$"


def test_only_postgres_and_redis_with_pinned_images(services: dict) -> None:
    assert set(services) == {"postgres", "redis"}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7-alpine"


@pytest.mark.parametrize(("service", "variable", "container_port"),
                         [("postgres", "FEAST_PG_PORT", 5432), ("redis", "FEAST_REDIS_PORT", 6379)])
def test_ports_are_loopback_only_and_follow_the_profile(services: dict, service: str, variable: str,
                                                        container_port: int) -> None:
    assert services[service]["ports"] == [f"127.0.0.1:${{{variable}:-{ENV_DEFAULTS[variable]}}}:{container_port}"]


def test_services_have_healthchecks_named_volumes_and_no_container_name(services: dict) -> None:
    volumes = yaml.safe_load(COMPOSE_FILE.read_text())["volumes"]
    for name, service in services.items():
        assert "container_name" not in service, f"{name} sets container_name"
        assert service["healthcheck"]["test"][0] == "CMD-SHELL", f"{name} has no healthcheck"
        named = [v.split(":")[0] for v in service["volumes"] if not v.startswith(".")]
        assert named and set(named) <= set(volumes), f"{name} must keep its data in a named volume"


def test_postgres_login_has_no_committed_password(services: dict) -> None:
    env = services["postgres"]["environment"]
    assert env["POSTGRES_USER"] == "${FEAST_PG_USER:-postgres}"
    assert env["POSTGRES_PASSWORD"] == "${FEAST_PG_PASSWORD:-}"
    assert env["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256", "never trust: anyone reaching it is a superuser"
    assert "--auth-host=scram-sha-256" in env["POSTGRES_INITDB_ARGS"]
    assert "trust" not in COMPOSE_FILE.read_text().replace("never `trust`", "").replace("trusting", "")


def test_init_script_creates_both_profile_databases(services: dict) -> None:
    postgres = services["postgres"]
    assert "./docker/postgres-init:/docker-entrypoint-initdb.d:ro" in postgres["volumes"]
    for variable in ("FEAST_REGISTRY_DB", "FEAST_OFFLINE_DB"):
        assert postgres["environment"][variable] == f"${{{variable}:-{ENV_DEFAULTS[variable]}}}"
        assert f"${{{variable}:?" in INIT_SCRIPT.read_text(), f"the init script does not create {variable}"
    assert ENV_DEFAULTS["FEAST_REGISTRY_DB"] != ENV_DEFAULTS["FEAST_OFFLINE_DB"]


def test_notebook_01_lists_the_services_with_loopback_ports_and_healthchecks() -> None:
    table = compose.services()
    assert list(table.index) == ["postgres", "redis"]
    assert table["published on"].str.startswith("127.0.0.1:").all() and table["healthcheck"].all()


@pytest.mark.parametrize(("found", "compose_rc", "config_rc", "says"), [
    (False, 0, 0, "Docker is not installed"),
    (True, 1, 0, "without its Compose plugin"),
    (True, 0, 0, "valid"),
    (True, 0, 1, "docker compose config: bad port"),
])
def test_the_validation_says_in_one_line_what_it_did(monkeypatch, found, compose_rc, config_rc, says) -> None:
    monkeypatch.setattr(compose.shutil, "which", lambda name: "/usr/bin/docker" if found else None)

    def run(args, **kwargs):
        rc = compose_rc if args[-1] == "version" else config_rc
        return subprocess.CompletedProcess(args, rc, stdout="", stderr="error\nbad port\n" if rc else "")
    monkeypatch.setattr(compose.subprocess, "run", run)
    line = compose.validate()
    assert says in line and "\n" not in line
