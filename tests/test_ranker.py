"""The ranker: point-in-time-correct training data, offline evaluation against a popularity
baseline, identical model input at training and serving time, and saving/loading.

Expected values are recomputed from the RAW watch events, never from course_lib.adapter.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from support import SERVE_AT, isolated_env, serving_sample

from course_lib.config import PROFILES, resolve_profile
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
from course_lib.serving import feature_refs, historical_features, materialize

INTERACTION = ["watch_time_minutes", "completion_rate", "user_rating", "watch_count", "last_watched_days_ago"]
BEFORE_EVENT = pd.Timedelta(microseconds=1)


@pytest.fixture(scope="module")
def trained(ranker_dataset, ranker_stores) -> Ranker:
    """`train_and_save` on the local profile, reading the dataset where `course data` saves it."""
    profile, _ = ranker_stores("local")
    ranker_dataset.save(profile.raw_dir)
    return train_and_save(profile)


def test_training_entities_are_rated_events_just_before_they_happen(ranker_dataset):
    """One row per rated event, one microsecond earlier, labelled rating >= 4."""
    events = ranker_dataset.watch_events
    rated = events[events["rating"].notna()].reset_index(drop=True)
    entities = training_entities(ranker_dataset)
    assert list(entities.columns) == ["user_id", "movie_id", "event_timestamp", "label"]
    assert (entities["event_timestamp"] == rated["event_timestamp"] - BEFORE_EVENT).all()
    assert entities["label"].tolist() == [int(r >= 4) for r in rated["rating"]]


@pytest.mark.enterprise
def test_training_frames_agree_across_profiles(ranker_dataset, ranker_stores, ranker_frame):
    """duckdb and PostgreSQL build the same training frame, label included."""
    enterprise = training_frame(ranker_stores("enterprise")[1], ranker_dataset)
    assert len(ranker_frame) == ranker_dataset.watch_events["rating"].notna().sum()
    pd.testing.assert_frame_equal(ranker_frame, enterprise, check_exact=False, rtol=1e-6)


def test_model_beats_popularity_on_the_held_out_period(trained, ranker_frame):
    """On the last fifth of the time range, the model ranks better than popularity (AUC, NDCG@10)."""
    metrics = trained.metrics
    times = ranker_frame["event_timestamp"]
    assert trained.trained_until == times.min() + (times.max() - times.min()) * 0.8
    assert metrics["rows"] == (times >= trained.trained_until).sum() > 1000
    assert metrics["split"] == trained.trained_until.isoformat()
    for name in ("auc", "ndcg@10"):
        assert metrics["model"][name] > metrics["popularity"][name], metrics


def test_training_rows_hold_nothing_from_their_own_event(ranker_dataset, ranker_stores, ranker_frame):
    """Interaction features describe only earlier watches of the pair, checked against raw events."""
    events = ranker_dataset.watch_events
    pair = events.groupby(["user_id", "movie_id"])["event_timestamp"]
    events = events.assign(earlier=pair.rank(method="min").astype(int) - 1, event_at=events["event_timestamp"])
    rated = events[events["rating"].notna()].drop(columns="event_timestamp")
    # Each row predicts the pair's next rated event at or after the row's time.
    rows = pd.merge_asof(ranker_frame, rated, left_on="event_timestamp", right_on="event_at",
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
    leaky = historical_features(ranker_stores("local")[1], probe.drop(columns="rating"),
                                ["user_movie_interaction_features:user_rating"])
    assert np.allclose(leaky["user_rating"].to_numpy(dtype=float), probe["rating"].to_numpy())


@pytest.mark.parametrize("profile_name", [p if p == "local" else pytest.param(p, marks=pytest.mark.enterprise)
                                          for p in PROFILES])
def test_model_input_agrees_between_training_and_serving(ranker_dataset, ranker_stores, trained, profile_name):
    """After materializing up to T, online features give the model the same input as a training frame at T."""
    profile, store = ranker_stores(profile_name)
    materialize(store, profile, end=SERVE_AT.to_pydatetime())
    pairs = serving_sample(ranker_dataset)
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


def test_a_feature_the_source_never_fills_is_left_out(ranker_frame):
    """MovieLens has no watch times: training skips an all-missing feature and still scores every row."""
    blank = ranker_frame.iloc[::4].assign(watch_time_minutes=np.float32("nan"))
    ranker = train(blank)
    assert ranker.features == [c for c in FEATURES if c != "watch_time_minutes"]
    scores = ranker.score(blank)
    assert scores.shape == (len(blank),) and np.isfinite(scores).all()


def test_saved_ranker_scores_identically(trained, ranker_stores, ranker_frame):
    """The model file written by train_and_save loads back with the same scores and metrics."""
    profile, _ = ranker_stores("local")
    assert profile.model_path.is_file()
    loaded = load(profile)
    np.testing.assert_array_equal(loaded.score(ranker_frame), trained.score(ranker_frame))
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
