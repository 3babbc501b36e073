"""Checks of notebook 04 (2.7.4, monitoring): a request count from /metrics, and pipeline freshness."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from prometheus_client.parser import text_string_to_metric_families

from course_lib import freshness
from course_lib.checks.common import HOUR, CheckFailed, answer, is_missing, passed, registered_view, same_value, show
from course_lib.config import Profile
from course_lib.monitoring import Metrics
from course_lib.serving import latest_interval
from feature_repo.definitions import VIEWS

# Request counts per (route template, status) behind the /metrics text check 4.1 parses.
REQUEST_MIX = {("/users/{user_id}/features", 200): 7, ("/users/{user_id}/features", 404): 2,
               ("/movies/{movie_id}/features", 200): 5, ("/recommendations", 200): 3, ("/recommendations", 422): 4}
UNREQUESTED = "/health"  # an endpoint with no requests: its count is 0


def metrics_text() -> str:
    """The /metrics exposition of a fresh monitoring.Metrics after the REQUEST_MIX requests."""
    metrics = Metrics()
    for (endpoint, status), count in REQUEST_MIX.items():
        for _ in range(count):
            metrics.observe_request(endpoint, status, 0.01)
    return metrics.render()[0].decode()


def _requests(text: str, endpoint: str | None, status: str | None = None) -> float:
    """course_requests_total summed over the samples matching an endpoint (None: any) and status."""
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "course_requests_total" and endpoint in (None, sample.labels["endpoint"])
               and status in (None, sample.labels["status"]))


def _request_count_hint(text: str, endpoint: str, got: Any) -> str:
    """The likely mistake behind a wrong request count."""
    if is_missing(got):
        return "an endpoint nobody called has no sample at all: its count is 0"
    if same_value(got, _requests(text, endpoint, "200")):
        return "count every status code (404, 422, ...), not only 200"
    if same_value(got, _requests(text, None)):
        return f"keep only the samples whose endpoint label is {endpoint!r}"
    return "sum the values of the course_requests_total samples with that endpoint label"


def request_count(fn: Callable[..., Any]) -> None:
    """Exercise 4.1: requests to one endpoint, read from a /metrics text."""
    text = metrics_text()
    endpoints = sorted({endpoint for endpoint, _ in REQUEST_MIX}) + [UNREQUESTED]
    for endpoint in endpoints:
        got = answer(fn, "request_count", text, endpoint)
        if not (got is None or isinstance(got, (int, float, np.number))):
            raise CheckFailed(f"request_count returned {type(got).__name__}; return one number")
        want = _requests(text, endpoint)
        if not same_value(got, want):
            raise CheckFailed(f"for {endpoint!r} you counted {show(got)} requests; the exposition holds "
                              f"{want:g} — " + _request_count_hint(text, endpoint, got))
    passed("request_count", f"matches prometheus_client's parse for all {len(endpoints)} endpoints")


def _pipeline_age_hint(start: datetime, end: datetime, oldest_end: datetime, now: datetime, got: Any) -> str:
    """The likely mistake behind a wrong pipeline age."""
    want = max((now - end).total_seconds(), 0.0)
    mistakes = [((now - end).total_seconds(), ("the recorded end lies after `now`: clip the age at 0 "
                                               "(max(age, 0.0)), as Feast's own gauge does not")),
                ((now - start).total_seconds(),
                 "measure from the interval's end (most_recent_end_time), not its start"),
                (max((now - oldest_end).total_seconds(), 0.0), "use the most recent interval, not the first one"),
                (want * 1000, "return seconds, not milliseconds"), (want / 60, "return seconds, not minutes")]
    for value, hint in mistakes:
        if not same_value(value, want) and same_value(got, value):
            return hint
    return "the age is now minus the view's most_recent_end_time, in seconds, never below 0"


def pipeline_age(fn: Callable[..., Any], store: FeatureStore, profile: Profile) -> None:
    """Exercise 4.2: pipeline freshness of each view from the registry, as course_lib.freshness measures it."""
    checked = 0
    for view in VIEWS:
        intervals = registered_view(store, view).materialization_intervals
        if not intervals:
            raise CheckFailed(f"{view} was never materialized; run the materialization cells first")
        interval = latest_interval(store, view)
        if interval is None:
            raise CheckFailed(f"{view} was never materialized; run the materialization cells first")
        start, end = interval
        oldest_end = min(interval[1] for interval in intervals)
        for now in (end + 90 * HOUR, end, end - HOUR):
            got = answer(fn, "pipeline_age", store, view, now)
            if isinstance(got, timedelta):
                raise CheckFailed("pipeline_age returned a timedelta; return seconds as a float (.total_seconds())")
            if not isinstance(got, (int, float, np.number)):
                raise CheckFailed(f"pipeline_age returned {type(got).__name__}; return one number of seconds")
            want = freshness.pipeline_freshness(profile, view, end, now).age_seconds
            if not same_value(got, want):
                raise CheckFailed(f"{view} at now={show(pd.Timestamp(now))}: your age is {show(got)} s; "
                                  f"course_lib.freshness measures {show(want)} s (end "
                                  f"{show(pd.Timestamp(end))}) — "
                                  + _pipeline_age_hint(start, end, oldest_end, now, got))
            checked += 1
    passed("pipeline_age", f"equals course_lib.freshness's pipeline freshness at all {checked} (view, now) points, "
                            "a materialization end in the future included")
