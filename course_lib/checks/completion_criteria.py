"""Checks of notebook 07 (완료 기준): availability outside outage windows, and recovery after an outage.

The right answers are computed here with plain loops over hand-made samples, independently of
`course_lib.soak` (whose own tests compare it with hand counts)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from course_lib.checks.common import CheckFailed, answer, passed, same_value, show
from course_lib.messages import say
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
        return say("completion_criteria.hint_percentage")
    if same_value(got, sum(s.status == 200 for s in cases) / len(cases)):
        return say("completion_criteria.hint_windows")
    sent_outside = [s for s in cases if not any(w.start_s <= s.sent_s < w.end_s for w in windows)]
    if same_value(got, sum(s.status == 200 for s in sent_outside) / len(sent_outside)):
        return say("completion_criteria.hint_straggler")
    return say("completion_criteria.hint_availability")


def availability_outside(fn: Callable[..., Any]) -> None:
    """Exercise 7.1: the share of 200s among the requests in flight during no outage window."""
    cases, windows = samples(), [REDIS, POSTGRES]
    got = answer(fn, "availability_outside", list(cases), list(windows))
    if not isinstance(got, (int, float, np.number)):
        raise CheckFailed(say("common.not_a_number", function="availability_outside", type=type(got).__name__))
    want = _availability(cases, windows)
    if not same_value(got, want):
        raise CheckFailed(say("completion_criteria.availability_wrong", got=show(got), want=want,
                              hint=_availability_hint(got, cases, windows)))
    passed("availability_outside", say("completion_criteria.availability_passed", share=want))


def _recovery(cases: list[Sample], end: float, until: float) -> float:
    after = sorted((s for s in cases if end <= s.sent_s < until), key=lambda s: s.sent_s)
    failures = [s.sent_s for s in after if s.status != 200]
    good = [s.done_s for s in after if s.status == 200 and (not failures or s.sent_s > failures[-1])]
    return min(good) - end


def _recovery_hint(got: Any, cases: list[Sample], end: float) -> str:
    """The likely mistake behind a wrong recovery time."""
    first_ok = min(s.done_s for s in cases if s.sent_s >= end and s.status == 200)
    if same_value(got, first_ok - end):
        return say("completion_criteria.hint_first_success")
    sent = min(s.sent_s for s in cases if s.sent_s > 16.0 and s.status == 200)
    if same_value(got, sent - end):
        return say("completion_criteria.hint_sent")
    return say("completion_criteria.hint_recovery")


def recovery_time(fn: Callable[..., Any]) -> None:
    """Exercise 7.2: seconds from an outage's end until the API answered 200 for good."""
    cases = samples()
    got = answer(fn, "recovery_time", list(cases), REDIS.end_s, POSTGRES.start_s)
    if not isinstance(got, (int, float, np.number)):
        raise CheckFailed(say("completion_criteria.recovery_not_number", type=type(got).__name__))
    want = _recovery(cases, REDIS.end_s, POSTGRES.start_s)
    if not same_value(got, want):
        raise CheckFailed(say("completion_criteria.recovery_wrong", got=show(got), want=want,
                              hint=_recovery_hint(got, cases, REDIS.end_s)))
    passed("recovery_time", say("completion_criteria.recovery_passed", seconds=want))
