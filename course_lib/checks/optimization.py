"""Checks of notebook 05 (2.7.5, optimization): cache invalidation, and a cache-aside read of movie features."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from feast import FeatureStore

from course_lib.checks.common import (
    HOUR,
    INTERACTIONS,
    MOVIES,
    T0,
    USERS,
    CheckFailed,
    RecordingStore,
    answer,
    passed,
    same_value,
    show,
)
from course_lib.messages import say

Ends = dict[str, Any]  # feature view -> its newest materialization end (None: never materialized)
# (situation's message key, previous ends, current ends) for the cache invalidation rule.
_T = T0.to_pydatetime()
INVALIDATION_CASES: list[tuple[str, Ends, Ends]] = [
    ("optimization.case_nothing_ran", {USERS: _T, MOVIES: _T}, {USERS: _T, MOVIES: _T}),
    ("optimization.case_further", {USERS: _T, MOVIES: _T}, {USERS: _T + HOUR, MOVIES: _T}),
    ("optimization.case_first", {USERS: None, MOVIES: _T}, {USERS: _T, MOVIES: _T}),
    ("optimization.case_rebuilt", {USERS: _T + HOUR, MOVIES: _T}, {USERS: _T, MOVIES: _T}),
    ("optimization.case_added", {USERS: _T}, {USERS: _T, INTERACTIONS: _T}),
    ("optimization.case_removed", {USERS: _T, MOVIES: _T}, {USERS: _T}),
]


def _to_drop(previous: Ends, current: Ends) -> set[str]:
    """Views whose recorded end differs between two registry polls (absent counts as never materialized)."""
    return {view for view in previous.keys() | current.keys() if previous.get(view) != current.get(view)}


def _invalidation_hint(previous: Ends, current: Ends, got: set[str]) -> str:
    """The likely mistake behind a wrong set of views to drop."""
    want = _to_drop(previous, current)
    if got and got == (previous.keys() | current.keys()) - want:
        return say("optimization.hint_inverted")
    missed = want - got
    if any(view not in previous or view not in current for view in missed):
        return say("optimization.hint_one_poll")
    if any(previous.get(view) is None for view in missed):
        return say("optimization.hint_first")
    if missed:
        return say("optimization.hint_backwards")
    return say("optimization.hint_only_changed")


def views_to_invalidate(fn: Callable[..., Any]) -> None:
    """Exercise 5.1: which views' cache entries a registry poll must drop."""
    for situation, previous, current in INVALIDATION_CASES:
        got = answer(fn, "views_to_invalidate", dict(previous), dict(current))
        if isinstance(got, str) or not isinstance(got, (set, frozenset, list, tuple)):
            raise CheckFailed(say("optimization.not_a_set", type=type(got).__name__))
        want = _to_drop(previous, current)
        if set(got) != want:
            raise CheckFailed(say("optimization.drop_wrong", situation=say(situation), got=sorted(got),
                                  want=sorted(want), hint=_invalidation_hint(previous, current, set(got))))
    passed("views_to_invalidate", say("optimization.invalidation_passed", count=len(INVALIDATION_CASES)))


CACHED_FEATURES = ("vote_average", "popularity")
CACHE_COLUMNS = ["movie_id", *CACHED_FEATURES]


def cache_requests(events: pd.DataFrame) -> list[list[int]]:
    """Three requests of movie ids: all new (an unknown id among them), half cached, then all cached."""
    known = sorted(int(m) for m in events["movie_id"].unique())[:8]
    unknown = known[-1] + 10_000_000
    return [[known[3], known[0], unknown, known[5], known[1]], [known[1], known[7], known[3], known[6]],
            [known[6], unknown, known[0]]]


def _direct(store: FeatureStore, movie_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each movie's cached features, read straight from the online store."""
    rows = store.get_online_features(features=[f"{MOVIES}:{name}" for name in CACHED_FEATURES],
                                     entity_rows=[{"movie_id": m} for m in movie_ids]).to_dict()
    return {m: {name: rows[name][i] for name in CACHED_FEATURES} for i, m in enumerate(movie_ids)}


def _judge_reads(recording: RecordingStore, missing: list[int], cached: set[int]) -> None:
    """One get_online_features call for exactly the ids missing from the cache, none when nothing is missing."""
    calls = recording.online
    if not missing and calls:
        raise CheckFailed(say("optimization.read_when_cached", calls=len(calls)))
    if missing and not calls:
        raise CheckFailed(say("optimization.never_read", missing=missing))
    if len(calls) > 1:
        raise CheckFailed(say("optimization.many_reads", calls=len(calls), missing=len(missing)))
    asked: list[Any] = [row.get("movie_id") for row in calls[0].rows] if calls else []
    if None in asked:
        raise CheckFailed(say("optimization.no_movie_id"))
    again = sorted({int(m) for m in asked if m in cached})
    if again:
        raise CheckFailed(say("optimization.read_again", again=again))
    if sorted(int(m) for m in asked) != sorted(missing):
        raise CheckFailed(say("optimization.asked_wrong", asked=sorted(asked), missing=sorted(missing)))


def _judge_frame(got: Any, movie_ids: list[int], truth: dict[int, dict[str, Any]]) -> None:
    """One row per requested movie, in the given order, with the online store's values."""
    if not isinstance(got, pd.DataFrame):
        raise CheckFailed(say("optimization.frame_type", columns=CACHE_COLUMNS, type=type(got).__name__))
    if not set(CACHE_COLUMNS) <= set(got.columns):
        raise CheckFailed(say("optimization.frame_columns", columns=CACHE_COLUMNS, got=list(got.columns)))
    if got["movie_id"].tolist() != movie_ids:
        raise CheckFailed(say("optimization.frame_order", got=got["movie_id"].tolist(), want=movie_ids))
    for i, movie in enumerate(movie_ids):
        for name in CACHED_FEATURES:
            value = got[name].iloc[i]
            if not same_value(value, truth[movie][name]):
                raise CheckFailed(say("optimization.frame_value", movie=movie, name=name, got=show(value),
                                      want=show(truth[movie][name])))


def _judge_cache(cache: Any, movie_ids: list[int], truth: dict[int, dict[str, Any]]) -> None:
    """After a call, the cache holds every requested movie's features as the online store has them."""
    if not cache:
        raise CheckFailed(say("optimization.cache_empty"))
    for movie in movie_ids:
        entry = cache.get(movie)
        if not isinstance(entry, dict) or not all(same_value(entry.get(n), truth[movie][n]) for n in CACHED_FEATURES):
            raise CheckFailed(say("optimization.cache_entry", movie=movie, entry=entry,
                                  want={n: truth[movie][n] for n in CACHED_FEATURES}))


def cached_movie_features(fn: Callable[..., Any], store: FeatureStore, events: pd.DataFrame) -> None:
    """Exercise 5.2: a cache-aside read that asks the online store only for the ids it has not cached."""
    requests = cache_requests(events)
    truth = _direct(store, sorted({m for ids in requests for m in ids}))
    cache: dict[Any, Any] = {}
    cached: set[int] = set()
    for movie_ids in requests:
        recording = RecordingStore(store)
        got = answer(fn, "cached_movie_features", recording, list(movie_ids), cache)
        _judge_reads(recording, [m for m in movie_ids if m not in cached], cached)
        _judge_frame(got, movie_ids, truth)
        _judge_cache(cache, movie_ids, truth)
        cached |= set(movie_ids)
    passed("cached_movie_features", say("optimization.cache_passed", count=len(requests)))
