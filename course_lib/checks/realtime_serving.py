"""Checks of notebook 03 (2.7.3, real-time serving): candidate features read online, and NDCG@k."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from sklearn.metrics import ndcg_score

from course_lib.checks.common import INTERACTIONS, MOVIES, CheckFailed, answer, is_missing, passed, same_value, show
from course_lib.config import Profile
from course_lib.offline import read_offline
from course_lib.serving import latest_interval
from feature_repo.definitions import TIMESTAMP_FIELD

CANDIDATE_REFS = {"vote_average": f"{MOVIES}:vote_average", "popularity": f"{MOVIES}:popularity",
                  "watch_count": f"{INTERACTIONS}:watch_count"}
CANDIDATE_COLUMNS = ["movie_id", *CANDIDATE_REFS]


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


def _offline_tables(profile: Profile) -> dict[str, pd.DataFrame]:
    """The movie and interaction tables as stored offline, timestamps UTC-aware."""
    tables = read_offline(profile, [MOVIES, INTERACTIONS])
    for table in tables.values():
        table[TIMESTAMP_FIELD] = pd.to_datetime(table[TIMESTAMP_FIELD], utc=True)
    return tables


def _expected_candidates(store: FeatureStore, tables: dict[str, pd.DataFrame], user_id: int,
                         movie_ids: list[int]) -> pd.DataFrame:
    """What the online store holds for the candidates, rebuilt from the offline tables."""
    ends = {}
    for view in (MOVIES, INTERACTIONS):
        interval = latest_interval(store, view)
        if interval is None:
            raise CheckFailed("the online store was never materialized; run the materialization cells first")
        ends[view] = interval[1]
    rows = []
    for movie in movie_ids:
        meta = _latest(tables[MOVIES], {"movie_id": movie}, ends[MOVIES])
        pair = _latest(tables[INTERACTIONS], {"user_id": user_id, "movie_id": movie}, ends[INTERACTIONS])
        rows.append({"movie_id": movie, "vote_average": None if meta is None else meta["vote_average"],
                     "popularity": None if meta is None else meta["popularity"],
                     "watch_count": None if pair is None else pair["watch_count"]})
    return pd.DataFrame(rows)


def candidate_features(fn: Callable[..., Any], store: FeatureStore, profile: Profile, user_id: int) -> None:
    """Exercise 3.1: online features for a candidate list equal the latest materialized values."""
    tables = _offline_tables(profile)
    movie_ids = candidate_list(tables[INTERACTIONS], tables[MOVIES], user_id)
    got = answer(fn, "candidate_features", store, user_id, list(movie_ids))
    if not isinstance(got, pd.DataFrame) or not set(CANDIDATE_COLUMNS) <= set(got.columns):
        raise CheckFailed(f"candidate_features must return a DataFrame with the columns {CANDIDATE_COLUMNS}; got "
                          + (f"columns {list(got.columns)}" if isinstance(got, pd.DataFrame) else type(got).__name__))
    if len(got) != len(movie_ids):
        raise CheckFailed(f"you returned {len(got)} rows for {len(movie_ids)} candidates {movie_ids}: one row per "
                          "candidate, unknown ones included (their features are null)")
    got = got.reset_index(drop=True)
    want = _expected_candidates(store, tables, user_id, movie_ids)
    for i, movie in enumerate(movie_ids):
        if got.at[i, "movie_id"] != movie:
            raise CheckFailed(f"row {i} is movie {show(got.at[i, 'movie_id'])}; it should be movie {movie}: "
                              f"keep the candidates' order {movie_ids}")
        for column in CANDIDATE_COLUMNS[1:]:
            if not same_value(got.at[i, column], want.at[i, column]):
                why = f"did you request '{CANDIDATE_REFS[column]}' and send user_id={user_id} with every movie_id?"
                if column == "watch_count" and is_missing(want.at[i, column]):
                    why = f"user {user_id} never watched movie {movie}, so there is no interaction row"
                elif column == "watch_count" and is_missing(got.at[i, column]):
                    why = ("the interaction view is keyed by the (user, movie) pair: send both user_id and "
                           "movie_id in every entity row")
                raise CheckFailed(f"movie {movie}: your {column} is {show(got.at[i, column])}; the online store "
                                  f"holds {show(want.at[i, column])} — {why}")
    passed("candidate_features", f"{len(movie_ids)} candidates of user {user_id}: every value equals the newest "
                                  "materialized offline row")


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
            (_dcg(rel[order], k), "divide by the ideal DCG@k (the same sum over the relevances sorted high to low)"),
            (_dcg(rel[order], k, start=3) / _dcg(np.sort(rel)[::-1], k, start=3),
             "position i (1-based) is discounted by log2(i + 1): the top item by log2(2) = 1"),
            (_dcg(rel[order], k) / _dcg(np.sort(rel[order][:k])[::-1], k),
             "the ideal DCG ranks *all* candidates by relevance, not just your top k"),
            (_dcg(rel[order[::-1]], k) / ideal, "rank by score from highest to lowest"),
            (_dcg(rel[order], len(rel)) / _dcg(np.sort(rel)[::-1], len(rel)), "only the top k positions count"),
            (_dcg(2 ** rel[order] - 1, k) / _dcg(2 ** np.sort(rel)[::-1] - 1, k),
             "use the relevance itself as the gain (scikit-learn's convention), not 2**rel - 1"),
        ]
    for value, hint in mistakes:
        if math.isfinite(value) and same_value(got, value):
            return hint
    if not math.isfinite(got):
        return "a finite number is expected; is a discount log2(1) = 0 in a denominator?"
    return "NDCG@k = DCG@k of your ranking / DCG@k of the ideal ranking, 0.0 when nothing is relevant"


def ndcg_at_k(fn: Callable[..., Any]) -> None:
    """Exercise 3.2: NDCG@k of one user's ranked candidates, against scikit-learn's ndcg_score."""
    cases = ndcg_cases()
    for relevance, scores, k in cases:
        got = answer(fn, "ndcg_at_k", list(relevance), list(scores), k)
        if not isinstance(got, (int, float, np.number)):
            raise CheckFailed(f"ndcg_at_k returned {type(got).__name__}; return one number (a float)")
        want = float(ndcg_score([relevance], [scores], k=k))
        if not same_value(float(got), want):
            raise CheckFailed(f"for relevance {relevance} and scores {scores} with k={k}, your NDCG@{k} is "
                              f"{float(got):.4f}; scikit-learn's ndcg_score gives {want:.4f} — "
                              + _ndcg_hint(relevance, scores, k, float(got)))
    passed("ndcg_at_k", f"equals scikit-learn's ndcg_score on all {len(cases)} cases")
