"""Materialization reports, incremental runs and online resets, checked independently on both profiles."""
from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from course_lib import datasets
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.caches import MovieNearCache
from course_lib.config import Profile, load_store, resolve_profile
from course_lib.registry_state import RegistryState
from course_lib.reset import reset_online
from course_lib.serving import apply, latest_interval, materialize, user_features
from feature_repo.definitions import join_keys

T1 = datetime(2025, 1, 20, tzinfo=timezone.utc)
T2 = datetime(2025, 2, 10, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Feature tables of a small synthetic log spanning January and February 2025."""
    return build_feature_tables(datasets.synthetic(seed=21, n_users=80, n_movies=40, n_events=2500, days=45))


def project_profile(profile: Profile, project: str) -> Profile:
    """The same profile and workdir under another Feast project and offline schema."""
    return resolve_profile(profile.name, {**profile.env(), "FEAST_PROJECT": project,
                                          "FEAST_OFFLINE_SCHEMA": project})


def empty_online_store(profile: Profile, tables: dict[str, pd.DataFrame]):
    """The tables written offline and registered, with nothing materialized yet."""
    write_offline(tables, profile)
    store = load_store(profile)
    apply(store, profile)
    reset_online(store, profile)
    return store


def entities_between(table: pd.DataFrame, view: str, start, end) -> int:
    """Distinct entity keys with a row in [start, end], counted with plain pandas."""
    ts = table["event_timestamp"]
    window = table[(ts <= end) & ((ts >= start) if start is not None else True)]
    return len(window.drop_duplicates(join_keys(view)))


def test_materialize_reports_rows_and_intervals(profile: Profile, tables) -> None:
    """Full then incremental: each view reports the entities in its window and the new interval."""
    profile = project_profile(profile, "course_test_serving")
    store = empty_online_store(profile, tables)
    full = materialize(store, profile, end=T1)
    oldest = min(t["event_timestamp"].min() for t in tables.values())
    for view, table in tables.items():
        assert full.rows[view] == entities_between(table, view, None, T1)
        assert latest_interval(store, view)[1] == T1
    assert full.start <= oldest
    incremental = materialize(store, profile, end=T2, incremental=True)
    for view, table in tables.items():
        assert incremental.rows[view] == entities_between(table, view, T1, T2)
        assert incremental.intervals[view] == (T1, T2)


def test_reset_online_clears_only_this_project(profile: Profile, tables) -> None:
    """After a reset the course views are empty and unmaterialized; another project keeps its data."""
    # The foreign name ends with ours: Feast's own `<prefix>*<project>` deletion would wipe it too.
    mine, other = project_profile(profile, "course_test_reset"), project_profile(profile, "x_course_test_reset")
    stores = {}
    for p in (mine, other):
        write_offline(tables, p)
        stores[p.project] = load_store(p)
        apply(stores[p.project], p)
        materialize(stores[p.project], p, end=T2)
    user = int(tables["user_profile_features"]["user_id"].iloc[0])
    reset_online(stores[mine.project], mine)
    fresh = load_store(mine)
    assert user_features(fresh, user).status == "not_found"
    assert all(latest_interval(fresh, view) is None for view in tables)
    assert user_features(load_store(other), user).status == "found"
    assert latest_interval(load_store(other), "user_profile_features")[1] == T2



def test_serving_moment_is_the_newest_materialization_end_capped_at_now(profile: Profile, tables) -> None:
    """Scoring happens as of what the online store is complete up to, never in the future."""
    profile = project_profile(profile, "course_test_clock")
    store = empty_online_store(profile, tables)

    def state(now: datetime) -> RegistryState:
        held = RegistryState(store, profile, MovieNearCache(store, profile, check_every_s=None), now=lambda: now)
        held.refresh()
        return held

    late = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert state(late).serving_moment() == late and state(late).newest_end is None  # nothing materialized yet
    materialize(store, profile, end=T1)
    assert state(late).serving_moment() == T1
    early = datetime(2025, 1, 5, tzinfo=timezone.utc)
    assert state(early).serving_moment() == early
    held = state(late)
    materialize(store, profile, end=T2, incremental=True)
    assert held.serving_moment() == T1, "the state changes only when it is refreshed"
    held.refresh()
    assert held.serving_moment() == T2
