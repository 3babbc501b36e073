"""Point-in-time correctness, end to end: adapter -> offline store -> get_historical_features.

For sampled (entity, timestamp) rows, the expected value of every feature is recomputed
here from the RAW events with plain filtering (no code from course_lib.adapter), and
compared with what Feast returns on both profiles, for synthetic data and MovieLens.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from support import MOVIELENS_PATH, isolated_env

from course_lib import datasets
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import PROFILES, load_store, resolve_profile
from course_lib.serving import apply, feature_refs, historical_features

DAY = pd.Timedelta(days=1)
TTL = {"user": pd.Timedelta(days=7), "movie": pd.Timedelta(days=30), "pair": pd.Timedelta(days=1)}
SAMPLES = 160


def load_dataset(name: str) -> datasets.Dataset:
    """The datasets under test: a small synthetic log and the real MovieLens ratings."""
    if name == "synthetic":
        return datasets.synthetic(seed=3, n_users=200, n_movies=120, n_events=6000, days=45)
    return datasets.movielens(MOVIELENS_PATH)


def sample_entities(ds: datasets.Dataset, seed: int = 0) -> pd.DataFrame:
    """Half the rows just after real watch events (interaction TTL in play), half random."""
    rng = np.random.default_rng(seed)
    events = ds.watch_events
    half = SAMPLES // 2
    picked = events.iloc[rng.integers(0, len(events), half)]
    after = pd.to_timedelta(rng.integers(1, 36 * 3600, half), unit="s")
    lo, hi = events["event_timestamp"].min(), events["event_timestamp"].max()
    span = int((hi - lo).total_seconds())
    random_rows = pd.DataFrame({
        "user_id": rng.choice(ds.users["user_id"].to_numpy(), half),
        "movie_id": rng.choice(ds.movies["movie_id"].to_numpy(), half),
        "event_timestamp": lo + pd.to_timedelta(rng.integers(0, span, half), unit="s"),
    })
    near = pd.DataFrame({"user_id": picked["user_id"].to_numpy(), "movie_id": picked["movie_id"].to_numpy(),
                         "event_timestamp": (picked["event_timestamp"] + after.to_numpy()).to_numpy()})
    return pd.concat([near, random_rows], ignore_index=True)


@pytest.fixture(scope="module", params=["synthetic", "movielens"])
def scenario(request, tmp_path_factory):
    """One dataset, its feature tables, and Feast's training frame on every profile."""
    ds = load_dataset(request.param)
    tables = build_feature_tables(ds)
    entity_df = sample_entities(ds)
    env = isolated_env(str(tmp_path_factory.mktemp(request.param)))
    env.update(FEAST_PROJECT="course_test_pit", FEAST_OFFLINE_SCHEMA="course_test_pit")
    frames = {}
    for name in PROFILES:
        profile = resolve_profile(name, env)
        write_offline(tables, profile)
        store = load_store(profile)
        apply(store, profile)
        frames[name] = historical_features(store, entity_df, feature_refs())
    return ds, tables, frames


def latest_at_or_before(times: pd.Series, t: pd.Timestamp, ttl: pd.Timedelta) -> pd.Timestamp | None:
    """The newest time <= t, if it lies within the TTL window [t - ttl, t]."""
    eligible = times[times <= t]
    if eligible.empty or t - eligible.max() > ttl:
        return None
    return eligible.max()


def favorite(genre_strings: list[str]) -> str | None:
    """Most frequent genre over the watched movies' genre lists; ties go alphabetically."""
    counts = Counter(g for s in genre_strings for g in s.split("|") if g)
    if not counts:
        return None
    top = max(counts.values())
    return min(g for g, c in counts.items() if c == top)


def mean_or_none(values: pd.Series) -> float | None:
    """Mean of the non-null values, or None when there are none."""
    values = values.dropna()
    return None if values.empty else float(values.mean())


def expected_user(ds, tables, user_id: int, t: pd.Timestamp) -> dict:
    """User features at t, recomputed from raw events up to the snapshot Feast should pick."""
    snaps = tables["user_profile_features"]
    s = latest_at_or_before(snaps.loc[snaps["user_id"] == user_id, "event_timestamp"], t, TTL["user"])
    if s is None:
        return dict.fromkeys(["age", "avg_rating", "total_movies_watched", "favorite_genre",
                              "account_created_days"])
    ev = ds.watch_events[(ds.watch_events["user_id"] == user_id) & (ds.watch_events["event_timestamp"] <= s)]
    user = ds.users.set_index("user_id").loc[user_id]
    genres = ds.movies.set_index("movie_id")["genres"]
    return {
        "age": None if pd.isna(user["age"]) else int(user["age"]),
        "avg_rating": mean_or_none(ev["rating"]),
        "total_movies_watched": ev["movie_id"].nunique(),
        "favorite_genre": favorite([genres[m] for m in ev["movie_id"]]),
        "account_created_days": math.floor((s - user["signup_timestamp"]) / DAY),
    }


def expected_movie(ds, tables, movie_id: int, t: pd.Timestamp) -> dict:
    """Movie features at t, recomputed from raw events and static metadata."""
    snaps = tables["movie_metadata_features"]
    s = latest_at_or_before(snaps.loc[snaps["movie_id"] == movie_id, "event_timestamp"], t, TTL["movie"])
    names = ["vote_average", "vote_count", "popularity", "runtime", "release_year",
             *[f"genre_{g}" for g in ("action", "comedy", "drama", "horror", "romance")]]
    if s is None:
        return dict.fromkeys(names)
    ev = ds.watch_events[(ds.watch_events["movie_id"] == movie_id) & (ds.watch_events["event_timestamp"] <= s)]
    movie = ds.movies.set_index("movie_id").loc[movie_id]
    mean = mean_or_none(ev["rating"])
    genres = movie["genres"].lower().split("|")
    return {
        "vote_average": None if mean is None else 2 * mean,
        "vote_count": int(ev["rating"].notna().sum()),
        "popularity": float((ev["event_timestamp"] > s - pd.Timedelta(days=7)).sum()),
        "runtime": None if pd.isna(movie["runtime"]) else int(movie["runtime"]),
        "release_year": None if pd.isna(movie["release_year"]) else int(movie["release_year"]),
        **{f"genre_{g}": int(g in genres) for g in ("action", "comedy", "drama", "horror", "romance")},
    }


def expected_pair(ds, user_id: int, movie_id: int, t: pd.Timestamp) -> dict:
    """Interaction features at t: the latest watch of the pair within one day."""
    ev = ds.watch_events[(ds.watch_events["user_id"] == user_id) & (ds.watch_events["movie_id"] == movie_id)]
    s = latest_at_or_before(ev["event_timestamp"], t, TTL["pair"])
    if s is None:
        return dict.fromkeys(["watch_time_minutes", "completion_rate", "user_rating", "watch_count",
                              "last_watched_days_ago"])
    upto = ev[ev["event_timestamp"] <= s].sort_values("event_timestamp")
    last = upto.iloc[-1]
    runtime = ds.movies.set_index("movie_id").loc[movie_id, "runtime"]
    seconds = last["watch_seconds"]
    ratings = upto["rating"].dropna()
    return {
        "watch_time_minutes": None if pd.isna(seconds) else seconds / 60,
        "completion_rate": None if pd.isna(seconds) or pd.isna(runtime) else min(seconds / (runtime * 60), 1.0),
        "user_rating": None if ratings.empty else float(ratings.iloc[-1]),
        "watch_count": len(upto),
        "last_watched_days_ago": (None if len(upto) < 2 else
                                  math.floor((s - upto["event_timestamp"].iloc[-2]) / DAY)),
    }


def same(actual, expected) -> bool:
    """Null-aware equality with float32 tolerance."""
    if expected is None:
        return actual is None or actual is pd.NA or (isinstance(actual, float) and math.isnan(actual))
    if actual is None or actual is pd.NA or (isinstance(actual, float) and math.isnan(actual)):
        return False
    if isinstance(expected, str):
        return actual == expected
    return math.isclose(float(actual), float(expected), rel_tol=1e-5, abs_tol=1e-5)


@pytest.mark.enterprise
@pytest.mark.parametrize("profile_name", PROFILES)
def test_historical_features_match_independent_recomputation(scenario, profile_name):
    """Every feature of every sampled row equals the as-of value recomputed from raw events."""
    ds, tables, frames = scenario
    frame = frames[profile_name]
    assert len(frame) == SAMPLES, "the point-in-time join must keep every entity row (no dropped rows)"
    mismatches = []
    for row in frame.to_dict("records"):
        t = row["event_timestamp"]
        expected = {**expected_user(ds, tables, row["user_id"], t),
                    **expected_movie(ds, tables, row["movie_id"], t),
                    **expected_pair(ds, row["user_id"], row["movie_id"], t)}
        mismatches += [(row["user_id"], row["movie_id"], t, k, row[k], v)
                       for k, v in expected.items() if not same(row[k], v)]
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"


@pytest.mark.enterprise  # the scenario builds a frame on every profile
def test_training_frames_agree_across_profiles(scenario):
    """duckdb and PostgreSQL return identical training frames once normalised."""
    _, _, frames = scenario
    pd.testing.assert_frame_equal(frames["local"], frames["enterprise"], check_exact=False, rtol=1e-6)


@pytest.mark.enterprise  # the scenario builds a frame on every profile
def test_samples_exercise_values_and_nulls(scenario):
    """The sample hits both present and TTL-expired rows, so the comparison means something."""
    _, _, frames = scenario
    for feature in ("watch_count", "avg_rating"):
        present = frames["local"][feature].notna()
        assert present.sum() >= SAMPLES // 5 and (~present).sum() >= SAMPLES // 10, feature
