"""Shared fixtures: every test profile writes only to its own project, Redis db and schema.

Helpers that are not fixtures live in support.py. The enterprise profile's parameters carry the
`enterprise` marker, so `pytest -m "not enterprise and not scaleout"` deselects every test that
needs Redis, PostgreSQL or the cluster and runs the rest without services.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from support import PROFILE_PARAMS, api_profile, isolated_env

from course_lib.config import Profile, resolve_profile


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
