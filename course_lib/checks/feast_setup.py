"""Checks of notebook 01 (2.7.1, Feast setup): the interaction feature view and the taste feature service."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pandas as pd
from feast import FeatureService, FeatureStore, FeatureView

from course_lib.checks.common import (
    HOUR,
    INTERACTIONS,
    MOVIES,
    T0,
    TINY_TIMES,
    USERS,
    CheckFailed,
    answer,
    passed,
    pit_expected,
    registered_view,
    same_value,
    scratch_course,
    show,
    tiny_tables,
)
from course_lib.messages import say
from course_lib.serving import feature_refs, historical_features
from feature_repo.definitions import TIMESTAMP_FIELD, batch_source, build
from feature_repo.names import TRACKED_GENRES

# (user, movie, time) probes around the interaction rows: before any row, inside and beyond a
# 1-day TTL, exactly at a row, and a pair that never happened.
INTERACTION_PROBES = [(1, 10, T0 - HOUR), (1, 10, T0 + 20 * HOUR), (1, 10, T0 + 30 * HOUR), (1, 10, TINY_TIMES[1]),
                      (1, 11, TINY_TIMES[1] + 12 * HOUR), (2, 10, T0 + 12 * HOUR), (2, 11, T0 + 12 * HOUR)]
TASTE_SERVICE = "user_taste_service"
TASTE_FEATURES = {USERS: ["avg_rating", "favorite_genre"], MOVIES: [f"genre_{g}" for g in TRACKED_GENRES]}


def _fields(view: FeatureView) -> dict[str, str]:
    """Feature name -> Feast dtype name."""
    return {f.name: str(f.dtype) for f in view.features}


def _same_interface(view: Any, expected: FeatureView, source: Any) -> None:
    """The learner's view has the registered view's name, entities and schema, and reads `source`."""
    if not isinstance(view, FeatureView):
        raise CheckFailed(say("feast_setup.not_a_view", type=type(view).__name__))
    if view.name != expected.name:
        raise CheckFailed(say("feast_setup.view_name", got=view.name, want=expected.name))
    if sorted(view.entities) != sorted(expected.entities):
        raise CheckFailed(say("feast_setup.entities", got=sorted(view.entities), want=sorted(expected.entities)))
    got, want = _fields(view), _fields(expected)
    problems = [say("feast_setup.field_missing", name=name, dtype=dtype) for name, dtype in want.items()
                if name not in got]
    problems += [say("feast_setup.field_type", name=name, got=got[name], want=dtype)
                 for name, dtype in want.items() if name in got and got[name] != dtype]
    problems += [say("feast_setup.field_extra", name=name) for name in got if name not in want]
    if problems:
        raise CheckFailed(say("feast_setup.schema", problems="; ".join(problems)))
    if view.batch_source is None or view.batch_source.name != source.name:
        raise CheckFailed(say("feast_setup.source"))


def _ttl_hint(view: FeatureView, expected: FeatureView, probe: dict[str, Any], table: pd.DataFrame,
              wanted: bool) -> str:
    """Why a probe got a value it should not have (or none where it should), in TTL terms."""
    keys = sorted(expected.join_keys)
    earlier = pit_expected(table, keys, probe, timedelta(0))
    age = "" if earlier is None else say("feast_setup.ttl_age", row_at=show(earlier[TIMESTAMP_FIELD]),
                                         hours=f"{(probe[TIMESTAMP_FIELD] - earlier[TIMESTAMP_FIELD]) / HOUR:.0f}")
    return say("feast_setup.ttl_keeps" if wanted else "feast_setup.ttl_drops", at=show(probe[TIMESTAMP_FIELD]),
               age=age, ttl=show(expected.ttl), mine=show(view.ttl))


def interaction_view(fn: Callable[..., Any], store: FeatureStore) -> None:
    """Exercise 1.1: the learner's user_movie_interaction_features behaves like the registered one."""
    expected = registered_view(store, INTERACTIONS)
    table = tiny_tables()[INTERACTIONS]
    probes = [{"user_id": u, "movie_id": m, TIMESTAMP_FIELD: t} for u, m, t in INTERACTION_PROBES]
    with scratch_course() as (scratch, profile):
        source = batch_source(INTERACTIONS, profile)
        view = answer(fn, "interaction_view", source)
        _same_interface(view, expected, source)
        try:
            scratch.apply([*build(profile).entities, view])
            got = historical_features(scratch, pd.DataFrame(probes).assign(probe=range(len(probes))),
                                      feature_refs([INTERACTIONS])).sort_values("probe", ignore_index=True)
        except Exception as exc:
            raise CheckFailed(say("feast_setup.view_failed", error=type(exc).__name__, detail=exc)) from exc
    keys = sorted(expected.join_keys)
    for i, probe in enumerate(probes):
        want = pit_expected(table, keys, probe, expected.ttl or timedelta(0))
        for name in _fields(expected):
            if not same_value(got.at[i, name], None if want is None else want[name]):
                raise CheckFailed(say("feast_setup.view_value", user=probe["user_id"], movie=probe["movie_id"],
                                      name=name, got=show(got.at[i, name]),
                                      want=show(None if want is None else want[name]),
                                      hint=_ttl_hint(view, expected, probe, table, want is not None)))
    passed("interaction_view", say("feast_setup.view_passed", probes=len(probes), ttl=show(view.ttl)))


def taste_service(fn: Callable[..., Any]) -> None:
    """Exercise 1.2: the learner's feature service serves exactly the taste features."""
    wanted = [name for names in TASTE_FEATURES.values() for name in names]
    with scratch_course() as (scratch, profile):
        scratch.apply(build(profile).objects())
        views = {view.name: view for view in scratch.list_feature_views()}
        service = answer(fn, "taste_service", views)
        if not isinstance(service, FeatureService):
            raise CheckFailed(say("feast_setup.not_a_service", type=type(service).__name__))
        if service.name != TASTE_SERVICE:
            raise CheckFailed(say("feast_setup.service_name", got=service.name, want=TASTE_SERVICE))
        entity_df = pd.DataFrame({"user_id": [1], "movie_id": [10], TIMESTAMP_FIELD: [T0 + HOUR]})
        try:
            scratch.apply([service])
            served = scratch.get_historical_features(entity_df=entity_df, features=service).to_df()
        except Exception as exc:
            raise CheckFailed(say("feast_setup.service_failed", error=type(exc).__name__, detail=exc)) from exc
    got = [c for c in served.columns if c not in entity_df.columns]
    missing, extra = [c for c in wanted if c not in got], [c for c in got if c not in wanted]
    if missing or extra:
        key = ("feast_setup.features_both" if missing and extra
               else "feast_setup.features_missing" if missing else "feast_setup.features_extra")
        raise CheckFailed(say(key, got=got, wanted=wanted, missing=missing, extra=extra))
    passed("taste_service", say("feast_setup.service_passed", count=len(wanted), service=TASTE_SERVICE))
