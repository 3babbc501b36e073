"""Monitoring and observability (2.7.4): Prometheus metrics, measured freshness, health checks.

Nothing here is simulated. The guide's `_get_last_materialization_time` returned
`now - 30 minutes`; here every figure comes from the running system:
- *pipeline freshness* is now minus the materialization end the registry records;
- *data freshness* is now minus the newest event timestamp that online reads actually
  return for a sample of entities (the offline maximum only when no online value comes back);
- health checks do a real online read, list the registry's feature views and reach the
  offline store, each timed.

Ages are never negative: a materialization end in the future gives age 0 and
`future_end=True` (Feast's own `feast_feature_freshness_seconds` goes negative there).
Each `Metrics` owns its own `CollectorRegistry`, so several apps (and tests) never share counters.
"""
from __future__ import annotations

import bisect
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.errors import FeastObjectNotFoundException
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString
from sqlalchemy.exc import SQLAlchemyError

from course_lib import serving
from course_lib.adapter import offline_query, table_expr, join_keys
from course_lib.config import FEATURE_VIEWS, SCALEOUT, ConfigError, Profile
from course_lib.doctor import SERVICES_FIX, reason
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS

Clock = Callable[[], datetime]
LOG = logging.getLogger(__name__)

# feature_service label -> the entity_type label its reads use
FEATURE_SERVICES = {"user_profile": "user", "movie_metadata": "movie", "recommendation": "user_movie"}
ENTITY_TYPES = ("user", "movie", "user_movie")
FRESHNESS_KINDS = ("pipeline", "data")
FRESHNESS_STATUSES = ("fresh", "stale", "never_materialized")
DATA_SOURCES = ("online", "offline")
HEALTH_COMPONENTS = ("online_store", "registry", "offline_store")
FRESHNESS_SAMPLE = 5  # entities per view whose online event timestamps are read
HEALTH_PROBE_USER = 1  # any id works: the probe checks that a read round trip succeeds
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ENTITY_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(timezone.utc)


def ms_since(start: float) -> float:
    """Milliseconds since a `time.perf_counter()` reading."""
    return (time.perf_counter() - start) * 1000


# --- freshness ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Freshness:
    """How old one feature view's pipeline or data is, measured at one instant."""

    feature_view: str
    kind: str  # "pipeline" or "data"
    status: str  # "fresh", "stale" or "never_materialized"
    age_seconds: float | None  # never negative; None when there is nothing to measure
    threshold_seconds: float
    timestamp: datetime | None  # materialization end (pipeline) or newest event timestamp (data)
    source: str  # "registry" (pipeline), "online" or "offline" (data), "none"
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

    def as_dict(self) -> dict:
        """JSON-ready form: {checked_at, views: {view: {pipeline: ..., data: ...}}}."""
        views: dict[str, dict] = {}
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
    raw = profile.get("COURSE_PIPELINE_STALE_S")
    try:
        if float(raw) > 0:
            return float(raw)
    except ValueError:
        pass
    raise ConfigError(f"COURSE_PIPELINE_STALE_S={raw!r} must be a positive number of seconds, e.g. 3600")


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
    """The `limit` entities with the newest offline rows at or before `end`, and that newest time."""
    keys = join_keys(view)
    ordered = ", ".join(keys)
    aggregates = ", ".join(f"array_agg({k} ORDER BY newest DESC, {ordered})" for k in keys)
    sql = (f"SELECT {aggregates}, max(newest) FROM (SELECT {ordered}, max({TIMESTAMP_FIELD}) AS newest "
           f"FROM {table_expr(profile, view)} WHERE {TIMESTAMP_FIELD} <= ? GROUP BY {ordered} "
           f"ORDER BY newest DESC, {ordered} LIMIT {int(limit)}) AS newest_rows")
    *columns, newest = offline_query(profile, sql, [end])
    if newest is None:
        return [], None
    rows = [dict(zip(keys, (int(v) for v in values))) for values in zip(*columns)]
    return rows, pd.Timestamp(newest).tz_convert("UTC")


def newest_online(store: FeatureStore, view: str, rows: list[dict[str, int]]) -> datetime | None:
    """The newest event timestamp online reads return for these entities (None: nothing found)."""
    if not rows:
        return None
    stamps = [ts for found in serving.online_rows(store, [view], rows)
              for ts in found[view].event_timestamps.values() if ts is not None]
    return max(stamps, default=None)


def data_freshness(store: FeatureStore, profile: Profile, view: str, end: datetime | None,
                   now: datetime) -> Freshness:
    """Now minus the newest event timestamp stored online for a sample of recent entities."""
    threshold = stale_after(profile, view, "data")
    if end is None:
        return unmeasured(view, "data", threshold, "never_materialized", "never materialized: nothing online")
    sample, offline_max = newest_offline(profile, view, end)
    online = newest_online(store, view, sample)
    if online is not None:
        return measure(view, "data", threshold, online, now, "online",
                       f"newest event timestamp online reads returned for {len(sample)} sampled entities")
    if offline_max is not None:
        return measure(view, "data", threshold, offline_max.to_pydatetime(), now, "offline",
                       f"no online value for the {len(sample)} sampled entities; newest offline row "
                       "at or before the materialization end used instead")
    return unmeasured(view, "data", threshold, "stale", "no offline rows at or before the materialization end")


def pipeline_freshness(profile: Profile, view: str, end: datetime | None, now: datetime) -> Freshness:
    """Now minus the latest materialization end the registry records."""
    threshold = stale_after(profile, view, "pipeline")
    if end is None:
        return unmeasured(view, "pipeline", threshold, "never_materialized", "never materialized")
    return measure(view, "pipeline", threshold, end, now, "registry", "latest materialization end in the registry")


def freshness(store: FeatureStore, profile: Profile, now: Clock = utc_now) -> FreshnessReport:
    """Pipeline and data freshness of every feature view, read from the registry and the stores."""
    instant = now()
    entries = []
    for view in FEATURE_VIEWS:
        interval = serving.latest_interval(store, view)  # an uncached registry read
        end = interval[1] if interval else None
        entries += [pipeline_freshness(profile, view, end, instant),
                    data_freshness(store, profile, view, end, instant)]
    return FreshnessReport(checked_at=instant, entries=entries)


# --- health -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComponentHealth:
    """One component's check: did it work, what was seen, how long it took, how to fix it."""

    ok: bool
    detail: str
    latency_ms: float
    hint: str = ""


class ComponentError(RuntimeError):
    """A component answered but is not usable; carries its own fix."""

    def __init__(self, detail: str, hint: str) -> None:
        super().__init__(detail)
        self.hint = hint


def registry_location(profile: Profile) -> str:
    """Where the profile's registry lives, without credentials."""
    if profile.name == "local":
        return profile.feature_store_config()["registry"]["path"]
    s = profile.settings
    return f"PostgreSQL {s['FEAST_PG_HOST']}:{s['FEAST_PG_PORT']}/{profile.registry_database}"


def registry_hint(profile: Profile) -> str:
    """How to fix a registry that cannot be read."""
    if profile.name == "local":
        return f"run `course apply --profile local` (the registry file is {registry_location(profile)})"
    return (f"start PostgreSQL ({SERVICES_FIX}) or point FEAST_PG_HOST/FEAST_PG_PORT/FEAST_PG_USER/"
            f"FEAST_PG_PASSWORD at it; `course doctor --profile {profile.name}` checks the connection")


def online_store_hint(profile: Profile) -> str:
    """How to fix an online store that cannot be read."""
    if profile.name == "local":
        return (f"the SQLite online store under {profile.data_dir} could not be read: run "
                "`course apply --profile local` and `course materialize --profile local`")
    s = profile.settings
    if profile.name == SCALEOUT:
        return (f"the Redis Cluster {s['FEAST_REDIS_CLUSTER_NODES']} did not answer: start it with "
                "`make services-cluster` or point FEAST_REDIS_CLUSTER_NODES at it")
    return (f"Redis at {s['FEAST_REDIS_HOST']}:{s['FEAST_REDIS_PORT']} db={s['FEAST_REDIS_DB']} did not answer: "
            f"start it ({SERVICES_FIX}) or point FEAST_REDIS_HOST/FEAST_REDIS_PORT at it; the API reconnects "
            "by itself once Redis is back, no restart needed")


def offline_store_hint(profile: Profile) -> str:
    """How to fix an offline store that cannot be read."""
    if profile.offline_is_parquet:
        return f"write the parquet tables with `course data --profile {profile.name}` (folder {profile.data_dir})"
    return (f"start PostgreSQL ({SERVICES_FIX}) or point FEAST_PG_HOST/FEAST_PG_PORT at it; "
            f"`course data --profile {profile.name}` writes the tables into schema {profile.offline_schema}")


def probe(action: Callable[[], str], hint: str) -> ComponentHealth:
    """Run one check, timing it; any failure becomes a failed component with its reason and fix."""
    start = time.perf_counter()
    try:
        detail = action()
    except ComponentError as exc:
        return ComponentHealth(False, str(exc), ms_since(start), exc.hint)
    except Exception as exc:  # noqa: BLE001 - a failing component is reported, never raised
        return ComponentHealth(False, reason(exc), ms_since(start), hint)
    return ComponentHealth(True, detail, ms_since(start))


def read_online(store: FeatureStore, profile: Profile) -> str:
    """One real online read round trip; a read that fails on the registry says so."""
    try:
        found = serving.user_features(store, HEALTH_PROBE_USER)
    except FeastObjectNotFoundException as exc:
        raise ComponentError(f"the online read needs feature views the registry lacks: {reason(exc)}",
                             f"`course apply --profile {profile.name}`") from exc
    except SQLAlchemyError as exc:
        raise ComponentError(f"the online read could not load the registry: {reason(exc)}",
                             registry_hint(profile)) from exc
    return f"read user_id={HEALTH_PROBE_USER}: {found.status}"


def missing_views(store: FeatureStore, allow_cache: bool) -> list[str]:
    """Course feature views the registry does not list."""
    names = {view.name for view in store.list_feature_views(allow_cache=allow_cache)}
    return [view for view in FEATURE_VIEWS if view not in names]


def list_registry(store: FeatureStore, profile: Profile) -> str:
    """The registry (uncached) lists every course feature view."""
    missing = missing_views(store, allow_cache=False)
    where = registry_location(profile)
    if missing:
        raise ComponentError(f"{where} lacks feature views {missing}", f"`course apply --profile {profile.name}`")
    return f"{where} lists all {len(FEATURE_VIEWS)} course feature views"


def reach_offline(profile: Profile) -> str:
    """The offline tables exist: readable parquet files (local, scaleout) or tables in PostgreSQL (enterprise)."""
    if profile.offline_is_parquet:
        import pyarrow.parquet as pq

        rows = sum(pq.read_metadata(profile.offline_location(view)).num_rows for view in FEATURE_VIEWS)
        return f"{len(FEATURE_VIEWS)} parquet tables readable ({rows} rows)"
    import psycopg

    s = profile.settings
    with psycopg.connect(profile.pg_conninfo()) as conn:
        present = {row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [profile.offline_schema])}
    where = f"PostgreSQL {s['FEAST_PG_HOST']}:{s['FEAST_PG_PORT']}/{s['FEAST_OFFLINE_DB']} schema {profile.offline_schema}"
    missing = [view for view in FEATURE_VIEWS if view not in present]
    if missing:
        raise ComponentError(f"{where}: missing tables {missing}", offline_store_hint(profile))
    return f"{where}: {len(FEATURE_VIEWS)} tables present"


def health(store: FeatureStore, profile: Profile) -> tuple[bool, dict]:
    """Check the online store, the registry and the offline store; (all ok, JSON-ready report)."""
    components = {
        "online_store": probe(lambda: read_online(store, profile), online_store_hint(profile)),
        "registry": probe(lambda: list_registry(store, profile), registry_hint(profile)),
        "offline_store": probe(lambda: reach_offline(profile), offline_store_hint(profile)),
    }
    failed = [name for name, component in components.items() if not component.ok]
    return not failed, {"status": "unavailable" if failed else "ok", "profile": profile.name,
                        "project": profile.project, "failed": failed,
                        "components": {name: asdict(c) for name, c in components.items()}}


# --- metrics ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Family:
    """One exported metric family."""

    name: str
    kind: str  # "counter", "gauge" or "histogram"
    documentation: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()


FAMILIES = (
    Family("course_requests_total", "counter", "HTTP requests by route template and status code",
           ("endpoint", "status")),
    Family("course_request_duration_seconds", "histogram", "HTTP request latency by route template and status",
           ("endpoint", "status"), LATENCY_BUCKETS),
    Family("course_feature_retrieval_seconds", "histogram", "Online feature read latency",
           ("feature_service", "entity_type"), LATENCY_BUCKETS),
    Family("course_entities_per_request", "histogram", "Entities of one type whose features one request read",
           ("feature_service", "entity_type"), ENTITY_BUCKETS),
    Family("course_entities_not_found_total", "counter", "Requested entities with no online value",
           ("entity_type",)),
    Family("course_errors_total", "counter", "Errors by kind", ("kind",)),
    Family("course_pipeline_freshness_seconds", "gauge",
           "Now minus the latest materialization end in the registry (never negative)", ("feature_view",)),
    Family("course_data_freshness_seconds", "gauge",
           "Now minus the newest event timestamp stored online (source: online read or offline fallback)",
           ("feature_view", "source")),
    Family("course_freshness_threshold_seconds", "gauge", "Age above which a view counts as stale",
           ("feature_view", "kind")),
    Family("course_freshness_status", "gauge", "1 for the view's current freshness status, else 0",
           ("feature_view", "kind", "status")),
    Family("course_component_up", "gauge", "1 when the component's last health check passed", ("component",)),
    Family("course_component_check_seconds", "gauge", "Duration of the component's last health check",
           ("component",)),
)
# Every metric family the course exports; the ops artefacts may only name these.
METRIC_NAMES = tuple(family.name for family in FAMILIES)
FAMILY_TYPES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}

Labels = tuple[str, ...]


class Metrics:
    """The course API's Prometheus metrics: values held by this object, exposed through its own registry.

    Why not prometheus_client's Counter/Histogram/Gauge: importing Feast (`feast.metrics`)
    sets PROMETHEUS_MULTIPROC_DIR, which switches prometheus_client into multiprocess mode
    for the whole process. In that mode a metric's value lives in a per-process file keyed
    by metric name and labels, so two registries in one process silently share values.
    Keeping the values here and exporting them with a custom collector keeps every
    `Metrics` (one per app, one per test) independent.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, dict[Labels, float | list[float]]] = {f.name: {} for f in FAMILIES}
        self._families = {f.name: f for f in FAMILIES}
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def _labels(self, name: str, values: Iterable[object]) -> Labels:
        """Label values as strings, checked against the family's label names."""
        labels = tuple(str(v) for v in values)
        expected = self._families[name].labels
        if len(labels) != len(expected):
            raise ValueError(f"{name} takes labels {expected}, got {labels}")
        return labels

    def _inc(self, name: str, labels: Iterable[object], amount: float = 1.0) -> None:
        """Add to a counter series."""
        key = self._labels(name, labels)
        with self._lock:
            self._series[name][key] = self._series[name].get(key, 0.0) + amount

    def _set(self, name: str, labels: Iterable[object], value: float | None) -> None:
        """Set a gauge series, or drop it when there is no value to report."""
        key = self._labels(name, labels)
        with self._lock:
            if value is None:
                self._series[name].pop(key, None)
            else:
                self._series[name][key] = float(value)

    def _observe(self, name: str, labels: Iterable[object], value: float) -> None:
        """Add one observation to a histogram series: [count per bucket..., count above, sum]."""
        key = self._labels(name, labels)
        buckets = self._families[name].buckets
        with self._lock:
            state = self._series[name].setdefault(key, [0.0] * (len(buckets) + 2))
            state[bisect.bisect_left(buckets, value)] += 1
            state[-1] += value

    def collect(self) -> Iterator[Metric]:
        """Every family with its current samples (the registry calls this on each scrape)."""
        with self._lock:
            snapshot = {name: {k: list(v) if isinstance(v, list) else v for k, v in series.items()}
                        for name, series in self._series.items()}
        for family in FAMILIES:
            metric = FAMILY_TYPES[family.kind](family.name, family.documentation, labels=family.labels)
            for labels, value in snapshot[family.name].items():
                if family.kind == "histogram":
                    bounds = [floatToGoString(b) for b in family.buckets] + ["+Inf"]
                    cumulative = list(itertools.accumulate(value[:-1]))
                    metric.add_metric(labels, list(zip(bounds, cumulative)), value[-1])
                else:
                    metric.add_metric(labels, value)
            yield metric

    def observe_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency under its route template."""
        self._inc("course_requests_total", (endpoint, status))
        self._observe("course_request_duration_seconds", (endpoint, status), seconds)

    def observe_retrieval(self, feature_service: str, seconds: float) -> None:
        """Record one online read of a feature service (`FEATURE_SERVICES` names)."""
        self._observe("course_feature_retrieval_seconds", (feature_service, FEATURE_SERVICES[feature_service]),
                      seconds)

    def observe_entities(self, feature_service: str, entity_type: str, requested: int, not_found: int) -> None:
        """Record how many entities of one type a request read and how many had no online value."""
        if feature_service not in FEATURE_SERVICES or entity_type not in ENTITY_TYPES:
            raise ValueError(f"unknown feature_service/entity_type {feature_service!r}/{entity_type!r}: "
                             f"use {sorted(FEATURE_SERVICES)} and {ENTITY_TYPES}")
        self._observe("course_entities_per_request", (feature_service, entity_type), requested)
        self._inc("course_entities_not_found_total", (entity_type,), not_found)

    def count_error(self, kind: str) -> None:
        """Count one error of a kind (e.g. online_store_unavailable, invalid_request)."""
        self._inc("course_errors_total", (kind,))

    def record_freshness(self, report: FreshnessReport) -> None:
        """Set the freshness gauges from a measured report."""
        for e in report.entries:
            self._set("course_freshness_threshold_seconds", (e.feature_view, e.kind), e.threshold_seconds)
            for status in FRESHNESS_STATUSES:
                self._set("course_freshness_status", (e.feature_view, e.kind, status), int(status == e.status))
            if e.kind == "pipeline":
                self._set("course_pipeline_freshness_seconds", (e.feature_view,), e.age_seconds)
                continue
            for source in DATA_SOURCES:
                self._set("course_data_freshness_seconds", (e.feature_view, source),
                          e.age_seconds if source == e.source else None)

    def record_health(self, report: dict) -> None:
        """Set the component-up and check-duration gauges from a `health()` report."""
        for name, component in report["components"].items():
            self._set("course_component_up", (name,), int(component["ok"]))
            self._set("course_component_check_seconds", (name,), component["latency_ms"] / 1000)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this registry and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def parse_metrics(text: str) -> pd.DataFrame:
    """A Prometheus text exposition, parsed by prometheus_client: one row per sample
    (`name`, `value`, one column per label)."""
    records = [{"name": sample.name, "value": sample.value, **sample.labels}
               for family in text_string_to_metric_families(text) for sample in family.samples]
    return pd.DataFrame(records) if records else pd.DataFrame(columns=["name", "value"])


def sample_values(frame: pd.DataFrame, name: str, by: list[str]) -> pd.Series:
    """The values of one sample name from `parse_metrics`, summed by the given labels (empty if absent)."""
    rows = frame[frame["name"] == name]
    if not rows.empty:
        return rows.groupby(by)["value"].sum()
    empty = pd.MultiIndex.from_arrays([[]] * len(by), names=by) if len(by) > 1 else pd.Index([], name=by[0])
    return pd.Series(dtype=float, index=empty)


def histogram_quantile(q: float, cumulative: pd.Series) -> float:
    """PromQL's `histogram_quantile` for one series: `cumulative` maps each bucket's upper
    bound (`le`, +Inf last) to its cumulative count; linear interpolation inside the bucket."""
    bounds = [float(b) for b in cumulative.index]
    counts = cumulative.to_numpy(dtype=float)
    if not counts.size or counts[-1] == 0:
        return float("nan")
    rank = q * counts[-1]
    i = int(np.searchsorted(counts, rank, side="left"))
    if i == len(bounds) - 1:  # the +Inf bucket: the highest finite bound is the best answer
        return bounds[-2]
    lower, below = (0.0, 0.0) if i == 0 else (bounds[i - 1], counts[i - 1])
    return lower + (bounds[i] - lower) * (rank - below) / (counts[i] - below)


def refresh(metrics: Metrics, store: FeatureStore, profile: Profile, now: Clock = utc_now) -> bool:
    """Run the health checks, then measure freshness, updating the gauges (once per scrape).

    Returns whether every component is healthy. Freshness needs all three components, so
    while one is down it is not measured: that counts as a `freshness_check` error and the
    freshness gauges keep their last measured values.
    """
    ok, report = health(store, profile)
    metrics.record_health(report)
    if not ok:
        LOG.warning("freshness not measured: components %s failed (see GET /health)", report["failed"])
    else:
        try:
            metrics.record_freshness(freshness(store, profile, now))
            return True
        except Exception as exc:  # noqa: BLE001 - a scrape must still answer; the error counter records it
            LOG.warning("freshness not measured: %s", reason(exc))
    metrics.count_error("freshness_check")
    return ok

