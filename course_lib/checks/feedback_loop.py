"""Checks of notebook 09 (beyond 2.7.4, the feedback loop): labelling a served-feature log, and the skew of one
feature."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from course_lib.checks.common import CheckFailed, answer, passed, show
from course_lib.messages import say
from course_lib.skew import ATOL, RTOL

T0 = pd.Timestamp("2025-03-30", tz="UTC")
HOUR, DAY = pd.Timedelta(hours=1), pd.Timedelta(days=1)
LOG_COLUMNS = ["__request_id", "__log_timestamp", "features_as_of", "user_id", "movie_id", "popularity"]
RATING_COLUMNS = ["user_id", "movie_id", "event_timestamp", "rating"]
RANDOM_LOGS = 30  # random logs label_log is checked on, after the named cases
RANDOM_COLUMNS = 200  # random column pairs count_mismatches is checked on


# --- exercise 9.1: labelling a served-feature log ------------------------------------------------------

def _log(rows: list[tuple[str, int, int, pd.Timestamp, pd.Timestamp]]) -> pd.DataFrame:
    """A served-feature log of (request id, user, movie, features_as_of, __log_timestamp) rows."""
    return pd.DataFrame([{"__request_id": r, "__log_timestamp": logged, "features_as_of": as_of, "user_id": u,
                          "movie_id": m, "popularity": 10.0 + m} for r, u, m, as_of, logged in rows],
                        columns=LOG_COLUMNS)


def _ratings(rows: list[tuple[int, int, pd.Timestamp, float]]) -> pd.DataFrame:
    """Rated watch events of (user, movie, time, rating) rows."""
    return pd.DataFrame(rows, columns=RATING_COLUMNS)


def _labels(log: pd.DataFrame, ratings: pd.DataFrame, horizon: pd.Timedelta) -> list[tuple[str, int, int]]:
    """(request id, movie, label) of each logged row rated within `horizon` after its features_as_of, by its
    first such rating; computed row by row."""
    out = []
    for row in log.to_dict("records"):
        rated = ratings[(ratings["user_id"] == row["user_id"]) & (ratings["movie_id"] == row["movie_id"])
                        & (ratings["event_timestamp"] > row["features_as_of"])
                        & (ratings["event_timestamp"] <= row["features_as_of"] + horizon)]
        if len(rated):
            first = rated.loc[rated["event_timestamp"].idxmin()]
            out.append((str(row["__request_id"]), int(row["movie_id"]), int(first["rating"] >= 4)))
    return sorted(out)


def _label_cases() -> list[tuple[pd.DataFrame, pd.DataFrame, str]]:
    """Small logs, each catching one usual mistake (the hint that names it)."""
    later = T0 + 10 * HOUR  # the request was logged ten hours after the moment its values stand for
    return [
        (_log([("a", 1, 10, T0, later), ("a", 1, 11, T0, later)]),
         _ratings([(1, 10, T0 + 3 * HOUR, 5.0), (1, 11, T0 + DAY + 5 * HOUR, 5.0)]),
         "feedback_loop.hint_served_moment"),
        (_log([("b", 2, 10, T0, T0), ("b", 2, 12, T0, T0)]),
         _ratings([(2, 10, T0, 5.0), (2, 10, T0 - HOUR, 5.0), (2, 12, T0 + HOUR, 1.0)]),
         "feedback_loop.hint_strictly_after"),
        (_log([("c", 3, 10, T0, T0), ("c", 3, 11, T0, T0)]),
         _ratings([(3, 10, T0 + 2 * HOUR, 5.0), (3, 10, T0 + 5 * HOUR, 1.0), (3, 11, T0 + 4 * HOUR, 2.0),
                   (3, 11, T0 + HOUR, 4.5)]),
         "feedback_loop.hint_first"),
        (_log([("d", 4, 10, T0, T0), ("d", 4, 11, T0, T0)]),
         _ratings([(4, 10, T0 + DAY, 2.0), (4, 11, T0 + DAY + pd.Timedelta(seconds=1), 5.0)]),
         "feedback_loop.hint_horizon"),
        (_log([("e", 5, 10, T0, T0), ("e", 5, 11, T0, T0), ("e", 5, 12, T0, T0)]),
         _ratings([(5, 10, T0 + HOUR, 4.0), (5, 11, T0 + HOUR, 3.5), (5, 12, T0 + HOUR, 5.0)]),
         "feedback_loop.hint_label"),
    ]


def _random_case(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A log of a few requests on consecutive days, and ratings around them at distinct whole hours (some on a
    window's edges)."""
    rows, rated = [], []
    for i in range(int(rng.integers(2, 6))):
        user, as_of = int(rng.integers(1, 4)), T0 + int(rng.integers(0, 4)) * DAY
        for movie in rng.choice(np.arange(10, 20), int(rng.integers(1, 5)), replace=False):
            rows.append((f"r{i}", user, int(movie), as_of, as_of + int(rng.integers(0, 600)) * pd.Timedelta(minutes=1)))
    for minutes in rng.choice(np.arange(-1440, 5 * 1440, 60), int(rng.integers(5, 25)), replace=False):
        rated.append((int(rng.integers(1, 4)), int(rng.integers(10, 20)), T0 + int(minutes) * pd.Timedelta(minutes=1),
                      float(rng.integers(1, 11)) / 2))
    return _log(rows), _ratings(rated)


def _labelled_rows(fn: Callable[..., Any], log: pd.DataFrame, ratings: pd.DataFrame,
                   horizon: pd.Timedelta) -> list[tuple[str, int, int]]:
    """The learner's labelled rows as sorted (request id, movie, label) tuples."""
    got = answer(fn, "label_log", log.copy(), ratings.copy(), horizon)
    if not isinstance(got, pd.DataFrame) or not {"__request_id", "movie_id", "label"} <= set(got.columns):
        raise CheckFailed(say("feedback_loop.not_a_frame", got=type(got).__name__))
    return sorted((str(r), int(m), int(label)) for r, m, label in
                  got[["__request_id", "movie_id", "label"]].itertuples(index=False))


def label_log(fn: Callable[..., Any]) -> None:
    """Exercise 9.1: the logged rows rated within the horizon after features_as_of, labelled by their first rating."""
    for log, ratings, hint in _label_cases():
        got, want = _labelled_rows(fn, log, ratings, DAY), _labels(log, ratings, DAY)
        if got != want:
            raise CheckFailed(say("feedback_loop.label_wrong", got=got, want=want, hint=say(hint)))
    rng = np.random.default_rng(9)
    for case in range(RANDOM_LOGS):
        horizon = DAY if case % 2 else 12 * HOUR  # the horizon is an argument, not always a day
        log, ratings = _random_case(rng)
        got, want = _labelled_rows(fn, log, ratings, horizon), _labels(log, ratings, horizon)
        if got != want:
            raise CheckFailed(say("feedback_loop.label_wrong", got=got, want=want,
                                  hint=say("feedback_loop.hint_random", horizon=show(horizon))))
    passed("label_log", say("feedback_loop.label_passed", count=len(_label_cases()) + RANDOM_LOGS))


# --- exercise 9.2: the skew of one feature ----------------------------------------------------------------

def _mismatches(served: list[float], expected: list[float]) -> int:
    """Rows that differ beyond the skew report's tolerances, or are missing on one side only; one by one."""
    count = 0
    for a, b in zip(served, expected):
        if math.isnan(a) or math.isnan(b):
            count += math.isnan(a) != math.isnan(b)
        else:
            count += not abs(a - b) <= ATOL + RTOL * abs(b)  # np.isclose's rule
    return count


COUNT_CASES: list[tuple[list[float], list[float], str]] = [
    ([1.0, math.nan, 3.0], [1.0, math.nan, 3.0], "feedback_loop.hint_both_missing"),
    ([math.nan, 2.0, 3.0], [1.0, math.nan, 3.0], "feedback_loop.hint_one_missing"),
    ([0.1 + 0.2, 2.5, 7.0], [0.3, 2.5, 7.5], "feedback_loop.hint_rounding"),
    ([1000.0, 4.0], [1000.005, 4.0], "feedback_loop.hint_tolerance"),
]


def _random_columns(rng: np.random.Generator) -> tuple[list[float], list[float]]:
    """Two columns: equal values, rounding noise, real differences, and missing values on either or both sides."""
    size = int(rng.integers(1, 12))
    expected = rng.normal(50, 30, size)
    served = expected.copy()
    kinds = rng.integers(0, 5, size)
    served[kinds == 1] *= 1 + 1e-9  # float32 -> float64 rounding territory: still a match
    served[kinds == 2] += rng.choice([-1, 1], int((kinds == 2).sum())) * rng.uniform(0.01, 5, int((kinds == 2).sum()))
    served[kinds == 3] = np.nan
    expected[(kinds == 4) & (rng.random(size) < 0.5)] = np.nan
    served[kinds == 4] = np.where(rng.random(int((kinds == 4).sum())) < 0.5, np.nan, served[kinds == 4])
    return served.tolist(), expected.tolist()


def count_mismatches(fn: Callable[..., Any]) -> None:
    """Exercise 9.2: rows whose served and expected values differ (missing on both sides is a match)."""
    def counted(served: list[float], expected: list[float]) -> int:
        got = answer(fn, "count_mismatches", pd.Series(served, dtype="float64"), pd.Series(expected, dtype="float64"))
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            raise CheckFailed(say("feedback_loop.not_a_count", got=got))
        return int(got)

    for served, expected, hint in COUNT_CASES:
        got, want = counted(served, expected), _mismatches(served, expected)
        if got != want:
            raise CheckFailed(say("feedback_loop.count_wrong", served=served, expected=expected, got=got, want=want,
                                  hint=say(hint)))
    rng = np.random.default_rng(10)
    for _ in range(RANDOM_COLUMNS):
        served, expected = _random_columns(rng)
        got, want = counted(served, expected), _mismatches(served, expected)
        if got != want:
            raise CheckFailed(say("feedback_loop.count_wrong", served=[round(v, 9) for v in served],
                                  expected=[round(v, 9) for v in expected], got=got, want=want,
                                  hint=say("feedback_loop.hint_random_count")))
    passed("count_mismatches", say("feedback_loop.count_passed", count=len(COUNT_CASES) + RANDOM_COLUMNS))
