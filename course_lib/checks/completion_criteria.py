"""Checks of notebook 07 (완료 기준): availability outside outage windows, and recovery after an outage.

The right answers are computed here with plain loops over hand-made samples, independently of
`course_lib.soak` (whose own tests compare it with hand counts)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from course_lib.checks.common import CheckFailed, answer, passed, same_value, show
from course_lib.soak import Sample, Window

REDIS = Window("redis", 10.0, 15.0, (503,))
POSTGRES = Window("postgres", 30.0, 34.0, (200,))


def samples() -> list[Sample]:
    """Two requests a second for 40 s: 503s in the Redis outage, a flap after it, one straggler across its start."""
    out = []
    for i in range(80):
        sent = i / 2
        status = 503 if 10 <= sent < 15 or sent in (15.0, 16.0) else 200
        out.append(Sample("user_features", sent, sent + 0.004, status))
    out.append(Sample("recommendations", 9.9, 10.6, 503))  # sent before the outage, failed because of it
    out.append(Sample("recommendations", 36.0, 36.3, 0))  # no answer, in calm water after both outages
    return out


def _outside(sample: Sample, windows: list[Window]) -> bool:
    """In flight at no moment of any window."""
    return all(sample.done_s <= w.start_s or sample.sent_s >= w.end_s for w in windows)


def _availability(cases: list[Sample], windows: list[Window]) -> float:
    calm = [s for s in cases if _outside(s, windows)]
    return sum(s.status == 200 for s in calm) / len(calm)


def _availability_hint(got: Any, cases: list[Sample], windows: list[Window]) -> str:
    """The likely mistake behind a wrong availability."""
    if same_value(got, 100 * _availability(cases, windows)):
        return "return a share between 0 and 1, not a percentage"
    if same_value(got, sum(s.status == 200 for s in cases) / len(cases)):
        return "leave out the requests in flight during an outage window"
    sent_outside = [s for s in cases if not any(w.start_s <= s.sent_s < w.end_s for w in windows)]
    if same_value(got, sum(s.status == 200 for s in sent_outside) / len(sent_outside)):
        return "a request sent before a window and still running when it started is affected too"
    return "count the requests that overlap no window, and the share of them that answered 200"


def availability_outside(fn: Callable[..., Any]) -> None:
    """Exercise 7.1: the share of 200s among the requests in flight during no outage window."""
    cases, windows = samples(), [REDIS, POSTGRES]
    got = answer(fn, "availability_outside", list(cases), list(windows))
    if not isinstance(got, (int, float, np.number)):
        raise CheckFailed(f"availability_outside returned {type(got).__name__}; return one number")
    want = _availability(cases, windows)
    if not same_value(got, want):
        raise CheckFailed(f"you computed {show(got)}, expected {want:.4f}: " + _availability_hint(got, cases, windows))
    passed("availability_outside", f"{want:.2%} of the requests outside the two windows answered 200")


def _recovery(cases: list[Sample], end: float, until: float) -> float:
    after = sorted((s for s in cases if end <= s.sent_s < until), key=lambda s: s.sent_s)
    failures = [s.sent_s for s in after if s.status != 200]
    good = [s.done_s for s in after if s.status == 200 and (not failures or s.sent_s > failures[-1])]
    return min(good) - end


def _recovery_hint(got: Any, cases: list[Sample], end: float) -> str:
    """The likely mistake behind a wrong recovery time."""
    first_ok = min(s.done_s for s in cases if s.sent_s >= end and s.status == 200)
    if same_value(got, first_ok - end):
        return "the first success is not enough: recovery ends after the last failure that followed the outage"
    sent = min(s.sent_s for s in cases if s.sent_s > 16.0 and s.status == 200)
    if same_value(got, sent - end):
        return "measure until the answer came back (done_s), not when the request was sent"
    return "find the last failure after the window, then the first 200 after it; subtract the window's end"


def recovery_time(fn: Callable[..., Any]) -> None:
    """Exercise 7.2: seconds from an outage's end until the API answered 200 for good."""
    cases = samples()
    got = answer(fn, "recovery_time", list(cases), REDIS.end_s, POSTGRES.start_s)
    if not isinstance(got, (int, float, np.number)):
        raise CheckFailed(f"recovery_time returned {type(got).__name__}; return seconds as a number")
    want = _recovery(cases, REDIS.end_s, POSTGRES.start_s)
    if not same_value(got, want):
        raise CheckFailed(f"you computed {show(got)} s, expected {want:.3f} s: "
                          + _recovery_hint(got, cases, REDIS.end_s))
    passed("recovery_time", f"{want:.3f} s after the Redis outage, the flap at 15.5-16 s included")
