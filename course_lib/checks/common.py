"""What every exercise check shares: the failure type, calling the learner's function, comparing and showing
values, a store that records the learner's feature reads, and a throwaway store with tiny feature tables."""
from __future__ import annotations

import inspect
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from feast import FeatureService, FeatureStore, FeatureView

from course_lib import registry_view
from course_lib.adapter import conform
from course_lib.config import Profile, resolve_profile
from course_lib.messages import say
from feature_repo.definitions import MOVIE_VIEW as MOVIES
from feature_repo.definitions import PAIR_VIEW as INTERACTIONS
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS
from feature_repo.definitions import USER_VIEW as USERS

__all__ = ["HOUR", "INTERACTIONS", "MOVIES", "T0", "TINY_KEYS", "TINY_TIMES", "USERS", "CheckFailed", "Read",
           "RecordingStore", "answer", "is_missing", "keep_going", "passed", "pit_expected", "registered_view",
           "same_value", "scratch_course", "show", "through_service", "tiny_tables"]

T0 = pd.Timestamp("2025-01-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)
# Tiny feature tables for a scratch store: every key has a row at T0 and at T0 + 2 days.
TINY_KEYS: dict[str, list[dict[str, int]]] = {
    USERS: [{"user_id": 1}, {"user_id": 2}],
    MOVIES: [{"movie_id": 10}, {"movie_id": 11}],
    INTERACTIONS: [{"user_id": 1, "movie_id": 10}, {"user_id": 1, "movie_id": 11}, {"user_id": 2, "movie_id": 10}],
}
TINY_TIMES = (T0, T0 + pd.Timedelta(days=2))


class CheckFailed(AssertionError):
    """An exercise answer is wrong; the message says what differs and how to fix it."""


def answer(fn: Callable[..., Any], name: str, *args: Any) -> Any:
    """Call the learner's function; a stub or an exception becomes a CheckFailed naming it."""
    if not callable(fn):
        raise CheckFailed(say("common.not_a_function", name=name, got=fn))
    try:
        return fn(*args)
    except NotImplementedError:
        raise CheckFailed(say("common.not_done", name=name)) from None
    except Exception as exc:
        raise CheckFailed(say("common.raised", name=name, error=type(exc).__name__, detail=exc)) from exc


@contextmanager
def keep_going(label: str) -> Iterator[None]:
    """Learner copies: a failing check prints its message and hint instead of stopping *Run All*."""
    try:
        yield
    except CheckFailed as failure:
        print(say("common.not_solved", label=label, failure=failure), file=sys.stderr)


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
        if hours % 24 == 0:
            return say("common.day" if hours == 24 else "common.days", number=f"{hours / 24:g}")
        return say("common.hour" if hours == 1 else "common.hours", number=f"{hours:g}")
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return repr(value.item() if isinstance(value, np.generic) else value)


def registered_view(store: FeatureStore, name: str) -> FeatureView:
    """A feature view as the registry holds it, or a CheckFailed saying to apply first."""
    try:
        return store.get_feature_view(name)
    except Exception as exc:
        raise CheckFailed(say("common.not_registered", name=name, error=type(exc).__name__)) from exc


def pit_expected(table: pd.DataFrame, keys: list[str], probe: dict[str, Any], ttl: timedelta) -> pd.Series | None:
    """The row a point-in-time join returns for one probe: newest at or before it, within the TTL."""
    ts = table[TIMESTAMP_FIELD]
    match = (ts <= probe[TIMESTAMP_FIELD]) & np.logical_and.reduce([table[k] == probe[k] for k in keys])
    if ttl:
        match &= ts >= probe[TIMESTAMP_FIELD] - ttl
    rows = table[match]
    return None if rows.empty else rows.loc[ts[match].idxmax()]


def _sample_value(dtype_name: str, i: int) -> Any:
    """A distinct value of a Feast dtype for row i."""
    return {"Int64": i + 1, "Float32": i + 0.5, "String": f"value {i}"}[dtype_name]


def tiny_tables() -> dict[str, pd.DataFrame]:
    """The scratch store's feature tables: distinct values for every key at both TINY_TIMES."""
    tables = {}
    for view, keys in TINY_KEYS.items():
        rows = [{**key, TIMESTAMP_FIELD: ts} for ts in TINY_TIMES for key in keys]
        for i, row in enumerate(rows):
            row.update({f.name: _sample_value(str(f.dtype), 100 * i) for f in VIEWS[view][2]})
        tables[view] = conform(view, pd.DataFrame(rows))
    return tables


@contextmanager
def scratch_course() -> Iterator[tuple[FeatureStore, Profile]]:
    """A throwaway local store (registry_view.scratch_store) with the tiny tables as its parquet
    sources; third-party deprecation notices are silenced so the check prints only its verdict."""
    project = f"exercise_check_{os.getpid()}"
    with registry_view.scratch_store(project) as store, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        profile = resolve_profile("local", {**os.environ, "FEAST_PROJECT": project})
        profile.offline_dir.mkdir(parents=True, exist_ok=True)  # a plain folder: nothing reads it while it changes
        for view, table in tiny_tables().items():
            table.to_parquet(profile.offline_location(view), index=False)
        yield store, profile


@dataclass(frozen=True)
class Read:
    """One feature read a RecordingStore forwarded: its `features` argument and its entity rows (online reads)."""

    features: Any
    rows: list[dict[str, Any]]


def _entity_rows(rows: Any) -> list[dict[str, Any]]:
    """Entity rows as a list of dicts, given as rows or as columns ({key: values})."""
    if isinstance(rows, Mapping):
        return [dict(zip(rows, values)) for values in zip(*rows.values())]
    return [dict(row) for row in rows or []]


class RecordingStore:
    """A FeatureStore stand-in for the learner's function: forwards everything, and records each
    get_online_features and get_historical_features call before passing it on."""

    def __init__(self, store: FeatureStore) -> None:
        self._store = store
        self.online: list[Read] = []
        self.historical: list[Read] = []

    def __getattr__(self, name: str) -> Any:
        """Everything else is the real store's."""
        return getattr(self._store, name)

    @staticmethod
    def _record(reads: list[Read], method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Record a call's features (and entity rows, for an online read), then make it."""
        bound = inspect.signature(method).bind(*args, **kwargs).arguments
        reads.append(Read(bound.get("features"), _entity_rows(bound.get("entity_rows"))))
        return method(*args, **kwargs)

    def get_online_features(self, *args: Any, **kwargs: Any) -> Any:
        """The real get_online_features, recorded."""
        return self._record(self.online, self._store.get_online_features, *args, **kwargs)

    def get_historical_features(self, *args: Any, **kwargs: Any) -> Any:
        """The real get_historical_features, recorded."""
        return self._record(self.historical, self._store.get_historical_features, *args, **kwargs)


def through_service(reads: list[Read], service: str) -> bool:
    """Whether every recorded read asked for the named feature service (not a list of references)."""
    return all(isinstance(read.features, FeatureService) and read.features.name == service for read in reads)
