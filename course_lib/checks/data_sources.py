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
from course_lib.messages import say
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
        (mine["rating"].mean(), "data_sources.hint_future"),
        (mine.loc[mine[TIMESTAMP_FIELD] < as_of, "rating"].mean(), "data_sources.hint_strict"),
        (known["rating"].fillna(0).mean(), "data_sources.hint_zeros"),
        (events.loc[events[TIMESTAMP_FIELD] <= as_of, "rating"].mean(), "data_sources.hint_all_users"),
    ]
    for value, hint in mistakes:
        if same_value(got, value):
            return say(hint)
    if known["rating"].notna().sum() == 0:
        return say("data_sources.hint_no_ratings")
    return say("data_sources.hint_average")


def avg_rating_as_of(fn: Callable[..., Any], events: pd.DataFrame) -> None:
    """Exercise 2.1: avg_rating as of a time, from raw events."""
    cases = avg_rating_cases(events)
    for user_id, as_of in cases:
        got = answer(fn, "avg_rating_as_of", events, user_id, as_of)
        if not (got is None or isinstance(got, (int, float, np.number))):
            raise CheckFailed(say("common.not_a_float", function="avg_rating_as_of", type=type(got).__name__))
        want = _avg_rating(events, user_id, as_of)
        if not same_value(got, want):
            raise CheckFailed(say("data_sources.avg_wrong", user=user_id, at=show(as_of), got=show(got),
                                  want=show(want), hint=_avg_rating_hint(events, user_id, as_of, got)))
    passed("avg_rating_as_of", say("data_sources.avg_passed", count=len(cases)))


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
        return say("data_sources.hint_forward", used=show(used))
    if want is not None and is_missing(got) and want[TIMESTAMP_FIELD] < at:
        return say("data_sources.hint_backward", at=show(want[TIMESTAMP_FIELD]))
    if want is None and not is_missing(got):
        earlier = pit_expected(table, ["user_id"], probe, timedelta(0))
        if earlier is not None:
            return say("data_sources.hint_expired", at=show(earlier[TIMESTAMP_FIELD]), ttl=show(ttl))
        return say("data_sources.hint_no_snapshot")
    if want is not None and want[TIMESTAMP_FIELD] == at:
        return say("data_sources.hint_exact")
    if want is not None:
        return say("data_sources.hint_used", at=show(want[TIMESTAMP_FIELD]))
    return say("data_sources.hint_null")


def pit_join(fn: Callable[..., Any], store: FeatureStore, table: pd.DataFrame) -> None:
    """Exercise 2.2: a pandas point-in-time join of user_profile_features agrees with Feast's."""
    ttl = registered_view(store, USERS).ttl or timedelta(0)  # 0: no TTL, as in Feast
    probes = pit_probes(table, ttl)
    got = answer(fn, "pit_join", probes.copy(), table.copy(), ttl)
    want = historical_features(store, probes.assign(probe=range(len(probes))), feature_refs([USERS]))
    want = want.sort_values("probe", ignore_index=True)
    features = [f.name for f in VIEWS[USERS][2]]
    if not isinstance(got, pd.DataFrame):
        raise CheckFailed(say("data_sources.not_a_frame", type=type(got).__name__))
    if len(got) != len(probes):
        raise CheckFailed(say("data_sources.row_count", got=len(got), want=len(probes)))
    absent = [c for c in ["user_id", TIMESTAMP_FIELD, *features] if c not in got.columns]
    if absent:
        raise CheckFailed(say("data_sources.columns", absent=absent))
    got = got.reset_index(drop=True)
    for i, probe in probes.iterrows():
        if got.at[i, "user_id"] != probe["user_id"] or got.at[i, TIMESTAMP_FIELD] != probe[TIMESTAMP_FIELD]:
            raise CheckFailed(say("data_sources.row_order", i=i, got_user=got.at[i, "user_id"],
                                  got_at=show(got.at[i, TIMESTAMP_FIELD]), user=probe["user_id"],
                                  at=show(probe[TIMESTAMP_FIELD])))
        for column in features:
            if not same_value(got.at[i, column], want.at[i, column]):
                raise CheckFailed(say("data_sources.pit_wrong", i=i, user=probe["user_id"],
                                      at=show(probe[TIMESTAMP_FIELD]), column=column, got=show(got.at[i, column]),
                                      want=show(want.at[i, column]),
                                      hint=_pit_hint(table, probe, column, got.at[i, column], ttl)))
    passed("pit_join", say("data_sources.pit_passed", rows=len(probes), features=len(features), ttl=show(ttl)))
