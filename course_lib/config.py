"""Course configuration: the profiles, their environment variables, and `load_store`.

Everything that differs between the embedded `local` profile, the server-backed
`enterprise` profile and the horizontally scaling `scaleout` profile (Redis Cluster, Spark)
is decided here and nowhere else.
"""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping
from urllib.parse import quote

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("local", "enterprise")  # the base profiles; most tests run on both
SCALEOUT = "scaleout"  # Redis Cluster + Spark; slow to start, so tested on its own (tests/test_scaleout.py)
ALL_PROFILES = (*PROFILES, SCALEOUT)
PARQUET_PROFILES = ("local", SCALEOUT)  # offline tables are parquet files under the profile's data_dir
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
    "COURSE_BENCH_PROJECT": "course_bench",  # `course bench`'s own Feast project and offline schema
    "FEAST_REDIS_CLUSTER_NODES": "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
    "FEAST_SCALEOUT_REGISTRY_DB": "feast_registry_scaleout",
    "FEAST_SPARK_MASTER": "local[2]",
    "FEAST_SPARK_DRIVER_MEMORY": "1g",
    "FEAST_SPARK_SHUFFLE_PARTITIONS": "2",
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
        """Folder for the parquet tables (local, scaleout), the SQLite file and the file registry (local)."""
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

    @property
    def offline_is_parquet(self) -> bool:
        """Whether the offline tables are parquet files (read by duckdb or Spark) rather than PostgreSQL tables."""
        return self.name in PARQUET_PROFILES

    def offline_location(self, view: str) -> str:
        """Where a feature view's offline table lives: a parquet path or `schema.table`.

        `scaleout` keeps its own copies under its repo_dir (written by `course data --profile
        scaleout`), so it never changes the `local` profile's files.
        """
        if self.offline_is_parquet:
            return str(self.data_dir / f"{view}.parquet")
        return f"{self.offline_schema}.{view}"

    @property
    def parquet_write_options(self) -> dict[str, object]:
        """pyarrow options for this profile's parquet files: Spark reads timestamps only down to
        microseconds (as PostgreSQL stores them), so scaleout's are written in microseconds."""
        return {"coerce_timestamps": "us", "allow_truncated_timestamps": True} if self.name == SCALEOUT else {}

    @property
    def registry_database(self) -> str:
        """PostgreSQL database of the SQL registry; `scaleout` has its own, because its data
        sources (Spark) differ from `enterprise`'s for the same project."""
        return self.get("FEAST_SCALEOUT_REGISTRY_DB" if self.name == SCALEOUT else "FEAST_REGISTRY_DB")

    @property
    def pg_databases(self) -> list[str]:
        """The PostgreSQL databases this profile uses: registry and offline store, or just the registry."""
        if self.name == "enterprise":
            return [self.registry_database, self.get("FEAST_OFFLINE_DB")]
        return [self.registry_database] if self.name == SCALEOUT else []

    def redis_cluster_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every Redis Cluster node listed in FEAST_REDIS_CLUSTER_NODES."""
        nodes = []
        for item in self.get("FEAST_REDIS_CLUSTER_NODES").split(","):
            host, _, port = item.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"FEAST_REDIS_CLUSTER_NODES entry {item!r} is not host:port; expected e.g. "
                                  f"{ENV_DEFAULTS['FEAST_REDIS_CLUSTER_NODES']!r}")
            nodes.append((host, int(port)))
        return nodes

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
                f"{self.registry_database}?sslmode={s['FEAST_PG_SSLMODE']}&connect_timeout=3")

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

    def redis_cluster_connection_string(self) -> str:
        """Feast's Redis Cluster connection string: every node, socket timeouts, no cluster retries.

        redis-py's cluster client retries 3 times with up-to-10 s backoff by default, so a read
        of a stopped master's slots would hang for seconds; with 0 retries it fails at once.
        `require_full_coverage=false` keeps the client usable while some slots have no master.
        """
        s = self.settings
        timeout = s["FEAST_REDIS_TIMEOUT_S"]
        nodes = ",".join(f"{host}:{port}" for host, port in self.redis_cluster_nodes())
        conn = (f"{nodes},socket_timeout={timeout},socket_connect_timeout={timeout},"
                "cluster_error_retry_attempts=0,require_full_coverage=false")
        if s["FEAST_REDIS_PASSWORD"]:
            conn += f",password={s['FEAST_REDIS_PASSWORD']}"
        return conn

    def spark_conf(self) -> dict[str, str]:
        """Spark session settings shared by the Spark offline store and the Spark compute engine.

        FEAST_SPARK_MASTER is `local[2]` here; point it at a real cluster (`spark://host:7077`,
        `yarn`, `k8s://...`) and put the parquet files on storage every executor can read.
        """
        s = self.settings
        conf = {
            "spark.master": s["FEAST_SPARK_MASTER"],
            "spark.app.name": f"feast-course-{self.project}",
            "spark.driver.memory": s["FEAST_SPARK_DRIVER_MEMORY"],
            "spark.sql.shuffle.partitions": s["FEAST_SPARK_SHUFFLE_PARTITIONS"],
            "spark.sql.session.timeZone": "UTC",  # Feast writes its time bounds as UTC literals
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.log.level": "ERROR",
        }
        if s["FEAST_SPARK_MASTER"].startswith("local"):
            conf.update({"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
                         # local workers fork from a daemon that has Feast imported and quieted
                         "spark.python.daemon.module": "course_lib.spark_daemon"})
        return conf

    def spark_environment(self) -> dict[str, str]:
        """Environment a Spark driver process needs before its JVM starts.

        - PYSPARK_PYTHON: Spark starts its Python workers with it (default: `python3` on PATH);
          they must import feast, so they run this interpreter.
        - PYSPARK_SUBMIT_ARGS: `spark_conf()` as launcher options, so they apply to whichever
          session starts first. Feast 0.67's Spark compute engine hands its whole `batch_engine`
          section, not its `spark_conf`, to the session builder ("Ignoring non-Spark config
          property: spark_conf"), so a session it started would otherwise run without them.
        - SPARK_LOCAL_IP: the driver binds to loopback in local mode (no hostname lookup warning).
        """
        env = {"PYSPARK_PYTHON": sys.executable,
               "PYSPARK_SUBMIT_ARGS": " ".join(f"--conf {shlex.quote(f'{key}={value}')}"
                                               for key, value in self.spark_conf().items()) + " pyspark-shell"}
        if self.get("FEAST_SPARK_MASTER").startswith("local"):
            env["SPARK_LOCAL_IP"] = "127.0.0.1"
        return env

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
            return config
        config["registry"] = {"registry_type": "sql", "path": self.registry_url(), "cache_ttl_seconds": ttl,
                              "sqlalchemy_config_kwargs": {"pool_pre_ping": True}}
        if self.name == SCALEOUT:
            config["online_store"] = {"type": "redis", "redis_type": "redis_cluster",
                                      "connection_string": self.redis_cluster_connection_string()}
            config["offline_store"] = {"type": "spark", "spark_conf": self.spark_conf()}
            config["batch_engine"] = {"type": "spark.engine", "spark_conf": self.spark_conf()}
        else:
            s = self.settings
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
    if name not in ALL_PROFILES:
        raise ConfigError(f"unknown profile {name!r}: choose one of {', '.join(ALL_PROFILES)} "
                          "(--profile flag or COURSE_PROFILE environment variable)")
    if not settings["FEAST_PROJECT"].replace("_", "").isalnum():
        raise ConfigError(f"FEAST_PROJECT={settings['FEAST_PROJECT']!r} must use letters, digits and _ only")
    return Profile(name=name, settings=settings)


def own_project_env(section: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a notebook section that keeps its data apart: `<FEAST_PROJECT>_<section>`
    as its Feast project and offline schema, so learners sharing services never share it."""
    env = os.environ if env is None else env
    project = f"{env.get('FEAST_PROJECT', ENV_DEFAULTS['FEAST_PROJECT'])}_{section}"
    return {**env, "FEAST_PROJECT": project, "FEAST_OFFLINE_SCHEMA": project}


# `load_store(profile, tuned=True)`: bulk-load settings; notebook 05 measures the trade-offs.
TUNED_YAML = "feature_store.tuned.yaml"
TUNED_MATERIALIZATION = {"pull_latest_features": True, "online_write_batch_size": 50_000}
# One thread per feature view, online rows written in bulk (course_lib.redis_format); Redis only
# (Feast's SQLite store shares one connection between threads).
PARALLEL_ENGINE = {"type": "course_lib.optimization.ParallelLocalComputeEngine", "workers": len(FEATURE_VIEWS)}
# Session settings of `historical_features_tuned`, SET LOCAL to its transaction: no JIT compilation
# (its cost estimate is high, its runtime short), the entity rows' sort in memory, and ISO timestamps
# in the COPY output it parses.
PG_PIT_SETTINGS = {"jit": "off", "work_mem": "64MB", "DateStyle": "ISO, MDY"}


def tuned_config(config: dict) -> dict:
    """A `feature_store.yaml` dict plus the tuned materialization settings (retrieval is tuned in code)."""
    tuned = {**config, "materialization": dict(TUNED_MATERIALIZATION)}
    if config["online_store"]["type"] == "redis":
        tuned["online_store"] = {**config["online_store"], "skip_dedup": True}
        if "batch_engine" not in config:
            tuned["batch_engine"] = dict(PARALLEL_ENGINE)
    return tuned


def render(profile: Profile, tuned: bool = False) -> Path:
    """Write the profile's `feature_store.yaml` (or `TUNED_YAML`) if it changed; return its folder."""
    profile.data_dir.mkdir(parents=True, exist_ok=True)
    target = profile.repo_dir / (TUNED_YAML if tuned else "feature_store.yaml")
    config = profile.feature_store_config()
    text = yaml.safe_dump(tuned_config(config) if tuned else config, sort_keys=False)
    if not target.exists() or target.read_text() != text:
        tmp = target.with_suffix(".yaml.tmp")
        tmp.write_text(text)
        tmp.replace(target)
    return profile.repo_dir


def load_store(profile: str | Profile | None = None, tuned: bool = False) -> "feast.FeatureStore":  # noqa: F821
    """Render the profile's `feature_store.yaml` (tuned: `TUNED_YAML`) and return a ready `FeatureStore`."""
    from feast import FeatureStore

    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)
    if resolved.name == SCALEOUT:  # before Feast starts a Spark JVM in this process; the learner's own values win
        for key, value in resolved.spark_environment().items():
            os.environ.setdefault(key, value)
    folder = render(resolved, tuned)
    return FeatureStore(repo_path=str(folder), fs_yaml_file=folder / TUNED_YAML if tuned else None)
