"""Feature drift in the running API (notebook 09): entity features online against the model's training baseline.

What is compared, and why entities: the user and movie views' features, one row per entity. The baseline
is each entity's latest offline row at the end of the data the model was trained and evaluated on
(`Ranker.data_until`): the world as the model last saw it. Not its training cut-off (`trained_until`, the
start of the held-out part): counts such as total_movies_watched only grow, and against the cut-off the
clean default data already drifts (KS 0.1 on total_movies_watched, measured). The current window is the
online store now (movies from the API's near-cache, users read online in one batch). Both count every
entity once, so clean data is quiet.
Interaction features are left out on purpose: their distribution depends on which candidates a caller
asks about, so a shift there says more about traffic than about the features (the skew report covers them).
Users are those of the baseline (at most BASELINE_USERS, sampled with a fixed seed): a user who is new since
training has no baseline row to compare. New movies do count: the near-cache holds every movie.
`DriftWatch` runs a report every COURSE_DRIFT_INTERVAL_S seconds in its own thread and exports it as the
`course_feature_drift` and `course_feature_drifted` gauges (`monitoring.Metrics.record_drift`).
`report_now` computes the same report outside the API (notebook 09); `wait_for_gauge` reads a running API's gauges.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime

import httpx
import numpy as np
import pandas as pd
from feast import FeatureStore

from course_lib import ranker
from course_lib.caches import MovieNearCache
from course_lib.config import Profile
from course_lib.drift import default_features, drift_report
from course_lib.monitoring import Metrics, parse_metrics, sample_values
from course_lib.offline import read_offline
from course_lib.ranker import Ranker
from course_lib.refresher import Refresher
from course_lib.serving import EntityFeatures, Fetch, sdk_fetch
from feature_repo.definitions import MOVIE_VIEW, TIMESTAMP_FIELD, USER_VIEW, VIEWS, join_keys

DRIFT_VIEWS = (USER_VIEW, MOVIE_VIEW)
BASELINE_USERS = 5_000  # users read online per round at most


def drift_features() -> dict[str, str]:
    """The user and movie views' features with their kinds (numeric or categorical)."""
    names = {f.name for view in DRIFT_VIEWS for f in VIEWS[view][2]}
    return {name: kind for name, kind in default_features().items() if name in names}


def latest_rows(table: pd.DataFrame, view: str, at: datetime) -> pd.DataFrame:
    """Each entity's newest row at or before `at` (what a materialization up to `at` leaves online)."""
    times = pd.to_datetime(table[TIMESTAMP_FIELD], utc=True)
    kept = table[times <= pd.Timestamp(at)].assign(**{TIMESTAMP_FIELD: times})
    return (kept.sort_values(TIMESTAMP_FIELD, kind="stable").drop_duplicates(join_keys(view), keep="last")
            .sort_values(join_keys(view), ignore_index=True))


def baseline(profile: Profile, at: datetime) -> pd.DataFrame:
    """Every user's and movie's view features at `at`, one row per entity (the other view's columns NaN)."""
    tables = read_offline(profile, DRIFT_VIEWS)
    return pd.concat([latest_rows(tables[view], view, at) for view in DRIFT_VIEWS], ignore_index=True)


def entity_frame(rows: list[EntityFeatures]) -> pd.DataFrame:
    """Online rows of one view as a frame of their key and feature values (None where not found)."""
    return pd.DataFrame([{**row.key, **row.values} for row in rows])


def current(fetch: Fetch, movies: Mapping[int, EntityFeatures], users: list[int]) -> pd.DataFrame:
    """The online values now: every movie the near-cache holds and the given users."""
    found = [row[USER_VIEW] for row in fetch([USER_VIEW], [{"user_id": u} for u in users])] if users else []
    return pd.concat([entity_frame(found), entity_frame(list(movies.values()))], ignore_index=True)


def baseline_time(model: Ranker) -> datetime:
    """When the drift baseline stands: the newest row the model saw (its cut-off for a model saved before
    `data_until` existed)."""
    return (model.data_until if model.data_until is not None else model.trained_until).to_pydatetime()


class DriftWatch:
    """Computes a drift report on an interval and exports it; the baseline (entities at `baseline_at`, normally
    `baseline_time(ranker)`) is read from the offline store in the first round."""

    def __init__(self, profile: Profile, baseline_at: datetime, fetch: Fetch,
                 movies: Callable[[], Mapping[int, EntityFeatures]], metrics: Metrics) -> None:
        self._profile, self._baseline_at, self._fetch, self._movies = profile, baseline_at, fetch, movies
        self._metrics = metrics
        self._baseline: pd.DataFrame | None = None
        self._users: list[int] = []
        self.latest: pd.DataFrame | None = None
        self._refresher = Refresher("feature drift", self.run, profile.settings.drift_interval_s)

    def run(self) -> pd.DataFrame:
        """One report now: baseline (first time) against the online values; exported as gauges."""
        if self._baseline is None:
            self._baseline = baseline(self._profile, self._baseline_at)
            ids = self._baseline["user_id"].dropna().astype("int64").unique()
            rng = np.random.default_rng(0)
            self._users = sorted(int(u) for u in (rng.choice(ids, BASELINE_USERS, replace=False)
                                                 if len(ids) > BASELINE_USERS else ids))
        now = current(self._fetch, self._movies(), self._users)
        report = drift_report(self._baseline, now, drift_features())
        self._metrics.record_drift(report)
        self.latest = report
        return report

    def start(self) -> DriftWatch:
        """Report every COURSE_DRIFT_INTERVAL_S seconds in the background (the first report within one interval)."""
        self._refresher.start()
        return self

    def stop(self) -> None:
        """Stop reporting."""
        self._refresher.stop()


def report_now(profile: Profile, store: FeatureStore, metrics: Metrics | None = None) -> pd.DataFrame:
    """One report outside the API, as its watch computes it: the saved ranker's baseline against the online values
    now (every movie of the offline table and the baseline's users, read through the Feast SDK)."""
    movies = MovieNearCache(store, profile, check_every_s=None)
    movies.load()
    watch = DriftWatch(profile, baseline_time(ranker.load(profile)), sdk_fetch(store), lambda: movies.rows,
                       metrics or Metrics())
    return watch.run()


def drift_gauges(client: httpx.Client) -> dict[str, float]:
    """`course_feature_drifted` by feature from an API's `GET /metrics` (empty before its first drift report)."""
    frame = parse_metrics(client.get("/metrics").text)
    return {str(k): float(v) for k, v in sample_values(frame, "course_feature_drifted", ["feature"]).items()}


def wait_for_gauge(client: httpx.Client, feature: str, value: float, timeout_s: float = 30.0) -> dict[str, float]:
    """Poll an API's `GET /metrics` until `course_feature_drifted{feature}` equals `value`: every feature's gauge
    then, or as they are at the timeout."""
    deadline = time.monotonic() + timeout_s
    gauges = drift_gauges(client)
    while gauges.get(feature) != value and time.monotonic() < deadline:
        time.sleep(0.1)
        gauges = drift_gauges(client)
    return gauges
