"""Watch events into the feature store as they happen: `POST /events`' work (notebook 08).

For a batch of events, `EventIngestor.ingest`:
1. takes the per-user locks of every user in the batch (in a fixed order, so two batches never
   wait on each other in a cycle): events of one user are applied one at a time, so concurrent
   requests cannot both read the same state and lose an update;
2. reads the users' and pairs' aggregate state (`definitions.STATE_VIEWS`) and their rows' newest
   times in one online read;
3. applies the events in arrival order (`event_state.apply_event`: exact in any time order);
4. writes the new user, interaction and state rows online, each to the view its push source feeds
   (`course_lib.event_online`: Feast's Redis hashes directly on a single Redis server, one
   round trip to read and one `MULTI`/`EXEC` to write; elsewhere Feast's `write_to_online_store`
   per view, what `push` does per view; `push` itself then lists every feature service from the
   registry, uncached (Feast 0.67, feast-dev/feast #6463): 22 ms of CPU per push on the SQL
   registry, four pushes a batch), and queues the same rows for the offline store.

`flush_offline` writes the queue with the course's own appends, because Feast 0.67's offline push
fails each offline store differently (docs/realtime.md): on parquet (`local`, `scaleout`) the
tables are rewritten whole as a new generation (`append_parquet`), on PostgreSQL one transaction
INSERTs each view's rows from one JSON document (`append_postgres`). `flush_when_due` runs it in the
background in batches, and a failed append keeps its rows queued.

Pushed rows carry a version time: the newest event's time, or one microsecond after the row they
replace when that is later. Redis drops a pushed row whose time is not newer than the stored one
(docs/realtime.md), so a late event still updates the aggregates it changes.
The locks are in-process. Across processes (several `course serve` workers), a single Redis server
makes each batch's write conditional on the keys it read (`WATCH`, see course_lib.event_online): a
batch that lost the race is read and applied again (`Conflict`, up to CONFLICT_ATTEMPTS times). Other
online stores have no conditional write: run the API with one worker there when it ingests events. On SQLite (`local`)
batches are applied one at a time: Feast's SQLite store shares one connection between threads.
On a single Redis server the API runs `ingest_async` on its event loop (`on_loop`: two awaited round
trips, no Feast call; a worker thread's hand-offs cost more CPU than the work, and while a batch waits
for Redis, or for the Redis timeout during an outage, the loop serves other requests); elsewhere it
runs `ingest` in a thread.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import pandas as pd
import psycopg
from feast import FeatureStore
from psycopg import sql

from course_lib import datasets
from course_lib.adapter import table_dtypes, validate, write_offline, write_parquet
from course_lib.config import Profile
from course_lib.errors import CourseError
from course_lib.event_online import Conflict, Pairs, RedisState, Rows, Users, online_state
from course_lib.event_state import (
    Event,
    Movie,
    apply_event,
    catalogue,
    is_duplicate,
    pair_features,
    pair_state_row,
    state_tables,
    typed_rows,
    user_features,
    user_state_row,
)
from feature_repo.definitions import PAIR_VIEW, TIMESTAMP_FIELD, USER_VIEW, build_realtime, join_keys
from feature_repo.names import PAIR_STATE_VIEW, PUSH_SOURCES, STATE_PUSH_SOURCES, USER_STATE_VIEW

LOCK_STRIPES = 4096
CONFLICT_ATTEMPTS = 50  # reads and writes of one batch while other processes keep writing its keys
LOG = logging.getLogger(__name__)
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

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)
    written: int = 0

    def add(self, view: str, rows: list[dict[str, Any]]) -> None:
        """Queue rows for one view ("at": the version time in µs)."""
        with self.lock:
            self.rows[view].extend(rows)

    def pending(self) -> int:
        """Rows queued."""
        with self.lock:
            return sum(len(rows) for rows in self.rows.values())

    def take(self) -> dict[str, list[dict[str, Any]]]:
        """Every queued row, per view, leaving the queue empty."""
        with self.lock:
            taken, self.rows = self.rows, defaultdict(list)
        return {view: rows for view, rows in taken.items() if rows}

    def put_back(self, rows: dict[str, list[dict[str, Any]]]) -> None:
        """Return rows a failed write did not store, ahead of the rows queued since."""
        with self.lock:
            for view, view_rows in rows.items():
                self.rows[view][:0] = view_rows


class EventIngestor:
    """Applies watch events to the online store's aggregates and pushes the results (see the module doc)."""

    def __init__(self, store: FeatureStore, profile: Profile, movies: dict[int, Movie] | None = None) -> None:
        self.store, self.profile = store, profile
        self.online = online_state(store, profile)
        self.on_loop = isinstance(self.online, RedisState)  # see the module doc
        self.movies = movies if movies is not None else catalogue(datasets.load(profile.raw_dir).movies)
        self.locks = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self.loop_locks: tuple[asyncio.AbstractEventLoop | None, dict[int, asyncio.Lock]] = (None, {})
        self.offline = OfflineQueue()
        self.offline_lock = threading.Lock()  # one offline append at a time (a parquet append rewrites the tables)
        self.flush_guard = threading.Lock()
        self.flusher: threading.Thread | None = None  # the background offline append (`flush_when_due`)
        # Feast's SQLite online store shares one connection between threads, and a second thread's
        # write fails ("cannot start a transaction within a transaction"): one batch at a time there.
        sqlite = store.config.online_store.type == "sqlite"
        self.store_lock: contextlib.AbstractContextManager[Any] = (threading.Lock() if sqlite
                                                                   else contextlib.nullcontext())

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
        return self._result(events, accepted, started)

    async def ingest_async(self, events: Sequence[Event]) -> IngestResult:
        """`ingest` on the running event loop (a single Redis server, `on_loop`): the Redis exchanges are
        awaited, so the loop serves other requests while a batch waits; one user's batches still go one at
        a time (the loop's own locks)."""
        self.check(events)
        started = time.perf_counter()
        locks = self._loop_locks(sorted({e.user_id % LOCK_STRIPES for e in events}))
        for lock in locks:
            await lock.acquire()
        try:
            accepted = await self._apply_async(events)
        finally:
            for lock in reversed(locks):
                lock.release()
        return self._result(events, accepted, started)

    def _loop_locks(self, stripes: list[int]) -> list[asyncio.Lock]:
        """The running event loop's locks of these stripes (asyncio locks belong to one loop)."""
        loop = asyncio.get_running_loop()
        if self.loop_locks[0] is not loop:
            self.loop_locks = (loop, {})
        held = self.loop_locks[1]
        return [held.get(s) or held.setdefault(s, asyncio.Lock()) for s in stripes]

    @staticmethod
    def _result(events: Sequence[Event], accepted: list[int], started: float) -> IngestResult:
        """What a batch did, timed from `started` (the locks taken) to now."""
        return IngestResult(accepted=len(accepted), duplicates=len(events) - len(accepted),
                            users=len({e.user_id for e in events}),
                            online_ms=(time.perf_counter() - started) * 1000, accepted_us=accepted)

    def _apply(self, events: Sequence[Event]) -> list[int]:
        """Read, apply and write under the locks, read again and retried while another process wrote a key in
        between (`Conflict`); returns the times of the events applied (duplicates skipped)."""
        pairs = list(dict.fromkeys((e.user_id, e.movie_id) for e in events))
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                with self.online.batch() as session:
                    accepted, rows = self._updated(events, *session.read(pairs))
                    session.write(rows)
                return self._queued(accepted, rows)
            except Conflict:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
                time.sleep(backoff_s(attempt))
        raise AssertionError("unreachable")

    async def _apply_async(self, events: Sequence[Event]) -> list[int]:
        """`_apply` on the event loop (`RedisState.abatch`)."""
        assert isinstance(self.online, RedisState)
        pairs = list(dict.fromkeys((e.user_id, e.movie_id) for e in events))
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                async with self.online.abatch() as session:
                    accepted, rows = self._updated(events, *await session.read(pairs))
                    await session.write(rows)
                return self._queued(accepted, rows)
            except Conflict:
                if attempt == CONFLICT_ATTEMPTS:
                    raise
                await asyncio.sleep(backoff_s(attempt))
        raise AssertionError("unreachable")

    def _queued(self, accepted: list[int], rows: Rows) -> list[int]:
        """Queue rows written online for the offline store; returns `accepted`."""
        for view, view_rows in rows.items():
            self.offline.add(view, view_rows)
        return accepted

    def _updated(self, events: Sequence[Event], users: Users, found: Pairs) -> tuple[list[int], Rows]:
        """The events applied to the states read: the times of those applied (duplicates skipped) and the rows
        to write, each view's, at their version times."""
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
        return accepted, {
            USER_VIEW: [{"user_id": u, "at": user_at[u], **user_features(user_states[u])} for u in changed_users],
            USER_STATE_VIEW: [{"user_id": u, "at": user_at[u], **user_state_row(user_states[u])}
                              for u in changed_users],
            PAIR_VIEW: [{"user_id": u, "movie_id": m, "at": pair_at[(u, m)],
                         **pair_features(pair_states[(u, m)], self.movies[m])} for u, m in changed_pairs],
            PAIR_STATE_VIEW: [{"user_id": u, "movie_id": m, "at": pair_at[(u, m)],
                               **pair_state_row(pair_states[(u, m)])} for u, m in changed_pairs],
        }

    def flush_when_due(self, rows: int) -> None:
        """Start an offline append in a background thread when `rows` or more are queued and none is running."""
        with self.flush_guard:
            if self.offline.pending() < rows or (self.flusher is not None and self.flusher.is_alive()):
                return
            self.flusher = threading.Thread(target=self._flush_logged, name="offline-append", daemon=True)
            self.flusher.start()

    def _flush_logged(self) -> None:
        """`flush_offline`, a failure logged in one line (its rows stay queued for the next append)."""
        try:
            self.flush_offline()
        except Exception as exc:  # noqa: BLE001 - a background append: the rows are kept, the next one retries
            LOG.warning("offline append failed, %d rows kept for the next one: %s", self.offline.pending(), exc)

    def close(self) -> None:
        """Finish the running offline append, append the rest, close the online connections (the API's shutdown)."""
        if self.flusher is not None:
            self.flusher.join()
        self._flush_logged()
        self.online.close()

    async def aclose(self) -> None:
        """`close` from the event loop, the loop's Redis connections included (the API's shutdown)."""
        await asyncio.to_thread(self.close)
        if isinstance(self.online, RedisState):
            await self.online.aclose()

    def flush_offline(self) -> int:
        """Write every queued row to the offline store in one append; returns the number of rows written.
        A failed append puts its rows back in the queue."""
        with self.offline_lock:
            taken = self.offline.take()
            if not taken:  # nothing to append: no new table generation, no connection
                return 0
            try:
                if self.profile.offline_is_parquet:
                    append_parquet(self.profile, {view: typed_rows(view, rows) for view, rows in taken.items()})
                else:
                    append_postgres(self.profile, taken)
            except BaseException:
                self.offline.put_back(taken)
                raise
            written = sum(len(rows) for rows in taken.values())
            self.offline.written += written
            return written


def backoff_s(attempt: int) -> float:
    """A random wait before a batch that lost a race tries again, longer after each loss (lets the other writer
    finish)."""
    return random.uniform(0, 0.001 * attempt)


def append_parquet(profile: Profile, tables: dict[str, pd.DataFrame]) -> None:
    """Append rows to the profile's parquet tables, rewritten whole as the next generation
    (`adapter.write_parquet`); a row at an existing (keys, time) replaces it. Feast's own push fails
    here: on DuckDB it rewrites the file in place with event times as strings, on Spark it cannot
    append to a single-file table (docs/realtime.md)."""
    merged = {}
    for view, frame in tables.items():
        old = pd.read_parquet(profile.offline_location(view))
        both = pd.concat([old, frame.astype(old.dtypes.to_dict())], ignore_index=True)
        merged[view] = (both.drop_duplicates([*join_keys(view), TIMESTAMP_FIELD], keep="last")
                        .sort_values(TIMESTAMP_FIELD, kind="stable", ignore_index=True))
    write_parquet(merged, profile)


def append_postgres(profile: Profile, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Append rows ("at": the version time in µs) to the PostgreSQL offline tables in one transaction (the
    course's workaround for Feast's missing `offline_write_batch`); a row at an existing (keys, time)
    replaces it, the last of equal ones wins. Each view's rows travel as one JSON document (orjson) that
    PostgreSQL unpacks into the table's row type: the database, not the API's process, does the per-value work."""
    schema = sql.Identifier(profile.offline_schema)
    with psycopg.connect(profile.pg_conninfo()) as conn, conn.cursor() as cur:
        for view, view_rows in rows.items():
            columns, ids = list(table_dtypes(view)), sql.SQL(", ").join(map(sql.Identifier, join_keys(view)))
            keys = [*join_keys(view), TIMESTAMP_FIELD]
            target = sql.SQL("{}.{}").format(schema, sql.Identifier(view))
            values = sql.SQL(", ").join(sql.SQL("timestamptz 'epoch' + at * interval '1 microsecond'")
                                        if c == TIMESTAMP_FIELD else sql.Identifier(c) for c in columns)
            updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                         for c in columns if c not in keys)
            cur.execute(sql.SQL(
                "INSERT INTO {target} ({names}) SELECT DISTINCT ON ({ids}, at) {values} FROM ("
                " SELECT r.*, (e ->> 'at')::bigint AS at, n FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY"
                " AS t(e, n), LATERAL jsonb_populate_record(NULL::{target}, e) AS r) AS staged"
                " ORDER BY {ids}, at, n DESC ON CONFLICT ({keys}) DO UPDATE SET {updates}").format(
                target=target, names=sql.SQL(", ").join(map(sql.Identifier, columns)), ids=ids, values=values,
                keys=sql.SQL(", ").join(map(sql.Identifier, keys)), updates=updates),
                [orjson.dumps(view_rows).decode()])


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
