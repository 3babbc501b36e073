"""Checks of notebook 01 (2.7.1, Feast setup): the interaction feature view and the taste feature service."""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pandas as pd
from feast import FeatureService, FeatureStore, FeatureView

from course_lib import registry_view
from course_lib.adapter import conform
from course_lib.checks.common import (
    HOUR,
    INTERACTIONS,
    MOVIES,
    T0,
    USERS,
    CheckFailed,
    answer,
    passed,
    pit_expected,
    registered_view,
    same_value,
    show,
)
from course_lib.config import Profile, resolve_profile
from course_lib.serving import feature_refs, historical_features
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS, batch_source, build
from feature_repo.names import TRACKED_GENRES

# Tiny feature tables for a scratch store: every key has a row at T0 and at T0 + 2 days.
TINY_KEYS: dict[str, list[dict[str, int]]] = {
    USERS: [{"user_id": 1}, {"user_id": 2}],
    MOVIES: [{"movie_id": 10}, {"movie_id": 11}],
    INTERACTIONS: [{"user_id": 1, "movie_id": 10}, {"user_id": 1, "movie_id": 11}, {"user_id": 2, "movie_id": 10}],
}
TINY_TIMES = (T0, T0 + pd.Timedelta(days=2))
# (user, movie, time) probes around the interaction rows: before any row, inside and beyond a
# 1-day TTL, exactly at a row, and a pair that never happened.
INTERACTION_PROBES = [(1, 10, T0 - HOUR), (1, 10, T0 + 20 * HOUR), (1, 10, T0 + 30 * HOUR), (1, 10, TINY_TIMES[1]),
                      (1, 11, TINY_TIMES[1] + 12 * HOUR), (2, 10, T0 + 12 * HOUR), (2, 11, T0 + 12 * HOUR)]
TASTE_SERVICE = "user_taste_service"
TASTE_FEATURES = {USERS: ["avg_rating", "favorite_genre"], MOVIES: [f"genre_{g}" for g in TRACKED_GENRES]}


def _sample_value(dtype_name: str, i: int) -> Any:
    """A distinct value of a Feast dtype for row i."""
    return {"Int64": i + 1, "Float32": i + 0.5, "String": f"value {i}"}[dtype_name]


def tiny_tables() -> dict[str, pd.DataFrame]:
    """The scratch store's feature tables: distinct values for every key at both TINY_TIMES."""
    tables = {}
    for view, keys in TINY_KEYS.items():
        rows = [{**key, TIMESTAMP_FIELD: ts} for ts in TINY_TIMES for key in keys]
        for i, row in enumerate(rows):
            row.update({f.name: _sample_value(str(f.dtype), 100 * i) for f in VIEWS[view][2]})
        tables[view] = conform(view, pd.DataFrame(rows))
    return tables


@contextmanager
def _scratch_course() -> Iterator[tuple[FeatureStore, Profile]]:
    """A throwaway local store (registry_view.scratch_store) with the tiny tables as its parquet
    sources; third-party deprecation notices are silenced so the check prints only its verdict."""
    project = f"exercise_check_{os.getpid()}"
    with registry_view.scratch_store(project) as store, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        profile = resolve_profile("local", {**os.environ, "FEAST_PROJECT": project})
        profile.offline_dir.mkdir(parents=True, exist_ok=True)  # a plain folder: nothing reads it while it changes
        for view, table in tiny_tables().items():
            table.to_parquet(profile.offline_location(view), index=False)
        yield store, profile


def _fields(view: FeatureView) -> dict[str, str]:
    """Feature name -> Feast dtype name."""
    return {f.name: str(f.dtype) for f in view.features}


def _same_interface(view: Any, expected: FeatureView, source: Any) -> None:
    """The learner's view has the registered view's name, entities and schema, and reads `source`."""
    if not isinstance(view, FeatureView):
        raise CheckFailed(f"interaction_view returned {type(view).__name__}; it must return a feast.FeatureView")
    if view.name != expected.name:
        raise CheckFailed(f"your view is named {view.name!r}; name it {expected.name!r}: feature references "
                          f"such as '{expected.name}:watch_count' use that name")
    if sorted(view.entities) != sorted(expected.entities):
        raise CheckFailed(f"your view's entities are {sorted(view.entities)}; an interaction belongs to a "
                          f"(user, movie) pair, so it needs both: {sorted(expected.entities)}")
    got, want = _fields(view), _fields(expected)
    problems = [f"{name} ({dtype}) is missing" for name, dtype in want.items() if name not in got]
    problems += [f"{name} is declared {got[name]}, the offline column is {dtype}"
                 for name, dtype in want.items() if name in got and got[name] != dtype]
    problems += [f"{name} is not a column of the interaction table" for name in got if name not in want]
    if problems:
        raise CheckFailed("your schema does not match the interaction table: " + "; ".join(problems))
    if view.batch_source is None or view.batch_source.name != source.name:
        raise CheckFailed("your view does not read the `source` argument; pass `source=source` to FeatureView")


def _ttl_hint(view: FeatureView, expected: FeatureView, probe: dict[str, Any], table: pd.DataFrame,
              wanted: bool) -> str:
    """Why a probe got a value it should not have (or none where it should), in TTL terms."""
    keys = sorted(expected.join_keys)
    earlier = pit_expected(table, keys, probe, timedelta(0))
    age = "" if earlier is None else f", {(probe[TIMESTAMP_FIELD] - earlier[TIMESTAMP_FIELD]) / HOUR:.0f} h after " \
                                     f"the row at {show(earlier[TIMESTAMP_FIELD])}"
    rule = "drops" if not wanted else "keeps"
    return (f"at {show(probe[TIMESTAMP_FIELD])}{age}, the registered view (TTL {show(expected.ttl)}) {rule} that "
            f"row; your view's ttl is {show(view.ttl)} — is it timedelta(days=1)?")


def interaction_view(fn: Callable[..., Any], store: FeatureStore) -> None:
    """Exercise 1.1: the learner's user_movie_interaction_features behaves like the registered one."""
    expected = registered_view(store, INTERACTIONS)
    table = tiny_tables()[INTERACTIONS]
    probes = [{"user_id": u, "movie_id": m, TIMESTAMP_FIELD: t} for u, m, t in INTERACTION_PROBES]
    with _scratch_course() as (scratch, profile):
        source = batch_source(INTERACTIONS, profile)
        view = answer(fn, "interaction_view", source)
        _same_interface(view, expected, source)
        try:
            scratch.apply([*build(profile).entities, view])
            got = historical_features(scratch, pd.DataFrame(probes).assign(probe=range(len(probes))),
                                      feature_refs([INTERACTIONS])).sort_values("probe", ignore_index=True)
        except Exception as exc:
            raise CheckFailed(f"Feast could not apply or query your view: {type(exc).__name__}: {exc}") from exc
    keys = sorted(expected.join_keys)
    for i, probe in enumerate(probes):
        want = pit_expected(table, keys, probe, expected.ttl or timedelta(0))
        for name in _fields(expected):
            if not same_value(got.at[i, name], None if want is None else want[name]):
                raise CheckFailed(f"for user {probe['user_id']}, movie {probe['movie_id']} your view returned "
                                  f"{name}={show(got.at[i, name])}, the registered view returns "
                                  f"{show(None if want is None else want[name])}: "
                                  + _ttl_hint(view, expected, probe, table, want is not None))
    passed("interaction_view", f"same entities, schema and point-in-time results as the registered view "
                                f"on {len(probes)} probes (TTL {show(view.ttl)})")


def taste_service(fn: Callable[..., Any]) -> None:
    """Exercise 1.2: the learner's feature service serves exactly the taste features."""
    wanted = [name for names in TASTE_FEATURES.values() for name in names]
    with _scratch_course() as (scratch, profile):
        scratch.apply(build(profile).objects())
        views = {view.name: view for view in scratch.list_feature_views()}
        service = answer(fn, "taste_service", views)
        if not isinstance(service, FeatureService):
            raise CheckFailed(f"taste_service returned {type(service).__name__}; it must return a feast.FeatureService")
        if service.name != TASTE_SERVICE:
            raise CheckFailed(f"your service is named {service.name!r}; clients ask for it by name, so call it "
                              f"{TASTE_SERVICE!r}")
        entity_df = pd.DataFrame({"user_id": [1], "movie_id": [10], TIMESTAMP_FIELD: [T0 + HOUR]})
        try:
            scratch.apply([service])
            served = scratch.get_historical_features(entity_df=entity_df, features=service).to_df()
        except Exception as exc:
            raise CheckFailed(f"Feast could not apply or serve your service: {type(exc).__name__}: {exc}") from exc
    got = [c for c in served.columns if c not in entity_df.columns]
    missing, extra = [c for c in wanted if c not in got], [c for c in got if c not in wanted]
    if missing or extra:
        raise CheckFailed(f"your service serves {got}; expected {wanted}. "
                          + (f"Missing: {missing}. " if missing else "")
                          + (f"Not asked for: {extra} — select features with view[['a', 'b']]." if extra else ""))
    passed("taste_service", f"Feast serves exactly the {len(wanted)} taste features through {TASTE_SERVICE!r}")
