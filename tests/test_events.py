"""Event ingestion, the core check: after pushing events (concurrently, repeating pairs, out of
order, some older than the state already online) the online features equal what the batch
adapter computes from the base log plus the same events, exactly, on every profile. The test
also breaks the incremental update on purpose and shows the comparison catches it.
"""
from __future__ import annotations

import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import PROFILE_PARAMS, isolated_profile

from course_lib import datasets, event_state, events, serving
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import load_store
from course_lib.event_state import Event, PairState, UserState
from course_lib.reset import reset_online
from feature_repo.definitions import PAIR_VIEW, STATE_VIEWS, TIMESTAMP_FIELD, USER_VIEW, VIEWS, join_keys
from feature_repo.names import USER_STATE_VIEW

PROJECT = "course_test_events"
HOUR_US = 3_600_000_000


@functools.cache
def base() -> datasets.Dataset:
    """The log already in the stores before any event is pushed."""
    return datasets.synthetic(seed=17, n_users=60, n_movies=40, n_events=1_500, days=20)


def data_end() -> pd.Timestamp:
    """The base log's last event time."""
    return base().watch_events[TIMESTAMP_FIELD].max()


def new_events(users: list[int], seed: int, per_user: int = 12) -> list[Event]:
    """Events for the given users: repeats of (user, movie), ratings or none, some later than the base
    log and some older than the state online (up to five days before its end), in shuffled order."""
    rng = np.random.default_rng(seed)
    movies = base().movies["movie_id"].to_numpy()
    end_us = data_end().value // 1000
    out = []
    for user in users:
        chosen = rng.choice(movies, 4, replace=False)
        times = rng.choice(np.arange(-120, 48), per_user, replace=False) * HOUR_US + end_us + 7
        for at in times:
            rating = float(rng.integers(1, 11)) / 2 if rng.random() < 0.6 else None
            seconds = float(rng.integers(60, 7_200)) if rng.random() < 0.8 else None
            out.append(Event(int(user), int(rng.choice(chosen)), int(at), rating, seconds))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def as_frame(batch: list[Event]) -> pd.DataFrame:
    """Events as rows of the canonical watch log."""
    return pd.DataFrame({"user_id": [e.user_id for e in batch], "movie_id": [e.movie_id for e in batch],
                         TIMESTAMP_FIELD: pd.to_datetime([e.at_us for e in batch], unit="us", utc=True),
                         "rating": [np.nan if e.rating is None else e.rating for e in batch],
                         "watch_seconds": [np.nan if e.watch_seconds is None else e.watch_seconds for e in batch]})


def reference(pushed: list[Event]) -> dict[str, pd.DataFrame]:
    """The batch adapter's tables over the base log plus the events, each key's last row."""
    log = base()
    extended = dataclasses.replace(log, watch_events=pd.concat([log.watch_events, as_frame(pushed)],
                                                               ignore_index=True))
    tables = build_feature_tables(extended)
    # Tables are sorted by time: each key's last row (groupby().last() would skip nulls column by column).
    return {view: tables[view].drop_duplicates(join_keys(view), keep="last") for view in (USER_VIEW, PAIR_VIEW)}


def mismatches(store, want: dict[str, pd.DataFrame], keys: dict[str, pd.DataFrame]) -> list[str]:
    """Every (key, feature) whose online value differs from the reference; empty when all are equal."""
    found = []
    for view, wanted_keys in keys.items():
        expected = wanted_keys.merge(want[view], on=join_keys(view), how="left")
        names = [f.name for f in VIEWS[view][2]]
        online = store.get_online_features(features=[f"{view}:{n}" for n in names],
                                           entity_rows=wanted_keys.to_dict("records")).to_dict()
        for name in names:
            for i, (got, exp) in enumerate(zip(online[name], expected[name])):
                exp = None if pd.isna(exp) else exp.item() if hasattr(exp, "item") else exp
                if got != exp and not (got is None and exp is None):
                    found.append(f"{view} {wanted_keys.iloc[i].to_dict()} {name}: online {got!r}, batch {exp!r}")
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Per profile, built on first use: the base log offline and online, state included, and an ingestor."""
    @functools.cache
    def prepare(name: str):
        profile = isolated_profile(name, Path(tmp_path_factory.mktemp(f"events_{name}")), project=PROJECT)
        write_offline(build_feature_tables(base()), profile)
        store = load_store(profile)
        serving.apply(store, profile)
        reset_online(store, profile)
        end = (data_end() + pd.Timedelta(seconds=1)).to_pydatetime()
        serving.materialize(store, profile, end=end)
        events.enable(store, profile, base(), end)
        return store, events.EventIngestor(store, profile, movies=event_state.catalogue(base().movies))
    return prepare


def push_concurrently(ingestor: events.EventIngestor, batch: list[Event], size: int = 3) -> None:
    """The events in requests of `size`, sent by 16 threads at once."""
    chunks = [batch[i:i + size] for i in range(0, len(batch), size)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(ingestor.ingest, chunks))


def touched(batch: list[Event]) -> dict[str, pd.DataFrame]:
    """The user and pair keys a batch changes."""
    frame = as_frame(batch)
    return {USER_VIEW: frame[["user_id"]].drop_duplicates(ignore_index=True),
            PAIR_VIEW: frame[["user_id", "movie_id"]].drop_duplicates(ignore_index=True)}


# Every base profile, and scaleout: the Redis Cluster online, Spark's parquet offline.
WITH_SCALEOUT = [*PROFILE_PARAMS, pytest.param("scaleout", marks=[pytest.mark.scaleout], id="scaleout")]


@pytest.mark.parametrize("profile_name", WITH_SCALEOUT)
def test_online_features_after_pushes_equal_the_batch_adapter_exactly(world, profile_name, monkeypatch) -> None:
    store, ingestor = world(profile_name)
    users = sorted(base().watch_events["user_id"].unique())
    good = new_events(users[:20], seed=1)
    push_concurrently(ingestor, good)
    push_concurrently(ingestor, good[:10])  # retried requests: duplicates, skipped
    want = reference(good)
    problems = mismatches(store, want, touched(good))
    assert problems == [], "\n".join(problems)
    late = [e for e in good if e.at_us < data_end().value // 1000]
    assert len(late) >= 20 and len(good) - len(late) >= 20, "the events must straddle the state's time"

    # A deliberately wrong update (a late event treated as the pair's newest) is caught.
    def newest_always(user: UserState, pair: PairState, event: Event, movie) -> tuple[UserState, PairState]:
        user, updated = event_state.apply_event(user, pair, event, movie)
        return user, dataclasses.replace(updated, latest_us=max(event.at_us, pair.latest_us or 0),
                                         previous_us=pair.latest_us if event.at_us > (pair.previous_us or 0)
                                         else updated.previous_us)
    monkeypatch.setattr(events, "apply_event", newest_always)
    bad = new_events(users[20:30], seed=2)
    push_concurrently(ingestor, bad)
    wrong = mismatches(store, reference(good + bad), touched(bad))
    assert any("last_watched_days_ago" in line for line in wrong), wrong[:5]


@pytest.mark.parametrize("profile_name", WITH_SCALEOUT)
def test_concurrent_events_for_one_user_lose_no_update(world, profile_name) -> None:
    store, ingestor = world(profile_name)
    user = int(sorted(base().watch_events["user_id"].unique())[-1])
    batch = new_events([user], seed=3, per_user=150)
    push_concurrently(ingestor, batch, size=1)  # 150 requests for one user, 16 at a time
    want = reference(batch)
    assert mismatches(store, want, touched(batch)) == []
    names = [f.name for f in STATE_VIEWS[USER_STATE_VIEW][2]]
    row = store.get_online_features(features=[f"{USER_STATE_VIEW}:{n}" for n in names],
                                    entity_rows=[{"user_id": user}]).to_dict()
    state = event_state.user_state_of({n: row[n][0] for n in names})
    before = base().watch_events
    rated = before[before["user_id"] == user]["rating"].notna().sum() + sum(e.rating is not None for e in batch)
    assert state.rating_count == rated


def test_each_push_source_feeds_exactly_the_view_the_ingestor_writes(world) -> None:
    """The ingestor writes view by view (`write_to_online_store`) what a push of its source would write."""
    store, _ = world("local")
    fed = {view: sorted(fv.name for fv in store.list_feature_views()
                        if fv.stream_source is not None and fv.stream_source.name == source)
           for view, source in events.PUSHES.items()}
    assert fed == {view: [view] for view in events.PUSHES}


def test_events_for_a_movie_outside_the_catalogue_are_refused_whole(world) -> None:
    store, ingestor = world("local")
    with pytest.raises(events.EventError, match=r"events\[1\]\.movie_id"):
        ingestor.ingest([Event(1, 1, 1), Event(1, 999_999, 2)])


@pytest.mark.parametrize("profile_name", ["local", pytest.param("scaleout", marks=[pytest.mark.scaleout])])
def test_offline_append_reaches_the_next_training_set(world, profile_name) -> None:
    store, ingestor = world(profile_name)
    written = ingestor.flush_offline()
    assert written > 0
    table = pd.read_parquet(ingestor.profile.offline_location(PAIR_VIEW))
    assert len(table) >= written // 4

