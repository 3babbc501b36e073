"""The ranker: point-in-time-correct training data, offline evaluation against a popularity
baseline, identical model input at training and serving time, and saving/loading.

Expected values are recomputed from the RAW watch events, never from course_lib.adapter.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from feast import FeatureStore
from support import isolated_env

from course_lib import datasets
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import PROFILES, Profile, load_store, resolve_profile
from course_lib.ranker import (
    FEATURES,
    Ranker,
    RankerError,
    design_matrix,
    load,
    mean_ndcg,
    online_frame,
    save,
    train,
    train_and_save,
    training_entities,
    training_frame,
)
from course_lib.serving import apply, feature_refs, historical_features, materialize

PROJECT = "course_test_rank"
INTERACTION = ["watch_time_minutes", "completion_rate", "user_rating", "watch_count", "last_watched_days_ago"]
# Half a second past a whole second: no whole-second event sits exactly on a TTL boundary.
SERVE_AT = pd.Timestamp("2025-03-01 18:30:00.5", tz="UTC")
BEFORE_EVENT = pd.Timedelta(microseconds=1)

Prepare = Callable[[str], tuple[Profile, FeatureStore]]


@pytest.fixture(scope="module")
def dataset() -> datasets.Dataset:
    """The default synthetic log (1,000 users, 400 movies, 40,000 events over 90 days)."""
    return datasets.synthetic(seed=42)


@pytest.fixture(scope="module")
def prepared(dataset, tmp_path_factory) -> Prepare:
    """Per profile, built on first use: an isolated profile and a store holding the dataset's features.

    The data and SERVE_AT are fixed, so online values an earlier run left in the test Redis
    db are identical to the ones this run writes. (FeatureStore.teardown() is not an option:
    with the SQL registry it deletes every project in the shared registry database.)
    """
    env = isolated_env(str(tmp_path_factory.mktemp("rank")))
    env.update(FEAST_PROJECT=PROJECT, FEAST_OFFLINE_SCHEMA=PROJECT)
    tables = build_feature_tables(dataset)

    @functools.cache
    def prepare(name: str) -> tuple[Profile, FeatureStore]:
        profile = resolve_profile(name, env)
        write_offline(tables, profile)
        store = load_store(profile)
        apply(store, profile)
        return profile, store

    return prepare


@pytest.fixture(scope="module")
def frame(dataset, prepared) -> pd.DataFrame:
    """The local profile's training frame."""
    return training_frame(prepared("local")[1], dataset)


@pytest.fixture(scope="module")
def trained(dataset, prepared) -> Ranker:
    """`train_and_save` on the local profile, reading the dataset where `course data` saves it."""
    profile, _ = prepared("local")
    dataset.save(profile.raw_dir)
    return train_and_save(profile)


def test_training_entities_are_rated_events_just_before_they_happen(dataset):
    """One row per rated event, one microsecond earlier, labelled rating >= 4."""
    events = dataset.watch_events
    rated = events[events["rating"].notna()].reset_index(drop=True)
    entities = training_entities(dataset)
    assert list(entities.columns) == ["user_id", "movie_id", "event_timestamp", "label"]
    assert (entities["event_timestamp"] == rated["event_timestamp"] - BEFORE_EVENT).all()
    assert entities["label"].tolist() == [int(r >= 4) for r in rated["rating"]]


@pytest.mark.enterprise
def test_training_frames_agree_across_profiles(dataset, prepared, frame):
    """duckdb and PostgreSQL build the same training frame, label included."""
    enterprise = training_frame(prepared("enterprise")[1], dataset)
    assert len(frame) == dataset.watch_events["rating"].notna().sum()
    pd.testing.assert_frame_equal(frame, enterprise, check_exact=False, rtol=1e-6)


def test_model_beats_popularity_on_the_held_out_period(trained, frame):
    """On the last fifth of the time range, the model ranks better than popularity (AUC, NDCG@10)."""
    metrics = trained.metrics
    times = frame["event_timestamp"]
    assert trained.trained_until == times.min() + (times.max() - times.min()) * 0.8
    assert metrics["rows"] == (times >= trained.trained_until).sum() > 1000
    assert metrics["split"] == trained.trained_until.isoformat()
    for name in ("auc", "ndcg@10"):
        assert metrics["model"][name] > metrics["popularity"][name], metrics


def test_training_rows_hold_nothing_from_their_own_event(dataset, prepared, frame):
    """Interaction features describe only earlier watches of the pair, checked against raw events."""
    events = dataset.watch_events
    pair = events.groupby(["user_id", "movie_id"])["event_timestamp"]
    events = events.assign(earlier=pair.rank(method="min").astype(int) - 1, event_at=events["event_timestamp"])
    rated = events[events["rating"].notna()].drop(columns="event_timestamp")
    # Each row predicts the pair's next rated event at or after the row's time.
    rows = pd.merge_asof(frame, rated, left_on="event_timestamp", right_on="event_at",
                         by=["user_id", "movie_id"], direction="forward")
    assert rows["rating"].notna().all() and (rows["label"] == (rows["rating"] >= 4)).all()
    first = rows[rows["earlier"] == 0]
    assert len(first) > 10_000 and first[INTERACTION].isna().all().all()
    seen = rows[rows["watch_count"].notna()]
    assert len(seen) > 100 and (seen["watch_count"] == seen["earlier"]).all()
    by_pair = dict(iter(events.groupby(["user_id", "movie_id"])))
    differs = 0
    for row in seen.itertuples():
        history = by_pair[(row.user_id, row.movie_id)]
        before = history[history["event_at"] < row.event_at]["rating"].dropna()
        expected = before.iloc[-1] if len(before) else None
        assert (pd.isna(row.user_rating) if expected is None else math.isclose(row.user_rating, expected)), row
        differs += expected is not None and expected != row.rating
    assert differs > 10, "the sample must contain rewatches rated differently from the earlier watch"
    assert (rows["event_at"] - rows["event_timestamp"] == BEFORE_EVENT).all()
    # The check can fail: read at the event's own time, a first watch shows its own rating.
    probe = first[first["label"] == 1].head(50)
    probe = pd.DataFrame({"user_id": probe["user_id"], "movie_id": probe["movie_id"],
                          "event_timestamp": probe["event_at"], "rating": probe["rating"]})
    probe = probe.sort_values(["event_timestamp", "user_id", "movie_id"], ignore_index=True)
    leaky = historical_features(prepared("local")[1], probe.drop(columns="rating"),
                                ["user_movie_interaction_features:user_rating"])
    assert np.allclose(leaky["user_rating"].to_numpy(dtype=float), probe["rating"].to_numpy())


def serving_sample(dataset: datasets.Dataset) -> pd.DataFrame:
    """(user_id, movie_id) pairs around SERVE_AT: watches in the two days before it (inside and
    outside the one-day interaction TTL), watches in the day after it, and random pairs."""
    events, rng = dataset.watch_events, np.random.default_rng(7)
    times = events["event_timestamp"]
    recent = events[(times > SERVE_AT - pd.Timedelta(days=2)) & (times <= SERVE_AT)].sample(60, random_state=1)
    later = events[(times > SERVE_AT) & (times <= SERVE_AT + pd.Timedelta(days=1))].sample(20, random_state=2)
    random_pairs = pd.DataFrame({"user_id": rng.choice(dataset.users["user_id"], 20),
                                 "movie_id": rng.choice(dataset.movies["movie_id"], 20)})
    pairs = pd.concat([recent[["user_id", "movie_id"]], later[["user_id", "movie_id"]], random_pairs])
    return pairs.drop_duplicates().sort_values(["user_id", "movie_id"], ignore_index=True)


@pytest.mark.parametrize("profile_name", [p if p == "local" else pytest.param(p, marks=pytest.mark.enterprise)
                                          for p in PROFILES])
def test_model_input_agrees_between_training_and_serving(dataset, prepared, trained, profile_name):
    """After materializing up to T, online features give the model the same input as a training frame at T."""
    profile, store = prepared(profile_name)
    materialize(store, profile, end=SERVE_AT.to_pydatetime())
    pairs = serving_sample(dataset)
    offline = historical_features(store, pairs.assign(event_timestamp=SERVE_AT), feature_refs())
    offline = offline.sort_values(["user_id", "movie_id"], ignore_index=True)
    online = online_frame(store, pairs, now=SERVE_AT)
    assert list(online.columns) == [c for c in offline.columns if c not in ("event_timestamp", "label")]
    assert (online[["user_id", "movie_id"]] == pairs).all().all()
    pd.testing.assert_frame_equal(online, offline[online.columns], check_exact=False, rtol=1e-6)
    pd.testing.assert_frame_equal(design_matrix(online), design_matrix(offline), check_exact=False, rtol=1e-6)
    assert list(design_matrix(online).columns) == FEATURES
    np.testing.assert_allclose(trained.score(online), trained.score(offline), rtol=1e-9)
    present = offline["watch_count"].notna().sum()
    assert present >= 10 and offline["avg_rating"].notna().sum() >= len(pairs) // 2, "sample too thin"
    # Without `now`, online reads ignore the TTL: stale interactions reach the model.
    stale = online_frame(store, pairs, now=None)
    assert stale["watch_count"].notna().sum() > present


def test_mean_ndcg_on_a_hand_computed_example():
    """NDCG@k per user, ties averaged, skipping users with one row or no positive."""
    users = pd.Series([1, 1, 1, 2, 3, 3, 4, 4, 5, 5])
    labels = np.array([1, 0, 1, 1, 0, 0, 0, 1, 1, 0])
    scores = np.array([0.9, 0.8, 0.1, 0.5, 0.3, 0.2, 0.1, 0.9, 0.5, 0.5])
    ideal = 1 + 1 / math.log2(3)
    user1 = (1 + 1 / math.log2(4)) / ideal  # positives at ranks 1 and 3
    user5 = 0.5 * ideal  # tied pair: the positive's gain is spread over ranks 1 and 2
    assert math.isclose(mean_ndcg(users, labels, scores), (user1 + 1.0 + user5) / 3)
    assert math.isclose(mean_ndcg(users, labels, scores, k=2), (1 / ideal + 1.0 + user5) / 3)
    assert math.isnan(mean_ndcg(users[:1], labels[:1], scores[:1]))


def test_a_feature_the_source_never_fills_is_left_out(frame):
    """MovieLens has no watch times: training skips an all-missing feature and still scores every row."""
    blank = frame.iloc[::4].assign(watch_time_minutes=np.float32("nan"))
    ranker = train(blank)
    assert ranker.features == [c for c in FEATURES if c != "watch_time_minutes"]
    scores = ranker.score(blank)
    assert scores.shape == (len(blank),) and np.isfinite(scores).all()


def test_saved_ranker_scores_identically(trained, prepared, frame):
    """The model file written by train_and_save loads back with the same scores and metrics."""
    profile, _ = prepared("local")
    assert profile.model_path.is_file()
    loaded = load(profile)
    np.testing.assert_array_equal(loaded.score(frame), trained.score(frame))
    assert (loaded.metrics, loaded.trained_until, loaded.features) == (
        trained.metrics, trained.trained_until, trained.features)


def test_load_errors_name_course_train(tmp_path):
    """No model, or one trained on other features: a RankerError telling you to run `course train`."""
    profile = resolve_profile("local", isolated_env(str(tmp_path)))
    with pytest.raises(RankerError, match="course train"):
        load(profile)
    save(Ranker(model=None, features=["vote_average", "user_mood"], trained_until=SERVE_AT, metrics={}), profile)
    with pytest.raises(RankerError, match="course train"):
        load(profile)
