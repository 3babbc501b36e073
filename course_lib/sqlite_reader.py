"""Raw SQLite reads (2.7.5): Feast's SQLite online tables read with one query per view, decoded as the SDK does.

The local profile's online store is an SQLite file. Feast's SDK (`serving.online_rows`) resolves
the feature references, builds protobuf entity keys and a protobuf response for every read:
most of the API's time on `local`. `SqliteReader.online_rows` returns exactly what
`serving.online_rows` returns (tests/test_sqlite_reader.py compares them on a materialized store,
missing entities included) with one `SELECT ... WHERE entity_key IN (...)` per view on Feast's
own table (`course_lib.compat.sqlite_table`), the keys serialized as Feast's v3 keys
(`redis_format.key_builder`, the same bytes without the project suffix Redis appends), values and
event times decoded as the SDK decodes them. Like the SDK it applies no TTL: TTLs are applied when
the model input is built (`candidate_matrix`).

Concurrency: every thread has its own connection, opened on first use with `PRAGMA query_only`
and never creating the file. The reader switches the database to WAL once (a persistent property
of the file, which Feast's own writes then use too), so a materialization writing never blocks a
read. If a writer holds the file at that moment, the file keeps its rollback journal: reads wait up
to BUSY_TIMEOUT_S for a writer and then raise sqlite3.OperationalError ("database is locked"),
which the API answers with its 503 `online_store_unavailable`.
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping, Sequence
from contextlib import closing
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from feast import FeatureStore
from google.protobuf.timestamp_pb2 import Timestamp

from course_lib import compat
from course_lib.config import ConfigError
from course_lib.messages import say
from course_lib.redis_format import check_key_layout, filled, key_template
from course_lib.serving import EntityFeatures, EntityRows, Rows
from feature_repo.definitions import MOVIE_VIEW, PAIR_VIEW, USER_VIEW, VIEWS, join_keys

BUSY_TIMEOUT_S = 0.05  # how long a read waits for a writer holding a rollback-journal file
MMAP_BYTES = 1 << 30  # pages read from a memory map, not a system call each (candidate reads: p50 1.26 -> 1.05 ms)
MAX_KEYS = 10_000  # entity keys per query (SQLite allows 32,766 parameters)
Found = tuple[Any, dict[str, bytes]]  # one entity's last `event_ts` and its feature name -> serialized ValueProto
Reply = Sequence[bytes | None]  # a row as `CandidateRedisReader` replies: each feature's ValueProto, then its Timestamp


def is_sqlite(store: FeatureStore) -> bool:
    """Whether the store's online store is Feast's SQLite store."""
    return store.config.online_store.type in ("sqlite", "feast.infra.online_stores.sqlite.SqliteOnlineStore")


def check_sqlite_reads(store: FeatureStore) -> None:
    """ConfigError unless the course can read the store's SQLite tables itself (`check_key_layout`)."""
    if not is_sqlite(store):
        raise ConfigError(say("sqlite_reader.not_sqlite", store=store.config.online_store.type))
    check_key_layout(store, say("sqlite_reader.raw_reads"))


def use_wal(path: Path) -> bool:
    """Switch an existing database file to WAL (kept by the file); False if that cannot be done now."""
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S)) as db:
            return bool(db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal")
    except sqlite3.Error:
        return False


def _decoded(key: dict[str, int], found: Found | None, types: dict[str, Any]) -> EntityFeatures:
    """One entity's rows as `serving.online_rows` reports them (a feature with no row: missing)."""
    names = list(types)
    if found is None:
        return EntityFeatures(key=key, values=dict.fromkeys(names), event_timestamps=dict.fromkeys(names),
                              status="not_found")
    raw_ts, stored = found
    seconds = compat.sqlite_event_seconds(raw_ts)
    when = datetime.fromtimestamp(seconds, timezone.utc) if seconds > 0 else None
    values = {name: compat.python_value(stored[name], types[name]) if name in stored else None for name in names}
    stamps = {name: when if name in stored else None for name in names}
    present = any(stamp is not None for stamp in stamps.values())
    return EntityFeatures(key=key, values=values, event_timestamps=stamps, status="found" if present else "not_found")


@cache
def _template(names: tuple[str, ...]) -> np.ndarray:
    """The numpy record of one serialized entity key (no project suffix: SQLite keys are Feast's keys alone)."""
    return key_template(names, b"", b"")


def entity_keys(names: Sequence[str], columns: Mapping[str, Sequence[int]], rows: int) -> list[bytes]:
    """Each row's serialized v3 entity key of INT64 join keys (`names` -> one value per row), built with numpy."""
    records = filled(_template(tuple(names)), columns, rows)
    raw, width = records.tobytes(), records.dtype.itemsize
    return [raw[i:i + width] for i in range(0, rows * width, width)]


def _reply(found: Found | None, names: Sequence[str], missing: Reply) -> Reply:
    """A stored entity as an HMGET reply of Feast's Redis hash (`missing`, all None: not found, as the SDK says)."""
    if found is None:
        return missing
    seconds = compat.sqlite_event_seconds(found[0])
    if seconds <= 0:
        return missing
    return [*(found[1].get(name) for name in names), Timestamp(seconds=seconds).SerializeToString()]


class SqliteReader:
    """Reads Feast's SQLite online tables directly: one query per view for all rows, one connection per thread."""

    def __init__(self, store: FeatureStore) -> None:
        check_sqlite_reads(store)
        self.path = compat.sqlite_path(store)
        self.wal = use_wal(self.path)
        self._queries = {view: 'SELECT entity_key, feature_name, value, event_ts FROM "{}" WHERE entity_key IN ({{}}) '
                               "ORDER BY entity_key".format(compat.sqlite_table(store.project, view).replace('"', '""'))
                         for view in VIEWS}
        self._names = {view: [f.name for f in schema] for view, (_, _, schema) in VIEWS.items()}
        self._types = {view: {f.name: f.dtype.to_value_type() for f in schema}
                       for view, (_, _, schema) in VIEWS.items()}
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (the file must exist)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"{self.path.as_uri()}?mode=rw", uri=True, timeout=BUSY_TIMEOUT_S,
                                 isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA query_only = ON")
            db.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
            self._local.db = db
            with self._lock:
                self._opened.append(db)
        return db

    def _read_view(self, view: str, keys: list[bytes]) -> dict[bytes, Found]:
        """Each stored entity's last event time and feature values, by serialized key."""
        out: dict[bytes, Found] = {}
        db = self._connection()
        for start in range(0, len(keys), MAX_KEYS):
            chunk = keys[start:start + MAX_KEYS]
            for key, name, value, event_ts in db.execute(self._queries[view].format(",".join("?" * len(chunk))),
                                                         chunk):
                entity = out.get(key)
                if entity is None:
                    out[key] = (event_ts, {name: value})
                else:  # Feast keeps the last row's time
                    entity[1][name] = value
                    out[key] = (event_ts, entity[1])
        return out

    def online_rows(self, views: list[str], entity_rows: EntityRows) -> Rows:
        """Same result as `serving.online_rows(store, views, entity_rows)`, one query per view."""
        decoded: dict[str, dict[bytes, EntityFeatures]] = {}
        keys: dict[str, list[bytes]] = {}
        for view in views:
            names = join_keys(view)
            keys[view] = entity_keys(names, {k: [row[k] for row in entity_rows] for k in names}, len(entity_rows))
            unique = dict(zip(keys[view], ({k: row[k] for k in names} for row in entity_rows)))
            stored = self._read_view(view, list(unique))
            decoded[view] = {key: _decoded(entity, stored.get(key), self._types[view])
                             for key, entity in unique.items()}
        return [{view: decoded[view][keys[view][i]] for view in views} for i in range(len(entity_rows))]

    def replies(self, view: str, columns: Mapping[str, Sequence[int]], rows: int) -> list[Reply]:
        """Each row's stored values in the shape of `CandidateRedisReader`'s replies (join key -> one value per row)."""
        keys = entity_keys(join_keys(view), columns, rows)
        stored = self._read_view(view, list(dict.fromkeys(keys)))
        names = self._names[view]
        missing = (None,) * (len(names) + 1)
        return [_reply(stored.get(key), names, missing) for key in keys]

    def candidate_rows(self, user_id: int, movie_ids: Sequence[int], movies: Sequence[int]
                       ) -> tuple[Reply, list[Reply], list[Reply]]:
        """The user's reply, each (user, candidate) pair's, and each of `movies`' (candidates the near-cache lacks)."""
        n = len(movie_ids)
        user = self.replies(USER_VIEW, {"user_id": [user_id]}, 1)[0]
        pairs = self.replies(PAIR_VIEW, {"user_id": [user_id] * n, "movie_id": movie_ids}, n)
        extra = self.replies(MOVIE_VIEW, {"movie_id": movies}, len(movies)) if movies else []
        return user, pairs, extra

    async def candidate_replies(self, user_id: int, movie_ids: Sequence[int], movies: Sequence[int]
                                ) -> tuple[Reply, list[Reply], list[Reply]]:
        """`candidate_rows` on the event loop: an indexed query takes less than a hand-off to a thread."""
        return self.candidate_rows(user_id, movie_ids, movies)

    async def online_rows_async(self, views: list[str], entity_rows: EntityRows) -> Rows:
        """`online_rows` on the event loop (see `candidate_replies`)."""
        return self.online_rows(views, entity_rows)

    async def aclose(self) -> None:
        """Close every thread's connection (the app's shutdown)."""
        self.close()

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            opened, self._opened = self._opened, []
        for db in opened:
            db.close()
