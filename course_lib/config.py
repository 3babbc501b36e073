"""Course configuration: the profiles, their settings (`course_lib.settings`), and `load_store`.

Everything that differs between the embedded `local` profile, the server-backed
`enterprise` profile and the horizontally scaling `scaleout` profile (Redis Cluster, Spark)
is decided here and nowhere else.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import yaml

from course_lib.files import write_private
from course_lib.messages import say
from course_lib.settings import REPO_ROOT as REPO_ROOT  # re-exported: notebooks and modules import it from config
from course_lib.settings import ConfigError as ConfigError  # re-exported: the error of a bad profile or setting
from course_lib.settings import Settings, variables

if TYPE_CHECKING:
    from feast import FeatureStore
    from psycopg import sql

PROFILES = ("local", "enterprise")  # the base profiles; most tests run on both
SCALEOUT = "scaleout"  # Redis Cluster + Spark; slow to start, so tested on its own (tests/test_scaleout.py)
ALL_PROFILES = (*PROFILES, SCALEOUT)
PARQUET_PROFILES = ("local", SCALEOUT)  # offline tables are parquet files under the profile's data_dir
LOOPBACK = {"127.0.0.1", "localhost", "::1"}  # this machine: the only hosts of load tests and local clusters
PG_KEEPALIVE_INTERVAL_S = 2  # seconds between TCP keepalive probes of an idle PostgreSQL connection
PG_KEEPALIVE_COUNT = 3  # unanswered probes before the connection counts as dead

# Every environment variable the course reads, with its documented default (the fields of `Settings`).
ENV_DEFAULTS: dict[str, str] = variables()


@dataclass(frozen=True)
class Profile:
    """One resolved profile: its name plus every setting, typed and validated (`settings.Settings`)."""

    name: str
    settings: Settings

    @property
    def project(self) -> str:
        """The Feast project name; tests use their own to stay isolated."""
        return self.settings.project

    @property
    def workdir(self) -> Path:
        """COURSE_WORKDIR: rendered configuration and local data of every profile."""
        return self.settings.workdir

    @property
    def repo_dir(self) -> Path:
        """Folder holding this profile's rendered `feature_store.yaml`."""
        return self.workdir / self.name / self.project

    @property
    def data_dir(self) -> Path:
        """Folder for the parquet tables (local, scaleout), the SQLite file and the file registry (local)."""
        return self.repo_dir / "data"

    @property
    def offline_dir(self) -> Path:
        """The parquet tables' folder (local, scaleout): a link to the current generation, which
        `course data` replaces as a whole (`files.swap_folder`), so no reader sees old and new tables mixed."""
        return self.data_dir / "offline"

    @property
    def raw_dir(self) -> Path:
        """Folder holding the canonical dataset the feature tables were built from."""
        return self.repo_dir / "raw"

    @property
    def feature_log_dir(self) -> Path:
        """The served-feature log's parquet folder (local: Feast's FileLoggingDestination; scaleout: the course's)."""
        return self.data_dir / "feature_log"

    @property
    def model_path(self) -> Path:
        """Where the trained ranker is saved."""
        return self.repo_dir / "ranker.joblib"

    @property
    def offline_schema(self) -> str:
        """PostgreSQL schema holding the enterprise offline tables."""
        return self.settings.offline_schema

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
            return str(self.offline_dir / f"{view}.parquet")
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
        return self.settings.scaleout_registry_db if self.name == SCALEOUT else self.settings.registry_db

    @property
    def pg_databases(self) -> list[str]:
        """The PostgreSQL databases this profile uses: registry and offline store, or just the registry."""
        if self.name == "enterprise":
            return [self.registry_database, self.settings.offline_db]
        return [self.registry_database] if self.name == SCALEOUT else []

    def redis_cluster_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every Redis Cluster node listed in FEAST_REDIS_CLUSTER_NODES (validated as host:port)."""
        return [(host, int(port)) for host, _, port in
                (item.strip().rpartition(":") for item in self.settings.redis_cluster_nodes.split(","))]

    def pg_link_options(self) -> dict[str, Any]:
        """libpq options of every course connection to PostgreSQL: connect timeout, TCP keepalives and
        `tcp_user_timeout`, so a dead or silent server is noticed in seconds instead of minutes."""
        s = self.settings
        return {"connect_timeout": s.pg_connect_timeout_s, "keepalives": 1, "keepalives_idle": s.pg_keepalives_idle_s,
                "keepalives_interval": PG_KEEPALIVE_INTERVAL_S, "keepalives_count": PG_KEEPALIVE_COUNT,
                "tcp_user_timeout": s.pg_tcp_user_timeout_ms}

    def pg_statement_options(self, lock_timeout: bool) -> str:
        """The libpq `options` giving every statement a `statement_timeout` (and a `lock_timeout` if asked)."""
        s = self.settings
        options = f"-c statement_timeout={s.pg_statement_timeout_ms}"
        return f"{options} -c lock_timeout={s.pg_lock_timeout_ms}" if lock_timeout else options

    def pg_conninfo(self, database: str | None = None, bounded: bool = False) -> str:
        """A libpq connection string for the offline (or another) database.

        Every connection gets `pg_link_options`; `bounded` ones (the API's reads: health, freshness,
        the movie near-cache) also get statement and lock timeouts. Data loads are not bounded.
        """
        from psycopg.conninfo import make_conninfo

        s = self.settings
        parts: dict[str, Any] = {"host": s.pg_host, "port": s.pg_port, "user": s.pg_user,
                                 "dbname": database or s.offline_db, "sslmode": s.pg_sslmode, **self.pg_link_options()}
        if s.pg_password.get_secret_value():
            parts["password"] = s.pg_password.get_secret_value()
        if bounded:
            parts["options"] = self.pg_statement_options(lock_timeout=True)
        return make_conninfo("", **parts)

    def offline_table(self, view: str) -> sql.Identifier:
        """A view's PostgreSQL offline table as a quoted `schema.table` identifier."""
        from psycopg import sql

        return sql.Identifier(self.offline_schema, view)

    def registry_url(self) -> str:
        """SQLAlchemy URL of the SQL registry (psycopg 3 driver, sslmode, connect timeout), every part escaped."""
        from sqlalchemy.engine import URL

        s = self.settings
        url = URL.create("postgresql+psycopg", username=s.pg_user, password=s.pg_password.get_secret_value() or None,
                         host=s.pg_host, port=s.pg_port, database=self.registry_database)
        return url.render_as_string(hide_password=False) + "?" + urlencode({"sslmode": s.pg_sslmode,
                                                                           "connect_timeout": s.pg_connect_timeout_s})

    def registry_engine_options(self) -> dict[str, Any]:
        """SQLAlchemy `create_engine` options of the SQL registry: pre-ping pooled connections; TCP keepalives,
        `tcp_user_timeout` and a `statement_timeout` on each connection (registry queries take milliseconds)."""
        link = {k: v for k, v in self.pg_link_options().items() if k != "connect_timeout"}  # in the URL
        return {"pool_pre_ping": True,
                "connect_args": {**link, "options": self.pg_statement_options(lock_timeout=False)}}

    def redis_client_kwargs(self) -> dict[str, Any]:
        """redis-py client settings of the single Redis server: socket timeouts and no retries, so outages fail fast.

        redis-py 7 retries a failed command 3 times with backoff by default (measured: 503s took
        4-10 s); with `retry=None` they take milliseconds, and the client still reconnects.
        """
        s = self.settings
        kwargs: dict[str, Any] = {"host": s.redis_host, "port": s.redis_port, "db": s.redis_db,
                                  "socket_timeout": s.redis_timeout_s, "socket_connect_timeout": s.redis_timeout_s,
                                  "retry": None, "max_connections": s.redis_max_connections}
        if s.redis_username:
            kwargs["username"] = s.redis_username
        if s.redis_password.get_secret_value():
            kwargs["password"] = s.redis_password.get_secret_value()
        return kwargs

    def redis_connection_string(self) -> str:
        """Feast's connection string for the same settings as `redis_client_kwargs` (`retry=null` is None)."""
        kwargs = self.redis_client_kwargs()
        host, port = kwargs.pop("host"), kwargs.pop("port")
        options = ",".join(f"{key}={_option(key, value)}" for key, value in kwargs.items())
        return f"{host}:{port},{options}"

    def redis_cluster_connection_string(self) -> str:
        """Feast's Redis Cluster connection string: every node, socket timeouts, no cluster retries.

        redis-py's cluster client retries 3 times with up-to-10 s backoff by default, so a read
        of a stopped master's slots would hang for seconds; with 0 retries it fails at once.
        `require_full_coverage=false` keeps the client usable while some slots have no master.
        """
        s = self.settings
        nodes = ",".join(f"{host}:{port}" for host, port in self.redis_cluster_nodes())
        conn = (f"{nodes},socket_timeout={s.redis_timeout_s},socket_connect_timeout={s.redis_timeout_s},"
                "cluster_error_retry_attempts=0,require_full_coverage=false")
        if s.redis_password.get_secret_value():
            conn += f",password={_option('password', s.redis_password.get_secret_value())}"
        return conn

    def spark_conf(self) -> dict[str, str]:
        """Spark session settings shared by the Spark offline store and the Spark compute engine.

        FEAST_SPARK_MASTER is `local[2]` here; point it at a real cluster (`spark://host:7077`,
        `yarn`, `k8s://...`) and put the parquet files on storage every executor can read.
        """
        s = self.settings
        conf = {
            "spark.master": s.spark_master,
            "spark.app.name": f"feast-course-{self.project}",
            "spark.driver.memory": s.spark_driver_memory,
            "spark.sql.shuffle.partitions": str(s.spark_shuffle_partitions),
            "spark.sql.session.timeZone": "UTC",  # Feast writes its time bounds as UTC literals
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.log.level": "ERROR",
        }
        if s.spark_master.startswith("local"):
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
        if self.settings.spark_master.startswith("local"):
            env["SPARK_LOCAL_IP"] = "127.0.0.1"
        return env

    def env(self) -> dict[str, str]:
        """This profile as environment variables (secrets revealed): for child processes and derived profiles."""
        return {**self.settings.env(), "COURSE_PROFILE": self.name}

    def feature_store_config(self) -> dict[str, Any]:
        """The `feature_store.yaml` content for this profile."""
        config: dict[str, Any] = {"project": self.project, "provider": "local",
                        "entity_key_serialization_version": 3}
        ttl = self.settings.registry_cache_ttl
        if self.name == "local":
            config["registry"] = {"registry_type": "file", "path": str(self.data_dir / "registry.db"),
                                  "cache_ttl_seconds": ttl}
            config["online_store"] = {"type": "sqlite", "path": str(self.data_dir / "online.db")}
            config["offline_store"] = {"type": "duckdb"}
            return config
        config["registry"] = {"registry_type": "sql", "path": self.registry_url(), "cache_ttl_seconds": ttl,
                              "sqlalchemy_config_kwargs": self.registry_engine_options()}
        if self.name == SCALEOUT:
            config["online_store"] = {"type": "redis", "redis_type": "redis_cluster",
                                      "connection_string": self.redis_cluster_connection_string()}
            config["offline_store"] = {"type": "spark", "spark_conf": self.spark_conf()}
            config["batch_engine"] = {"type": "spark.engine", "spark_conf": self.spark_conf()}
        else:
            s = self.settings
            config["online_store"] = {"type": "redis", "connection_string": self.redis_connection_string()}
            config["offline_store"] = {
                "type": "postgres", "host": s.pg_host, "port": s.pg_port, "database": s.offline_db,
                "db_schema": self.offline_schema, "user": s.pg_user, "password": s.pg_password.get_secret_value(),
                "sslmode": s.pg_sslmode,
                # Feast opens its offline connections itself and passes only this of the link options on;
                # its queries (training frames, materialization) are batch work: no statement timeout.
                "keepalives_idle": s.pg_keepalives_idle_s,
            }
        return config


def _option(key: str, value: Any) -> str:
    """One `key=value` option of Feast's Redis connection string as Feast parses it back (JSON-decoded):
    `null` for None, the password JSON-quoted so `true`, `12` or `"x"` stay that string (settings
    refuse a comma, which Feast splits options on)."""
    if value is None:
        return "null"
    return json.dumps(value) if key == "password" else str(value)


def resolve_profile(profile: str | None = None, env: Mapping[str, str] | None = None) -> Profile:
    """Pick a profile from the argument, then `COURSE_PROFILE`, then the `local` default; validate every setting."""
    env = os.environ if env is None else env
    name = profile or env.get("COURSE_PROFILE", ENV_DEFAULTS["COURSE_PROFILE"])
    if name not in ALL_PROFILES:
        raise ConfigError(say("config.unknown_profile", name=name, profiles=", ".join(ALL_PROFILES)))
    return Profile(name=name, settings=Settings.from_env({**env, "COURSE_PROFILE": name}))


def own_project_env(section: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a notebook section that keeps its data apart: `<FEAST_PROJECT>_<section>`
    as its Feast project and offline schema, so learners sharing services never share it."""
    env = os.environ if env is None else env
    project = f"{env.get('FEAST_PROJECT', ENV_DEFAULTS['FEAST_PROJECT'])}_{section}"
    return {**env, "FEAST_PROJECT": project, "FEAST_OFFLINE_SCHEMA": project}


# `load_store(profile, tuned=True)`: bulk-load settings; notebook 05 measures the trade-offs.
TUNED_YAML = "feature_store.tuned.yaml"
TUNED_MATERIALIZATION = {"pull_latest_features": True, "online_write_batch_size": 50_000}
# One thread per feature view, online rows written in bulk (course_lib.materialize); Redis only
# (Feast's SQLite store shares one connection between threads).
PARALLEL_ENGINE = {"type": "course_lib.materialize.ParallelLocalComputeEngine", "workers": 3}  # one per view


def tuned_config(config: dict[str, Any]) -> dict[str, Any]:
    """A `feature_store.yaml` dict plus the tuned materialization settings (retrieval is tuned in code)."""
    tuned = {**config, "materialization": dict(TUNED_MATERIALIZATION)}
    if config["online_store"]["type"] == "redis":
        tuned["online_store"] = {**config["online_store"], "skip_dedup": True}
        if "batch_engine" not in config:
            tuned["batch_engine"] = dict(PARALLEL_ENGINE)
    return tuned


def render(profile: Profile, tuned: bool = False) -> Path:
    """Write the profile's `feature_store.yaml` (or `TUNED_YAML`, mode 0600) if it changed; return its folder."""
    profile.data_dir.mkdir(parents=True, exist_ok=True)
    target = profile.repo_dir / (TUNED_YAML if tuned else "feature_store.yaml")
    config = profile.feature_store_config()
    text = yaml.safe_dump(tuned_config(config) if tuned else config, sort_keys=False)
    if not target.exists() or target.read_text() != text:
        write_private(target, text.encode())  # it holds the passwords: readable by its owner only
    target.chmod(0o600)  # also a file an earlier version wrote with the default umask
    return profile.repo_dir


def load_store(profile: str | Profile | None = None, tuned: bool = False, serving: bool = False) -> FeatureStore:
    """Render the profile's `feature_store.yaml` (tuned: `TUNED_YAML`) and return a ready `FeatureStore`.

    `serving`: the store of the API, whose registry cache never expires by itself (Feast's TTL 0):
    Feast would otherwise re-read an expired registry inside a request, which hangs while
    PostgreSQL does. The API's `registry_state.RegistryState` refreshes it in the background.
    """
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from course_lib.compat import pin_sqlite_timestamps

    pin_sqlite_timestamps()
    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)
    if resolved.name == SCALEOUT:  # before Feast starts a Spark JVM in this process; the learner's own values win
        for key, value in resolved.spark_environment().items():
            os.environ.setdefault(key, value)
    folder = render(resolved, tuned)
    if serving:
        config = resolved.feature_store_config()
        config["registry"] = {**config["registry"], "cache_ttl_seconds": 0}
        return FeatureStore(config=RepoConfig(repo_path=folder, **config))
    return FeatureStore(repo_path=str(folder), fs_yaml_file=folder / TUNED_YAML if tuned else None)
