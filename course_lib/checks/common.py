"""What every exercise check shares: the failure type, calling the learner's function, comparing and showing values."""
from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureStore, FeatureView

from feature_repo.definitions import MOVIE_VIEW as MOVIES
from feature_repo.definitions import PAIR_VIEW as INTERACTIONS
from feature_repo.definitions import TIMESTAMP_FIELD
from feature_repo.definitions import USER_VIEW as USERS

__all__ = ["HOUR", "INTERACTIONS", "MOVIES", "T0", "USERS", "CheckFailed", "answer", "is_missing", "keep_going",
           "passed", "pit_expected", "registered_view", "same_value", "show"]

NOT_DONE = ("`{name}` is not written yet: it still raises NotImplementedError. Replace the "
            "`# YOUR CODE HERE` stub in the exercise cell with your code, run that cell, then this one.")
T0 = pd.Timestamp("2025-01-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)


class CheckFailed(AssertionError):
    """An exercise answer is wrong; the message says what differs and how to fix it."""


def answer(fn: Callable[..., Any], name: str, *args: Any) -> Any:
    """Call the learner's function; a stub or an exception becomes a CheckFailed naming it."""
    if not callable(fn):
        raise CheckFailed(f"expected your function `{name}`, got {fn!r}; run the exercise cell first")
    try:
        return fn(*args)
    except NotImplementedError:
        raise CheckFailed(NOT_DONE.format(name=name)) from None
    except Exception as exc:
        raise CheckFailed(f"your `{name}` raised {type(exc).__name__}: {exc}") from exc


@contextmanager
def keep_going(label: str) -> Iterator[None]:
    """Learner copies: a failing check prints its message and hint instead of stopping *Run All*."""
    try:
        yield
    except CheckFailed as failure:
        print(f"✗ Exercise {label} is not solved yet: {failure}\n  (Learner copy: the notebook goes on; no later "
              "cell uses your answer.)", file=sys.stderr)


def passed(name: str, detail: str) -> None:
    """Print the success line."""
    print(f"✓ {name}: {detail}")


def is_missing(value: Any) -> bool:
    """True for None, NaN, NaT and pandas NA."""
    return value is None or (not isinstance(value, (str, bytes)) and bool(pd.isna(value)))


def same_value(got: Any, want: Any) -> bool:
    """Equal values; both missing counts as equal, numbers are compared with a float32 tolerance."""
    if is_missing(got) or is_missing(want):
        return is_missing(got) and is_missing(want)
    if isinstance(want, (int, float, np.number)) and isinstance(got, (int, float, np.number)):
        return math.isclose(float(got), float(want), rel_tol=1e-5, abs_tol=1e-6)
    return got == want


def show(value: Any) -> str:
    """A value as the messages print it."""
    if is_missing(value):
        return "null"
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    if isinstance(value, timedelta):
        hours = value / timedelta(hours=1)
        number, unit = (hours / 24, "day") if hours % 24 == 0 else (hours, "hour")
        return f"{number:g} {unit}{'' if number == 1 else 's'}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return repr(value.item() if isinstance(value, np.generic) else value)


def registered_view(store: FeatureStore, name: str) -> FeatureView:
    """A feature view as the registry holds it, or a CheckFailed saying to apply first."""
    try:
        return store.get_feature_view(name)
    except Exception as exc:
        raise CheckFailed(f"the registry has no {name!r} ({type(exc).__name__}); register the course "
                          "definitions first (`course apply`, or run the notebook from the top)") from exc


def pit_expected(table: pd.DataFrame, keys: list[str], probe: dict[str, Any], ttl: timedelta) -> pd.Series | None:
    """The row a point-in-time join returns for one probe: newest at or before it, within the TTL."""
    ts = table[TIMESTAMP_FIELD]
    match = (ts <= probe[TIMESTAMP_FIELD]) & np.logical_and.reduce([table[k] == probe[k] for k in keys])
    if ttl:
        match &= ts >= probe[TIMESTAMP_FIELD] - ttl
    rows = table[match]
    return None if rows.empty else rows.loc[ts[match].idxmax()]
