"""Shared fixtures: every test profile writes only to its own project, Redis db and schema, and registers
its project in the session's own registry database.

Helpers that are not fixtures live in support.py. The enterprise profile's parameters carry the
`enterprise` marker, so `pytest -m "not enterprise and not scaleout"` deselects every test that
needs Redis, PostgreSQL or the cluster and runs the rest without services.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from feast import FeatureStore
from psycopg import sql
from support import PROFILE_PARAMS, RANK_PROJECT, TEST_REGISTRY_DB, TEST_REGISTRY_PREFIX, api_profile, isolated_env

from course_lib import datasets
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import Profile, load_store, resolve_profile
from course_lib.doctor import MAINTENANCE_DB
from course_lib.ranker import training_frame
from course_lib.serving import apply

# The suite checks English messages; tests of the Korean ones set the language themselves.
os.environ["COURSE_LANG"] = "en"
os.environ.pop("JPY_SESSION_NAME", None)

RankerStores = Callable[[str], tuple[Profile, FeatureStore]]


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session", autouse=True)
def registry_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's SQL registry database (support.TEST_REGISTRY_DB), created when PostgreSQL answers and
    dropped at the end; those that sessions killed before their end left are dropped first."""
    admin = resolve_profile("enterprise", isolated_env(tmp_path_factory.getbasetemp())).pg_conninfo(MAINTENANCE_DB)
    try:
        conn = psycopg.connect(admin, autocommit=True)
    except psycopg.OperationalError:
        yield  # no PostgreSQL: the tests that need it are deselected, or fail naming it
        return
    with conn:
        names = conn.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)",
                             [TEST_REGISTRY_PREFIX]).fetchall()
        for (name,) in names:
            pid = name.removeprefix(TEST_REGISTRY_PREFIX)
            if name == TEST_REGISTRY_DB or (pid.isdigit() and not _alive(int(pid))):  # ours: a reused process id
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEST_REGISTRY_DB)))
    yield
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEST_REGISTRY_DB)))


@pytest.fixture(scope="session", params=PROFILE_PARAMS)
def profile(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """Each base profile, isolated from the learner's data."""
    return resolve_profile(request.param, isolated_env(tmp_path_factory.mktemp(request.param)))


@pytest.fixture(scope="session")
def redis_profile(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """The enterprise profile, isolated, for tests that talk to its Redis directly (mark them `enterprise`)."""
    return resolve_profile("enterprise", isolated_env(tmp_path_factory.mktemp("redis")))


@pytest.fixture(scope="session", params=PROFILE_PARAMS)
def ready(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """Each base profile with the API tests' data online and a trained ranker, prepared once per session."""
    return api_profile(request.param, Path(tmp_path_factory.getbasetemp()))


# --- the ranker tests (test_ranker, test_candidate_matrix, test_on_demand, test_scoring): one log, one store per
# profile, built once per session: the modules only read them (and materialize the same data up to SERVE_AT) ---

@pytest.fixture(scope="session")
def ranker_dataset() -> datasets.Dataset:
    """The default synthetic log (1,000 users, 400 movies, 40,000 events over 90 days)."""
    return datasets.synthetic(seed=42)


@pytest.fixture(scope="session")
def ranker_stores(ranker_dataset: datasets.Dataset, tmp_path_factory: pytest.TempPathFactory) -> RankerStores:
    """Per profile, built on first use: an isolated profile and a store holding the dataset's features.

    The data and SERVE_AT are fixed, so online values an earlier run left in the test Redis
    db are identical to the ones this run writes. (FeatureStore.teardown() is not an option:
    with the SQL registry it deletes every project in the shared registry database.)
    """
    env = isolated_env(str(tmp_path_factory.mktemp("rank")), FEAST_PROJECT=RANK_PROJECT,
                       FEAST_OFFLINE_SCHEMA=RANK_PROJECT)
    tables = build_feature_tables(ranker_dataset)

    @functools.cache
    def prepare(name: str) -> tuple[Profile, FeatureStore]:
        profile = resolve_profile(name, env)
        write_offline(tables, profile)
        store = load_store(profile)
        apply(store, profile)
        return profile, store

    return prepare


@pytest.fixture(scope="session")
def ranker_frame(ranker_dataset: datasets.Dataset, ranker_stores: RankerStores) -> pd.DataFrame:
    """The local profile's training frame."""
    return training_frame(ranker_stores("local")[1], ranker_dataset)
