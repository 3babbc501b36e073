"""Health and freshness measured in the background and served from memory (2.7.4, issue 19).

`GET /health`, `GET /freshness` and `GET /metrics` used to run the health checks, an uncached
registry read and an offline query per view on every call, on new PostgreSQL connections: while
`course data` held its table locks, or PostgreSQL hung, those calls waited, Prometheus' scrape
timed out and blocked threads piled up. Now one `refresher.Refresher` thread runs
`monitoring.refresh` every COURSE_MONITOR_INTERVAL_S seconds: the checks side by side, each with
a deadline (`health.BoundedHealth`), and the PostgreSQL reads with statement and lock timeouts.
The endpoints answer from the latest `Observation`, in microseconds, whatever PostgreSQL does.
"""
from __future__ import annotations

from datetime import datetime

from feast import FeatureStore

from course_lib.config import Profile
from course_lib.freshness import Clock, OfflineSamples, utc_now
from course_lib.health import BoundedHealth
from course_lib.monitoring import Metrics, Observation, refresh
from course_lib.refresher import Refresher


class Observer:
    """Runs the health checks and the freshness measurement on an interval; keeps the latest result."""

    def __init__(self, store: FeatureStore, profile: Profile, metrics: Metrics, now: Clock = utc_now) -> None:
        self._store, self._profile, self._metrics, self._now = store, profile, metrics, now
        self._health = BoundedHealth(store, profile, profile.settings.health_timeout_s)
        self._samples = OfflineSamples()  # offline samples re-read only when a materialization end moves
        self._latest: tuple[datetime, Observation] | None = None
        self._refresher = Refresher("health and freshness", self._round, profile.settings.monitor_interval_s)

    def _round(self) -> None:
        """Check, measure, update the gauges and the latest observation (the refresher's step)."""
        started = utc_now()
        observation = refresh(self._metrics, self._store, self._profile, self._now, self._health, self._samples)
        self._latest = (started, observation)

    def observe(self) -> Observation:
        """One round now, in this thread, never at the same time as the background one; its observation."""
        self._refresher.run_once()
        return self.latest[1]

    @property
    def latest(self) -> tuple[datetime, Observation]:
        """When the latest round started, and its observation (`start` makes the first one)."""
        if self._latest is None:
            raise RuntimeError("Observer.start() makes the first observation; call it first")
        return self._latest

    def start(self) -> Observer:
        """Observe once now, then every interval in the background."""
        self.observe()
        self._refresher.start()
        return self

    def stop(self) -> None:
        """Stop observing; checks still running end on their own."""
        self._refresher.stop()
        self._health.close()
