"""Shared fixtures: every test profile writes only to its own project, Redis db and schema."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from course_lib.config import PROFILES, Profile, resolve_profile

TEST_PROJECT = "course_test"
TEST_REDIS_DB = "15"
TEST_SCHEMA = "course_test"
# The shared MovieLens copy beside the checkout; tests FAIL (never skip) when it is missing.
MOVIELENS_PATH = Path(os.environ.get("MOVIELENS_PATH",
                                     Path(__file__).resolve().parents[2] / "shared/datasets/ml-latest-small"))


def isolated_env(workdir: str) -> dict[str, str]:
    """Environment for a test profile that cannot touch the learner's own data."""
    return {**os.environ, "COURSE_WORKDIR": workdir, "FEAST_PROJECT": TEST_PROJECT,
            "FEAST_REDIS_DB": TEST_REDIS_DB, "FEAST_OFFLINE_SCHEMA": TEST_SCHEMA}


@pytest.fixture(scope="session", params=PROFILES)
def profile(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """Each course profile, isolated from the learner's data."""
    return resolve_profile(request.param, isolated_env(str(tmp_path_factory.mktemp(request.param))))
