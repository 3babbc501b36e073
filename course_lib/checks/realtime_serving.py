"""Checks of notebook 03 (2.7.3, real-time serving): candidate features read online through the feature
service, NDCG@k, and a point-in-time training set through the feature service."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from sklearn.metrics import ndcg_score

from course_lib.checks.common import (
    INTERACTIONS,
    MOVIES,
    CheckFailed,
    Read,
    RecordingStore,
    answer,
    passed,
    same_value,
    show,
    through_service,
)
from course_lib.config import Profile
from course_lib.messages import say
from course_lib.offline import read_offline
from course_lib.ranker import POSITIVE_RATING
from course_lib.serving import latest_interval
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS, join_keys
from feature_repo.names import FEATURE_SERVICE

TRAINING_ROWS = 200  # entity rows of the training set check: rated watches, shuffled


def _latest(table: pd.DataFrame, keys: dict[str, int], end: pd.Timestamp) -> pd.Series | None:
    """The newest offline row of an entity at or before `end`: what materialization put online."""
    match = np.logical_and.reduce([table[k] == v for k, v in keys.items()]) & (table[TIMESTAMP_FIELD] <= end)
    rows = table[match]
    return None if rows.empty else rows.loc[rows[TIMESTAMP_FIELD].idxmax()]


def candidate_list(interactions: pd.DataFrame, movies: pd.DataFrame, user_id: int) -> list[int]:
    """Watched, unwatched and unknown movies for a user, interleaved."""
    watched = (interactions[interactions["user_id"] == user_id].sort_values(TIMESTAMP_FIELD)["movie_id"]
               .drop_duplicates(keep="last").tolist()[-3:])
    seen = set(interactions.loc[interactions["user_id"] == user_id, "movie_id"])
    unwatched = sorted(set(movies["movie_id"]) - seen)[:2]
    unknown = int(movies["movie_id"].max()) + 1000
    return [m for group in zip(watched + [unknown], unwatched + [None, None]) for m in group if m is not None]


def _offline_tables(profile: Profile, views: list[str]) -> dict[str, pd.DataFrame]:
    """Feature tables as stored offline, timestamps UTC-aware."""
    tables = read_offline(profile, views)
    for table in tables.values():
        table[TIMESTAMP_FIELD] = pd.to_datetime(table[TIMESTAMP_FIELD], utc=True)
    return tables


def _served(store: FeatureStore) -> tuple[list[str], dict[str, list[str]]]:
    """Every feature the registered recommendation service serves, and view -> features for its batch feature
    views (the ones a check rebuilds from the offline tables; an on-demand view's outputs are only required)."""
    try:
        service = store.get_feature_service(FEATURE_SERVICE)
    except Exception as exc:
        raise CheckFailed(say("common.not_registered", name=FEATURE_SERVICE, error=type(exc).__name__)) from exc
    features = [f.name for p in service.feature_view_projections for f in p.features]
    return features, {p.name: [f.name for f in p.features] for p in service.feature_view_projections if p.name in VIEWS}


def _expected_candidates(store: FeatureStore, tables: dict[str, pd.DataFrame], served: dict[str, list[str]],
                         user_id: int, movie_ids: list[int]) -> pd.DataFrame:
    """What the online store holds for the candidates, rebuilt from the offline tables."""
    ends = {}
    for view in served:
        interval = latest_interval(store, view)
        if interval is None:
            raise CheckFailed(say("realtime_serving.never_materialized"))
        ends[view] = interval[1]
    rows = []
    for movie in movie_ids:
        row: dict[str, Any] = {"movie_id": movie}
        for view, names in served.items():
            latest = _latest(tables[view], {k: {"user_id": user_id, "movie_id": movie}[k] for k in join_keys(view)},
                             ends[view])
            row.update({name: None if latest is None else latest[name] for name in names})
        rows.append(row)
    return pd.DataFrame(rows)


def _judge_candidate_reads(reads: list[Read], movie_ids: list[int]) -> None:
    """The online reads candidate_features made are one call through the service, with both keys in every row."""
    if not reads:
        raise CheckFailed(say("realtime_serving.no_online_read"))
    if not through_service(reads, FEATURE_SERVICE):
        raise CheckFailed(say("realtime_serving.candidates_not_service", service=FEATURE_SERVICE))
    if len(reads) > 1:
        raise CheckFailed(say("realtime_serving.many_reads", calls=len(reads), candidates=len(movie_ids)))
    missing = sorted({key for row in reads[0].rows for key in ("user_id", "movie_id") if key not in row})
    if missing:
        raise CheckFailed(say("realtime_serving.entity_keys", missing=missing))


def _read_candidates(fn: Callable[..., Any], store: FeatureStore, user_id: int, movie_ids: list[int]) -> Any:
    """The learner's candidate frame, read through a RecordingStore whose reads must be one service call."""
    recording = RecordingStore(store)
    try:
        got = answer(fn, "candidate_features", recording, user_id, list(movie_ids))
    except CheckFailed as failure:
        if recording.online:  # a wrong read explains the failure better than its consequence does
            try:
                _judge_candidate_reads(recording.online, movie_ids)
            except CheckFailed as problem:
                raise problem from failure
        raise
    _judge_candidate_reads(recording.online, movie_ids)
    return got


def candidate_features(fn: Callable[..., Any], store: FeatureStore, profile: Profile, user_id: int) -> None:
    """Exercise 3.1: one online read through the feature service returns the latest materialized values."""
    features, served = _served(store)
    tables = _offline_tables(profile, sorted({*served, MOVIES, INTERACTIONS}))
    movie_ids = candidate_list(tables[INTERACTIONS], tables[MOVIES], user_id)
    columns = ["movie_id", *features]
    got = _read_candidates(fn, store, user_id, movie_ids)
    if not isinstance(got, pd.DataFrame):
        raise CheckFailed(say("realtime_serving.candidate_type", type=type(got).__name__))
    if not set(columns) <= set(got.columns):
        missing = [c for c in columns if c not in got.columns]
        raise CheckFailed(say("realtime_serving.candidate_columns", missing=missing))
    if len(got) != len(movie_ids):
        raise CheckFailed(say("realtime_serving.candidate_rows", got=len(got), count=len(movie_ids), movies=movie_ids))
    got = got.reset_index(drop=True)
    want = _expected_candidates(store, tables, served, user_id, movie_ids)
    for i, movie in enumerate(movie_ids):
        if got.at[i, "movie_id"] != movie:
            raise CheckFailed(say("realtime_serving.candidate_order", i=i, got=show(got.at[i, "movie_id"]),
                                  movie=movie, movies=movie_ids))
        for view, names in served.items():
            why = (say("realtime_serving.why_user", user=user_id) if "user_id" in join_keys(view)
                   else say("realtime_serving.why_movie", movie=movie))
            for name in names:
                if not same_value(got.at[i, name], want.at[i, name]):
                    raise CheckFailed(say("realtime_serving.candidate_value", movie=movie, name=name,
                                          got=show(got.at[i, name]), want=show(want.at[i, name]), why=why))
    passed("candidate_features", say("realtime_serving.candidates_passed", service=FEATURE_SERVICE,
                                     count=len(movie_ids), user=user_id))


def ndcg_cases() -> list[tuple[list[int], list[float], int]]:
    """(relevance, scores, k) cases without score ties: hand-made edge cases plus seeded random ones."""
    cases = [([3, 2, 3, 0, 1, 2], [0.9, 0.8, 0.1, 0.7, 0.3, 0.2], 3),  # graded relevance, k < n
             ([0, 0, 1, 0], [0.4, 0.3, 0.2, 0.1], 2),  # the only relevant item falls below k
             ([0, 1, 0, 1], [0.1, 0.9, 0.3, 0.8], 10),  # k > n, perfect ranking
             ([0, 0, 0], [0.3, 0.2, 0.1], 3)]  # nothing relevant: 0.0
    rng = np.random.default_rng(7)
    for levels in (2, 2, 4, 4, 6):
        n = int(rng.integers(3, 11))
        cases.append((rng.integers(0, levels, n).tolist(), (rng.permutation(n) / n).round(2).tolist(),
                      int(rng.integers(1, n + 2))))
    return cases


def _dcg(gains: np.ndarray, k: int, start: int = 2) -> float:
    """Discounted cumulative gain of the first k gains (position i discounted by log2(i - 1 + start))."""
    top = gains[:k]
    return float((top / np.log2(np.arange(start, start + len(top)))).sum())


def _ndcg_hint(relevance: list[int], scores: list[float], k: int, got: float) -> str:
    """The likely mistake behind a wrong NDCG."""
    rel, order = np.asarray(relevance, dtype=float), np.argsort(-np.asarray(scores), kind="stable")
    ideal = _dcg(np.sort(rel)[::-1], k)
    with np.errstate(divide="ignore", invalid="ignore"):
        mistakes = [
            (_dcg(rel[order], k), "realtime_serving.hint_ideal"),
            (_dcg(rel[order], k, start=3) / _dcg(np.sort(rel)[::-1], k, start=3), "realtime_serving.hint_discount"),
            (_dcg(rel[order], k) / _dcg(np.sort(rel[order][:k])[::-1], k), "realtime_serving.hint_all"),
            (_dcg(rel[order[::-1]], k) / ideal, "realtime_serving.hint_order"),
            (_dcg(rel[order], len(rel)) / _dcg(np.sort(rel)[::-1], len(rel)), "realtime_serving.hint_top_k"),
            (_dcg(2 ** rel[order] - 1, k) / _dcg(2 ** np.sort(rel)[::-1] - 1, k), "realtime_serving.hint_gain"),
        ]
    for value, hint in mistakes:
        if math.isfinite(value) and same_value(got, value):
            return say(hint)
    if not math.isfinite(got):
        return say("realtime_serving.hint_finite")
    return say("realtime_serving.hint_ndcg")


def ndcg_at_k(fn: Callable[..., Any]) -> None:
    """Exercise 3.2: NDCG@k of one user's ranked candidates, against scikit-learn's ndcg_score."""
    cases = ndcg_cases()
    for relevance, scores, k in cases:
        got = answer(fn, "ndcg_at_k", list(relevance), list(scores), k)
        if not isinstance(got, (int, float, np.number)):
            raise CheckFailed(say("common.not_a_float", function="ndcg_at_k", type=type(got).__name__))
        want = float(ndcg_score([relevance], [scores], k=k))
        if not same_value(float(got), want):
            raise CheckFailed(say("realtime_serving.ndcg_wrong", relevance=relevance, scores=scores, k=k,
                                  got=float(got), want=want, hint=_ndcg_hint(relevance, scores, k, float(got))))
    passed("ndcg_at_k", say("realtime_serving.ndcg_passed", count=len(cases)))


def training_rows(events: pd.DataFrame) -> pd.DataFrame:
    """A shuffled entity_df of rated watches: user, movie, the watch's time and a label (rated 4 or more)."""
    rated = events.dropna(subset=["rating"]).drop_duplicates(["user_id", "movie_id", TIMESTAMP_FIELD])
    rows = rated.sample(min(TRAINING_ROWS, len(rated)), random_state=3).reset_index(drop=True)
    return pd.DataFrame({"user_id": rows["user_id"].astype("int64"), "movie_id": rows["movie_id"].astype("int64"),
                         TIMESTAMP_FIELD: pd.to_datetime(rows[TIMESTAMP_FIELD], utc=True),
                         "label": (rows["rating"] >= POSITIVE_RATING).astype("int64")})


def _as_of(entity_df: pd.DataFrame, tables: dict[str, pd.DataFrame], served: dict[str, list[str]]) -> pd.DataFrame:
    """Each entity row's service features at its event_timestamp: a pandas as-of join per view, within its TTL."""
    def utc_ns(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(**{TIMESTAMP_FIELD: frame[TIMESTAMP_FIELD].astype("datetime64[ns, UTC]")})
    left = utc_ns(entity_df.reset_index(drop=True)).reset_index(names="row").sort_values(TIMESTAMP_FIELD)
    out = pd.DataFrame(index=range(len(entity_df)))
    for view, names in served.items():
        keys = join_keys(view)
        right = utc_ns(tables[view][[*keys, TIMESTAMP_FIELD, *names]]).astype(dict.fromkeys(keys, "int64"))
        joined = pd.merge_asof(left[["row", *keys, TIMESTAMP_FIELD]], right.sort_values(TIMESTAMP_FIELD),
                               on=TIMESTAMP_FIELD, by=keys, tolerance=VIEWS[view][1])
        out[names] = joined.set_index("row").sort_index()[names]
    return out


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[tuple[Any, ...]]:
    """Rows of some columns as tuples, timestamps as UTC (a naive one is UTC, as PostgreSQL returns it)."""
    values = [pd.to_datetime(frame[c], utc=True).astype("datetime64[ns, UTC]") if c == TIMESTAMP_FIELD else frame[c]
              for c in columns]
    return list(zip(*(v.tolist() for v in values)))


def _judge_training_reads(recording: RecordingStore) -> None:
    """training_set read offline, through get_historical_features, and nothing online."""
    if recording.online:
        raise CheckFailed(say("realtime_serving.online_for_training"))
    if not recording.historical:
        raise CheckFailed(say("realtime_serving.no_historical_read"))


def _same_rows(got: pd.DataFrame, entity_df: pd.DataFrame) -> None:
    """The learner's entity columns hold entity_df's rows, in entity_df's order."""
    columns = list(entity_df.columns)
    mine, want = _rows(got, columns), _rows(entity_df, columns)
    if mine == want:
        return
    i = next(i for i, (a, b) in enumerate(zip(mine, want)) if a != b)
    shown = [f"({', '.join(show(v) for v in row)})" for row in (mine[i], want[i])]
    where = say("realtime_serving.row_differs", i=i, mine=shown[0], want=shown[1], columns=", ".join(columns))
    if Counter(mine) == Counter(want):
        raise CheckFailed(say("realtime_serving.row_order", where=where))
    keys = [c for c in columns if c != TIMESTAMP_FIELD]
    if Counter(_rows(got, keys)) == Counter(_rows(entity_df, keys)):
        raise CheckFailed(say("realtime_serving.row_time", where=where))
    raise CheckFailed(say("realtime_serving.row_changed", where=where))


def _training_hint(got: Any, row: pd.Series, table: pd.DataFrame, keys: list[str], name: str) -> str:
    """The likely mistake behind a wrong training value."""
    later = table[np.logical_and.reduce([table[k] == row[k] for k in keys])
                  & (table[TIMESTAMP_FIELD] > row[TIMESTAMP_FIELD])]
    if any(same_value(got, value) for value in later[name]):
        return say("realtime_serving.hint_leak")
    return say("realtime_serving.hint_ask")


def _first_mismatch(got: pd.DataFrame, want: pd.DataFrame, served: dict[str, list[str]]) -> tuple[int, str, str] | None:
    """The first (row, view, feature) where the learner's value differs from the point-in-time join."""
    return next(((i, view, name) for view, names in served.items() for name in names for i in range(len(want))
                 if not same_value(got.at[i, name], want.at[i, name])), None)


def _training_frame(got: Any, entity_df: pd.DataFrame, features: list[str], recording: RecordingStore) -> None:
    """The learner's training set has entity_df's columns first, the service's features, and one row per row."""
    _judge_training_reads(recording)
    if not isinstance(got, pd.DataFrame):
        raise CheckFailed(say("realtime_serving.training_type", type=type(got).__name__))
    missing = [c for c in [*entity_df.columns, *features] if c not in got.columns]
    if missing:
        raise CheckFailed(say("realtime_serving.training_columns", missing=missing, service=FEATURE_SERVICE))
    if not through_service(recording.historical, FEATURE_SERVICE):
        raise CheckFailed(say("realtime_serving.training_not_service", service=FEATURE_SERVICE))
    if len(got) != len(entity_df):
        raise CheckFailed(say("realtime_serving.training_rows", got=len(got), count=len(entity_df)))
    first = list(got.columns[:entity_df.shape[1]])
    if first != list(entity_df.columns):
        raise CheckFailed(say("realtime_serving.training_first", first=first, columns=list(entity_df.columns)))


def training_set(fn: Callable[..., Any], store: FeatureStore, profile: Profile, events: pd.DataFrame) -> None:
    """Exercise 3.3: a point-in-time training set through the feature service, in entity_df's order."""
    features, served = _served(store)
    entity_df = training_rows(events)
    recording = RecordingStore(store)
    got = answer(fn, "training_set", recording, entity_df.copy())
    _training_frame(got, entity_df, features, recording)
    got = got.reset_index(drop=True)
    _same_rows(got, entity_df)
    tables = _offline_tables(profile, list(served))
    want = _as_of(entity_df, tables, served)
    mismatch = _first_mismatch(got, want, served)
    if mismatch:
        i, view, name = mismatch
        row = ", ".join(f"{k}={show(entity_df.at[i, k])}" for k in entity_df)
        hint = _training_hint(got.at[i, name], entity_df.loc[i], tables[view], join_keys(view), name)
        raise CheckFailed(say("realtime_serving.training_value", i=i, row=row, name=name, got=show(got.at[i, name]),
                              want=show(want.at[i, name]), hint=hint))
    passed("training_set", say("realtime_serving.training_passed", rows=len(entity_df), features=len(features)))
