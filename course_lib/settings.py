"""Every environment variable the course reads, in one typed, validated, frozen model.

`Settings.from_env` validates all of them when a profile is resolved, so a bad value (a port
that is not a number, a negative staleness threshold) stops at once with one line naming the
variable, never later where it is first used. Passwords are `SecretStr`: they print as `**********`
and are revealed only where a client needs them. The README's variable table is tested against
`Settings.model_fields` (tests/test_readme.py).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from course_lib.errors import CourseError
from course_lib.messages import say

REPO_ROOT = Path(__file__).resolve().parents[1]
# Feast project names and PostgreSQL schemas the course creates: lower case, so a name means the
# same table quoted or not (PostgreSQL folds unquoted names to lower case, and Feast's own SQL
# does not quote them), without quotes, spaces or `;`.
IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
IDENTIFIER_FIELDS = ("project", "offline_schema", "bench_project")
Port = Annotated[int, Field(ge=1, le=65535)]


class ConfigError(CourseError):
    """A profile or environment setting is invalid; the message says how to fix it."""


def _env(name: str, default: Any, meaning: str, **constraints: Any) -> Any:
    """A field read from the environment variable `name`, documented with its meaning."""
    return Field(default, alias=name, description=meaning, **constraints)


class Settings(BaseModel):
    """The course's settings, one field per environment variable (its alias), each with its default."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, hide_input_in_errors=True)

    profile: str = _env(
        "COURSE_PROFILE", "local", "Profile: `local`, `enterprise` or `scaleout`")
    workdir: Path = _env("COURSE_WORKDIR", REPO_ROOT / "var", "Folder for rendered configuration and local data")
    project: str = _env("FEAST_PROJECT", "movie_recommendation",
                        "Feast project name (lower-case letters, digits and _, starting with a letter)")
    registry_cache_ttl: int = _env("FEAST_REGISTRY_CACHE_TTL", 10,
                                   "Seconds the registry is cached by a `FeatureStore`", ge=0)
    redis_host: str = _env("FEAST_REDIS_HOST", "127.0.0.1", "Redis host (online store)", min_length=1)
    redis_port: Port = _env("FEAST_REDIS_PORT", 6379, "Redis port")
    redis_db: int = _env("FEAST_REDIS_DB", 0, "Redis database number", ge=0)
    redis_username: str = _env("FEAST_REDIS_USERNAME", "", "Redis ACL user (classroom mode); empty: the default user",
                               pattern=r"^[^,\s]*$")
    redis_password: SecretStr = _env("FEAST_REDIS_PASSWORD", SecretStr(""),
                                     "Redis password, if the server requires one")
    redis_timeout_s: float = _env("FEAST_REDIS_TIMEOUT_S", 0.5, "Redis connect and socket timeout in seconds", gt=0)
    pg_host: str = _env("FEAST_PG_HOST", "127.0.0.1", "PostgreSQL host (registry and offline store)", min_length=1)
    pg_port: Port = _env("FEAST_PG_PORT", 5432, "PostgreSQL port")
    pg_user: str = _env("FEAST_PG_USER", "postgres", "PostgreSQL user", min_length=1)
    pg_password: SecretStr = _env("FEAST_PG_PASSWORD", SecretStr(""),
                                  "PostgreSQL password, if the server requires one")
    pg_sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = _env(
        "FEAST_PG_SSLMODE", "disable", "libpq `sslmode`")
    pg_connect_timeout_s: int = _env("FEAST_PG_CONNECT_TIMEOUT_S", 3, "Seconds a PostgreSQL connection may take to "
                                     "open (libpq `connect_timeout`; libpq waits at least 2)", ge=2)
    pg_statement_timeout_ms: int = _env(
        "FEAST_PG_STATEMENT_TIMEOUT_MS", 5000, "`statement_timeout` of registry queries and of the API's own "
        "PostgreSQL reads (not of data loads or materialization)", ge=1)
    pg_lock_timeout_ms: int = _env(
        "FEAST_PG_LOCK_TIMEOUT_MS", 500, "`lock_timeout` of the API's own PostgreSQL reads (monitoring, "
        "near-cache): a table `course data` holds locked fails fast", ge=1)
    pg_tcp_user_timeout_ms: int = _env(
        "FEAST_PG_TCP_USER_TIMEOUT_MS", 5000, "libpq `tcp_user_timeout` of every PostgreSQL connection: sent data "
        "unacknowledged this long drops the connection", ge=1)
    pg_keepalives_idle_s: int = _env("FEAST_PG_KEEPALIVES_IDLE_S", 10, "Idle seconds before TCP keepalive probes "
                                     "check a PostgreSQL connection (then every 2 s, 3 probes)", ge=1)
    registry_db: str = _env("FEAST_REGISTRY_DB", "feast_registry", "Database of the SQL registry", min_length=1)
    offline_db: str = _env("FEAST_OFFLINE_DB", "feast_offline", "Database of the offline store", min_length=1)
    offline_schema: str = _env("FEAST_OFFLINE_SCHEMA", "course",
                               "Schema of the offline tables (same rule as FEAST_PROJECT)")
    api_debug: bool = _env("COURSE_API_DEBUG", False, "Show hosts, ports, paths and database names in the API's "
                           "error bodies and `/health` (off: callers see what failed and how to fix it only)")
    api_limit_concurrency: int = _env("COURSE_API_LIMIT_CONCURRENCY", 200, "Requests a `course serve` worker "
                                      "handles at once; more get a 503 at once", ge=1)
    api_shutdown_s: int = _env("COURSE_API_SHUTDOWN_S", 10, "Seconds `course serve` lets running requests "
                                 "finish after SIGTERM", ge=1)
    redis_max_connections: int = _env("FEAST_REDIS_MAX_CONNECTIONS", 256, "Connections each Redis client pool may "
                                      "open (above COURSE_API_LIMIT_CONCURRENCY, so a pool never runs dry)", ge=1)
    pipeline_stale_s: float = _env(
        "COURSE_PIPELINE_STALE_S", 3600.0, "Seconds since the last materialization end after which a feature "
        "view's pipeline counts as stale (monitoring)", gt=0)
    registry_refresh_s: float = _env(
        "COURSE_REGISTRY_REFRESH_S", 1.0, "Seconds between the API's background re-reads of the materialization "
        "intervals (the movie near-cache reloads when its view moved); failures back off", gt=0)
    monitor_interval_s: float = _env(
        "COURSE_MONITOR_INTERVAL_S", 5.0, "Seconds between the API's background health and freshness "
        "measurements, which /health, /freshness and /metrics serve from memory", gt=0)
    feature_log: bool = _env("COURSE_FEATURE_LOG", True, "Log every recommendation's request id, model input "
                             "and scores (served-feature log, notebook 09); off: nothing is logged")
    feature_log_queue: int = _env("COURSE_FEATURE_LOG_QUEUE", 10_000, "Responses the served-feature log may hold "
                                  "before it writes them; more are dropped (and counted), never waited for", ge=1)
    feature_log_flush_s: float = _env("COURSE_FEATURE_LOG_FLUSH_S", 1.0, "Seconds the served-feature log waits "
                                      "between writes (each write takes everything queued)", gt=0)
    drift_interval_s: float = _env("COURSE_DRIFT_INTERVAL_S", 60.0, "Seconds between the API's background drift "
                                   "reports (entity features online against the model's training baseline)", gt=0)
    health_timeout_s: float = _env("COURSE_HEALTH_TIMEOUT_S", 1.0, "Seconds a component health check may take "
                                   "before it counts as failed (a hung PostgreSQL)", gt=0)
    bench_project: str = _env("COURSE_BENCH_PROJECT", "course_bench", "Feast project and offline schema of "
                              "`course bench` (the tests use their own)")
    redis_cluster_nodes: str = _env(
        "FEAST_REDIS_CLUSTER_NODES", "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003",
        "Redis Cluster masters, `host:port,...` (scaleout online store)")
    scaleout_registry_db: str = _env("FEAST_SCALEOUT_REGISTRY_DB", "feast_registry_scaleout",
                                     "Database of the scaleout profile's SQL registry", min_length=1)
    spark_master: str = _env("FEAST_SPARK_MASTER", "local[2]",
                             "Spark master of the scaleout offline store and compute engine", min_length=1)
    spark_driver_memory: str = _env("FEAST_SPARK_DRIVER_MEMORY", "1g", "Spark driver memory",
                                    pattern=r"^\d+[kmgtKMGT]?$")
    spark_shuffle_partitions: int = _env("FEAST_SPARK_SHUFFLE_PARTITIONS", 2,
                                         "`spark.sql.shuffle.partitions` (small data: few partitions)", ge=1)

    @field_validator(*IDENTIFIER_FIELDS)
    @classmethod
    def _identifier(cls, value: str) -> str:
        """Project and schema names: one strict pattern, so they are safe and unambiguous in SQL and Redis keys."""
        if not re.fullmatch(IDENTIFIER, value):
            raise ValueError(say("settings.identifier_rule"))
        return value

    @field_validator("redis_password")
    @classmethod
    def _one_connection_string_option(cls, value: SecretStr) -> SecretStr:
        """Feast reads the Redis password from a comma-separated connection string, so it cannot hold a comma."""
        if "," in value.get_secret_value():
            raise ValueError(say("settings.password_comma"))
        return value

    @field_validator("redis_cluster_nodes")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        """Every entry is `host:port` with a port number."""
        bad = [item for item in value.split(",") if not re.fullmatch(r"\s*[^:\s]+:\d+\s*", item)]
        if bad:
            raise ValueError(say("settings.not_host_port", entry=bad[0]))
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """The settings in `env` (missing variables take their defaults), or a ConfigError naming the bad one."""
        values = {name: env[name] for name in variables() if name in env}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            error = exc.errors()[0]
            name = str(error["loc"][0])
            shown = "****" if "PASSWORD" in name else repr(values.get(name))
            message = error["msg"].removeprefix("Value error, ")
            raise ConfigError(say("settings.invalid", variable=name, shown=shown, message=message,
                                  default=variables()[name])) from None

    def env(self) -> dict[str, str]:
        """Every setting as an environment variable, secrets revealed (for a child process's environment)."""
        return {variable: _text(getattr(self, field)) for field, variable in _aliases().items()}


def _text(value: Any) -> str:
    """A setting as an environment variable's text."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _aliases() -> dict[str, str]:
    """Field name -> environment variable."""
    return {name: str(field.alias) for name, field in Settings.model_fields.items()}


def variables() -> dict[str, str]:
    """Every environment variable the course reads -> its default, as text."""
    return {str(field.alias): _text(field.default) for field in Settings.model_fields.values()}


def described() -> dict[str, str]:
    """Every environment variable -> what it means."""
    return {str(field.alias): str(field.description) for field in Settings.model_fields.values()}
