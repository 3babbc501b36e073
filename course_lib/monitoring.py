"""Monitoring and observability (2.7.4): the course API's Prometheus metrics.

Every figure comes from the running system: requests and online reads are counted and timed
as they happen; `refresh` runs the health checks (`course_lib.health`) and measures freshness
(`course_lib.freshness`), which the API does in the background (`course_lib.observer`) so a
scrape only renders what is in memory. `parse_metrics`, `sample_values` and
`histogram_quantile` read an exposition back, as notebook 04 and the checks do.
Each `Metrics` owns its own `CollectorRegistry`, so several apps (and tests) never share counters.
"""
from __future__ import annotations

import bisect
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from course_lib.config import Profile
from course_lib.errors import reason
from course_lib.freshness import DATA_SOURCES, FRESHNESS_STATUSES, Clock, FreshnessReport, Sampler, freshness, utc_now
from course_lib.health import health

LOG = logging.getLogger(__name__)

# feature_service label -> the entity_type label its reads use
FEATURE_SERVICES = {"user_profile": "user", "movie_metadata": "movie", "recommendation": "user_movie"}
ENTITY_TYPES = ("user", "movie", "user_movie")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ENTITY_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
LAG_BUCKETS = (0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 3600.0, 86_400.0)


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
           "Now minus the newest event timestamp online reads return for the newest offline entities",
           ("feature_view", "source")),
    Family("course_freshness_threshold_seconds", "gauge", "Age above which a view counts as stale",
           ("feature_view", "kind")),
    Family("course_freshness_status", "gauge", "1 for the view's current freshness status, else 0",
           ("feature_view", "kind", "status")),
    Family("course_events_total", "counter", "Watch events by outcome of POST /events (accepted, duplicate, rejected)",
           ("outcome",)),
    Family("course_event_push_failures_total", "counter", "POST /events batches whose state read or push failed", ()),
    Family("course_event_online_seconds", "histogram", "POST /events: request received to every push done",
           (), LATENCY_BUCKETS),
    Family("course_event_lag_seconds", "histogram", "Event timestamp to its features online, per accepted event",
           (), LAG_BUCKETS),
    Family("course_component_up", "gauge", "1 when the component's last health check passed", ("component",)),
    Family("course_component_check_seconds", "gauge", "Duration of the component's last health check",
           ("component",)),
    Family("course_feature_drift", "gauge",
           "Drift of a feature's recent window from its training baseline (psi, ks, wasserstein/std)",
           ("feature", "statistic")),
    Family("course_feature_drifted", "gauge", "1 when the feature's last drift report flagged it, else 0",
           ("feature",)),
    Family("course_feature_log_records_total", "counter",
           "Recommendation responses by outcome in the served-feature log (written, dropped, failed)", ("outcome",)),
    Family("course_feature_log_queue_depth", "gauge", "Responses waiting in the served-feature log's queue", ()),
)
# Every metric family the course exports; the ops artefacts may only name these.
METRIC_NAMES = tuple(family.name for family in FAMILIES)
# course_feature_drift's statistic label -> the `course_lib.drift.drift_report` column it exports
DRIFT_STATISTICS = {"psi": "psi", "ks": "ks_statistic", "wasserstein": "wasserstein"}
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
        # counters and gauges: one value per label set; histograms: [count per bucket..., count above, sum]
        self._values: dict[str, dict[Labels, float]] = {f.name: {} for f in FAMILIES if f.kind != "histogram"}
        self._histograms: dict[str, dict[Labels, list[float]]] = {f.name: {} for f in FAMILIES if f.kind == "histogram"}
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
            self._values[name][key] = self._values[name].get(key, 0.0) + amount

    def _set(self, name: str, labels: Iterable[object], value: float | None) -> None:
        """Set a gauge series, or drop it when there is no value to report."""
        key = self._labels(name, labels)
        with self._lock:
            if value is None:
                self._values[name].pop(key, None)
            else:
                self._values[name][key] = float(value)

    def _observe(self, name: str, labels: Iterable[object], value: float) -> None:
        """Add one observation to a histogram series: [count per bucket..., count above, sum]."""
        key = self._labels(name, labels)
        buckets = self._families[name].buckets
        with self._lock:
            state = self._histograms[name].setdefault(key, [0.0] * (len(buckets) + 2))
            state[bisect.bisect_left(buckets, value)] += 1
            state[-1] += value

    def collect(self) -> Iterator[Metric]:
        """Every family with its current samples (the registry calls this on each scrape)."""
        with self._lock:
            values = {name: dict(series) for name, series in self._values.items()}
            histograms = {name: {k: list(v) for k, v in series.items()} for name, series in self._histograms.items()}
        for family in FAMILIES:
            metric = FAMILY_TYPES[family.kind](family.name, family.documentation, labels=family.labels)
            if family.kind == "histogram":
                bounds = [floatToGoString(b) for b in family.buckets] + ["+Inf"]
                for labels, state in histograms[family.name].items():
                    metric.add_metric(labels, list(zip(bounds, itertools.accumulate(state[:-1]))), state[-1])
            else:
                for labels, value in values[family.name].items():
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

    def observe_events(self, accepted: int, duplicates: int, seconds: float, lags_s: Iterable[float]) -> None:
        """Record one POST /events batch: outcomes, its online time and each accepted event's lag."""
        self._inc("course_events_total", ("accepted",), accepted)
        self._inc("course_events_total", ("duplicate",), duplicates)
        self._observe("course_event_online_seconds", (), seconds)
        for lag in lags_s:
            self._observe("course_event_lag_seconds", (), lag)

    def count_event_failure(self, events: int, rejected: bool) -> None:
        """Record a batch refused (invalid events) or failed (the state read or a push raised)."""
        if rejected:
            self._inc("course_events_total", ("rejected",), events)
        else:
            self._inc("course_event_push_failures_total", ())

    def count_feature_log(self, outcome: str, records: int, queued: int) -> None:
        """Count served-feature log records by outcome and set the queue depth seen at that moment."""
        self._inc("course_feature_log_records_total", (outcome,), records)
        self._set("course_feature_log_queue_depth", (), queued)

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

    def record_health(self, report: dict[str, Any]) -> None:
        """Set the component-up and check-duration gauges from a `health()` report."""
        for name, component in report["components"].items():
            self._set("course_component_up", (name,), int(component["ok"]))
            self._set("course_component_check_seconds", (name,), component["latency_ms"] / 1000)

    def record_drift(self, report: pd.DataFrame) -> None:
        """Replace the drift gauges with a `drift.drift_report`: one series per feature and statistic it
        measured (a categorical feature has no ks or wasserstein), and each feature's drifted flag."""
        drift: dict[Labels, float] = {}
        flags: dict[Labels, float] = {}
        for row in report.to_dict("records"):
            for statistic, column in DRIFT_STATISTICS.items():
                if pd.notna(row.get(column)):
                    drift[self._labels("course_feature_drift", (row["feature"], statistic))] = float(row[column])
            flags[self._labels("course_feature_drifted", (row["feature"],))] = float(bool(row["drifted"]))
        with self._lock:  # swapped whole: features absent from this report stop being exported
            self._values["course_feature_drift"], self._values["course_feature_drifted"] = drift, flags

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of this registry and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# --- the API's request middleware ----------------------------------------------------------------

def route_template(scope: Scope) -> str:
    """The matched route's path template (`/users/{user_id}/features`), or `unmatched`."""
    return getattr(scope.get("route"), "path", "unmatched")


class RequestMetrics:
    """ASGI middleware: count and time every request under its route template and status code.

    Plain ASGI rather than `@app.middleware("http")`, whose per-request task and stream
    plumbing cost more than a Redis read.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, noting the response status and the elapsed time."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            self.metrics.count_error("internal")
            status = 500
            raise
        finally:
            self.metrics.observe_request(route_template(scope), status, time.perf_counter() - start)


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


@dataclass(frozen=True)
class Observation:
    """One round of health checks and freshness measurement, as the API serves it from memory."""

    healthy: bool
    health: dict[str, Any]  # the `health()` report
    freshness: FreshnessReport | None  # None: not measured this round
    freshness_error: str | None  # why not


HealthCheck = Callable[[], tuple[bool, dict[str, Any]]]


def refresh(metrics: Metrics, store: FeatureStore, profile: Profile, now: Clock = utc_now,
            check: HealthCheck | None = None, sample: Sampler | None = None) -> Observation:
    """Run the health checks (`check`, default `health`), then measure freshness, updating the gauges.

    Freshness needs all three components, so while one is down it is not measured: that counts
    as a `freshness_check` error and the freshness gauges keep their last measured values.
    """
    healthy, report = check() if check else health(store, profile)
    metrics.record_health(report)
    if not healthy:
        error = f"components {report['failed']} failed (see GET /health)"
    else:
        try:
            measured = freshness(store, profile, now, sample)
            metrics.record_freshness(measured)
            return Observation(True, report, measured, None)
        except Exception as exc:  # noqa: BLE001 - the round still reports; the error counter records it
            error = reason(exc)
    LOG.warning("freshness not measured: %s", error)
    metrics.count_error("freshness_check")
    return Observation(healthy, report, None, error)
