"""Checks of notebook 02 (2.7.2, data sources): a point-in-time aggregate and a point-in-time join."""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore

from course_lib.checks.common import (
    HOUR,
    USERS,
    CheckFailed,
    answer,
    is_missing,
    passed,
    pit_expected,
    registered_view,
    same_value,
    show,
)
from course_lib.serving import feature_refs, historical_features
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS


def _rated(events: pd.DataFrame, user_id: int) -> pd.DataFrame:
    """One user's rated events, oldest first."""
    rows = events[(events["user_id"] == user_id) & events["rating"].notna()]
    return rows.sort_values(TIMESTAMP_FIELD, kind="stable")


def _avg_rating(events: pd.DataFrame, user_id: int, as_of: pd.Timestamp) -> float:
    """The mean rating of a user's events at or before `as_of` (cumulative sums, NaN if none)."""
    rated = _rated(events, user_id)
    n = int(rated[TIMESTAMP_FIELD].searchsorted(as_of, side="right"))
    return float(rated["rating"].cumsum().iloc[n - 1] / n) if n else float("nan")


def avg_rating_cases(events: pd.DataFrame) -> list[tuple[int, pd.Timestamp]]:
    """(user, time) points that separate a correct aggregation from the usual mistakes."""
    counts = events.dropna(subset=["rating"]).groupby("user_id").size()
    busiest = int(counts.sort_values(ascending=False, kind="stable").index[0])
    rated = _rated(events, busiest)
    before = rated["rating"].expanding().mean().shift()  # the mean of the earlier ratings
    # From the middle on, the first rating that moves the mean: including it or not then matters.
    moves = rated.index[(rated["rating"] - before).abs().gt(1e-9) & (np.arange(len(rated)) >= len(rated) // 2)]
    middle = rated.loc[moves[0] if len(moves) else rated.index[-1], TIMESTAMP_FIELD]
    first = events.sort_values(TIMESTAMP_FIELD, kind="stable").groupby("user_id").head(1)
    unrated_first = first[first["rating"].isna()]
    cases = [(busiest, middle), (busiest, middle - pd.Timedelta(microseconds=1)),
             (busiest, middle.floor("D") + pd.Timedelta(days=1)),
             (busiest, events[TIMESTAMP_FIELD].min() - pd.Timedelta(days=1))]
    if not unrated_first.empty:
        row = unrated_first.iloc[0]
        cases.append((int(row["user_id"]), row[TIMESTAMP_FIELD]))
    quiet = int(counts.sort_values(kind="stable").index[len(counts) // 2])
    cases.append((quiet, events[TIMESTAMP_FIELD].max() + pd.Timedelta(days=1)))
    return cases


def _avg_rating_hint(events: pd.DataFrame, user_id: int, as_of: pd.Timestamp, got: Any) -> str:
    """The likely mistake behind a wrong avg_rating."""
    mine = events[events["user_id"] == user_id]
    known = mine[mine[TIMESTAMP_FIELD] <= as_of]
    mistakes = [
        (mine["rating"].mean(), "did you include events after the timestamp?"),
        (mine.loc[mine[TIMESTAMP_FIELD] < as_of, "rating"].mean(),
         "an event exactly at as_of is already known then: keep event_timestamp <= as_of, not <"),
        (known["rating"].fillna(0).mean(), "unrated events (rating NaN) must be skipped, not counted as 0"),
        (events.loc[events[TIMESTAMP_FIELD] <= as_of, "rating"].mean(), "did you filter on user_id?"),
    ]
    for value, hint in mistakes:
        if same_value(got, value):
            return hint
    if known["rating"].notna().sum() == 0:
        return "this user has no rated event at or before that time, so the mean is undefined: return float('nan')"
    return "average the ratings of this user's events at or before as_of"


def avg_rating_as_of(fn: Callable[..., Any], events: pd.DataFrame) -> None:
    """Exercise 2.1: avg_rating as of a time, from raw events."""
    cases = avg_rating_cases(events)
    for user_id, as_of in cases:
        got = answer(fn, "avg_rating_as_of", events, user_id, as_of)
        if not (got is None or isinstance(got, (int, float, np.number))):
            raise CheckFailed(f"avg_rating_as_of returned {type(got).__name__}; return one number (a float)")
        want = _avg_rating(events, user_id, as_of)
        if not same_value(got, want):
            raise CheckFailed(f"your avg_rating for user {user_id} at {show(as_of)} is {show(got)}; the "
                              f"point-in-time value is {show(want)} — "
                              + _avg_rating_hint(events, user_id, as_of, got))
    passed("avg_rating_as_of", f"matches the point-in-time value at all {len(cases)} (user, time) points")


def pit_probes(table: pd.DataFrame, ttl: timedelta, n_random: int = 60) -> pd.DataFrame:
    """Entity rows (user_id, event_timestamp) in random order: random times plus the edge cases."""
    rng = np.random.default_rng(0)
    users = np.sort(table["user_id"].unique())
    lo, hi = table[TIMESTAMP_FIELD].min() - pd.Timedelta(days=3), table[TIMESTAMP_FIELD].max() + ttl * 1.5
    offsets = rng.integers(0, int((hi - lo) / pd.Timedelta(seconds=1)), n_random)
    rows = [(int(u), lo + pd.Timedelta(seconds=int(s) + 0.5)) for u, s in zip(rng.choice(users, n_random), offsets)]
    for user in rng.choice(users, 3, replace=False):
        stamps = table.loc[table["user_id"] == user, TIMESTAMP_FIELD].sort_values()
        rows += [(int(user), stamps.iloc[len(stamps) // 2]),  # exactly at a snapshot
                 (int(user), stamps.iloc[0] - pd.Timedelta(seconds=1)),  # before the first snapshot
                 (int(user), stamps.iloc[-1] + ttl + HOUR),  # the newest snapshot is older than the TTL
                 (int(user), stamps.iloc[-1] + ttl - HOUR)]  # just inside the TTL
    order = rng.permutation(len(rows))
    times = pd.to_datetime([rows[i][1] for i in order], utc=True).astype("datetime64[ns, UTC]")
    return pd.DataFrame({"user_id": [rows[i][0] for i in order], TIMESTAMP_FIELD: times})


def _snapshot_with(table: pd.DataFrame, user_id: int, column: str, value: Any, at: pd.Timestamp) -> pd.Timestamp | None:
    """Time of the user's snapshot holding `value` in `column` nearest to `at` (None if none does)."""
    rows = table[table["user_id"] == user_id]
    rows = rows[[same_value(v, value) for v in rows[column]]]
    if rows.empty:
        return None
    return rows.loc[(rows[TIMESTAMP_FIELD] - at).abs().idxmin(), TIMESTAMP_FIELD]


def _pit_hint(table: pd.DataFrame, probe: pd.Series, column: str, got: Any, ttl: timedelta) -> str:
    """The likely mistake behind a wrong point-in-time value."""
    at, user = probe[TIMESTAMP_FIELD], int(probe["user_id"])
    want = pit_expected(table, ["user_id"], probe, ttl)
    used = None if is_missing(got) else _snapshot_with(table, user, column, got, at)
    if used is not None and used > at:
        return (f"you used the snapshot from {show(used)}, after the row's time — look backwards only "
                "(merge_asof(..., direction='backward'))")
    if want is not None and is_missing(got) and want[TIMESTAMP_FIELD] < at:
        return (f"Feast uses the user's snapshot from {show(want[TIMESTAMP_FIELD])}, the newest at or before the "
                "row and within the TTL — match on user_id, looking backwards (merge_asof(..., direction='backward'))")
    if want is None and not is_missing(got):
        earlier = pit_expected(table, ["user_id"], probe, timedelta(0))
        if earlier is not None:
            return (f"the newest snapshot at or before then is from {show(earlier[TIMESTAMP_FIELD])}, older than "
                    f"the view's TTL ({show(ttl)}), so the join returns null — drop older matches (tolerance=ttl)")
        return "this user has no snapshot at or before that time, so the join returns null"
    if want is not None and want[TIMESTAMP_FIELD] == at:
        return "a snapshot taken exactly at the row's time counts (allow_exact_matches=True)"
    return f"Feast used the snapshot from {show(want[TIMESTAMP_FIELD])}" if want is not None else "expected null"


def pit_join(fn: Callable[..., Any], store: FeatureStore, table: pd.DataFrame) -> None:
    """Exercise 2.2: a pandas point-in-time join of user_profile_features agrees with Feast's."""
    ttl = registered_view(store, USERS).ttl or timedelta(0)  # 0: no TTL, as in Feast
    probes = pit_probes(table, ttl)
    got = answer(fn, "pit_join", probes.copy(), table.copy(), ttl)
    want = historical_features(store, probes.assign(probe=range(len(probes))), feature_refs([USERS]))
    want = want.sort_values("probe", ignore_index=True)
    features = [f.name for f in VIEWS[USERS][2]]
    if not isinstance(got, pd.DataFrame):
        raise CheckFailed(f"pit_join returned {type(got).__name__}; it must return a DataFrame")
    if len(got) != len(probes):
        raise CheckFailed(f"pit_join returned {len(got)} rows for {len(probes)} entity rows: keep every entity "
                          "row (a left join), in order")
    absent = [c for c in ["user_id", TIMESTAMP_FIELD, *features] if c not in got.columns]
    if absent:
        raise CheckFailed(f"pit_join's result lacks the columns {absent}; return entity_df with the feature "
                          "columns added")
    got = got.reset_index(drop=True)
    for i, probe in probes.iterrows():
        if got.at[i, "user_id"] != probe["user_id"] or got.at[i, TIMESTAMP_FIELD] != probe[TIMESTAMP_FIELD]:
            raise CheckFailed(f"row {i} of your result is user {got.at[i, 'user_id']} at "
                              f"{show(got.at[i, TIMESTAMP_FIELD])}; entity_df's row {i} is user "
                              f"{probe['user_id']} at {show(probe[TIMESTAMP_FIELD])}: "
                              "keep entity_df's row order (merge_asof needs sorted input, so sort back afterwards)")
        for column in features:
            if not same_value(got.at[i, column], want.at[i, column]):
                raise CheckFailed(f"row {i} (user {probe['user_id']} at {show(probe[TIMESTAMP_FIELD])}): your "
                                  f"{column} is {show(got.at[i, column])}; Feast's point-in-time join gives "
                                  f"{show(want.at[i, column])} — "
                                  + _pit_hint(table, probe, column, got.at[i, column], ttl))
    passed("pit_join", f"identical to Feast's get_historical_features on all {len(probes)} entity rows "
                        f"({len(features)} features, TTL {show(ttl)})")
