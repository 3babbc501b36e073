"""Course configuration: the two profiles, their environment variables, and `load_store`.

Everything that differs between the embedded `local` profile and the server-backed
`enterprise` profile is decided here and nowhere else.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import quote

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("local", "enterprise")
FEATURE_VIEWS = ("user_profile_features", "movie_metadata_features", "user_movie_interaction_features")

# Every environment variable the course reads, with its documented default.
ENV_DEFAULTS: dict[str, str] = {
    "COURSE_PROFILE": "local",
    "COURSE_WORKDIR": str(REPO_ROOT / "var"),
    "FEAST_PROJECT": "movie_recommendation",
    "FEAST_REGISTRY_CACHE_TTL": "10",
    "FEAST_REDIS_HOST": "127.0.0.1",
    "FEAST_REDIS_PORT": "6379",
    "FEAST_REDIS_DB": "0",
    "FEAST_REDIS_PASSWORD": "",
    "FEAST_REDIS_TIMEOUT_S": "0.5",
    "FEAST_PG_HOST": "127.0.0.1",
    "FEAST_PG_PORT": "5432",
    "FEAST_PG_USER": "postgres",
    "FEAST_PG_PASSWORD": "",
    "FEAST_PG_SSLMODE": "disable",
    "FEAST_REGISTRY_DB": "feast_registry",
    "FEAST_OFFLINE_DB": "feast_offline",
    "FEAST_OFFLINE_SCHEMA": "course",
    "COURSE_PIPELINE_STALE_S": "3600",
}


class ConfigError(ValueError):
    """A profile or environment setting is invalid; the message says how to fix it."""


@dataclass(frozen=True)
class Profile:
    """One resolved profile: its name plus every setting read from the environment."""

    name: str
    settings: Mapping[str, str]

    def get(self, key: str) -> str:
        """Return one setting (an `ENV_DEFAULTS` key)."""
        return self.settings[key]

    @property
    def project(self) -> str:
        """The Feast project name; tests use their own to stay isolated."""
        return self.get("FEAST_PROJECT")

    @property
    def repo_dir(self) -> Path:
        """Folder holding this profile's rendered `feature_store.yaml`."""
        return Path(self.get("COURSE_WORKDIR")) / self.name / self.project

    @property
    def data_dir(self) -> Path:
        """Folder for the local profile's parquet tables, SQLite file and registry."""
        return self.repo_dir / "data"

    @property
    def raw_dir(self) -> Path:
        """Folder holding the canonical dataset the feature tables were built from."""
        return self.repo_dir / "raw"

    @property
    def model_path(self) -> Path:
        """Where the trained ranker is saved."""
        return self.repo_dir / "ranker.joblib"

    @property
    def offline_schema(self) -> str:
        """PostgreSQL schema holding the enterprise offline tables."""
        return self.get("FEAST_OFFLINE_SCHEMA")

    def offline_location(self, view: str) -> str:
        """Where a feature view's offline table lives: a parquet path or `schema.table`."""
        if self.name == "local":
            return str(self.data_dir / f"{view}.parquet")
        return f"{self.offline_schema}.{view}"

    def pg_conninfo(self, database: str | None = None) -> str:
        """A libpq connection string for the offline (or another) database."""
        s = self.settings
        parts = {
            "host": s["FEAST_PG_HOST"], "port": s["FEAST_PG_PORT"], "user": s["FEAST_PG_USER"],
            "dbname": database or s["FEAST_OFFLINE_DB"], "sslmode": s["FEAST_PG_SSLMODE"],
            "connect_timeout": "3",
        }
        if s["FEAST_PG_PASSWORD"]:
            parts["password"] = s["FEAST_PG_PASSWORD"]
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def registry_url(self) -> str:
        """SQLAlchemy URL of the SQL registry (psycopg 3 driver, explicit sslmode)."""
        s = self.settings
        auth = quote(s["FEAST_PG_USER"], safe="")
        if s["FEAST_PG_PASSWORD"]:
            auth += ":" + quote(s["FEAST_PG_PASSWORD"], safe="")
        return (f"postgresql+psycopg://{auth}@{s['FEAST_PG_HOST']}:{s['FEAST_PG_PORT']}/"
                f"{s['FEAST_REGISTRY_DB']}?sslmode={s['FEAST_PG_SSLMODE']}&connect_timeout=3")

    def redis_connection_string(self) -> str:
        """Feast's Redis connection string, with socket timeouts and no retries so outages fail fast.

        redis-py 7 retries a failed command 3 times with backoff by default (measured: 503s took
        4-10 s); with `retry=null` they take milliseconds, and the client still reconnects.
        """
        s = self.settings
        timeout = s["FEAST_REDIS_TIMEOUT_S"]
        conn = (f"{s['FEAST_REDIS_HOST']}:{s['FEAST_REDIS_PORT']},db={s['FEAST_REDIS_DB']},"
                f"socket_timeout={timeout},socket_connect_timeout={timeout},retry=null")
        if s["FEAST_REDIS_PASSWORD"]:
            conn += f",password={s['FEAST_REDIS_PASSWORD']}"
        return conn

    def feature_store_config(self) -> dict:
        """The `feature_store.yaml` content for this profile."""
        ttl = int(self.get("FEAST_REGISTRY_CACHE_TTL"))
        config: dict = {"project": self.project, "provider": "local",
                        "entity_key_serialization_version": 3}
        if self.name == "local":
            config["registry"] = {"registry_type": "file", "path": str(self.data_dir / "registry.db"),
                                  "cache_ttl_seconds": ttl}
            config["online_store"] = {"type": "sqlite", "path": str(self.data_dir / "online.db")}
            config["offline_store"] = {"type": "duckdb"}
        else:
            s = self.settings
            config["registry"] = {"registry_type": "sql", "path": self.registry_url(),
                                  "cache_ttl_seconds": ttl,
                                  "sqlalchemy_config_kwargs": {"pool_pre_ping": True}}
            config["online_store"] = {"type": "redis", "connection_string": self.redis_connection_string()}
            config["offline_store"] = {
                "type": "postgres", "host": s["FEAST_PG_HOST"], "port": int(s["FEAST_PG_PORT"]),
                "database": s["FEAST_OFFLINE_DB"], "db_schema": self.offline_schema,
                "user": s["FEAST_PG_USER"], "password": s["FEAST_PG_PASSWORD"],
                "sslmode": s["FEAST_PG_SSLMODE"],
            }
        return config


def resolve_profile(profile: str | None = None, env: Mapping[str, str] | None = None) -> Profile:
    """Pick a profile from the argument, then `COURSE_PROFILE`, then the `local` default."""
    env = os.environ if env is None else env
    settings = {key: env.get(key, default) for key, default in ENV_DEFAULTS.items()}
    name = profile or settings["COURSE_PROFILE"]
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)} "
                          "(--profile flag or COURSE_PROFILE environment variable)")
    if not settings["FEAST_PROJECT"].replace("_", "").isalnum():
        raise ConfigError(f"FEAST_PROJECT={settings['FEAST_PROJECT']!r} must use letters, digits and _ only")
    return Profile(name=name, settings=settings)


def render(profile: Profile) -> Path:
    """Write the profile's `feature_store.yaml` (only when it changed) and return its folder."""
    profile.data_dir.mkdir(parents=True, exist_ok=True)
    target = profile.repo_dir / "feature_store.yaml"
    text = yaml.safe_dump(profile.feature_store_config(), sort_keys=False)
    if not target.exists() or target.read_text() != text:
        tmp = target.with_suffix(".yaml.tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return profile.repo_dir


def load_store(profile: str | Profile | None = None) -> "feast.FeatureStore":  # noqa: F821
    """Render the profile's `feature_store.yaml` and return a ready `FeatureStore`."""
    from feast import FeatureStore

    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)
    return FeatureStore(repo_path=str(render(resolved)))
