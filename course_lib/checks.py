"""Automatic checks for the notebook exercises.

Each check runs the learner's function, computes the right answer independently (from raw
events with plain pandas, from the registry, from the offline tables or with scikit-learn),
and either prints one success line or raises `CheckFailed` saying exactly what differs and
the likely cause. Checks judge behaviour (what the function returns, or what Feast does with
the object it returns), never the source text.
"""
from __future__ import annotations

import binascii
import math
import os
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore, FeatureView
from prometheus_client.parser import text_string_to_metric_families
from redis import crc as redis_crc
from sklearn.metrics import ndcg_score

from course_lib import monitoring, registry_view, scaleout
from course_lib.adapter import TRACKED_GENRES, conform, read_offline
from course_lib.config import Profile, resolve_profile
from course_lib.serving import feature_refs, historical_features, latest_interval
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS, batch_source, build

USERS, MOVIES, INTERACTIONS = "user_profile_features", "movie_metadata_features", "user_movie_interaction_features"
NOT_DONE = ("`{name}` is not written yet: it still raises NotImplementedError. Replace the "
            "`# YOUR CODE HERE` stub in the exercise cell with your code, run that cell, then this one.")


class CheckFailed(AssertionError):
    """An exercise answer is wrong; the message says what differs and how to fix it."""


# --- shared helpers -----------------------------------------------------------------------

def _answer(fn: Callable, name: str, *args: Any) -> Any:
    """Call the learner's function; a stub or an exception becomes a CheckFailed naming it."""
    if not callable(fn):
        raise CheckFailed(f"expected your function `{name}`, got {fn!r}; run the exercise cell first")
    try:
        return fn(*args)
    except NotImplementedError:
        raise CheckFailed(NOT_DONE.format(name=name)) from None
    except Exception as exc:  # noqa: BLE001 - any error in learner code is reported, not raised
        raise CheckFailed(f"your `{name}` raised {type(exc).__name__}: {exc}") from exc


def _passed(name: str, detail: str) -> None:
    """Print the success line."""
    print(f"✓ {name}: {detail}")


def _missing(value: Any) -> bool:
    """True for None, NaN, NaT and pandas NA."""
    return value is None or (not isinstance(value, (str, bytes)) and bool(pd.isna(value)))


def _same(got: Any, want: Any) -> bool:
    """Equal values; both missing counts as equal, numbers are compared with a float32 tolerance."""
    if _missing(got) or _missing(want):
        return _missing(got) and _missing(want)
    if isinstance(want, (int, float, np.number)) and isinstance(got, (int, float, np.number)):
        return math.isclose(float(got), float(want), rel_tol=1e-5, abs_tol=1e-6)
    return got == want


def _show(value: Any) -> str:
    """A value as the messages print it."""
    if _missing(value):
        return "null"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    if isinstance(value, timedelta):
        hours = value / timedelta(hours=1)
        number, unit = (hours / 24, "day") if hours % 24 == 0 else (hours, "hour")
        return f"{number:g} {unit}{'' if number == 1 else 's'}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return repr(value.item() if isinstance(value, np.generic) else value)


def _registered_view(store: FeatureStore, name: str) -> FeatureView:
    """A feature view as the registry holds it, or a CheckFailed saying to apply first."""
    try:
        return store.get_feature_view(name)
    except Exception as exc:  # noqa: BLE001 - FeatureViewNotFoundException and registry errors alike
        raise CheckFailed(f"the registry has no {name!r} ({type(exc).__name__}); register the course "
                          "definitions first (`course apply`, or run the notebook from the top)") from exc


# --- 01 · definitions ----------------------------------------------------------------------

T0 = pd.Timestamp("2025-01-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)
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


def _pit_expected(table: pd.DataFrame, keys: list[str], probe: dict, ttl: timedelta) -> pd.Series | None:
    """The row a point-in-time join returns for one probe: newest at or before it, within the TTL."""
    ts = table[TIMESTAMP_FIELD]
    match = (ts <= probe[TIMESTAMP_FIELD]) & np.logical_and.reduce([table[k] == probe[k] for k in keys])
    if ttl:
        match &= ts >= probe[TIMESTAMP_FIELD] - ttl
    rows = table[match]
    return None if rows.empty else rows.loc[ts[match].idxmax()]


def _ttl_hint(view: FeatureView, expected: FeatureView, probe: dict, table: pd.DataFrame, wanted: bool) -> str:
    """Why a probe got a value it should not have (or none where it should), in TTL terms."""
    keys = sorted(expected.join_keys)
    earlier = _pit_expected(table, keys, probe, timedelta(0))
    age = "" if earlier is None else f", {(probe[TIMESTAMP_FIELD] - earlier[TIMESTAMP_FIELD]) / HOUR:.0f} h after " \
                                     f"the row at {_show(earlier[TIMESTAMP_FIELD])}"
    rule = "drops" if not wanted else "keeps"
    return (f"at {_show(probe[TIMESTAMP_FIELD])}{age}, the registered view (TTL {_show(expected.ttl)}) {rule} that "
            f"row; your view's ttl is {_show(view.ttl)} — is it timedelta(days=1)?")


def interaction_view(fn: Callable, store: FeatureStore) -> None:
    """Exercise 1.1: the learner's user_movie_interaction_features behaves like the registered one."""
    expected = _registered_view(store, INTERACTIONS)
    table = tiny_tables()[INTERACTIONS]
    probes = [{"user_id": u, "movie_id": m, TIMESTAMP_FIELD: t} for u, m, t in INTERACTION_PROBES]
    with _scratch_course() as (scratch, profile):
        source = batch_source(INTERACTIONS, profile)
        view = _answer(fn, "interaction_view", source)
        _same_interface(view, expected, source)
        try:
            scratch.apply([*build(profile).entities, view])
            got = historical_features(scratch, pd.DataFrame(probes).assign(probe=range(len(probes))),
                                      feature_refs([INTERACTIONS])).sort_values("probe", ignore_index=True)
        except Exception as exc:  # noqa: BLE001
            raise CheckFailed(f"Feast could not apply or query your view: {type(exc).__name__}: {exc}") from exc
    keys = sorted(expected.join_keys)
    for i, probe in enumerate(probes):
        want = _pit_expected(table, keys, probe, expected.ttl)
        for name in _fields(expected):
            if not _same(got.at[i, name], None if want is None else want[name]):
                raise CheckFailed(f"for user {probe['user_id']}, movie {probe['movie_id']} your view returned "
                                  f"{name}={_show(got.at[i, name])}, the registered view returns "
                                  f"{_show(None if want is None else want[name])}: "
                                  + _ttl_hint(view, expected, probe, table, want is not None))
    _passed("interaction_view", f"same entities, schema and point-in-time results as the registered view "
                                f"on {len(probes)} probes (TTL {_show(view.ttl)})")


def taste_service(fn: Callable) -> None:
    """Exercise 1.2: the learner's feature service serves exactly the taste features."""
    wanted = [name for names in TASTE_FEATURES.values() for name in names]
    with _scratch_course() as (scratch, profile):
        scratch.apply(build(profile).objects())
        views = {view.name: view for view in scratch.list_feature_views()}
        service = _answer(fn, "taste_service", views)
        if not isinstance(service, FeatureService):
            raise CheckFailed(f"taste_service returned {type(service).__name__}; it must return a feast.FeatureService")
        if service.name != TASTE_SERVICE:
            raise CheckFailed(f"your service is named {service.name!r}; clients ask for it by name, so call it "
                              f"{TASTE_SERVICE!r}")
        entity_df = pd.DataFrame({"user_id": [1], "movie_id": [10], TIMESTAMP_FIELD: [T0 + HOUR]})
        try:
            scratch.apply([service])
            served = scratch.get_historical_features(entity_df=entity_df, features=service).to_df()
        except Exception as exc:  # noqa: BLE001
            raise CheckFailed(f"Feast could not apply or serve your service: {type(exc).__name__}: {exc}") from exc
    got = [c for c in served.columns if c not in entity_df.columns]
    missing, extra = [c for c in wanted if c not in got], [c for c in got if c not in wanted]
    if missing or extra:
        raise CheckFailed(f"your service serves {got}; expected {wanted}. "
                          + (f"Missing: {missing}. " if missing else "")
                          + (f"Not asked for: {extra} — select features with view[['a', 'b']]." if extra else ""))
    _passed("taste_service", f"Feast serves exactly the {len(wanted)} taste features through {TASTE_SERVICE!r}")


# --- 02 · point-in-time aggregation and joins -----------------------------------------------

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


def _avg_rating_hint(events: pd.DataFrame, user_id: int, as_of: pd.Timestamp, got: float) -> str:
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
        if _same(got, value):
            return hint
    if known["rating"].notna().sum() == 0:
        return "this user has no rated event at or before that time, so the mean is undefined: return float('nan')"
    return "average the ratings of this user's events at or before as_of"


def avg_rating_as_of(fn: Callable, events: pd.DataFrame) -> None:
    """Exercise 2.1: avg_rating as of a time, from raw events."""
    cases = avg_rating_cases(events)
    for user_id, as_of in cases:
        got = _answer(fn, "avg_rating_as_of", events, user_id, as_of)
        if not (got is None or isinstance(got, (int, float, np.number))):
            raise CheckFailed(f"avg_rating_as_of returned {type(got).__name__}; return one number (a float)")
        want = _avg_rating(events, user_id, as_of)
        if not _same(got, want):
            raise CheckFailed(f"your avg_rating for user {user_id} at {_show(as_of)} is {_show(got)}; the "
                              f"point-in-time value is {_show(want)} — "
                              + _avg_rating_hint(events, user_id, as_of, got))
    _passed("avg_rating_as_of", f"matches the point-in-time value at all {len(cases)} (user, time) points")


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
    rows = rows[[_same(v, value) for v in rows[column]]]
    if rows.empty:
        return None
    return rows.loc[(rows[TIMESTAMP_FIELD] - at).abs().idxmin(), TIMESTAMP_FIELD]


def _pit_hint(table: pd.DataFrame, probe: pd.Series, column: str, got: Any, ttl: timedelta) -> str:
    """The likely mistake behind a wrong point-in-time value."""
    at, user = probe[TIMESTAMP_FIELD], int(probe["user_id"])
    want = _pit_expected(table, ["user_id"], probe, ttl)
    used = None if _missing(got) else _snapshot_with(table, user, column, got, at)
    if used is not None and used > at:
        return (f"you used the snapshot from {_show(used)}, after the row's time — look backwards only "
                "(merge_asof(..., direction='backward'))")
    if want is not None and _missing(got) and want[TIMESTAMP_FIELD] < at:
        return (f"Feast uses the user's snapshot from {_show(want[TIMESTAMP_FIELD])}, the newest at or before the "
                "row and within the TTL — match on user_id, looking backwards (merge_asof(..., direction='backward'))")
    if want is None and not _missing(got):
        earlier = _pit_expected(table, ["user_id"], probe, timedelta(0))
        if earlier is not None:
            return (f"the newest snapshot at or before then is from {_show(earlier[TIMESTAMP_FIELD])}, older than "
                    f"the view's TTL ({_show(ttl)}), so the join returns null — drop older matches (tolerance=ttl)")
        return "this user has no snapshot at or before that time, so the join returns null"
    if want is not None and want[TIMESTAMP_FIELD] == at:
        return "a snapshot taken exactly at the row's time counts (allow_exact_matches=True)"
    return f"Feast used the snapshot from {_show(want[TIMESTAMP_FIELD])}" if want is not None else "expected null"


def pit_join(fn: Callable, store: FeatureStore, table: pd.DataFrame) -> None:
    """Exercise 2.2: a pandas point-in-time join of user_profile_features agrees with Feast's."""
    ttl = _registered_view(store, USERS).ttl
    probes = pit_probes(table, ttl)
    got = _answer(fn, "pit_join", probes.copy(), table.copy(), ttl)
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
                              f"{_show(got.at[i, TIMESTAMP_FIELD])}; entity_df's row {i} is user "
                              f"{probe['user_id']} at {_show(probe[TIMESTAMP_FIELD])}: "
                              "keep entity_df's row order (merge_asof needs sorted input, so sort back afterwards)")
        for column in features:
            if not _same(got.at[i, column], want.at[i, column]):
                raise CheckFailed(f"row {i} (user {probe['user_id']} at {_show(probe[TIMESTAMP_FIELD])}): your "
                                  f"{column} is {_show(got.at[i, column])}; Feast's point-in-time join gives "
                                  f"{_show(want.at[i, column])} — "
                                  + _pit_hint(table, probe, column, got.at[i, column], ttl))
    _passed("pit_join", f"identical to Feast's get_historical_features on all {len(probes)} entity rows "
                        f"({len(features)} features, TTL {_show(ttl)})")


# --- 03 · online reads and ranking metrics -------------------------------------------------

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
    ends = {view: latest_interval(store, view) for view in (MOVIES, INTERACTIONS)}
    if any(end is None for end in ends.values()):
        raise CheckFailed("the online store was never materialized; run the materialization cells first")
    rows = []
    for movie in movie_ids:
        meta = _latest(tables[MOVIES], {"movie_id": movie}, ends[MOVIES][1])
        pair = _latest(tables[INTERACTIONS], {"user_id": user_id, "movie_id": movie}, ends[INTERACTIONS][1])
        rows.append({"movie_id": movie, "vote_average": None if meta is None else meta["vote_average"],
                     "popularity": None if meta is None else meta["popularity"],
                     "watch_count": None if pair is None else pair["watch_count"]})
    return pd.DataFrame(rows)


def candidate_features(fn: Callable, store: FeatureStore, profile: Profile, user_id: int) -> None:
    """Exercise 3.1: online features for a candidate list equal the latest materialized values."""
    tables = _offline_tables(profile)
    movie_ids = candidate_list(tables[INTERACTIONS], tables[MOVIES], user_id)
    got = _answer(fn, "candidate_features", store, user_id, list(movie_ids))
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
            raise CheckFailed(f"row {i} is movie {_show(got.at[i, 'movie_id'])}; it should be movie {movie}: "
                              f"keep the candidates' order {movie_ids}")
        for column in CANDIDATE_COLUMNS[1:]:
            if not _same(got.at[i, column], want.at[i, column]):
                why = f"did you request '{CANDIDATE_REFS[column]}' and send user_id={user_id} with every movie_id?"
                if column == "watch_count" and _missing(want.at[i, column]):
                    why = f"user {user_id} never watched movie {movie}, so there is no interaction row"
                elif column == "watch_count" and _missing(got.at[i, column]):
                    why = ("the interaction view is keyed by the (user, movie) pair: send both user_id and "
                           "movie_id in every entity row")
                raise CheckFailed(f"movie {movie}: your {column} is {_show(got.at[i, column])}; the online store "
                                  f"holds {_show(want.at[i, column])} — {why}")
    _passed("candidate_features", f"{len(movie_ids)} candidates of user {user_id}: every value equals the newest "
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
        if math.isfinite(value) and _same(got, value):
            return hint
    if not math.isfinite(got):
        return "a finite number is expected; is a discount log2(1) = 0 in a denominator?"
    return "NDCG@k = DCG@k of your ranking / DCG@k of the ideal ranking, 0.0 when nothing is relevant"


def ndcg_at_k(fn: Callable) -> None:
    """Exercise 3.2: NDCG@k of one user's ranked candidates, against scikit-learn's ndcg_score."""
    cases = ndcg_cases()
    for relevance, scores, k in cases:
        got = _answer(fn, "ndcg_at_k", list(relevance), list(scores), k)
        if not isinstance(got, (int, float, np.number)):
            raise CheckFailed(f"ndcg_at_k returned {type(got).__name__}; return one number (a float)")
        want = float(ndcg_score([relevance], [scores], k=k))
        if not _same(float(got), want):
            raise CheckFailed(f"for relevance {relevance} and scores {scores} with k={k}, your NDCG@{k} is "
                              f"{float(got):.4f}; scikit-learn's ndcg_score gives {want:.4f} — "
                              + _ndcg_hint(relevance, scores, k, float(got)))
    _passed("ndcg_at_k", f"equals scikit-learn's ndcg_score on all {len(cases)} cases")


# --- 04 · monitoring -----------------------------------------------------------------------

# Request counts per (route template, status) behind the /metrics text check 4.1 parses.
REQUEST_MIX = {("/users/{user_id}/features", 200): 7, ("/users/{user_id}/features", 404): 2,
               ("/movies/{movie_id}/features", 200): 5, ("/recommendations", 200): 3, ("/recommendations", 422): 4}
UNREQUESTED = "/health"  # an endpoint with no requests: its count is 0


def metrics_text() -> str:
    """The /metrics exposition of a fresh monitoring.Metrics after the REQUEST_MIX requests."""
    metrics = monitoring.Metrics()
    for (endpoint, status), count in REQUEST_MIX.items():
        for _ in range(count):
            metrics.observe_request(endpoint, status, 0.01)
    return metrics.render()[0].decode()


def _requests(text: str, endpoint: str | None, status: str | None = None) -> float:
    """course_requests_total summed over the samples matching an endpoint (None: any) and status."""
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "course_requests_total" and endpoint in (None, sample.labels["endpoint"])
               and status in (None, sample.labels["status"]))


def _request_count_hint(text: str, endpoint: str, got: Any) -> str:
    """The likely mistake behind a wrong request count."""
    if _missing(got):
        return "an endpoint nobody called has no sample at all: its count is 0"
    if _same(got, _requests(text, endpoint, "200")):
        return "count every status code (404, 422, ...), not only 200"
    if _same(got, _requests(text, None)):
        return f"keep only the samples whose endpoint label is {endpoint!r}"
    return "sum the values of the course_requests_total samples with that endpoint label"


def request_count(fn: Callable) -> None:
    """Exercise 4.1: requests to one endpoint, read from a /metrics text."""
    text = metrics_text()
    endpoints = sorted({endpoint for endpoint, _ in REQUEST_MIX}) + [UNREQUESTED]
    for endpoint in endpoints:
        got = _answer(fn, "request_count", text, endpoint)
        if not (got is None or isinstance(got, (int, float, np.number))):
            raise CheckFailed(f"request_count returned {type(got).__name__}; return one number")
        want = _requests(text, endpoint)
        if not _same(got, want):
            raise CheckFailed(f"for {endpoint!r} you counted {_show(got)} requests; the exposition holds "
                              f"{want:g} — " + _request_count_hint(text, endpoint, got))
    _passed("request_count", f"matches prometheus_client's parse for all {len(endpoints)} endpoints")


def _pipeline_age_hint(start: datetime, end: datetime, oldest_end: datetime, now: datetime, got: float) -> str:
    """The likely mistake behind a wrong pipeline age."""
    want = max((now - end).total_seconds(), 0.0)
    mistakes = [((now - end).total_seconds(), ("the recorded end lies after `now`: clip the age at 0 "
                                               "(max(age, 0.0)), as Feast's own gauge does not")),
                ((now - start).total_seconds(), "measure from the interval's end (most_recent_end_time), not its start"),
                (max((now - oldest_end).total_seconds(), 0.0), "use the most recent interval, not the first one"),
                (want * 1000, "return seconds, not milliseconds"), (want / 60, "return seconds, not minutes")]
    for value, hint in mistakes:
        if not _same(value, want) and _same(got, value):
            return hint
    return "the age is now minus the view's most_recent_end_time, in seconds, never below 0"


def pipeline_age(fn: Callable, store: FeatureStore, profile: Profile) -> None:
    """Exercise 4.2: pipeline freshness of each view from the registry, as course_lib.monitoring measures it."""
    checked = 0
    for view in VIEWS:
        intervals = _registered_view(store, view).materialization_intervals
        if not intervals:
            raise CheckFailed(f"{view} was never materialized; run the materialization cells first")
        start, end = latest_interval(store, view)
        oldest_end = min(interval[1] for interval in intervals)
        for now in (end + 90 * HOUR, end, end - HOUR):
            got = _answer(fn, "pipeline_age", store, view, now)
            if isinstance(got, timedelta):
                raise CheckFailed("pipeline_age returned a timedelta; return seconds as a float (.total_seconds())")
            if not isinstance(got, (int, float, np.number)):
                raise CheckFailed(f"pipeline_age returned {type(got).__name__}; return one number of seconds")
            want = monitoring.pipeline_freshness(profile, view, end, now).age_seconds
            if not _same(got, want):
                raise CheckFailed(f"{view} at now={_show(pd.Timestamp(now))}: your age is {_show(got)} s; "
                                  f"course_lib.monitoring measures {_show(want)} s (end "
                                  f"{_show(pd.Timestamp(end))}) — " + _pipeline_age_hint(start, end, oldest_end, now, got))
            checked += 1
    _passed("pipeline_age", f"equals course_lib.monitoring's pipeline freshness at all {checked} (view, now) points, "
                            "a materialization end in the future included")


# --- 05 · optimization ---------------------------------------------------------------------

Ends = dict[str, Any]  # feature view -> its newest materialization end (None: never materialized)
# (situation, previous ends, current ends) for the cache invalidation rule.
_T = T0.to_pydatetime()
INVALIDATION_CASES: list[tuple[str, Ends, Ends]] = [
    ("nothing ran", {USERS: _T, MOVIES: _T}, {USERS: _T, MOVIES: _T}),
    ("one view materialized further", {USERS: _T, MOVIES: _T}, {USERS: _T + HOUR, MOVIES: _T}),
    ("a view materialized for the first time", {USERS: None, MOVIES: _T}, {USERS: _T, MOVIES: _T}),
    ("the registry was rebuilt with an earlier end", {USERS: _T + HOUR, MOVIES: _T}, {USERS: _T, MOVIES: _T}),
    ("a view was added to the registry", {USERS: _T}, {USERS: _T, INTERACTIONS: _T}),
    ("a view was removed from the registry", {USERS: _T, MOVIES: _T}, {USERS: _T}),
]


def _to_drop(previous: Ends, current: Ends) -> set[str]:
    """Views whose recorded end differs between two registry polls (absent counts as never materialized)."""
    return {view for view in previous.keys() | current.keys() if previous.get(view) != current.get(view)}


def _invalidation_hint(previous: Ends, current: Ends, got: set[str]) -> str:
    """The likely mistake behind a wrong set of views to drop."""
    want = _to_drop(previous, current)
    if got and got == (previous.keys() | current.keys()) - want:
        return "you returned the views that did *not* change; drop the ones whose end changed"
    missed = want - got
    if any(view not in previous or view not in current for view in missed):
        return "a view present in only one poll changed too: treat a missing view as never materialized (None)"
    if any(previous.get(view) is None for view in missed):
        return "a first materialization (None -> an end) also makes cached rows stale"
    if missed:
        return "any change of the end counts, also a move backwards: the cached rows no longer match the store"
    return "only views whose end changed must be dropped; the others keep their entries"


def views_to_invalidate(fn: Callable) -> None:
    """Exercise 5.1: which views' cache entries a registry poll must drop."""
    for situation, previous, current in INVALIDATION_CASES:
        got = _answer(fn, "views_to_invalidate", dict(previous), dict(current))
        if isinstance(got, str) or not isinstance(got, (set, frozenset, list, tuple)):
            raise CheckFailed(f"views_to_invalidate returned {type(got).__name__}; return a set of view names")
        want = _to_drop(previous, current)
        if set(got) != want:
            raise CheckFailed(f"when {situation}, you drop {sorted(got)}; the cache must drop {sorted(want)} — "
                              + _invalidation_hint(previous, current, set(got)))
    _passed("views_to_invalidate", f"the right views dropped in all {len(INVALIDATION_CASES)} situations")


def latency_cases() -> list[list[float]]:
    """Latency samples in ms: tiny hand-made lists and seeded long-tailed ones, in random order."""
    rng = np.random.default_rng(5)
    tails = [rng.lognormal(0.0, 0.6, n).round(4) for n in (101, 1000)]
    return [[4.0], [3.0, 1.0, 4.0, 2.0], [0.9, 1.1, 1.0, 25.0, 1.2, 0.8, 1.0, 1.3, 0.95, 1.05]] + [t.tolist() for t in tails]


def _percentile_hint(samples: list[float], got: tuple[float, float], want: tuple[float, float]) -> str:
    """The likely mistake behind wrong percentiles."""
    values = np.asarray(samples)
    ordered = np.sort(values)
    mistakes = [(tuple(np.percentile(values, [0.5, 0.99])), ("np.percentile takes percents (50, 99); "
                                                            "np.quantile takes fractions (0.5, 0.99)")),
                ((values.mean(), want[1]), "p50 is the median, not the mean"),
                ((want[0], values.max()), "p99 is not the maximum: 1% of the samples lie above it"),
                (tuple(ordered[min(int(q * len(values)), len(values) - 1)] for q in (0.5, 0.99)),
                 "interpolate linearly between neighbouring samples (np.percentile's default)"),
                (tuple(values[min(int(q * len(values)), len(values) - 1)] for q in (0.5, 0.99)),
                 "sort the samples first")]
    for value, hint in mistakes:
        if not all(_same(v, w) for v, w in zip(value, want)) and all(_same(g, v) for g, v in zip(got, value)):
            return hint
    return "p50 and p99 are the 50th and 99th percentiles with linear interpolation"


def latency_percentiles(fn: Callable) -> None:
    """Exercise 5.2: p50 and p99 of latency samples, against numpy."""
    cases = latency_cases()
    for samples in cases:
        got = _answer(fn, "latency_percentiles", list(samples))
        if not (isinstance(got, (tuple, list)) and len(got) == 2
                and all(isinstance(v, (int, float, np.number)) for v in got)):
            raise CheckFailed(f"latency_percentiles returned {got!r:.80}; return a pair of numbers (p50, p99)")
        want = tuple(float(v) for v in np.percentile(samples, [50, 99]))
        if not all(_same(g, w) for g, w in zip(got, want)):
            shown = samples if len(samples) <= 10 else f"{len(samples)} samples"
            raise CheckFailed(f"for {shown} you computed p50={_show(got[0])}, p99={_show(got[1])} ms; numpy gives "
                              f"p50={_show(want[0])}, p99={_show(want[1])} ms — "
                              + _percentile_hint(samples, tuple(got), want))
    _passed("latency_percentiles", f"equals np.percentile on all {len(cases)} sample sets")


# --- 06 · scale-out ------------------------------------------------------------------------

# Keys for the hash-tag rule: when a "{" is followed later by a "}" with at least one byte between
# them, only the bytes between the first "{" and the first "}" after it are hashed.
TAGGED_KEYS: list[tuple[str, bytes]] = [
    ("a hash tag", b"{user1000}.following"),
    ("the same hash tag, so the same slot", b"{user1000}.followers"),
    ("two tags: only the first counts", b"foo{bar}{zap}"),
    ("an empty tag: the whole key is hashed", b"foo{}{bar}"),
    ("a tag that contains '{'", b"foo{{bar}}zap"),
    ("no '}' after its '{'", b"}{no tag"),
    ("no bytes at all", b""),
]
# Entities whose Feast keys hold the id bytes 0x7b '{' and 0x7d '}': a tag, the wrong order, an empty tag, a 1-byte tag.
ACCIDENTAL_TAGS = [{"movie_id": 123, "user_id": 125}, {"movie_id": 125, "user_id": 123}, {"movie_id": 32_123},
                   {"user_id": 8_192_123}]


def slot_keys(project: str) -> list[tuple[str, bytes]]:
    """(description, key): Feast keys of many users, movies and pairs, then keys with hash tags."""
    rows = ([{"user_id": u} for u in range(1, 1001)] + [{"movie_id": m} for m in range(1, 201)]
            + [{"user_id": u, "movie_id": m} for u in range(1, 21) for m in range(1, 21)])
    feast = [(f"Feast's key of {row}", scaleout.online_key(project, row)) for row in rows]
    accidental = [(f"Feast's key of {row}; an id byte 0x7b is '{{', 0x7d is '}}'", scaleout.online_key(project, row))
                  for row in ACCIDENTAL_TAGS]
    return feast + TAGGED_KEYS + accidental


def _crc_slot(data: bytes) -> int:
    """CRC16/XMODEM of the bytes modulo the slot count, hash tags ignored."""
    return binascii.crc_hqx(data, 0) % scaleout.SLOTS


def _slot_hint(key: bytes, got: int) -> str:
    """The likely mistake behind a wrong slot."""
    start = key.find(b"{")
    end = key.find(b"}", start + 1) if start >= 0 else -1
    whole = binascii.crc_hqx(key, 0)
    mistakes = [(whole, "take the CRC modulo 16384: slots run from 0 to 16383"),
                (whole % (scaleout.SLOTS - 1), "take the CRC modulo 16384, not 16383"),
                (zlib.crc32(key) % scaleout.SLOTS,
                 "Redis Cluster uses CRC16 in the XMODEM variant (binascii.crc_hqx(key, 0)), not CRC32")]
    if end > start + 1:
        mistakes += [(_crc_slot(key), f"this key has the hash tag {key[start + 1:end]!r}: hash only the bytes "
                                      "between the first '{' and the first '}' after it"),
                     (_crc_slot(key[start:end + 1]), "hash the bytes between the braces, without the braces"),
                     (_crc_slot(key[start + 1:key.rfind(b"}")]),
                      "the tag ends at the first '}' after the first '{', not at the last '}'")]
    if end == start + 1:
        mistakes.append((_crc_slot(b""), "an empty tag '{}' does not count: then the whole key is hashed"))
    want = redis_crc.key_slot(key)
    for value, hint in mistakes:
        if value != want and got == value:
            return hint
    return ("the slot is CRC16/XMODEM (binascii.crc_hqx(data, 0)) modulo 16384 of the hash tag — the bytes between "
            "the first '{' and the first '}' after it, if at least one lies between them — or else of the whole key")


def key_slot(fn: Callable, project: str) -> None:
    """Exercise 6.1: the Redis Cluster hash slot of a key, against redis-py's key_slot."""
    keys = slot_keys(project)
    for what, key in keys:
        got = _answer(fn, "key_slot", key)
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            raise CheckFailed(f"key_slot returned {got!r:.60} ({type(got).__name__}); return the slot as an int "
                              "from 0 to 16383")
        want = redis_crc.key_slot(key)
        if got != want:
            raise CheckFailed(f"for the key {key!r} ({what}), your slot is {got}; Redis Cluster puts it in slot {want} "
                              "(redis.crc.key_slot) — " + _slot_hint(key, got))
    _passed("key_slot", f"equals redis-py's key_slot on all {len(keys)} keys: Feast keys of project {project!r} "
                        "and keys with hash tags, accidental ones in Feast keys included")


# (requests/s, entity hashes, measured figures, assumptions) the master count is checked on: figures like
# this notebook's in-process measurement and like `make bench`'s, at the default and at other assumptions.
CapacityCase = tuple[int, int, scaleout.CapacityInputs, scaleout.Assumptions]
CAPACITY_FIGURES = [
    scaleout.CapacityInputs(replica_rps=137.0, key_reads_per_s=124_000.0, bytes_per_key=232.0, keys_per_request=41,
                            source="41 hashes per request, 124,000 hash reads/s per master, 232 B per hash"),
    scaleout.CapacityInputs(replica_rps=150.0, key_reads_per_s=100_000.0, bytes_per_key=250.0, keys_per_request=201,
                            source="201 hashes per request, 100,000 hash reads/s per master, 250 B per hash")]
CAPACITY_ASSUMPTIONS = [scaleout.Assumptions(),
                        scaleout.Assumptions(target_utilization=0.7, shard_memory_gib=16.0, memory_fill=0.6)]
CAPACITY_LOADS = [(100, 100_000), (5_000, 10_000_000), (2_000, 300_000_000), (20_000, 100_000_000),
                  (200_000, 1_000_000)]
MASTERS_RULE = ("masters = max(⌈qps × keys_per_request / (key_reads_per_s × target_utilization)⌉, "
                "⌈entities × bytes_per_key / (shard_memory_gib × 2**30 × memory_fill)⌉, 3)")


def capacity_cases() -> list[CapacityCase]:
    """Every load with every set of figures and assumptions."""
    return [(qps, entities, inputs, assumptions) for inputs in CAPACITY_FIGURES
            for assumptions in CAPACITY_ASSUMPTIONS for qps, entities in CAPACITY_LOADS]


def _plan_row(case: CapacityCase) -> pd.Series:
    """The course's capacity plan for one case."""
    qps, entities, inputs, assumptions = case
    return scaleout.capacity_plan(inputs, [(qps, entities)], assumptions).iloc[0]


def _master_mistakes(case: CapacityCase) -> list[tuple[int, str]]:
    """(master count, hint) of typical mistakes: the course's plan with one rule broken."""
    qps, entities, inputs, a = case
    row = _plan_row(case)
    reads, memory = int(row["masters for reads"]), int(row["masters for memory"])

    def masters(figures: scaleout.CapacityInputs, assumptions: scaleout.Assumptions) -> int:
        return int(_plan_row((qps, entities, figures, assumptions))["Redis masters"])

    return [
        (masters(inputs, replace(a, target_utilization=1.0)),
         "plan the reads at the target utilization: a master serves key_reads_per_s × target_utilization hash reads/s"),
        (masters(inputs, replace(a, memory_fill=1.0)),
         "only memory_fill of a master's memory may hold data: shard_memory_gib × 2**30 × memory_fill bytes"),
        (masters(inputs, replace(a, shard_memory_gib=a.shard_memory_gib * 1e9 / 2**30)),
         "a GiB is 2**30 bytes, not 10**9"),
        (masters(replace(inputs, keys_per_request=1), a), "each request reads keys_per_request entity hashes, not one"),
        (max(reads, memory), "Redis Cluster needs at least 3 masters, whatever the load: they vote on failovers"),
        (max(reads, 3), "the data must fit too: add the masters that entities × bytes_per_key needs"),
        (max(memory, 3), "the reads must be served too: add the masters that qps × keys_per_request hash reads/s need"),
        (max(reads + memory, 3),
         "every master serves reads and holds data at once: take the larger of the two needs, not their sum"),
        (int(row["Redis nodes incl. replicas"]), "count masters only: the failover replicas come on top of them"),
    ]


def _masters_hint(cases: list[CapacityCase], answers: list[float]) -> str:
    """The one typical mistake that explains all of the learner's answers, else the rule itself."""
    mistakes = [_master_mistakes(case) for case in cases]
    for k, (_, hint) in enumerate(mistakes[0]):
        if all(_same(got, found[k][0]) for got, found in zip(answers, mistakes)):
            return hint
    return MASTERS_RULE


def redis_masters(fn: Callable) -> None:
    """Exercise 6.2: Redis masters for a load, against the course's capacity plan."""
    cases, answers = capacity_cases(), []
    for qps, entities, inputs, assumptions in cases:
        got = _answer(fn, "redis_masters", qps, entities, inputs, assumptions)
        if isinstance(got, bool) or not isinstance(got, (int, float, np.number)):
            raise CheckFailed(f"redis_masters returned {got!r:.60} ({type(got).__name__}); return a whole number "
                              "of masters")
        if not float(got).is_integer():
            raise CheckFailed(f"redis_masters returned {_show(got)} for {qps:,} requests/s over {entities:,} entity "
                              "hashes; a master cannot be split: round each need up (math.ceil)")
        answers.append(got)
    for case, got in zip(cases, answers):
        qps, entities, inputs, a = case
        want, reads, memory = (int(_plan_row(case)[column]) for column in
                               ("Redis masters", "masters for reads", "masters for memory"))
        if not _same(got, want):
            raise CheckFailed(
                f"for {qps:,} requests/s over {entities:,} entity hashes ({inputs.source}; target utilization "
                f"{a.target_utilization:g}, {a.shard_memory_gib:g} GiB masters, {a.memory_fill:.0%} of it for data) "
                f"your count is {_show(got)}; the course's capacity plan needs {want} masters: {reads} for the reads, "
                f"{memory} for the memory, at least 3 — " + _masters_hint(cases, answers))
    _passed("redis_masters", f"equals the course's capacity plan in all {len(cases)} cases ({len(CAPACITY_LOADS)} "
                             f"loads × {len(CAPACITY_FIGURES)} sets of figures × {len(CAPACITY_ASSUMPTIONS)} of "
                             "assumptions)")
