"""Watch events into the feature store as they happen: `POST /events`' work (notebook 08).

For a batch of events, `EventIngestor.ingest`:
1. takes the per-user locks of every user in the batch (in a fixed order, so two batches never
   wait on each other in a cycle): events of one user are applied one at a time, so concurrent
   requests cannot both read the same state and lose an update;
2. reads the users' and pairs' aggregate state (`definitions.STATE_VIEWS`) with one online read;
3. applies the events in arrival order (`event_state.apply_event`: exact in any time order);
4. writes the new user, interaction and state rows online to the view each push source feeds
   (`FeatureStore.write_to_online_store`, what `push` does per view; `push` itself then lists every
   feature service from the registry, uncached, to refresh pre-computed vectors (Feast 0.67,
   feast-dev/feast #6463): 22 ms of CPU per push on the SQL registry, four pushes a batch), and
   queues the same rows for the offline store: Feast's `push(to=OFFLINE)` on `local`, the course's
   own append on `scaleout` (`append_parquet`), a transactional INSERT on PostgreSQL (Feast 0.67 has no
   `offline_write_batch` there: feast-dev/feast #3759, #4403). `flush_offline` writes the queue.

Pushed rows carry a version time: the newest event's time, or one microsecond after the row they
replace when that is later. Redis drops a pushed row whose time is not newer than the stored one
(docs/realtime.md), so a late event still updates the aggregates it changes.
The locks are in-process: run the API with one worker when it ingests events. On SQLite (`local`)
batches are applied one at a time: Feast's SQLite store shares one connection between threads.
"""
from __future__ import annotations

import contextlib
import io
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import psycopg
from feast import FeatureStore
from feast.data_source import PushMode

from course_lib import datasets
from course_lib.adapter import table_dtypes, validate, write_offline, write_parquet
from course_lib.config import SCALEOUT, Profile
from course_lib.errors import CourseError
from course_lib.event_state import (
    Event,
    Movie,
    PairState,
    UserState,
    apply_event,
    catalogue,
    is_duplicate,
    pair_features,
    pair_state_of,
    pair_state_row,
    state_tables,
    user_features,
    user_state_of,
    user_state_row,
)
from feature_repo.definitions import PAIR_VIEW, STATE_VIEWS, TIMESTAMP_FIELD, USER_VIEW, build_realtime, join_keys
from feature_repo.names import PAIR_STATE_VIEW, PUSH_SOURCES, STATE_PUSH_SOURCES, USER_STATE_VIEW

LOCK_STRIPES = 4096
PUSHES = {**PUSH_SOURCES, **STATE_PUSH_SOURCES}  # view -> its push source


class EventError(CourseError):
    """Events cannot be ingested; the message names the event and the field."""


@dataclass
class IngestResult:
    """What one `ingest` call did."""

    accepted: int
    duplicates: int
    users: int
    online_ms: float
    accepted_us: list[int]  # event time of each accepted event


@dataclass
class OfflineQueue:
    """Pushed rows waiting for the offline store, per view, written in one batch by `flush`."""

    rows: dict[str, list[pd.DataFrame]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)
    written: int = 0

    def add(self, view: str, frame: pd.DataFrame) -> None:
        """Queue rows for one view."""
        with self.lock:
            self.rows[view].append(frame)

    def pending(self) -> int:
        """Rows queued."""
        with self.lock:
            return sum(len(frame) for frames in self.rows.values() for frame in frames)

    def take(self) -> dict[str, pd.DataFrame]:
        """Every queued row, per view, leaving the queue empty."""
        with self.lock:
            taken = {view: pd.concat(frames, ignore_index=True) for view, frames in self.rows.items() if frames}
            self.rows = defaultdict(list)
        return taken


def _micros(stamp: Any) -> int:
    """A protobuf Timestamp in microseconds (0 when unset)."""
    return stamp.seconds * 1_000_000 + stamp.nanos // 1000


class EventIngestor:
    """Applies watch events to the online store's aggregates and pushes the results (see the module doc)."""

    def __init__(self, store: FeatureStore, profile: Profile, movies: dict[int, Movie] | None = None) -> None:
        self.store, self.profile = store, profile
        self.movies = movies if movies is not None else catalogue(datasets.load(profile.raw_dir).movies)
        self.locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self.offline = OfflineQueue()
        self.offline_lock = threading.Lock()  # Feast's parquet append rewrites the file: one writer at a time
        # Feast's SQLite online store shares one connection between threads, and a second thread's
        # write fails ("cannot start a transaction within a transaction"): one batch at a time there.
        sqlite = store.config.online_store.type == "sqlite"
        self.store_lock: contextlib.AbstractContextManager[Any] = (threading.Lock() if sqlite
                                                                   else contextlib.nullcontext())
        self.refs = ([f"{USER_STATE_VIEW}:{f.name}" for f in STATE_VIEWS[USER_STATE_VIEW][2]]
                     + [f"{PAIR_STATE_VIEW}:{f.name}" for f in STATE_VIEWS[PAIR_STATE_VIEW][2]]
                     + [f"{USER_VIEW}:age", f"{PAIR_VIEW}:watch_count"])  # the last two for their row times

    def check(self, events: Sequence[Event]) -> None:
        """Refuse a batch naming a movie the catalogue does not hold (nothing is applied)."""
        for i, event in enumerate(events):
            if event.movie_id not in self.movies:
                raise EventError(f"events[{i}].movie_id: movie {event.movie_id} is not in the catalogue")

    def ingest(self, events: Sequence[Event]) -> IngestResult:
        """Apply and push a batch of events; see the module doc for the steps and guarantees."""
        self.check(events)
        started = time.perf_counter()
        stripes = sorted({e.user_id % LOCK_STRIPES for e in events})
        for stripe in stripes:
            self.locks[stripe].acquire()
        try:
            with self.store_lock:
                accepted = self._apply(events)
        finally:
            for stripe in reversed(stripes):
                self.locks[stripe].release()
        return IngestResult(accepted=len(accepted), duplicates=len(events) - len(accepted),
                            users=len({e.user_id for e in events}),
                            online_ms=(time.perf_counter() - started) * 1000, accepted_us=accepted)

    def _read(self, pairs: list[tuple[int, int]]) -> tuple[dict[int, tuple[UserState, int]],
                                                         dict[tuple[int, int], tuple[PairState, int]]]:
        """Current state and newest row time (µs) of every user and pair, in one online read."""
        rows = [{"user_id": u, "movie_id": m} for u, m in pairs]
        response = self.store.get_online_features(features=self.refs, entity_rows=rows, full_feature_names=True)
        values = response.to_dict()
        names = list(response.proto.metadata.feature_names.val)
        stamps = {name: result.event_timestamps for name, result in zip(names, response.proto.results)}
        users: dict[int, tuple[UserState, int]] = {}
        found: dict[tuple[int, int], tuple[PairState, int]] = {}
        for i, (user, movie) in enumerate(pairs):
            user_row = {f.name: values[f"{USER_STATE_VIEW}__{f.name}"][i] for f in STATE_VIEWS[USER_STATE_VIEW][2]}
            pair_row = {f.name: values[f"{PAIR_STATE_VIEW}__{f.name}"][i] for f in STATE_VIEWS[PAIR_STATE_VIEW][2]}
            users[user] = (user_state_of(user_row), max(_micros(stamps[f"{USER_VIEW}__age"][i]),
                                                        _micros(stamps[f"{USER_STATE_VIEW}__age"][i])))
            found[(user, movie)] = (pair_state_of(pair_row), max(_micros(stamps[f"{PAIR_VIEW}__watch_count"][i]),
                                                                 _micros(stamps[f"{PAIR_STATE_VIEW}__latest_us"][i])))
        return users, found

    def _apply(self, events: Sequence[Event]) -> list[int]:
        """Read, apply and push under the locks; returns the times of the events applied (duplicates skipped)."""
        pairs = list(dict.fromkeys((e.user_id, e.movie_id) for e in events))
        users, found = self._read(pairs)
        user_states = {u: state for u, (state, _) in users.items()}
        pair_states = {p: state for p, (state, _) in found.items()}
        newest: dict[Any, int] = {}
        accepted = []
        for event in events:
            key = (event.user_id, event.movie_id)
            if is_duplicate(pair_states[key], event):
                continue
            accepted.append(event.at_us)
            user_states[event.user_id], pair_states[key] = apply_event(
                user_states[event.user_id], pair_states[key], event, self.movies[event.movie_id])
            newest[event.user_id] = max(newest.get(event.user_id, 0), event.at_us)
            newest[key] = max(newest.get(key, 0), event.at_us)
        changed_users = [u for u in users if u in newest]
        changed_pairs = [p for p in found if p in newest]
        user_at = {u: max(newest[u], users[u][1] + 1) for u in changed_users}
        pair_at = {p: max(newest[p], found[p][1] + 1) for p in changed_pairs}
        frames = {
            USER_VIEW: [{"user_id": u, "at": user_at[u], **user_features(user_states[u])} for u in changed_users],
            USER_STATE_VIEW: [{"user_id": u, "at": user_at[u], **user_state_row(user_states[u])}
                              for u in changed_users],
            PAIR_VIEW: [{"user_id": u, "movie_id": m, "at": pair_at[(u, m)],
                         **pair_features(pair_states[(u, m)], self.movies[m])} for u, m in changed_pairs],
            PAIR_STATE_VIEW: [{"user_id": u, "movie_id": m, "at": pair_at[(u, m)],
                               **pair_state_row(pair_states[(u, m)])} for u, m in changed_pairs],
        }
        for view, rows in frames.items():
            if rows:
                frame = typed_rows(view, rows)
                self.store.write_to_online_store(view, frame, allow_registry_cache=True)
                self.offline.add(view, frame)
        return accepted

    def flush_offline(self) -> int:
        """Write every queued row to the offline store; returns the number of rows written."""
        with self.offline_lock:
            tables = self.offline.take()
            if not tables:
                return 0
            if self.profile.name == SCALEOUT:
                append_parquet(self.profile, tables)
            elif self.profile.offline_is_parquet:
                for view, frame in tables.items():
                    self.store.push(PUSHES[view], frame, to=PushMode.OFFLINE)
            else:
                append_postgres(self.profile, tables)
            written = sum(len(frame) for frame in tables.values())
            self.offline.written += written
            return written


def typed_rows(view: str, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Pushed rows as a frame with the view's offline columns and dtypes ("at": the version time in µs)."""
    frame = pd.DataFrame(rows)
    frame[TIMESTAMP_FIELD] = pd.to_datetime(frame.pop("at"), unit="us", utc=True)
    return pd.DataFrame({c: frame[c].astype(t) for c, t in table_dtypes(view).items()})


def append_parquet(profile: Profile, tables: dict[str, pd.DataFrame]) -> None:
    """Append rows to the profile's parquet tables, rewritten whole (`adapter.write_parquet`); a row at an
    existing (keys, time) replaces it. For scaleout: Feast's Spark `offline_write_batch` appends with
    Spark's writer, which needs a folder, and the course's tables are single files."""
    merged = {}
    for view, frame in tables.items():
        old = pd.read_parquet(profile.offline_location(view))
        both = pd.concat([old, frame.astype(old.dtypes.to_dict())], ignore_index=True)
        merged[view] = (both.drop_duplicates([*join_keys(view), TIMESTAMP_FIELD], keep="last")
                        .sort_values(TIMESTAMP_FIELD, kind="stable", ignore_index=True))
    write_parquet(merged, profile)


def append_postgres(profile: Profile, tables: dict[str, pd.DataFrame]) -> None:
    """Append rows to the PostgreSQL offline tables in one transaction (the course's workaround for
    Feast's missing `offline_write_batch`); a row at an existing (keys, time) replaces it."""
    schema = profile.offline_schema
    with psycopg.connect(profile.pg_conninfo()) as conn, conn.cursor() as cur:
        for view, frame in tables.items():
            columns = list(frame.columns)
            keys = ", ".join([*join_keys(view), TIMESTAMP_FIELD])
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in (*join_keys(view), TIMESTAMP_FIELD))
            values = ", ".join(["%s"] * len(columns))
            sql = (f'INSERT INTO "{schema}"."{view}" ({", ".join(columns)}) VALUES ({values}) '
                   f"ON CONFLICT ({keys}) DO UPDATE SET {updates}")
            cur.executemany(sql, [tuple(None if pd.isna(v) else v for v in row)
                                  for row in frame.astype(object).itertuples(index=False)])


def enable(store: FeatureStore, profile: Profile, dataset: datasets.Dataset, end: datetime) -> dict[str, int]:
    """Write the state views' tables from a dataset, register the real-time definitions and load the
    state online up to `end`; returns rows per state table."""
    tables = state_tables(validate(dataset))
    write_offline(tables, profile, checked=False)
    store.apply(build_realtime(profile).objects())
    oldest = min(table[TIMESTAMP_FIELD].min() for table in tables.values()).to_pydatetime()
    with contextlib.redirect_stdout(io.StringIO()):  # Feast's colour log
        store.materialize(start_date=oldest - timedelta(seconds=1), end_date=end, feature_views=list(tables))
    return {view: len(table) for view, table in tables.items()}
