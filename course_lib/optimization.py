"""Performance techniques of 2.7.5: online caches, a raw Redis reader, scheduled and tuned
materialization, and point-in-time retrieval at scale.

Every optimized path returns exactly what its plain counterpart in `course_lib.serving`
returns; the tests compare them on real stores.
"""
from __future__ import annotations

import fcntl
import io
import math
import re
import sqlite3
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Literal

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
import redis
import redis.asyncio
import sqlalchemy.exc
from feast import FeatureService, FeatureStore, ValueType
from feast import utils as feast_utils
from feast.infra.common.materialization_job import MaterializationJob, MaterializationJobStatus, MaterializationTask
from feast.infra.compute_engines.local.compute import LocalComputeEngine, LocalComputeEngineConfig
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.offline_stores import offline_utils
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.infra.offline_stores.offline_utils import FeatureViewQueryContext
from feast.infra.online_stores.redis import RedisOnlineStore, RedisType
from feast.infra.registry.base_registry import BaseRegistry
from feast.infra.utils.postgres.connection_utils import _get_conn
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type, pg_type_code_to_arrow
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from tqdm.auto import tqdm

from course_lib.adapter import join_keys, offline_query, table_expr
from course_lib.redis_format import BulkFeatureBuilder, key_builder, redis_field
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
        self._connection = {"host": nodes[0]["host"], "port": int(nodes[0]["port"]), **params}
        self._client = redis.Redis(**self._connection)
        self._async_client: redis.asyncio.Redis | None = None
        self._keys = {view: key_builder(view, store.project) for view in VIEWS}
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

    def _plan(self, views: list[str], entity_rows: EntityRows) -> tuple[list[dict], list[tuple], list[dict]]:
        """Each row's (view -> key tuple), the distinct (view, key tuple)s and their entity dicts."""
        names = {view: join_keys(view) for view in views}
        keys = [{view: tuple(row[k] for k in names[view]) for view in views} for row in entity_rows]
        unique = list(dict.fromkeys((view, key) for row_keys in keys for view, key in row_keys.items()))
        return keys, unique, [dict(zip(names[view], key)) for view, key in unique]

    def _queue(self, pipe: redis.client.Pipeline | redis.asyncio.client.Pipeline, unique: list[tuple],
               entities: list[dict]) -> None:
        """One HMGET per distinct entity on the pipeline."""
        for (view, _), entity in zip(unique, entities):
            pipe.hmget(self._keys[view](entity), self._fields[view])

    def _rows(self, keys: list[dict], unique: list[tuple], entities: list[dict], replies: list) -> Rows:
        """The pipeline's replies as `serving.online_rows` returns them."""
        decoded = {(view, key): self._decode(view, entity, reply)
                   for (view, key), entity, reply in zip(unique, entities, replies)}
        return [{view: decoded[(view, key)] for view, key in row_keys.items()} for row_keys in keys]

    def online_rows(self, views: list[str], entity_rows: EntityRows) -> Rows:
        """Same result as `serving.online_rows(store, views, entity_rows)`, in one round trip."""
        keys, unique, entities = self._plan(views, entity_rows)
        with self._client.pipeline(transaction=False) as pipe:
            self._queue(pipe, unique, entities)
            replies = pipe.execute()
        return self._rows(keys, unique, entities, replies)

    async def online_rows_async(self, views: list[str], entity_rows: EntityRows) -> Rows:
        """`online_rows` for an event loop (redis.asyncio, created on first use in the running loop)."""
        if self._async_client is None:
            self._async_client = redis.asyncio.Redis(**self._connection)
        keys, unique, entities = self._plan(views, entity_rows)
        async with self._async_client.pipeline(transaction=False) as pipe:
            self._queue(pipe, unique, entities)
            replies = await pipe.execute()
        return self._rows(keys, unique, entities, replies)


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
    """Feast's local compute engine: each feature view in its own thread, online rows written in bulk.

    On a standalone Redis with `skip_dedup` (Feast's write is then a blind HSET per entity),
    `redis_format.RedisBulkOutputNode` encodes whole columns into one RESP stream instead of
    Feast's per-row protobuf objects; elsewhere Feast's own output node writes, unchanged.
    """

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

    def _materialize_one(self, registry: BaseRegistry, task: MaterializationTask, **kwargs) -> LocalMaterializationJob:
        """Feast's `_materialize_one`, with `BulkFeatureBuilder` in place of its hard-coded plan builder."""
        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        context = self.get_execution_context(registry, task)
        try:
            BulkFeatureBuilder(registry, task, backend=self._get_backend(context)).build().execute(context)
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)
        except Exception as exc:  # noqa: BLE001 - reported in the job, as Feast's engine does
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.ERROR, error=exc)


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
    """The PostgreSQL type Feast's own upload gives an entity-frame column (floats become DOUBLE PRECISION)."""
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(dtype):
        return "DOUBLE PRECISION"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "TIMESTAMPTZ"
    if pd.api.types.is_string_dtype(dtype):
        return "TEXT"
    raise ValueError(f"entity_df column {column!r} has dtype {dtype}, which the tuned upload does not "
                     "handle; convert it to a number, bool, string or UTC timestamp")


def _entity_table_columns(entity_df: pd.DataFrame) -> str:
    """Column definitions of the uploaded entity table."""
    return ", ".join(f'"{c}" {_pg_type(c, t)}' for c, t in entity_df.dtypes.items())


def _query_contexts(store: FeatureStore, features: list[str] | FeatureService,
                    entity_df: pd.DataFrame) -> list[FeatureViewQueryContext]:
    """Feast's per-view query contexts (source, join keys, TTL, timestamps, features), resolved as
    `FeatureStore.get_historical_features` resolves them; refuses what the tuned SQL does not cover."""
    registry, project = store.registry, store.project
    refs = feast_utils._get_features(registry, project, features, allow_cache=True)
    views, on_demand = feast_utils._get_feature_views_to_use(registry, project, features)
    if on_demand:
        raise ValueError(f"historical_features_tuned does not compute on-demand feature views "
                          f"({', '.join(v.name for v in on_demand)}); use serving.historical_features")
    grouped, _ = feast_utils._group_feature_refs(refs, views, [])
    feast_utils._validate_feature_refs(refs)
    views = [view for view, _ in grouped]
    for view in views:
        if not isinstance(view.batch_source, PostgreSQLSource):
            raise ValueError(f"feature view {view.name!r} reads a {type(view.batch_source).__name__}; "
                              "historical_features_tuned only joins PostgreSQL sources")
    missing = (offline_utils.get_expected_join_keys(project, views, registry) | {TIMESTAMP_FIELD}) - set(entity_df)
    if missing:
        raise ValueError(f"entity_df lacks the column(s) {sorted(missing)}: it needs {TIMESTAMP_FIELD!r} and "
                         "every join key of the requested feature views")
    timestamps = pd.to_datetime(entity_df[TIMESTAMP_FIELD], utc=True)
    contexts = offline_utils.get_feature_view_query_context(refs, views, registry, project,
                                                            (timestamps.min(), timestamps.max()))
    clash = set(entity_df) & {view.field_mapping.get(f, f) for view in contexts for f in view.features}
    if clash:
        raise ValueError(f"entity_df columns {sorted(clash)} have the names of requested features "
                         "(Feast's query fails on them too); rename those columns")
    return contexts


def _source_columns(view: FeatureViewQueryContext) -> list[str]:
    """The source-table columns holding a view's join keys, in `view.entities` order."""
    return [selection.partition(" AS ")[0] for selection in view.entity_selections]


def _unique_in_time(cursor, view: FeatureViewQueryContext) -> bool:
    """Whether a unique index proves (join keys, event timestamp) unique in the view's source table.

    Then no two rows can tie for an entity row, and a plain LIMIT 1 (one heap fetch) returns what
    WITH TIES would. Feast renders a query source as "(query)": nothing to look up.
    """
    if view.table_subquery.startswith("("):
        return False
    cursor.execute("SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a "
                   "ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) "
                   "WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indisvalid "
                   "AND i.indpred IS NULL AND i.indexprs IS NULL GROUP BY i.indexrelid", [view.table_subquery])
    allowed = {*_source_columns(view), view.timestamp_field}
    return any(set(columns) <= allowed for (columns,) in cursor.fetchall())


def _lateral_join(view: FeatureViewQueryContext, alias: str, unique: bool) -> str:
    """One view's point-in-time row for each entity row `e`, as Feast's template picks it.

    Feast keeps the source rows with `ts - ttl <= event_timestamp <= ts` (TTL in whole seconds,
    none when 0) and the same join keys, then every row tied at the newest event timestamp (and,
    with a created-timestamp column, at the newest non-null created timestamp among those): ties
    repeat the entity row, as Feast's rejoin does. An index on (join keys, event_timestamp) turns
    this into one short backward index scan per entity row.
    """
    event_ts, entity_ts = f'sub."{view.timestamp_field}"', f'e."{TIMESTAMP_FIELD}"'
    where = [f'sub."{column}" = e."{key}"' for column, key in zip(_source_columns(view), view.entities)]
    where.append(f"{event_ts} <= {entity_ts}")
    if view.ttl:
        where.append(f"{event_ts} >= {entity_ts} - {view.ttl} * interval '1' second")
    order = [f"{event_ts} DESC"]
    if view.created_timestamp_column:
        created = f'sub."{view.created_timestamp_column}"'
        where.append(f"{created} IS NOT NULL")  # Feast's MAX(created) rejoin never matches a NULL
        order.append(f"{created} DESC")
    columns = ", ".join(f'sub."{f}" AS "{view.field_mapping.get(f, f)}"' for f in view.features)
    return (f"LEFT JOIN LATERAL (SELECT {columns} FROM {view.table_subquery} AS sub "
            f"WHERE {' AND '.join(where)} ORDER BY {', '.join(order)} "
            f"{'LIMIT 1' if unique else 'FETCH FIRST 1 ROWS WITH TIES'}) AS {alias} ON true")


def point_in_time_sql(views: list[FeatureViewQueryContext], entity_table: str, entity_columns: list[str],
                      unique: list[bool]) -> str:
    """The point-in-time join of `entity_table` with every view: Feast's output columns, one LATERAL
    per view (`unique[i]`: view i's source cannot hold ties).

    Entity rows are visited in join-key order, so consecutive index lookups touch neighbouring pages.
    """
    keys = list(dict.fromkeys(key for view in views for key in view.entities))
    order = ", ".join(f'"{c}"' for c in [*keys, TIMESTAMP_FIELD])
    selected = [f'e."{c}"' for c in entity_columns]
    selected += [f'f{i}."{view.field_mapping.get(f, f)}"' for i, view in enumerate(views) for f in view.features]
    joins = "\n".join(_lateral_join(view, f"f{i}", once) for i, (view, once) in enumerate(zip(views, unique)))
    return f"SELECT {', '.join(selected)}\nFROM (SELECT * FROM {entity_table} ORDER BY {order}) AS e\n{joins}"


def _copy_in(cursor, table: str, frame: pd.DataFrame) -> None:
    """COPY a frame into a table, written as CSV by Arrow (quoted empty strings stay strings)."""
    buffer = pa.BufferOutputStream()
    pa_csv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer,
                     pa_csv.WriteOptions(include_header=False))
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write(buffer.getvalue())


def _arrow_types(cursor, sql: str) -> dict[str, pa.DataType]:
    """Each result column's Arrow type as Feast's PostgreSQL job reads it, or an error for types CSV cannot carry."""
    cursor.execute(f"SELECT * FROM ({sql}) AS q LIMIT 0")
    types = {}
    for column in cursor.description:
        arrow = pg_type_code_to_arrow(column.type_code)
        if not (pa.types.is_boolean(arrow) or pa.types.is_integer(arrow) or pa.types.is_floating(arrow)
                or pa.types.is_string(arrow) or pa.types.is_timestamp(arrow)):
            raise ValueError(f"column {column.name!r} has PostgreSQL type oid {column.type_code} (Arrow {arrow}); "
                              "historical_features_tuned reads scalar columns only, use serving.historical_features")
        types[column.name] = arrow
    return types


def _copy_out(cursor, sql: str) -> pd.DataFrame:
    """A query's rows via COPY TO CSV, parsed by Arrow into the types Feast's job gives them."""
    types = _arrow_types(cursor, sql)
    buffer = io.BytesIO()
    with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
        for block in copy:
            buffer.write(block)
    buffer.seek(0)
    # Timestamps arrive as text with a UTC offset; Feast's job holds them as naive UTC.
    parse = {name: pa.timestamp("us", "UTC") if pa.types.is_timestamp(t) else t for name, t in types.items()}
    table = pa_csv.read_csv(buffer, read_options=pa_csv.ReadOptions(column_names=list(types)),
                            convert_options=pa_csv.ConvertOptions(
                                column_types=parse, true_values=["t"], false_values=["f"],
                                strings_can_be_null=True, quoted_strings_can_be_null=False))
    return table.cast(pa.schema(types.items())).to_pandas()


def historical_features_tuned(store: FeatureStore, entity_df: pd.DataFrame,
                              features: list[str] | FeatureService) -> pd.DataFrame:
    """`serving.historical_features`, tuned for PostgreSQL (elsewhere, the plain call).

    Feast's point-in-time semantics, by other means: the entity frame is COPYed (Feast sends one
    INSERT per row) into a temporary table that ends with the transaction; each view is joined
    with a LATERAL lookup (`point_in_time_sql`) whose cost grows with entity rows only, where
    Feast's query range-joins every source row in the frame's time span; the result comes back
    through COPY. Session settings (`PG_PIT_SETTINGS`) are SET LOCAL to the transaction.
    Fast only over an index on (join keys, event timestamp): `adapter.write_offline` creates one.
    One deliberate difference: Feast 0.67 joins rows on ids that concatenate keys and time without
    a separator, so entity rows (1, 23) and (12, 3) at the same time get the same features; here
    each row gets its own.
    """
    offline = store.config.offline_store
    if offline.type != "postgres":
        return historical_features(store, entity_df, features)
    views = _query_contexts(store, features, entity_df)
    # Feast's upload truncates timestamps to microseconds (PostgreSQL would round them).
    timestamps = pd.to_datetime(entity_df[TIMESTAMP_FIELD], utc=True).dt.floor("us")
    frame = entity_df.assign(**{TIMESTAMP_FIELD: timestamps})
    table = f"entity_{uuid.uuid4().hex}"
    with _get_conn(offline) as conn, conn.transaction(), conn.cursor() as cur:
        for name, value in PG_PIT_SETTINGS.items():
            cur.execute("SELECT set_config(%s, %s, true)", (name, value))
        cur.execute(f"CREATE TEMPORARY TABLE {table} ({_entity_table_columns(frame)}) ON COMMIT DROP")
        _copy_in(cur, table, frame)
        unique = [_unique_in_time(cur, view) for view in views]
        result = _copy_out(cur, point_in_time_sql(views, table, list(frame.columns), unique))
    return normalize_frame(result)
