"""Profiles render a `feature_store.yaml` that Feast 0.67 accepts, with the course's settings."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from feast.repo_config import RepoConfig, load_repo_config
from sqlalchemy.engine import make_url
from support import isolated_env

from course_lib.config import PROFILES, ConfigError, own_project_env, render, resolve_profile


def rendered(name: str, workdir: Path, **overrides: str) -> tuple[dict, RepoConfig]:
    """Render a profile without FEAST_PG_PASSWORD unless given; return raw YAML and Feast's parse."""
    env = {k: v for k, v in isolated_env(str(workdir)).items() if k != "FEAST_PG_PASSWORD"}
    repo = render(resolve_profile(name, {**env, **overrides}))
    fs_yaml = repo / "feature_store.yaml"
    config = load_repo_config(repo, fs_yaml)
    config.registry, config.online_store, config.offline_store  # noqa: B018 - validates each section
    return yaml.safe_load(fs_yaml.read_text()), config


@pytest.mark.parametrize("name", PROFILES)
def test_rendered_yaml_is_valid_for_feast(name: str, tmp_path: Path) -> None:
    raw, config = rendered(name, tmp_path)
    assert config.entity_key_serialization_version == 3
    assert raw["entity_key_serialization_version"] == 3
    assert config.project == "course_test"
    expected = {"local": ("file", "sqlite", "duckdb"), "enterprise": ("sql", "redis", "postgres")}[name]
    assert (raw["registry"]["registry_type"], config.online_store.type, config.offline_store.type) == expected


@pytest.mark.parametrize("name", PROFILES)
def test_registry_cache_ttl_comes_from_the_environment(name: str, tmp_path: Path) -> None:
    _, config = rendered(name, tmp_path, FEAST_REGISTRY_CACHE_TTL="42")
    assert config.registry.cache_ttl_seconds == 42


def test_enterprise_uses_psycopg3_and_explicit_sslmode(tmp_path: Path) -> None:
    raw, config = rendered("enterprise", tmp_path, FEAST_PG_SSLMODE="require")
    assert config.registry.path.startswith("postgresql+psycopg://")
    assert make_url(config.registry.path).query == {"sslmode": "require", "connect_timeout": "3"}
    assert config.registry.path.endswith("?sslmode=require&connect_timeout=3")
    assert raw["offline_store"]["sslmode"] == "require"
    assert config.offline_store.sslmode == "require"


def test_no_password_is_rendered_when_none_is_set(tmp_path: Path) -> None:
    raw, config = rendered("enterprise", tmp_path)
    assert config.registry.path.startswith("postgresql+psycopg://postgres@")
    assert raw["offline_store"]["password"] == ""
    assert "password" not in raw["online_store"]["connection_string"]


def test_a_set_password_reaches_every_store_url_quoted(tmp_path: Path) -> None:
    raw, _ = rendered("enterprise", tmp_path, FEAST_PG_PASSWORD="p@ss:w/rd", FEAST_REDIS_PASSWORD="r3dis")
    assert raw["registry"]["path"].startswith("postgresql+psycopg://postgres:p%40ss%3Aw%2Frd@")
    assert raw["offline_store"]["password"] == "p@ss:w/rd"
    assert raw["online_store"]["connection_string"].endswith(",password=\"r3dis\"")


def test_unknown_profile_is_a_helpful_config_error() -> None:
    with pytest.raises(ConfigError) as error:
        resolve_profile("production", {})
    message = str(error.value)
    assert "'production'" in message
    assert all(name in message for name in PROFILES)
    assert "COURSE_PROFILE" in message


def test_course_profile_environment_selects_and_the_argument_wins() -> None:
    assert resolve_profile(None, {}).name == "local"
    assert resolve_profile(None, {"COURSE_PROFILE": "enterprise"}).name == "enterprise"
    assert resolve_profile("local", {"COURSE_PROFILE": "enterprise"}).name == "local"
    with pytest.raises(ConfigError, match="COURSE_PROFILE"):
        resolve_profile(None, {"COURSE_PROFILE": "staging"})


def test_section_projects_follow_the_learners_project() -> None:
    """Notebook sections with data of their own name it after FEAST_PROJECT, project and schema alike."""
    env = own_project_env("monitoring", {"FEAST_PROJECT": "learner_07", "FEAST_REDIS_DB": "3"})
    assert env == {"FEAST_PROJECT": "learner_07_monitoring", "FEAST_OFFLINE_SCHEMA": "learner_07_monitoring",
                   "FEAST_REDIS_DB": "3"}
    assert resolve_profile("enterprise", own_project_env("scaleout", {})).project == "movie_recommendation_scaleout"
