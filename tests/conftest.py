"""Shared fixtures: every test profile writes only to its own project, Redis db and schema.

Helpers that are not fixtures live in support.py. The enterprise profile's parameters carry the
`enterprise` marker, so `pytest -m "not enterprise and not scaleout"` deselects every test that
needs Redis, PostgreSQL or the cluster and runs the rest without services.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from feast import FeatureStore
from support import PROFILE_PARAMS, RANK_PROJECT, api_profile, isolated_env

from course_lib import datasets
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import Profile, load_store, resolve_profile
from course_lib.ranker import training_frame
from course_lib.serving import apply

# The suite checks English messages; tests of the Korean ones set the language themselves.
os.environ["COURSE_LANG"] = "en"
os.environ.pop("JPY_SESSION_NAME", None)

RankerStores = Callable[[str], tuple[Profile, FeatureStore]]


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


# --- the ranker tests (test_ranker, test_candidate_matrix, test_scoring): one log, one store per profile ---

@pytest.fixture(scope="module")
def ranker_dataset() -> datasets.Dataset:
    """The default synthetic log (1,000 users, 400 movies, 40,000 events over 90 days)."""
    return datasets.synthetic(seed=42)


@pytest.fixture(scope="module")
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


@pytest.fixture(scope="module")
def ranker_frame(ranker_dataset: datasets.Dataset, ranker_stores: RankerStores) -> pd.DataFrame:
    """The local profile's training frame."""
    return training_frame(ranker_stores("local")[1], ranker_dataset)
