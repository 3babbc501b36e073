"""Notebook 06 (scale-out, follow-up to 2.7.5): what this machine can run, the scaleout store next to
the enterprise one, and Spark's session.

The cluster itself is `course_lib.cluster`, key placement `course_lib.placement`, capacity
planning `course_lib.capacity`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import pandas as pd
from feast import FeatureStore

from course_lib import provision, serving
from course_lib.adapter import write_offline
from course_lib.config import Profile, load_store
from course_lib.doctor import check_cluster_available, check_java, check_postgres, check_redis
from course_lib.health import Check
from feature_repo.definitions import USER_VIEW


@dataclass(frozen=True)
class Readiness:
    """Which parts of the scale-out notebook this machine can run, and the checks behind it."""

    scaleout_checks: list[Check]  # Java, the cluster (running or startable), PostgreSQL and the scaleout registry
    enterprise_checks: list[Check]  # Redis and the enterprise databases, for the side-by-side comparison

    @property
    def scaleout(self) -> bool:
        """Whether the scaleout parts can run."""
        return all(check.ok for check in self.scaleout_checks)

    @property
    def enterprise(self) -> bool:
        """Whether the enterprise comparison can run as well."""
        return self.scaleout and all(check.ok for check in self.enterprise_checks)

    def table(self) -> pd.DataFrame:
        """One row per check: for which profile, name, OK/FAIL, detail, fix."""
        return pd.DataFrame([{"profile": profile, "check": c.name, "result": "OK" if c.ok else "FAIL",
                              "detail": c.detail, "fix": c.fix}
                             for profile, checks in (("scaleout", self.scaleout_checks),
                                                     ("enterprise", self.enterprise_checks)) for c in checks])


def readiness(scale: Profile, enterprise: Profile) -> Readiness:
    """Check Java, the cluster and PostgreSQL (scaleout), and Redis and its databases (enterprise).

    A PostgreSQL server that answers gets the course databases it lacks first (`provision.postgres`).
    """
    for profile in (scale, enterprise):
        provision.postgres(profile)
    enterprise_dbs = [c for c in check_postgres(enterprise) if c.name.startswith("database ")]
    return Readiness([check_java(), check_cluster_available(scale), *check_postgres(scale)],
                     [check_redis(enterprise), *enterprise_dbs])


def prepare_store(profile: Profile, tables: dict[str, pd.DataFrame]) -> FeatureStore:
    """Write the tables where the profile reads them, register the definitions, and return its store."""
    write_offline(tables, profile)
    store = load_store(profile)
    serving.apply(store, profile)
    return store


def compare_request(stores: dict[str, FeatureStore], user_id: int, movie_ids: list[int]) -> pd.DataFrame:
    """The recommendation read (user, movies, pairs) from each store, one row per feature value."""
    answers = {name: serving.candidate_features(store, user_id, movie_ids) for name, store in stores.items()}
    first, *others = answers
    rows = []
    for i in range(len(movie_ids)):
        for view, found in answers[first][i].items():
            if view == USER_VIEW and i:
                continue  # the user's row repeats for every candidate
            for feature, value in found.values.items():
                row = {"view": view, "entity": found.key, "feature": feature, first: value}
                row.update({name: answers[name][i][view].values[feature] for name in others})
                row["equal"] = all(row[name] == value or (row[name] is None and value is None) for name in others)
                rows.append(row)
    return pd.DataFrame(rows)


def same_frame(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether two normalized training frames hold the same values (float32 tolerance, any column order)."""
    if set(a.columns) != set(b.columns):
        return False
    try:
        pd.testing.assert_frame_equal(a[b.columns], b, check_exact=False, rtol=1e-6)
    except AssertionError:
        return False
    return True


# --- Spark ---------------------------------------------------------------------------------------

def stop_spark() -> bool:
    """Stop this process's Spark session (and its JVM) if one runs; True if one was stopped."""
    if "pyspark" not in sys.modules:
        return False
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is None:
        return False
    session.stop()
    return True
