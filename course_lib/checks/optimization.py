"""Checks of notebook 05 (2.7.5, optimization): cache invalidation, and latency percentiles."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from course_lib.checks.common import (
    HOUR,
    INTERACTIONS,
    MOVIES,
    T0,
    USERS,
    CheckFailed,
    answer,
    passed,
    same_value,
    show,
)

Ends = dict[str, Any]  # feature view -> its newest materialization end (None: never materialized)
# (situation, previous ends, current ends) for the cache invalidation rule.
_T = T0.to_pydatetime()
INVALIDATION_CASES: list[tuple[str, Ends, Ends]] = [
    ("nothing ran", {USERS: _T, MOVIES: _T}, {USERS: _T, MOVIES: _T}),
    ("one view materialized further", {USERS: _T, MOVIES: _T}, {USERS: _T + HOUR, MOVIES: _T}),
    ("a view materialized for the first time", {USERS: None, MOVIES: _T}, {USERS: _T, MOVIES: _T}),
    ("the registry was rebuilt with an earlier end", {USERS: _T + HOUR, MOVIES: _T}, {USERS: _T, MOVIES: _T}),
    ("a view was added to the registry", {USERS: _T}, {USERS: _T, INTERACTIONS: _T}),
    ("a view was removed from the registry", {USERS: _T, MOVIES: _T}, {USERS: _T}),
]


def _to_drop(previous: Ends, current: Ends) -> set[str]:
    """Views whose recorded end differs between two registry polls (absent counts as never materialized)."""
    return {view for view in previous.keys() | current.keys() if previous.get(view) != current.get(view)}


def _invalidation_hint(previous: Ends, current: Ends, got: set[str]) -> str:
    """The likely mistake behind a wrong set of views to drop."""
    want = _to_drop(previous, current)
    if got and got == (previous.keys() | current.keys()) - want:
        return "you returned the views that did *not* change; drop the ones whose end changed"
    missed = want - got
    if any(view not in previous or view not in current for view in missed):
        return "a view present in only one poll changed too: treat a missing view as never materialized (None)"
    if any(previous.get(view) is None for view in missed):
        return "a first materialization (None -> an end) also makes cached rows stale"
    if missed:
        return "any change of the end counts, also a move backwards: the cached rows no longer match the store"
    return "only views whose end changed must be dropped; the others keep their entries"


def views_to_invalidate(fn: Callable[..., Any]) -> None:
    """Exercise 5.1: which views' cache entries a registry poll must drop."""
    for situation, previous, current in INVALIDATION_CASES:
        got = answer(fn, "views_to_invalidate", dict(previous), dict(current))
        if isinstance(got, str) or not isinstance(got, (set, frozenset, list, tuple)):
            raise CheckFailed(f"views_to_invalidate returned {type(got).__name__}; return a set of view names")
        want = _to_drop(previous, current)
        if set(got) != want:
            raise CheckFailed(f"when {situation}, you drop {sorted(got)}; the cache must drop {sorted(want)} — "
                              + _invalidation_hint(previous, current, set(got)))
    passed("views_to_invalidate", f"the right views dropped in all {len(INVALIDATION_CASES)} situations")


def latency_cases() -> list[list[float]]:
    """Latency samples in ms: tiny hand-made lists and seeded long-tailed ones, in random order."""
    rng = np.random.default_rng(5)
    tails = [rng.lognormal(0.0, 0.6, n).round(4) for n in (101, 1000)]
    hand_made = [[4.0], [3.0, 1.0, 4.0, 2.0], [0.9, 1.1, 1.0, 25.0, 1.2, 0.8, 1.0, 1.3, 0.95, 1.05]]
    return hand_made + [t.tolist() for t in tails]


def _percentile_hint(samples: list[float], got: tuple[float, ...], want: tuple[float, ...]) -> str:
    """The likely mistake behind wrong percentiles."""
    values = np.asarray(samples)
    ordered = np.sort(values)
    mistakes = [(tuple(np.percentile(values, [0.5, 0.99])), ("np.percentile takes percents (50, 99); "
                                                            "np.quantile takes fractions (0.5, 0.99)")),
                ((values.mean(), want[1]), "p50 is the median, not the mean"),
                ((want[0], values.max()), "p99 is not the maximum: 1% of the samples lie above it"),
                (tuple(ordered[min(int(q * len(values)), len(values) - 1)] for q in (0.5, 0.99)),
                 "interpolate linearly between neighbouring samples (np.percentile's default)"),
                (tuple(values[min(int(q * len(values)), len(values) - 1)] for q in (0.5, 0.99)),
                 "sort the samples first")]
    for value, hint in mistakes:
        if not all(same_value(v, w) for v, w in zip(value, want)) and all(same_value(g, v) for g, v in zip(got, value)):
            return hint
    return "p50 and p99 are the 50th and 99th percentiles with linear interpolation"


def latency_percentiles(fn: Callable[..., Any]) -> None:
    """Exercise 5.2: p50 and p99 of latency samples, against numpy."""
    cases = latency_cases()
    for samples in cases:
        got = answer(fn, "latency_percentiles", list(samples))
        if not (isinstance(got, (tuple, list)) and len(got) == 2
                and all(isinstance(v, (int, float, np.number)) for v in got)):
            raise CheckFailed(f"latency_percentiles returned {got!r:.80}; return a pair of numbers (p50, p99)")
        want = tuple(float(v) for v in np.percentile(samples, [50, 99]))
        if not all(same_value(g, w) for g, w in zip(got, want)):
            shown = samples if len(samples) <= 10 else f"{len(samples)} samples"
            raise CheckFailed(f"for {shown} you computed p50={show(got[0])}, p99={show(got[1])} ms; numpy gives "
                              f"p50={show(want[0])}, p99={show(want[1])} ms — "
                              + _percentile_hint(samples, tuple(got), want))
    passed("latency_percentiles", f"equals np.percentile on all {len(cases)} sample sets")
