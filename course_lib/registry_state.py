"""What the API knows from the registry, held in memory and refreshed off the request path (2.7.3, 2.7.5).

A request needs three things that come from the registry:
- the newest materialization end: recommendations apply TTLs as of min(now, that end), as
  training does (`serving_moment`);
- the movie near-cache (`caches.MovieNearCache`), reloaded when the movie view's materialized
  interval moves;
- Feast's own registry cache, which the SDK read path (SQLite, Redis Cluster) and the online
  health probe use; the API's store never lets it expire by itself (`load_store(serving=True)`).

`RegistryState` holds all three, and one `refresher.Refresher` thread updates them every
COURSE_REGISTRY_REFRESH_S seconds, backing off while the registry fails. During a PostgreSQL
outage or hang, requests go on with the last known state; a movie reload that fails is not
recorded, so the next step retries it (issue 19).
"""
from __future__ import annotations

import time
from datetime import datetime

from feast import FeatureStore

from course_lib.caches import IntervalWatcher, MovieNearCache
from course_lib.config import Profile
from course_lib.freshness import Clock, utc_now
from course_lib.refresher import Refresher, RefreshStatus
from feature_repo.definitions import MOVIE_VIEW, VIEWS


class RegistryState:
    """The serving process's registry-derived state: newest materialization end, movie near-cache, Feast's cache."""

    def __init__(self, store: FeatureStore, profile: Profile, movies: MovieNearCache, now: Clock = utc_now) -> None:
        self._store, self._now, self.movies = store, now, movies
        self._watcher = IntervalWatcher(store, list(VIEWS), check_every_s=0)
        self._movies_loaded = False
        self._end: datetime | None = None
        self._cache_ttl_s = profile.settings.registry_cache_ttl  # 0: the learner keeps the registry cached for good
        self._cache_read_at = time.monotonic()
        self._refresher = Refresher("registry state", self.refresh, profile.settings.registry_refresh_s)

    @property
    def newest_end(self) -> datetime | None:
        """The newest materialization end of any course view, as last read (None: never materialized)."""
        return self._end

    def serving_moment(self) -> datetime:
        """The moment the online store is complete up to: min(now, newest materialization end), or now."""
        end, now = self._end, self._now()
        return min(now, end) if end else now

    def refresh(self) -> None:
        """One step: re-read every view's interval, reload the movies if theirs moved, Feast's cache when due.

        Raises when the registry, the offline store or the online store fails; what was not done is
        retried by the next step, and requests keep the previous state meanwhile.
        """
        current = self._watcher.read()
        ends = [interval[1] for interval in current.values() if interval]
        if not self._movies_loaded or MOVIE_VIEW in self._watcher.changed(current):
            self.movies.load()
            self._movies_loaded = True
        # Only after the movies: a request that sees the new end must see the movies as of it too (the skew
        # report caught responses pairing a new end with the old movie rows while the reload ran).
        self._end = max(ends) if ends else None
        self._watcher.record(current)  # only now: a failed reload above leaves the move to retry
        if self._cache_ttl_s and time.monotonic() - self._cache_read_at >= self._cache_ttl_s:
            self._store.refresh_registry()
            self._cache_read_at = time.monotonic()

    def start(self) -> RegistryState:
        """Refresh once now (a failure is logged and retried), then keep refreshing in the background."""
        self._refresher.run_once()
        self._refresher.start()
        return self

    def stop(self) -> None:
        """Stop the background refresh."""
        self._refresher.stop()

    def status(self) -> RefreshStatus:
        """When the state was last refreshed, and the current run of failures with its reason."""
        return self._refresher.status()
