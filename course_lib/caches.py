"""Online caches (2.7.5): a bounded LRU of online rows, a near-cache of every movie, and the
recommendation read built on them.

Every cache returns exactly what the online store would (tests compare them with
`serving.online_rows`); entries of a view are dropped as soon as a registry poll
(`IntervalWatcher`) sees that view's materialized interval move.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from feast import FeatureStore
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily

from course_lib.config import Profile
from course_lib.offline import offline_query, table_expr
from course_lib.redis_reader import online_reader
from course_lib.serving import EntityFeatures, EntityRows, Fetch, Rows, latest_intervals, sdk_fetch
from feature_repo.definitions import MOVIE_VIEW, PAIR_VIEW, USER_VIEW, VIEWS, join_keys

Clock = Callable[[], float]


# --- watching the registry ------------------------------------------------------------

Interval = tuple[datetime, datetime]


class IntervalWatcher:
    """Polls the registry, at most every `check_every_s`, for views whose materialized interval moved.

    `due()` reads the intervals when a poll is due; `record()` makes them the ones later polls compare
    with. A caller whose reaction to a move can fail (a reload) records only after it succeeded, so
    the next poll sees the move again and retries.
    """

    def __init__(self, store: FeatureStore, views: list[str], check_every_s: float = 5.0,
                 clock: Clock = time.monotonic) -> None:
        self._store, self._views, self._every, self._clock = store, views, check_every_s, clock
        self._lock = threading.Lock()
        self._seen = self.read()
        self._due = clock() + check_every_s

    def read(self) -> dict[str, Interval | None]:
        """Each watched view's newest interval, read from the registry without its cache."""
        return latest_intervals(self._store, self._views)

    def due(self) -> dict[str, Interval | None] | None:
        """The intervals, read now if a poll is due; None if none is due or another thread polls now."""
        if self._clock() < self._due or not self._lock.acquire(blocking=False):
            return None
        try:
            now = self._clock()
            if now < self._due:
                return None
            self._due = now + self._every
            return self.read()
        finally:
            self._lock.release()

    def changed(self, current: dict[str, Interval | None]) -> list[str]:
        """Views whose interval in `current` differs from the recorded one."""
        return [view for view in self._views if current[view] != self._seen.get(view)]

    def record(self, current: dict[str, Interval | None]) -> None:
        """Make `current` the intervals later polls compare with."""
        self._seen = current

    def moved(self) -> list[str]:
        """Views whose interval moved since the last poll, recorded at once; [] if no poll is due."""
        current = self.due()
        if current is None:
            return []
        changed = self.changed(current)
        self.record(current)
        return changed


# --- a bounded online cache ----------------------------------------------------------

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


# --- a near-cache for movie metadata -------------------------------------------------

# Movie ids come from the offline table; values are read from the online store in batches,
# so lookups return exactly what an online read would.
class MovieNearCache:
    """Every movie's online metadata row in a dict: loaded whole, reloaded when the view's interval moves.

    With `check_every_s=None` the cache neither loads nor watches by itself: its owner calls
    `load()` (the API's `registry_state.RegistryState`, off the request path).
    """

    def __init__(self, store: FeatureStore, profile: Profile, fetch: Fetch | None = None,
                 batch_size: int = 1000, check_every_s: float | None = 5.0, clock: Clock = time.monotonic) -> None:
        self._profile, self._batch = profile, batch_size
        self._fetch = fetch or sdk_fetch(store)
        self._watcher = None if check_every_s is None else IntervalWatcher(store, [MOVIE_VIEW], check_every_s, clock)
        self._rows: dict[int, EntityFeatures] = {}
        self.loads = 0
        if self._watcher is not None:
            self.load()

    def __len__(self) -> int:
        """Number of movies held in memory."""
        return len(self._rows)

    @property
    def rows(self) -> Mapping[int, EntityFeatures]:
        """movie_id -> its online row, as last loaded (a reload swaps in a new mapping; treat it as read-only)."""
        return self._rows

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
                                              f"FROM {table_expr(self._profile, MOVIE_VIEW)}", [], bounded=True)
        rows = self._read([int(m) for m in ids or []])
        self._rows = rows  # one reference swap: readers see the old or the new dict, never a mix
        self.loads += 1
        return len(rows)

    def refresh_if_moved(self) -> bool:
        """Reload when a poll (at most every `check_every_s`) sees the view's interval moved.

        The new interval is recorded only after the reload succeeded: a failed reload raises and
        the next poll retries it, instead of serving the old rows until the next materialization.
        """
        if self._watcher is None:
            return False
        current = self._watcher.due()
        if current is None or not self._watcher.changed(current):
            return False
        self.load()
        self._watcher.record(current)
        return True

    def lookup(self, movie_ids: list[int]) -> list[EntityFeatures]:
        """Each movie's row from memory; ids not held are read from the online store. Never polls the registry."""
        rows = self._rows
        unknown = [m for m in dict.fromkeys(movie_ids) if m not in rows]
        extra = self._read(unknown) if unknown else {}
        return [rows[m] if m in rows else extra[m] for m in movie_ids]

    def get_many(self, movie_ids: list[int]) -> list[EntityFeatures]:
        """`lookup`, after reloading if the view's interval moved."""
        self.refresh_if_moved()
        return self.lookup(movie_ids)


# --- the optimized recommendation read ---------------------------------------------

class RecommendationFeatures:
    """A recommendation request's online read: movies from the near-cache, the rest in one round trip."""

    def __init__(self, store: FeatureStore, profile: Profile, fetch: Fetch | None = None,
                 movies: MovieNearCache | None = None) -> None:
        self.fetch = fetch or online_reader(store, profile)
        self.movies = movies or MovieNearCache(store, profile, fetch=self.fetch)

    def recommendation_features(self, user_id: int, movie_ids: list[int]) -> Rows:
        """Exactly what `serving.candidate_features(store, user_id, movie_ids)` returns."""
        rows = self.fetch([USER_VIEW, PAIR_VIEW], [{"user_id": user_id, "movie_id": m} for m in movie_ids])
        movies = self.movies.get_many(movie_ids)
        return [{USER_VIEW: row[USER_VIEW], MOVIE_VIEW: movie, PAIR_VIEW: row[PAIR_VIEW]}
                for row, movie in zip(rows, movies)]
