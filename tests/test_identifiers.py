"""Names and secrets from the environment reach SQL, libpq, SQLAlchemy, duckdb and Redis intact and
inert (issue 19): strict project/schema names, quoted identifiers, escaped connection strings."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from feast.infra.online_stores.redis import RedisOnlineStore
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url
from support import isolated_env, isolated_profile

from course_lib import compat
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.background import RedisServer
from course_lib.config import ConfigError, load_store, own_project_env, resolve_profile
from course_lib.datasets import synthetic
from course_lib.offline import offline_time_range, read_offline
from course_lib.settings import REPO_ROOT
from feature_repo.definitions import USER_VIEW

HOSTILE_NAMES = ["Alice", 'x"; DROP SCHEMA course CASCADE; --', "1abc", "a;b", "a b", "a-b", "", "ä", "a" * 64]
HOSTILE_SECRET = "p w'\"\\;=,x"  # every character libpq, URLs or shells treat specially


@pytest.mark.parametrize("variable", ["FEAST_PROJECT", "FEAST_OFFLINE_SCHEMA", "COURSE_BENCH_PROJECT"])
@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_project_and_schema_names_are_refused_with_the_rule(variable: str, name: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{variable}=.* is invalid: must start with a lower-case letter"):
        resolve_profile("enterprise", {**os.environ, variable: name})


def test_a_capitalised_project_is_refused_before_a_section_schema_is_made_of_it() -> None:
    """`FEAST_PROJECT=Alice` used to become schema `Alice_02`: created quoted, read unquoted as alice_02."""
    with pytest.raises(ConfigError, match="FEAST_PROJECT='Alice_02' is invalid"):
        resolve_profile("enterprise", own_project_env("02", {**os.environ, "FEAST_PROJECT": "Alice"}))
    assert resolve_profile("enterprise", own_project_env("02", {**os.environ, "FEAST_PROJECT": "alice"})).project \
        == "alice_02"


def test_the_libpq_and_sqlalchemy_strings_carry_hostile_values_exactly() -> None:
    env = {**os.environ, "FEAST_PG_PASSWORD": HOSTILE_SECRET, "FEAST_PG_USER": "us er'x",
           "FEAST_OFFLINE_DB": "off line'db", "FEAST_REGISTRY_DB": "reg/i?stry#db"}
    profile = resolve_profile("enterprise", env)
    parsed = conninfo_to_dict(profile.pg_conninfo())
    assert (parsed["password"], parsed["user"], parsed["dbname"]) == (HOSTILE_SECRET, "us er'x", "off line'db")
    url = make_url(profile.registry_url())
    assert (url.password, url.username, url.database) == (HOSTILE_SECRET, "us er'x", "reg/i?stry#db")
    assert url.query == {"sslmode": "disable", "connect_timeout": "3"}


def test_a_redis_password_cannot_switch_the_database() -> None:
    with pytest.raises(ConfigError, match=r"^FEAST_REDIS_PASSWORD=\*\*\*\* is invalid: must not contain ','"):
        resolve_profile("enterprise", {**os.environ, "FEAST_REDIS_PASSWORD": "pw,db=3"})


@pytest.mark.parametrize("password", ["true", "null", "12", '"quoted"', "a=b", "p w'\\x"])
def test_feast_parses_back_exactly_the_redis_password(password: str) -> None:
    """Feast JSON-decodes each option: an unquoted `true` would become a bool, `null` no password at all."""
    profile = resolve_profile("enterprise", {**os.environ, "FEAST_REDIS_PASSWORD": password, "FEAST_REDIS_DB": "3"})
    _, params = RedisOnlineStore._parse_connection_string(profile.redis_connection_string())
    assert params["password"] == password and params["db"] == 3
    cluster = resolve_profile("scaleout", {**os.environ, "FEAST_REDIS_PASSWORD": password})
    assert RedisOnlineStore._parse_connection_string(cluster.redis_cluster_connection_string())[1]["password"] \
        == password


def test_feasts_client_authenticates_with_a_password_that_looks_like_json(tmp_path: Path) -> None:
    with RedisServer(password="true") as server:
        profile = isolated_profile("enterprise", tmp_path, FEAST_REDIS_PORT=str(server.port),
                                   FEAST_REDIS_PASSWORD="true", FEAST_REDIS_DB="0")
        assert compat.online_client(load_store(profile)).ping()
        assert "true" not in " ".join(subprocess.run(["ps", "-o", "args=", "-p", str(server.process.pid)],
                                                     capture_output=True, text=True).stdout.split()[1:])


def test_duckdb_reads_parquet_under_a_folder_with_quotes(tmp_path: Path) -> None:
    """The path is never spliced into SQL: `read_parquet('.../o'brien/...')` was a syntax error."""
    profile = isolated_profile("local", tmp_path / "o'brien; --")
    tables = build_feature_tables(synthetic(seed=3, n_users=20, n_movies=15, n_events=300, days=10))
    write_offline(tables, profile)
    lo, hi = offline_time_range(profile, USER_VIEW)
    assert (lo, hi) == (tables[USER_VIEW]["event_timestamp"].min(), tables[USER_VIEW]["event_timestamp"].max())


@pytest.mark.enterprise
def test_services_script_creates_and_the_course_reaches_a_database_with_a_hostile_name(tmp_path: Path) -> None:
    hostile = 'course_test_Odd "db"; x\'y'
    env = {**isolated_env(tmp_path), "FEAST_OFFLINE_DB": hostile}
    profile = resolve_profile("enterprise", env)
    admin = profile.pg_conninfo("postgres")
    try:
        result = subprocess.run([str(REPO_ROOT / ".ci" / "services.sh")], env=env, capture_output=True, text=True,
                                cwd=REPO_ROOT, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        tables = build_feature_tables(synthetic(seed=3, n_users=20, n_movies=15, n_events=300, days=10))
        write_offline(tables, profile)
        assert len(read_offline(profile, [USER_VIEW])[USER_VIEW]) == len(tables[USER_VIEW])
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {}").format(psycopg.sql.Identifier(hostile)))
