"""Checks of notebook 04 (2.7.4, monitoring): a request count from /metrics, and an incremental catch-up
materialization read back from the registry."""
from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore
from prometheus_client.parser import text_string_to_metric_families

from course_lib import compat
from course_lib.checks.common import (
    HOUR,
    INTERACTIONS,
    T0,
    TINY_KEYS,
    CheckFailed,
    answer,
    is_missing,
    passed,
    same_value,
    scratch_course,
    show,
    tiny_tables,
)
from course_lib.messages import say
from course_lib.monitoring import Metrics
from course_lib.serving import feature_refs
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS, build

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
        return say("monitoring.hint_absent")
    if same_value(got, _requests(text, endpoint, "200")):
        return say("monitoring.hint_status")
    if same_value(got, _requests(text, None)):
        return say("monitoring.hint_endpoint", endpoint=endpoint)
    return say("monitoring.hint_sum")


def request_count(fn: Callable[..., Any]) -> None:
    """Exercise 4.1: requests to one endpoint, read from a /metrics text."""
    text = metrics_text()
    endpoints = sorted({endpoint for endpoint, _ in REQUEST_MIX}) + [UNREQUESTED]
    for endpoint in endpoints:
        got = answer(fn, "request_count", text, endpoint)
        if not (got is None or isinstance(got, (int, float, np.number))):
            raise CheckFailed(say("common.not_a_number", function="request_count", type=type(got).__name__))
        want = _requests(text, endpoint)
        if not same_value(got, want):
            raise CheckFailed(say("monitoring.count_wrong", endpoint=endpoint, got=show(got), want=want,
                                  hint=_request_count_hint(text, endpoint, got)))
    passed("request_count", say("monitoring.count_passed", count=len(endpoints)))




Interval = tuple[pd.Timestamp, pd.Timestamp]
FIRST_RUN_END = T0 + HOUR  # the scratch pipeline's first run, before the learner's: catch_up continues from here
CATCH_UP_ENDS = (T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=3))  # between the tiny rows, then after both


@contextmanager
def _quiet() -> Iterator[None]:
    """Feast's materialization progress (stdout lines, tqdm bars on stderr) is not the check's output."""
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        yield


def _utc(value: Any) -> pd.Timestamp:
    """A datetime as a UTC Timestamp (a naive one is UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _recorded(store: FeatureStore) -> dict[str, list[Interval]]:
    """Every view's materialization intervals, read from the registry (not the store's cache), oldest end first."""
    recorded = compat.materialization_intervals(store, list(VIEWS))
    return {view: sorted(((_utc(a), _utc(b)) for a, b in intervals), key=lambda pair: pair[1])
            for view, intervals in recorded.items()}


def _judge_run(before: dict[str, list[Interval]], after: dict[str, list[Interval]], end: pd.Timestamp) -> None:
    """One catch_up call added, to every view, an interval from the previous end up to `end`."""
    for view in VIEWS:
        if len(after[view]) == len(before[view]):
            raise CheckFailed(say("monitoring.nothing_materialized", view=view))
        start, stop = after[view][-1]
        if stop != end:
            raise CheckFailed(say("monitoring.wrong_end", view=view, stop=show(stop), end=show(end)))
        if start != before[view][-1][1]:
            raise CheckFailed(say("monitoring.wrong_start", view=view, start=show(start),
                                  previous=show(before[view][-1][1])))


def _is_pair(value: Any) -> bool:
    """Whether a value is two datetimes, as a tuple or a list."""
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, datetime) for v in value)


def _interval_hint(pair: Any, intervals: list[Interval]) -> str:
    """The likely mistake behind a returned interval that is not the newest one."""
    if isinstance(pair, timedelta):
        return say("monitoring.hint_length")
    if not _is_pair(pair):
        return say("monitoring.hint_types")
    if (_utc(pair[0]), _utc(pair[1])) in intervals[:-1]:
        return say("monitoring.hint_older")
    return say("monitoring.hint_read_back")


def _judge_answer(got: Any, recorded: dict[str, list[Interval]]) -> None:
    """The learner's dict holds every view's newest recorded interval, as two datetimes."""
    if not isinstance(got, dict):
        raise CheckFailed(say("monitoring.not_a_dict", type=type(got).__name__))
    for view, intervals in recorded.items():
        if view not in got:
            raise CheckFailed(say("monitoring.view_missing", view=view))
        pair = got[view]
        if not (_is_pair(pair) and (_utc(pair[0]), _utc(pair[1])) == intervals[-1]):
            shown = f"({show(_utc(pair[0]))}, {show(_utc(pair[1]))})" if _is_pair(pair) else f"{pair!r:.80}"
            raise CheckFailed(say("monitoring.interval_wrong", view=view, shown=shown, start=show(intervals[-1][0]),
                                  end=show(intervals[-1][1]), hint=_interval_hint(pair, intervals)))


def _judge_online(store: FeatureStore, end: pd.Timestamp) -> None:
    """The online store holds every tiny table's newest row at or before `end`."""
    rows = TINY_KEYS[INTERACTIONS]  # every user and every movie of the tiny tables
    online = store.get_online_features(features=feature_refs(), entity_rows=rows).to_df()
    for view, table in tiny_tables().items():
        for i, row in enumerate(rows):
            keys = {k: v for k, v in row.items() if k in table.columns}
            match = table[np.logical_and.reduce([table[k] == v for k, v in keys.items()])
                          & (table[TIMESTAMP_FIELD] <= end)]
            for name in (f.name for f in VIEWS[view][2]):
                got, want = online.at[i, name], match.iloc[-1][name] if len(match) else None
                if not same_value(got, want):
                    raise CheckFailed(say("monitoring.online_wrong", name=name, got=show(got), keys=keys,
                                          end=show(end), want=show(want)))


def catch_up(fn: Callable[..., Any]) -> None:
    """Exercise 4.2: two incremental catch-up runs in a scratch project, judged from its registry and online store."""
    with scratch_course() as (scratch, profile):
        with _quiet():
            scratch.apply(build(profile).objects())
            scratch.materialize(start_date=(T0 - HOUR).to_pydatetime(), end_date=FIRST_RUN_END.to_pydatetime())
        before = _recorded(scratch)
        for end in CATCH_UP_ENDS:
            with _quiet():
                got = answer(fn, "catch_up", scratch, end.to_pydatetime())
            after = _recorded(scratch)
            _judge_run(before, after, end)
            _judge_answer(got, after)
            before = after
        _judge_online(scratch, CATCH_UP_ENDS[-1])
    passed("catch_up", say("monitoring.catch_up_passed", first=show(CATCH_UP_ENDS[0]), second=show(CATCH_UP_ENDS[1])))
