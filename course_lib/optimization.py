"""Performance techniques of 2.7.5: online caches, a raw Redis reader, scheduled and tuned
materialization, and point-in-time retrieval at scale.

Every optimized path returns exactly what its plain counterpart in `course_lib.serving`
returns; the tests compare them on real stores.
"""
from __future__ import annotations

import fcntl
import math
import re
import sqlite3
import struct
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache, partial
from typing import Literal

import mmh3
import pandas as pd
import psycopg
import redis
import sqlalchemy.exc
from feast import FeatureService, FeatureStore, ValueType
from feast.infra.common.materialization_job import MaterializationJob, MaterializationTask
from feast.infra.compute_engines.local.compute import LocalComputeEngine, LocalComputeEngineConfig
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import EntitySelectMode
from feast.infra.online_stores.redis import RedisOnlineStore, RedisType
from feast.infra.registry.base_registry import BaseRegistry
from feast.infra.utils.postgres.connection_utils import _get_conn
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from tqdm.auto import tqdm

from course_lib.adapter import copy_rows, join_keys, offline_query, table_expr
from course_lib.config import PG_PIT_SETTINGS, ConfigError, Profile
from course_lib.serving import (EntityFeatures, MaterializeReport, historical_features, latest_interval,
                                materialize, normalize_frame, online_rows)
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS

USER_VIEW, MOVIE_VIEW, PAIR_VIEW = "user_profile_features", "movie_metadata_features", "user_movie_interaction_features"
EntityRows = list[dict[str, int]]
Rows = list[dict[str, EntityFeatures]]
# fetch(views, entity_rows) -> rows; `serving.online_rows` bound to a store, or a faster drop-in.
Fetch = Callable[[list[str], EntityRows], Rows]
Clock = Callable[[], float]


def sdk_fetch(store: FeatureStore) -> Fetch:
    """`serving.online_rows` bound to a store: the plain Feast SDK path."""
    return partial(online_rows, store)


def standalone_redis(store: FeatureStore) -> bool:
    """Whether the store's online store is a single Redis server (not a cluster or sentinel)."""
    online = store.config.online_store
    return online.type == "redis" and online.redis_type == RedisType.redis


def online_reader(store: FeatureStore) -> Fetch:
    """The fastest exact online reader for the store: raw Redis pipelines, else the SDK."""
    return RawRedisReader(store).online_rows if standalone_redis(store) else sdk_fetch(store)


# --- watching the registry ------------------------------------------------------------

class IntervalWatcher:
    """Polls the registry, at most every `check_every_s`, for views whose materialized interval moved."""

    def __init__(self, store: FeatureStore, views: list[str], check_every_s: float = 5.0,
                 clock: Clock = time.monotonic) -> None:
        self._store, self._views, self._every, self._clock = store, views, check_every_s, clock
        self._lock = threading.Lock()
        self._seen = self._read()
        self._due = clock() + check_every_s

    def _read(self) -> dict[str, tuple[datetime, datetime] | None]:
        """Each watched view's newest interval, read from the registry without its cache."""
        return {view: latest_interval(self._store, view) for view in self._views}

    def moved(self) -> list[str]:
        """Views whose interval moved since the last poll; [] if no poll is due or another thread polls now."""
        if self._clock() < self._due or not self._lock.acquire(blocking=False):
            return []
        try:
            now = self._clock()
            if now < self._due:
                return []
            self._due = now + self._every
            current = self._read()
            changed = [view for view in self._views if current[view] != self._seen[view]]
            self._seen = current
            return changed
        finally:
            self._lock.release()


# --- 1. bounded online cache ----------------------------------------------------------

CacheKey = tuple[str, tuple[int, ...]]
CACHE_COUNTERS = {
    "hits": "Online feature lookups answered from the cache, per feature view",
    "misses": "Online feature lookups that went to the online store, per feature view",
    "evictions": "Cache entries dropped to stay within max_entries, per feature view",
    "invalidations": "Cache entries dropped because the view's materialized interval moved",
}


# Entries are shared by every request that names the same entity. When a materialization
# moves a view's interval in the registry (polled at most every `check_every_s`), that view's
# entries are dropped at once; the TTL only bounds staleness between polls. Returned
# `EntityFeatures` are shared between callers: treat them as read-only.
# Counts are attributes and Prometheus counter families `course_feature_cache_<count>_total
# {view}` in `registry`, exported by a collector rather than `prometheus_client.Counter`:
# importing Feast switches prometheus_client into multiprocess mode, where a new Counter with
# an existing name starts from the old one's value, so two caches would share their counts.
class OnlineFeatureCache:
    """Bounded LRU of online rows per (feature view, entity key) with a TTL, dropped when the view's interval moves."""

    def __init__(self, store: FeatureStore, fetch: Fetch | None = None, max_entries: int = 100_000,
                 ttl_s: float = 60.0, check_every_s: float = 5.0, clock: Clock = time.monotonic,
                 registry: CollectorRegistry | None = None, views: tuple[str, ...] = tuple(VIEWS)) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError(f"max_entries must be >= 1 and ttl_s > 0 (got {max_entries}, {ttl_s})")
        self._fetch = fetch or sdk_fetch(store)
        self._max, self._ttl, self._clock = max_entries, ttl_s, clock
        self._entries: OrderedDict[CacheKey, tuple[float, EntityFeatures]] = OrderedDict()
        self._generation = dict.fromkeys(views, 0)
        self._counts: dict[str, Counter[str]] = {name: Counter() for name in CACHE_COUNTERS}
        self._lock = threading.Lock()
        self._watcher = IntervalWatcher(store, list(views), check_every_s, clock)
        self.registry = registry or CollectorRegistry()
        self.registry.register(self)

    @property
    def hits(self) -> int:
        """Lookups answered from the cache."""
        return sum(self._counts["hits"].values())

    @property
    def misses(self) -> int:
        """Lookups that went to the online store."""
        return sum(self._counts["misses"].values())

    @property
    def evictions(self) -> int:
        """Entries dropped because the cache was full."""
        return sum(self._counts["evictions"].values())

    @property
    def invalidations(self) -> int:
        """Entries dropped because their view's materialized interval moved."""
        return sum(self._counts["invalidations"].values())

    def __len__(self) -> int:
        """Number of cached (view, entity key) entries."""
        return len(self._entries)

    def collect(self) -> Iterator[CounterMetricFamily]:
        """Prometheus counter families (called by the registry on each scrape)."""
        with self._lock:
            snapshot = {name: dict(counts) for name, counts in self._counts.items()}
        for name, doc in CACHE_COUNTERS.items():
            family = CounterMetricFamily(f"course_feature_cache_{name}", doc, labels=["view"])
            for view, value in sorted(snapshot[name].items()):
                family.add_metric([view], value)
            yield family

    def _invalidate(self, views: list[str]) -> None:
        """Drop every entry of the given views and bump their generation."""
        if not views:
            return
        with self._lock:
            for view in views:
                self._generation[view] += 1
            stale = [key for key in self._entries if key[0] in views]
            for key in stale:
                del self._entries[key]
                self._counts["invalidations"][key[0]] += 1

    def _lookup(self, key: CacheKey, now: float) -> EntityFeatures | None:
        """A fresh entry (marked most recently used), or None; the caller holds the lock."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def _store(self, found: dict[CacheKey, EntityFeatures], generation: dict[str, int], now: float) -> None:
        """Insert fetched rows unless their view was invalidated meanwhile, evicting the LRU."""
        with self._lock:
            for key, row in found.items():
                if self._generation[key[0]] != generation[key[0]]:
                    continue  # read before an invalidation: may predate the new materialization
                self._entries[key] = (now + self._ttl, row)
                self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                key, _ = self._entries.popitem(last=False)
                self._counts["evictions"][key[0]] += 1

    def online_rows(self, views: list[str], entity_rows: EntityRows) -> Rows:
        """Same result as `serving.online_rows`, with one fetch for the rows that missed."""
        unwatched = set(views) - set(self._generation)
        if unwatched:
            raise ValueError(f"this cache watches {sorted(self._generation)}, not {sorted(unwatched)}; "
                             "pass those views to OnlineFeatureCache(views=...)")
        self._invalidate(self._watcher.moved())
        keys = [{view: (view, tuple(row[k] for k in join_keys(view))) for view in views} for row in entity_rows]
        now = self._clock()
        found: dict[CacheKey, EntityFeatures] = {}
        with self._lock:
            generation = dict(self._generation)
            for key in dict.fromkeys(k for row_keys in keys for k in row_keys.values()):
                row = self._lookup(key, now)
                self._counts["misses" if row is None else "hits"][key[0]] += 1
                if row is not None:
                    found[key] = row
        missing = [i for i, row_keys in enumerate(keys) if any(k not in found for k in row_keys.values())]
        if missing:
            fetched = self._fetch(views, [entity_rows[i] for i in missing])
            new = {keys[i][view]: row[view] for i, row in zip(missing, fetched) for view in views}
            self._store(new, generation, now)
            found.update(new)
        return [{view: found[key] for view, key in row_keys.items()} for row_keys in keys]


# --- 2. near-cache for movie metadata -------------------------------------------------

# Movie ids come from the offline table; values are read from the online store in batches,
# so lookups return exactly what an online read would.
class MovieNearCache:
    """Every movie's online metadata row in a dict: loaded whole, reloaded when the view's interval moves."""

    def __init__(self, store: FeatureStore, profile: Profile, fetch: Fetch | None = None,
                 batch_size: int = 1000, check_every_s: float = 5.0, clock: Clock = time.monotonic) -> None:
        self._profile, self._batch = profile, batch_size
        self._fetch = fetch or sdk_fetch(store)
        self._watcher = IntervalWatcher(store, [MOVIE_VIEW], check_every_s, clock)
        self._rows: dict[int, EntityFeatures] = {}
        self.loads = 0
        self.load()

    def __len__(self) -> int:
        """Number of movies held in memory."""
        return len(self._rows)

    def _read(self, movie_ids: list[int]) -> dict[int, EntityFeatures]:
        """Online rows of some movies, read in batches."""
        out: dict[int, EntityFeatures] = {}
        for start in range(0, len(movie_ids), self._batch):
            batch = movie_ids[start:start + self._batch]
            rows = self._fetch([MOVIE_VIEW], [{"movie_id": m} for m in batch])
            out.update((m, row[MOVIE_VIEW]) for m, row in zip(batch, rows))
        return out

    def load(self) -> int:
        """Read every movie of the offline table from the online store; returns how many."""
        (ids,) = offline_query(self._profile, "SELECT array_agg(DISTINCT movie_id ORDER BY movie_id) "
                                              f"FROM {table_expr(self._profile, MOVIE_VIEW)}", [])
        rows = self._read([int(m) for m in ids or []])
        self._rows = rows  # one reference swap: readers see the old or the new dict, never a mix
        self.loads += 1
        return len(rows)

    def refresh_if_moved(self) -> bool:
        """Reload when a poll (at most every `check_every_s`) sees the view's interval moved."""
        if self._watcher.moved():
            self.load()
            return True
        return False

    def get_many(self, movie_ids: list[int]) -> list[EntityFeatures]:
        """Each movie's row from memory; ids unknown offline are read from the online store."""
        self.refresh_if_moved()
        rows = self._rows
        unknown = [m for m in dict.fromkeys(movie_ids) if m not in rows]
        extra = self._read(unknown) if unknown else {}
        return [rows[m] if m in rows else extra[m] for m in movie_ids]


# --- 3. raw Redis reads ---------------------------------------------------------------

STRING, INT64 = ValueType.STRING.value, ValueType.INT64.value


def redis_field(view: str, feature: str) -> bytes:
    """Feast's Redis hash field of a feature: the first 4 bytes of little-endian mmh3_32("view:feature")."""
    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


@cache
def _key_layout(view: str) -> tuple[tuple[str, ...], bytes]:
    """A view's join keys sorted by name, and the v3 key prefix: key count, then each name."""
    names = tuple(sorted(join_keys(view)))
    prefix = struct.pack("<I", len(names)) + b"".join(
        struct.pack("<II", STRING, len(n.encode())) + n.encode() for n in names)
    return names, prefix


def redis_key(view: str, row: dict[str, int], project: str) -> bytes:
    """Feast's Redis key of an entity: v3 serialized INT64 join keys, then the project name."""
    names, prefix = _key_layout(view)
    return prefix + b"".join(struct.pack("<IIq", INT64, 8, row[n]) for n in names) + project.encode()


class RawRedisReader:
    """Reads Feast's Redis hashes directly: one redis-py pipeline for all views and rows."""

    def __init__(self, store: FeatureStore) -> None:
        config = store.config
        if not standalone_redis(store):
            raise ConfigError(f"RawRedisReader needs a single-server Redis online store (enterprise profile), "
                              f"not {config.online_store.type!r}; use sdk_fetch(store) instead")
        if config.entity_key_serialization_version != 3 or config.registry.enable_online_feature_view_versioning:
            raise ConfigError("RawRedisReader reads entity_key_serialization_version 3 keys of unversioned "
                              "feature views; set entity_key_serialization_version: 3 in feature_store.yaml")
        not_int = [e.name for entities, _, _ in VIEWS.values() for e in entities if e.value_type != ValueType.INT64]
        if not_int:
            raise ConfigError(f"RawRedisReader encodes INT64 join keys only; entities {not_int} are not INT64")
        nodes, params = RedisOnlineStore._parse_connection_string(config.online_store.connection_string)
        self._client = redis.Redis(host=nodes[0]["host"], port=int(nodes[0]["port"]), **params)
        self._project = store.project
        self._features = {view: [f.name for f in schema] for view, (_, _, schema) in VIEWS.items()}
        self._types = {view: [f.dtype.to_value_type() for f in schema] for view, (_, _, schema) in VIEWS.items()}
        self._fields = {view: [redis_field(view, f) for f in names] + [f"_ts:{view}".encode()]
                        for view, names in self._features.items()}

    def _decode(self, view: str, key: dict[str, int], reply: list[bytes | None]) -> EntityFeatures:
        """One HMGET reply as `serving.online_rows` reports it (no `_ts` field: not found)."""
        *values, ts_bytes = reply
        names = self._features[view]
        if not ts_bytes:  # most candidate pairs were never watched: skip the protobuf work
            return EntityFeatures(key=key, values=dict.fromkeys(names), event_timestamps=dict.fromkeys(names),
                                  status="not_found")
        stamp = Timestamp()
        stamp.ParseFromString(ts_bytes)
        # As Feast: a datetime from float seconds, then back to a Timestamp, of which
        # `serving.online_rows` keeps the whole seconds.
        stamp.FromDatetime(datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=timezone.utc))
        seconds = stamp.seconds
        when = datetime.fromtimestamp(seconds, tz=timezone.utc) if seconds > 0 else None
        decoded = {}
        for name, value_type, raw in zip(names, self._types[view], values):
            proto = ValueProto()
            if raw:
                proto.ParseFromString(raw)
            decoded[name] = feast_value_type_to_python_type(proto, value_type)
        return EntityFeatures(key=key, values=decoded, event_timestamps=dict.fromkeys(decoded, when),
                              status="found" if when else "not_found")

    def online_rows(self, views: list[str], entity_rows: EntityRows) -> Rows:
        """Same result as `serving.online_rows(store, views, entity_rows)`, in one round trip."""
        keys = [{view: tuple(row[k] for k in join_keys(view)) for view in views} for row in entity_rows]
        unique = list(dict.fromkeys((view, key) for row_keys in keys for view, key in row_keys.items()))
        entities = [dict(zip(join_keys(view), key)) for view, key in unique]
        with self._client.pipeline(transaction=False) as pipe:
            for (view, _), entity in zip(unique, entities):
                pipe.hmget(redis_key(view, entity, self._project), self._fields[view])
            replies = pipe.execute()
        decoded = {(view, key): self._decode(view, entity, reply)
                   for (view, key), entity, reply in zip(unique, entities, replies)}
        return [{view: decoded[(view, key)] for view, key in row_keys.items()} for row_keys in keys]


# --- 4. the optimized recommendation read ---------------------------------------------

class RecommendationFeatures:
    """A recommendation request's online read: movies from the near-cache, the rest in one round trip."""

    def __init__(self, store: FeatureStore, profile: Profile, fetch: Fetch | None = None,
                 movies: MovieNearCache | None = None) -> None:
        self.fetch = fetch or online_reader(store)
        self.movies = movies or MovieNearCache(store, profile, fetch=self.fetch)

    def recommendation_features(self, user_id: int, movie_ids: list[int]) -> Rows:
        """Exactly what `serving.candidate_features(store, user_id, movie_ids)` returns."""
        rows = self.fetch([USER_VIEW, PAIR_VIEW], [{"user_id": user_id, "movie_id": m} for m in movie_ids])
        movies = self.movies.get_many(movie_ids)
        return [{USER_VIEW: row[USER_VIEW], MOVIE_VIEW: movie, PAIR_VIEW: row[PAIR_VIEW]}
                for row, movie in zip(rows, movies)]


# --- 5. materialization: parallel engine, lock, retries, schedule ----------------------

class ParallelLocalComputeEngineConfig(LocalComputeEngineConfig):
    """`batch_engine` settings of `ParallelLocalComputeEngine` in feature_store.yaml."""

    type: Literal["course_lib.optimization.ParallelLocalComputeEngine"] = (
        "course_lib.optimization.ParallelLocalComputeEngine")
    workers: int = 3


# Feast hands all views to a batch-capable engine in one call and records each view's interval
# in the registry afterwards, one at a time, so the registry is never written concurrently.
class ParallelLocalComputeEngine(LocalComputeEngine):
    """Feast's local compute engine, materializing each feature view in its own thread."""

    def __init__(self, workers: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.workers = workers

    @property
    def supports_batch(self) -> bool:
        """Ask Feast for all views at once, so they can run in parallel."""
        return True

    def materialize(self, registry: BaseRegistry, tasks: MaterializationTask | list[MaterializationTask],
                    **kwargs) -> list[MaterializationJob]:
        """Materialize the tasks in up to `workers` threads; jobs come back in task order."""
        tasks = [tasks] if isinstance(tasks, MaterializationTask) else tasks
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(tasks)))) as pool:
            return list(pool.map(lambda task: self._materialize_one(registry, task), tasks))


LOCK_FILE = "materialize.lock"
# Failures worth retrying: the stores were unreachable or busy, not misconfigured.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, psycopg.OperationalError,
    sqlalchemy.exc.OperationalError, sqlite3.OperationalError, ConnectionError, TimeoutError)


@contextmanager
def exclusive_lock(profile: Profile) -> Iterator[bool]:
    """Hold the profile's materialization lock (fcntl.flock, non-blocking); yields whether we got it."""
    path = profile.repo_dir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try a run, and the exponential backoff between tries."""

    attempts: int = 3
    first_delay_s: float = 5.0
    factor: float = 2.0
    max_delay_s: float = 120.0

    def __post_init__(self) -> None:
        """Reject policies that could never run."""
        if self.attempts < 1 or self.first_delay_s < 0 or self.factor < 1:
            raise ValueError(f"invalid {self}: need attempts >= 1, first_delay_s >= 0 and factor >= 1")

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after the given failed attempt (1-based)."""
        return min(self.first_delay_s * self.factor ** (failed_attempt - 1), self.max_delay_s)


@dataclass(frozen=True)
class RunOutcome:
    """What one scheduled materialization did."""

    status: Literal["ok", "locked", "failed"]
    attempts: int
    seconds: float
    report: MaterializeReport | None = None
    error: str | None = None

    def lines(self) -> list[str]:
        """Human-readable summary."""
        head = f"materialize {self.status} after {self.attempts} attempt(s) in {self.seconds:.1f} s"
        if self.status == "locked":
            head += " (another materialization holds the lock; this run was skipped)"
        if self.error:
            head += f": {self.error}"
        return [head, *(self.report.lines() if self.report else [])]


def materialize_once(store: FeatureStore, profile: Profile, incremental: bool = True, end: datetime | None = None,
                     retry: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep,
                     clock: Clock = time.monotonic) -> RunOutcome:
    """`serving.materialize` under the profile's lock, retrying transient failures with backoff."""
    started = clock()
    with exclusive_lock(profile) as acquired:
        if not acquired:
            return RunOutcome(status="locked", attempts=0, seconds=clock() - started)
        for attempt in range(1, retry.attempts + 1):
            try:
                # Full while any view was never materialized: a first run loads all history,
                # not only the last TTL as Feast's incremental default would.
                ready = incremental and all(latest_interval(store, view) for view in VIEWS)
                report = materialize(store, profile, end=end, incremental=ready)
                return RunOutcome(status="ok", attempts=attempt, seconds=clock() - started, report=report)
            except TRANSIENT_ERRORS as exc:
                error = f"{type(exc).__name__}: {exc}"
                if attempt < retry.attempts:
                    sleep(retry.delay(attempt))
    return RunOutcome(status="failed", attempts=retry.attempts, seconds=clock() - started,
                      error=f"{error}; check that the stores answer (course doctor)")


def materialize_every(store: FeatureStore, profile: Profile, every: timedelta, runs: int | None = None,
                      incremental: bool = True, retry: RetryPolicy = RetryPolicy(),
                      on_outcome: Callable[[RunOutcome], None] = lambda outcome: None,
                      sleep: Callable[[float], None] = time.sleep, clock: Clock = time.monotonic,
                      ) -> list[RunOutcome]:
    """`materialize_once` every `every` (fixed rate, overrun ticks skipped), `runs` times or until interrupted."""
    period = every.total_seconds()
    if period <= 0:
        raise ValueError(f"the schedule interval must be positive, got {every}")
    outcomes: list[RunOutcome] = []
    next_tick = clock()
    while runs is None or len(outcomes) < runs:
        outcome = materialize_once(store, profile, incremental=incremental, retry=retry, sleep=sleep, clock=clock)
        outcomes.append(outcome)
        on_outcome(outcome)
        if runs is not None and len(outcomes) >= runs:
            break
        now = clock()
        next_tick += period * max(1, math.ceil((now - next_tick) / period))
        sleep(max(0.0, next_tick - now))
    return outcomes


def parse_every(text: str) -> timedelta:
    """A schedule interval such as `90s`, `5m`, `1h` or `1d` (a bare number means seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"invalid interval {text!r}: use a positive number with s, m, h or d, e.g. 5m")
    unit = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


# --- 6. point-in-time retrieval at scale ----------------------------------------------

Retrieve = Callable[[FeatureStore, pd.DataFrame, "list[str] | FeatureService"], pd.DataFrame]


def historical_features_chunked(store: FeatureStore, entity_df: pd.DataFrame, features: list[str] | FeatureService,
                                chunk_rows: int = 50_000, progress: bool = True,
                                retrieve: Retrieve = historical_features) -> pd.DataFrame:
    """The same training frame as one `retrieve` call, fetched `chunk_rows` entity rows at a time."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    parts = []
    with tqdm(total=len(entity_df), unit="row", desc="historical features", disable=not progress) as bar:
        for start in range(0, len(entity_df), chunk_rows):
            chunk = entity_df.iloc[start:start + chunk_rows]
            parts.append(retrieve(store, chunk, features))
            bar.update(len(chunk))
    return normalize_frame(pd.concat(parts, ignore_index=True))


def _pg_type(column: str, dtype) -> str:
    """The PostgreSQL type of an entity-frame column."""
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        return "REAL" if dtype == "float32" else "DOUBLE PRECISION"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "TIMESTAMPTZ"
    if pd.api.types.is_string_dtype(dtype):
        return "TEXT"
    raise ValueError(f"entity_df column {column!r} has dtype {dtype}, which the tuned upload does not "
                     "handle; convert it to a number, bool, string or UTC timestamp")


def _entity_table_columns(entity_df: pd.DataFrame) -> str:
    """Column definitions of the uploaded entity table."""
    return ", ".join(f'"{c}" {_pg_type(c, t)}' for c, t in entity_df.dtypes.items())


def historical_features_tuned(store: FeatureStore, entity_df: pd.DataFrame,
                              features: list[str] | FeatureService) -> pd.DataFrame:
    """`serving.historical_features`, tuned for PostgreSQL (elsewhere, the plain call)."""
    # The entity frame is uploaded with COPY (Feast sends one INSERT per row); Feast builds its
    # point-in-time SQL over `SELECT * FROM` that table (entity_select_mode embed_query); the
    # query runs in a transaction whose planner settings (`PG_PIT_SETTINGS`) are SET LOCAL, so
    # they end with it (no `db_schema: "x -c enable_nestloop=off ..."` trick, no ALTER DATABASE).
    offline = store.config.offline_store
    if offline.type != "postgres":
        return historical_features(store, entity_df, features)
    if offline.entity_select_mode != EntitySelectMode.embed_query:
        raise ConfigError("historical_features_tuned needs entity_select_mode: embed_query (with temp_table "
                          "Feast drops the entity table before the query runs); load the store with "
                          "load_store(profile, tuned=True)")
    frame = entity_df.assign(**{TIMESTAMP_FIELD: pd.to_datetime(entity_df[TIMESTAMP_FIELD], utc=True)})
    table = f'"{offline.db_schema}"."entity_{uuid.uuid4().hex}"'
    with _get_conn(offline) as conn:
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(f"CREATE UNLOGGED TABLE {table} ({_entity_table_columns(frame)})")
                copy_rows(cur, table, frame)
                cur.execute(f"ANALYZE {table}")
            sql = store.get_historical_features(entity_df=f"SELECT * FROM {table}", features=features).to_sql()
            with conn.transaction(), conn.cursor() as cur:
                for name, value in PG_PIT_SETTINGS.items():
                    cur.execute("SELECT set_config(%s, %s, true)", (name, value))
                cur.execute(sql)
                result = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description])
        finally:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.commit()
    return normalize_frame(result)
