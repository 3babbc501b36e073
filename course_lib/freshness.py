"""Freshness (2.7.4), measured, never simulated: how old each feature view's pipeline and data are.

The guide's `_get_last_materialization_time` returned `now - 30 minutes`; here
- *pipeline freshness* is now minus the materialization end the registry records;
- *data freshness* is now minus the newest event timestamp that online reads actually
  return for a sample of entities (the offline maximum only when no online value comes back).

Ages are never negative: a materialization end in the future gives age 0 and
`future_end=True` (Feast's own `feast_feature_freshness_seconds` goes negative there).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from feast import FeatureStore

from course_lib import serving
from course_lib.config import Profile
from course_lib.offline import offline_query, table_expr
from feature_repo.definitions import FEATURE_VIEWS, TIMESTAMP_FIELD, VIEWS, join_keys

Clock = Callable[[], datetime]
FRESHNESS_KINDS = ("pipeline", "data")
FRESHNESS_STATUSES = ("fresh", "stale", "never_materialized")
DATA_SOURCES = ("online",)
FRESHNESS_SAMPLE = 5  # entities per view whose online event timestamps are read
SCAN_PER_ENTITY = 20  # newest offline rows read per sampled entity (more only if they hold too few entities)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Freshness:
    """How old one feature view's pipeline or data is, measured at one instant."""

    feature_view: str
    kind: str  # "pipeline" or "data"
    status: str  # "fresh", "stale" or "never_materialized"
    age_seconds: float | None  # never negative; None when there is nothing to measure
    threshold_seconds: float
    timestamp: datetime | None  # materialization end (pipeline) or newest event timestamp (data)
    source: str  # "registry" (pipeline), "online" (data), "none" (nothing to measure)
    future_end: bool  # the timestamp lies after now: age clipped to 0
    detail: str


@dataclass(frozen=True)
class FreshnessReport:
    """Pipeline and data freshness of every feature view, measured at `checked_at`."""

    checked_at: datetime
    entries: list[Freshness]

    def get(self, view: str, kind: str) -> Freshness:
        """One view's pipeline or data freshness."""
        return next(e for e in self.entries if e.feature_view == view and e.kind == kind)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: {checked_at, views: {view: {pipeline: ..., data: ...}}}."""
        views: dict[str, dict[str, Any]] = {}
        for entry in self.entries:
            fields = asdict(entry)
            del fields["feature_view"], fields["kind"]
            fields["timestamp"] = entry.timestamp.isoformat() if entry.timestamp else None
            views.setdefault(entry.feature_view, {})[entry.kind] = fields
        return {"checked_at": self.checked_at.isoformat(), "views": views}


def stale_after(profile: Profile, view: str, kind: str) -> float:
    """Seconds after which a view's pipeline (COURSE_PIPELINE_STALE_S) or data (its TTL) is stale."""
    if kind == "data":
        return VIEWS[view][1].total_seconds()
    return profile.settings.pipeline_stale_s


def measure(view: str, kind: str, threshold: float, timestamp: datetime, now: datetime,
            source: str, detail: str) -> Freshness:
    """Age and status of one timestamp against a threshold; a future timestamp counts as age 0."""
    age = (now - timestamp).total_seconds()
    clipped = max(age, 0.0)
    return Freshness(view, kind, "fresh" if clipped <= threshold else "stale", clipped, threshold,
                     timestamp, source, age < 0, detail)


def unmeasured(view: str, kind: str, threshold: float, status: str, detail: str) -> Freshness:
    """An entry with no timestamp to measure (never materialized, or nothing stored)."""
    return Freshness(view, kind, status, None, threshold, None, "none", False, detail)


def newest_offline(profile: Profile, view: str, end: datetime, limit: int = FRESHNESS_SAMPLE
                   ) -> tuple[list[dict[str, int]], pd.Timestamp | None]:
    """The `limit` entities with the newest offline rows at or before `end`, and that newest time.

    Reads the newest rows first (`ORDER BY event_timestamp DESC ... LIMIT`, served by the tables'
    timestamp index on PostgreSQL) rather than grouping the whole table; an entity's first row in
    that order is its newest, so the first `limit` distinct entities are exactly the answer. The
    scan widens only if the newest rows belong to fewer entities than that.
    """
    keys = join_keys(view)
    ordered = ", ".join(keys)
    order = f"{TIMESTAMP_FIELD} DESC, {ordered}"
    aggregates = ", ".join(f"array_agg({k} ORDER BY {order})" for k in keys)
    scan = limit * SCAN_PER_ENTITY
    while True:
        sql = (f"SELECT {aggregates}, max({TIMESTAMP_FIELD}), count(*) FROM (SELECT {ordered}, {TIMESTAMP_FIELD} "
               f"FROM {table_expr(profile, view)} WHERE {TIMESTAMP_FIELD} <= ? ORDER BY {order} "
               f"LIMIT {int(scan)}) AS newest_rows")
        *columns, newest, scanned = offline_query(profile, sql, [end], bounded=True)
        entities = list(dict.fromkeys(zip(*columns))) if scanned else []
        if len(entities) >= limit or scanned < scan:
            break
        scan *= 4
    if newest is None:
        return [], None
    rows = [dict(zip(keys, (int(v) for v in values))) for values in entities[:limit]]
    return rows, pd.Timestamp(newest).tz_convert("UTC")


OfflineSample = tuple[list[dict[str, int]], pd.Timestamp | None]
Sampler = Callable[[Profile, str, datetime], OfflineSample]


class OfflineSamples:
    """`newest_offline` per view, kept until the view's materialization end moves (one per API observer).

    The sample only depends on the offline rows at or before the end, so a round that finds the
    same end reuses it: the API's 5-second rounds stopped querying the offline store (three
    PostgreSQL connections, or a duckdb scan of the parquet files) while nothing was materialized.
    Offline data rewritten without a new materialization keeps the old sample until the next one.
    """

    def __init__(self) -> None:
        self._kept: dict[str, tuple[datetime, OfflineSample]] = {}

    def __call__(self, profile: Profile, view: str, end: datetime) -> OfflineSample:
        """The view's sample at `end`: the kept one if `end` has not moved, else a fresh query."""
        kept = self._kept.get(view)
        if kept is None or kept[0] != end:
            kept = self._kept[view] = (end, newest_offline(profile, view, end))
        return kept[1]


def newest_online(store: FeatureStore, view: str, rows: list[dict[str, int]]) -> datetime | None:
    """The newest event timestamp online reads return for these entities (None: nothing found)."""
    if not rows:
        return None
    stamps = [ts for found in serving.online_rows(store, [view], rows)
              for ts in found[view].event_timestamps.values() if ts is not None]
    return max(stamps, default=None)


def data_freshness(store: FeatureStore, profile: Profile, view: str, end: datetime | None,
                   now: datetime, sample: Sampler | None = None) -> Freshness:
    """Now minus the newest event timestamp stored online for a sample of recent entities."""
    threshold = stale_after(profile, view, "data")
    if end is None:
        return unmeasured(view, "data", threshold, "never_materialized", "never materialized: nothing online")
    rows, offline_max = (sample or newest_offline)(profile, view, end)
    online = newest_online(store, view, rows)
    if online is not None:
        return measure(view, "data", threshold, online, now, "online",
                       f"newest event timestamp online reads returned for {len(rows)} sampled entities")
    if offline_max is not None:
        return unmeasured(view, "data", threshold, "stale",
                          f"nothing online for the {len(rows)} entities with the newest offline rows at or before "
                          f"the materialization end ({offline_max:%Y-%m-%d %H:%M} UTC): rows that arrived late "
                          "(before the last run's start) or an emptied online store; backfill the window with "
                          "store.materialize(start_date=..., end_date=...)")
    return unmeasured(view, "data", threshold, "stale", "no offline rows at or before the materialization end")


def pipeline_freshness(profile: Profile, view: str, end: datetime | None, now: datetime) -> Freshness:
    """Now minus the latest materialization end the registry records."""
    threshold = stale_after(profile, view, "pipeline")
    if end is None:
        return unmeasured(view, "pipeline", threshold, "never_materialized", "never materialized")
    return measure(view, "pipeline", threshold, end, now, "registry", "latest materialization end in the registry")


def freshness(store: FeatureStore, profile: Profile, now: Clock = utc_now,
              sample: Sampler | None = None) -> FreshnessReport:
    """Pipeline and data freshness of every feature view, read from the registry and the stores."""
    instant = now()
    entries = []
    for view, interval in serving.latest_intervals(store, list(FEATURE_VIEWS)).items():  # one uncached read
        end = interval[1] if interval else None
        entries += [pipeline_freshness(profile, view, end, instant),
                    data_freshness(store, profile, view, end, instant, sample)]
    return FreshnessReport(checked_at=instant, entries=entries)
