"""Notebook 08's measurements: how stale daily snapshots are, what the real-time features add to
the ranker, and how long an event takes to become readable online.

- `snapshot_gaps`: lookups made in the 36 hours after each rating, joined point in time against
  the adapter's daily user snapshots (what a midnight materialization serves) and against rows
  written at each event (what `POST /events` serves).
- `realtime_training_frame` / `compare_rankers`: the ranker with and without the on-demand
  features, on the same held-out rows.
- `batch_reference` / `online_mismatches`: pushed features against the batch adapter's.
- `event_to_online`: from `POST /events` sent to the new value read through
  `GET /users/{id}/features`, per event: the figure `course bench` reports and a verify check can call.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
from feast import FeatureStore

from course_lib import datasets, events, ranker, serving
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import Profile, load_store, own_project_env, resolve_profile
from course_lib.pit import historical_features_tuned
from course_lib.reset import reset_online
from course_lib.serving import feature_refs, with_on_demand
from feature_repo.definitions import PAIR_VIEW, TIMESTAMP_FIELD, USER_VIEW, VIEWS, join_keys
from feature_repo.names import GENRE_MATCH_VIEW, HOURS_SINCE_LAST_WATCH, RECENCY_VIEW, REQUEST_TIME, USER_STATE_VIEW

LOOKUP_HOURS = 36


@dataclass(frozen=True)
class SnapshotGaps:
    """Shares of lookups in the hours after a rating, served from daily snapshots and from pushes."""

    lookups: int
    missing_daily: float  # no user features at all (the user's first snapshot is not written yet)
    stale_daily: float  # features found, but without the rating just made
    missing_realtime: float  # with a row written at each event

    def table(self) -> pd.DataFrame:
        """The shares as a small table, in percent."""
        return pd.DataFrame({"daily snapshots": [100 * self.missing_daily, 100 * self.stale_daily],
                             "pushed at each event": [100 * self.missing_realtime, 0.0]},
                            index=["no user features (%)", "features without the new rating (%)"]).round(2)


def snapshot_gaps(dataset: datasets.Dataset, hours: int = LOOKUP_HOURS, step_minutes: int = 60) -> SnapshotGaps:
    """Lookups every `step_minutes` from each rating to `hours` after it, joined as of their time
    (within the user view's TTL) against the adapter's daily snapshots and against per-event rows."""
    events = dataset.watch_events
    rated = events[events["rating"].notna()][["user_id", TIMESTAMP_FIELD]]
    offsets = pd.to_timedelta(np.arange(0, hours * 60 + 1, step_minutes), unit="min")
    lookups = pd.DataFrame({"user_id": np.repeat(rated["user_id"].to_numpy(), len(offsets)),
                            "rated_at": np.repeat(rated[TIMESTAMP_FIELD].to_numpy(), len(offsets))})
    lookups["rated_at"] = lookups["rated_at"].dt.tz_localize("UTC") if lookups["rated_at"].dt.tz is None \
        else lookups["rated_at"]
    lookups["at"] = lookups["rated_at"] + np.tile(offsets.to_numpy(), len(rated))
    lookups = lookups.sort_values("at", ignore_index=True)
    ttl = VIEWS[USER_VIEW][1]
    snapshots = build_feature_tables(dataset)[USER_VIEW][["user_id", TIMESTAMP_FIELD]]
    daily = pd.merge_asof(lookups, snapshots.rename(columns={TIMESTAMP_FIELD: "row_at"}).sort_values("row_at"),
                          left_on="at", right_on="row_at", by="user_id", direction="backward")
    found = daily["row_at"].notna() & (daily["at"] - daily["row_at"] <= ttl)
    pushed = events[["user_id", TIMESTAMP_FIELD]].rename(columns={TIMESTAMP_FIELD: "row_at"}).sort_values("row_at")
    live = pd.merge_asof(lookups, pushed, left_on="at", right_on="row_at", by="user_id", direction="backward")
    live_found = live["row_at"].notna() & (live["at"] - live["row_at"] <= ttl)
    return SnapshotGaps(lookups=len(lookups), missing_daily=float((~found).mean()),
                        stale_daily=float((found & (daily["row_at"] < daily["rated_at"])).mean()),
                        missing_realtime=float((~live_found).mean()))


# --- the ranker with and without the on-demand features ---------------------------------------

def realtime_training_frame(store: FeatureStore, dataset: datasets.Dataset) -> pd.DataFrame:
    """`ranker.training_frame` plus hours_since_last_watch: the user's last watch as of the row
    (the state view, point in time) against the request time (the row's own time)."""
    entities = ranker.training_entities(dataset)
    since_epoch = pd.to_datetime(entities[TIMESTAMP_FIELD], utc=True) - pd.Timestamp(0, tz="UTC")
    entities[REQUEST_TIME] = (since_epoch // pd.Timedelta(microseconds=1)).astype("int64")
    frame = historical_features_tuned(store, entities, [*feature_refs(), f"{USER_STATE_VIEW}:last_watch_us"])
    frame = with_on_demand(store, frame, [GENRE_MATCH_VIEW, RECENCY_VIEW])
    return frame.assign(label=frame["label"].astype("int64"))


VARIANTS: dict[str, list[str]] = {
    "view features only": ranker.VIEW_FEATURES,
    "+ favorite_genre_match (served)": ranker.FEATURES,
    "+ hours_since_last_watch": [*ranker.FEATURES, HOURS_SINCE_LAST_WATCH],
}


def compare_rankers(frame: pd.DataFrame, variants: dict[str, list[str]] = VARIANTS) -> pd.DataFrame:
    """Held-out AUC and NDCG@10 of the ranker trained on each feature set (same split, same rows)."""
    rows = {}
    for name, features in variants.items():
        metrics = ranker.train(frame, features=features).metrics
        ndcg = f"ndcg@{ranker.NDCG_AT}"
        rows[name] = {"AUC": metrics["model"]["auc"], f"NDCG@{ranker.NDCG_AT}": metrics["model"][ndcg],
                      "held-out rows": metrics["rows"]}
    return pd.DataFrame(rows).T


# --- event to online ----------------------------------------------------------------------------

def new_events(dataset: datasets.Dataset, users: list[int], n: int, seed: int) -> list[dict[str, Any]]:
    """`n` watch events after the log's end, a second apart, each a user's first watch of a movie."""
    rng = np.random.default_rng(seed)
    log = dataset.watch_events
    start = log[TIMESTAMP_FIELD].max() + pd.Timedelta(hours=1)
    watched = log.groupby("user_id")["movie_id"].agg(set).to_dict()
    movies = dataset.movies["movie_id"].to_numpy()
    out = []
    for i in range(n):
        user = users[i % len(users)]
        seen = watched.setdefault(user, set())
        movie = int(next(m for m in rng.permutation(movies) if m not in seen))
        seen.add(movie)
        at = start + pd.Timedelta(seconds=i)
        out.append({"user_id": int(user), "movie_id": movie, "event_timestamp": at.isoformat(),
                    "rating": float(rng.integers(1, 11)) / 2, "watch_seconds": float(rng.integers(60, 7_200))})
    return out


def event_to_online(base_url: str, events: Sequence[dict[str, Any]], timeout_s: float = 5.0,
                    client: httpx.Client | None = None) -> np.ndarray:
    """Milliseconds from sending each event to `POST /events` until `GET /users/{id}/features`
    shows it (the user's total_movies_watched or avg_rating changed, or its rating appeared):
    one event at a time, each for a movie the user has not watched so the total must grow."""
    own = client or httpx.Client(base_url=base_url, timeout=timeout_s)
    out = []
    try:
        for event in events:
            url = f"/users/{event['user_id']}/features"
            before = own.get(url).json()["features"]["total_movies_watched"] or 0
            started = time.perf_counter()
            own.post("/events", json={"events": [event]}).raise_for_status()
            while own.get(url).json()["features"]["total_movies_watched"] == before:
                if time.perf_counter() - started > timeout_s:
                    raise TimeoutError(f"event {event} not visible online after {timeout_s} s")
            out.append((time.perf_counter() - started) * 1000)
    finally:
        if client is None:
            own.close()
    return np.array(out)



# --- pushed features against the batch adapter ---------------------------------------------------

def batch_reference(dataset: datasets.Dataset, pushed: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The adapter's user and interaction tables over the log plus the pushed events: each key's last row."""
    extended = replace(dataset, watch_events=pd.concat([dataset.watch_events, pushed], ignore_index=True))
    tables = build_feature_tables(extended)
    # Tables are sorted by time: each key's last row (groupby().last() would skip nulls column by column).
    return {view: tables[view].drop_duplicates(join_keys(view), keep="last") for view in (USER_VIEW, PAIR_VIEW)}


def online_mismatches(store: FeatureStore, reference: dict[str, pd.DataFrame], pushed: pd.DataFrame) -> list[str]:
    """Every (key, feature) of the users and pairs in `pushed` whose online value differs from the reference."""
    found = []
    for view, wanted in reference.items():
        keys = pushed[join_keys(view)].drop_duplicates(ignore_index=True)
        expected = keys.merge(wanted, on=join_keys(view), how="left")
        names = [f.name for f in VIEWS[view][2]]
        online = store.get_online_features(features=[f"{view}:{n}" for n in names],
                                           entity_rows=keys.to_dict("records")).to_dict()
        for name in names:
            for i, (got, want) in enumerate(zip(online[name], expected[name])):
                want = None if pd.isna(want) else want.item() if hasattr(want, "item") else want
                if got != want:
                    found.append(f"{view} {keys.iloc[i].to_dict()} {name}: online {got!r}, batch {want!r}")
    return found


# --- notebook 08's own project -------------------------------------------------------------------

def prepare_project(profile: Profile, dataset: datasets.Dataset) -> tuple[Profile, FeatureStore]:
    """The profile in its own Feast project (`<project>_realtime`, so notebooks 01-06 keep theirs):
    the log offline and online as of its last event, the real-time definitions and a trained ranker."""
    own = resolve_profile(profile.name, own_project_env("realtime", profile.env()))
    dataset.save(own.raw_dir)
    write_offline(build_feature_tables(dataset), own)
    store = load_store(own)
    serving.apply(store, own)
    reset_online(store, own)
    end = dataset.watch_events[TIMESTAMP_FIELD].max().to_pydatetime() + timedelta(seconds=1)
    serving.materialize(store, own, end=end)
    events.enable(store, own, dataset, end)
    ranker.train_and_save(own)
    return own, store
