"""Checks of notebook 08 (beyond 2.7.3, real-time features): merging a late event, and the favourite genre."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from course_lib.checks.common import CheckFailed, answer, passed
from course_lib.messages import say

ARRIVAL_ORDERS = 200  # random arrival orders merge_watch_times is checked on


def _two_latest(times: list[int]) -> tuple[int, int | None]:
    """The newest and second newest of distinct times, computed by sorting."""
    ordered = sorted(times, reverse=True)
    return ordered[0], (ordered[1] if len(ordered) > 1 else None)


def merge_watch_times(fn: Callable[..., Any]) -> None:
    """Exercise 8.1: (latest, previous) after one more watch, whatever order the watches arrive in."""
    def merged(latest: int | None, previous: int | None, at: int) -> Any:
        got = answer(fn, "merge_watch_times", latest, previous, at)
        if not (isinstance(got, tuple) and len(got) == 2):
            raise CheckFailed(say("realtime_features.not_a_tuple", got=got))
        return got

    # The two situations learners get wrong, named first; then random arrival orders.
    for (latest, previous, at), want, hint in (
            ((5, None, 9), (9, 5), "realtime_features.hint_newer"),
            ((9, 2, 5), (9, 5), "realtime_features.hint_older"),
            ((9, 5, 2), (9, 5), "realtime_features.hint_oldest")):
        got = merged(latest, previous, at)
        if got != want:
            raise CheckFailed(say("realtime_features.merge_wrong", latest=latest, previous=previous, at=at, got=got,
                                  want=want, hint=say(hint)))
    rng = np.random.default_rng(8)
    for _ in range(ARRIVAL_ORDERS):
        times = [int(t) for t in rng.choice(10_000, int(rng.integers(1, 6)), replace=False)]
        state: tuple[Any, Any] = (None, None)
        for at in times:
            state = merged(*state, at)
        if state != _two_latest(times):
            raise CheckFailed(say("realtime_features.order_wrong", times=times, got=state, want=_two_latest(times)))
    passed("merge_watch_times", say("realtime_features.merge_passed", count=ARRIVAL_ORDERS))


def favorite_genre(fn: Callable[..., Any]) -> None:
    """Exercise 8.2: the most-watched genre from counts, ties to the alphabetically first, None without any."""
    rng = np.random.default_rng(9)
    genres = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]
    cases: list[dict[str, int]] = [{}, {"Drama": 2, "Comedy": 2}, {"Sci-Fi": 1}]
    cases += [{g: int(rng.integers(1, 4)) for g in rng.choice(genres, int(rng.integers(1, 6)), replace=False)}
              for _ in range(100)]
    for counts in cases:
        got = answer(fn, "favorite_genre", dict(counts))
        watched = pd.Series(counts, dtype="int64")
        want = None if watched.empty else sorted(watched[watched == watched.max()].index)[0]
        if got != want:
            hint = ("realtime_features.hint_none" if want is None else
                    "realtime_features.hint_ties" if counts.get(got) == counts[want] else
                    "realtime_features.hint_highest")
            raise CheckFailed(say("realtime_features.genre_wrong", counts=counts, got=got, want=want, hint=say(hint)))
    passed("favorite_genre", say("realtime_features.genre_passed", count=len(cases)))
