"""The aggregate state behind pushed features, and one watch event applied to it (notebook 08).

A user's features are aggregates of all their watch events; to update them from one new event
without re-reading the history, the online store keeps the state they are computed from
(`definitions.STATE_VIEWS`): rating sum and count, distinct movies, every genre's count, the
latest watch; per (user, movie) the latest and previous watch times and the time of the rating
in force. Every field is exact whatever order events arrive in (sums of half-star ratings are
exact in float64; counts and maxima commute), so the features computed from it equal the batch
adapter's (`adapter.user_profile_table`, `adapter.interaction_table`) over the same events:
`tests/test_events.py` checks that on real stores.

Times are microseconds since the epoch throughout.
"""
from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from course_lib.adapter import Canonical, table_dtypes
from feature_repo.definitions import TIMESTAMP_FIELD, join_keys
from feature_repo.names import PAIR_STATE_VIEW, USER_STATE_VIEW

DAY_US = 86_400_000_000
_FLOAT32 = struct.Struct("<f")


@dataclass(frozen=True, slots=True)
class Event:
    """One watch event, validated."""

    user_id: int
    movie_id: int
    at_us: int
    rating: float | None = None
    watch_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class UserState:
    """What a user's profile features are computed from."""

    age: int | None = None
    signup_us: int | None = None
    rating_sum: float = 0.0
    rating_count: int = 0
    movies_watched: int = 0
    genre_counts: dict[str, int] = field(default_factory=dict)
    last_watch_us: int | None = None


@dataclass(frozen=True, slots=True)
class PairState:
    """What a (user, movie) pair's interaction features are computed from, with the latest event's own values."""

    latest_us: int | None = None
    previous_us: int | None = None
    rated_us: int | None = None
    count: int = 0
    rating: float | None = None
    watch_seconds: float | None = None
    seen: tuple[int, ...] = ()  # every event time of the pair: a retried event is recognised exactly


@dataclass(frozen=True, slots=True)
class Movie:
    """What an event needs to know about its movie: its genres and runtime (minutes)."""

    genres: tuple[str, ...]
    runtime: float | None


def is_duplicate(pair: PairState, event: Event) -> bool:
    """A retried event: the pair already holds an event at exactly this time."""
    return event.at_us in pair.seen


def apply_event(user: UserState, pair: PairState, event: Event, movie: Movie) -> tuple[UserState, PairState]:
    """The states after one more event, whether it is newer or older than what they hold."""
    at, rated = event.at_us, event.rating is not None
    counts = dict(user.genre_counts)
    for genre in movie.genres:
        counts[genre] = counts.get(genre, 0) + 1
    user = UserState(age=user.age, signup_us=user.signup_us, rating_sum=user.rating_sum + (event.rating or 0.0),
                     rating_count=user.rating_count + rated, movies_watched=user.movies_watched + (pair.count == 0),
                     genre_counts=counts, last_watch_us=max(user.last_watch_us or at, at))
    newest = pair.latest_us is None or at > pair.latest_us  # the pair's newest event: its values count
    rating_in_force = rated and (pair.rated_us is None or at > pair.rated_us)  # the newest rating counts
    pair = PairState(latest_us=at if newest else pair.latest_us,
                     previous_us=pair.latest_us if newest else max(pair.previous_us or at, at),  # an older event
                     rated_us=at if rating_in_force else pair.rated_us,  # may be the new "previous" watch
                     count=pair.count + 1, rating=event.rating if rating_in_force else pair.rating,
                     watch_seconds=event.watch_seconds if newest else pair.watch_seconds, seen=(*pair.seen, at))
    return user, pair


# --- features from state (the adapter's definitions, per entity) -------------------------------

def favorite_genre(counts: dict[str, int]) -> str | None:
    """The most-watched genre, ties to the alphabetically first (as the adapter breaks them)."""
    return min(counts, key=lambda genre: (-counts[genre], genre)) if counts else None


def float32(value: float) -> float:
    """A float rounded to float32 as numpy rounds it (infinity beyond float32's range)."""
    try:
        return _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def user_features(user: UserState) -> dict[str, Any]:
    """user_profile_features as the adapter's snapshot at the end of the latest event's day."""
    snapshot = None if user.last_watch_us is None else -(-user.last_watch_us // DAY_US) * DAY_US
    return {
        "age": user.age,
        "avg_rating": float32(user.rating_sum / user.rating_count) if user.rating_count else None,
        "total_movies_watched": user.movies_watched,
        "favorite_genre": favorite_genre(user.genre_counts),
        "account_created_days": None if snapshot is None or user.signup_us is None
        else (snapshot - user.signup_us) // DAY_US,
    }


def completion_rate(seconds: float | None, runtime: float | None) -> float | None:
    """Seconds watched over the runtime, at most 1, as the adapter's pandas division gives it (x/0 is
    infinite, 0/0 missing)."""
    if seconds is None or runtime is None:
        return None
    total = runtime * 60
    ratio = seconds / total if total else math.nan if seconds == 0 else math.copysign(math.inf, seconds)
    return None if math.isnan(ratio) else float32(min(ratio, 1.0))


def pair_features(pair: PairState, movie: Movie) -> dict[str, Any]:
    """user_movie_interaction_features as the adapter's row of the pair's latest event."""
    return {
        "watch_time_minutes": None if pair.watch_seconds is None else float32(pair.watch_seconds / 60),
        "completion_rate": completion_rate(pair.watch_seconds, movie.runtime),
        "user_rating": None if pair.rating is None else float32(pair.rating),
        "watch_count": pair.count,
        "last_watched_days_ago": None if pair.previous_us is None or pair.latest_us is None
        else (pair.latest_us - pair.previous_us) // DAY_US,
    }


# --- state as feature rows, and back -----------------------------------------------------------

def _value(value: Any) -> Any:
    """A read value with NaN as None (the stores may hand back either for a missing number)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def user_state_row(user: UserState) -> dict[str, Any]:
    """The user_event_state features of a state."""
    return {"age": user.age, "signup_us": user.signup_us, "rating_sum": user.rating_sum,
            "rating_count": user.rating_count, "movies_watched": user.movies_watched,
            "genre_counts": orjson.dumps(user.genre_counts, option=orjson.OPT_SORT_KEYS).decode(),
            "last_watch_us": user.last_watch_us}


def user_state_of(row: dict[str, Any] | None) -> UserState:
    """A state from user_event_state features (an empty state when the user has none)."""
    row = {k: _value(v) for k, v in (row or {}).items()}
    if row.get("rating_count") is None:
        return UserState()
    return UserState(age=row["age"], signup_us=row["signup_us"], rating_sum=float(row["rating_sum"]),
                     rating_count=int(row["rating_count"]), movies_watched=int(row["movies_watched"]),
                     genre_counts=orjson.loads(row["genre_counts"] or "{}"), last_watch_us=row["last_watch_us"])


def pair_state_row(pair: PairState) -> dict[str, Any]:
    """The user_movie_event_state features of a state."""
    return {"latest_us": pair.latest_us, "previous_us": pair.previous_us, "rated_us": pair.rated_us,
            "watch_count": pair.count, "rating": pair.rating, "watch_seconds": pair.watch_seconds,
            "seen": orjson.dumps(sorted(pair.seen)).decode()}


def pair_state_of(row: dict[str, Any] | None) -> PairState:
    """A state from user_movie_event_state features (an empty state when the pair has none)."""
    row = {k: _value(v) for k, v in (row or {}).items()}
    if row.get("latest_us") is None:
        return PairState()
    return PairState(latest_us=row["latest_us"], previous_us=row["previous_us"], rated_us=row["rated_us"],
                     count=int(row["watch_count"]), rating=row["rating"], watch_seconds=row["watch_seconds"],
                     seen=tuple(orjson.loads(row["seen"] or "[]")))


# --- batch: the state tables from the canonical logs ----------------------------------------------

def catalogue(movies: pd.DataFrame) -> dict[int, Movie]:
    """Each movie's genres (as the adapter splits them) and runtime."""
    return {int(m): Movie(genres=tuple(g for g in str(genres or "").split("|") if g),
                          runtime=None if pd.isna(runtime) else float(runtime))
            for m, genres, runtime in zip(movies["movie_id"], movies["genres"].where(movies["genres"].notna(), None),
                                          movies["runtime"])}


def _micros(ts: pd.Series) -> np.ndarray:
    """UTC timestamps as integer microseconds."""
    return ts.dt.tz_convert("UTC").astype("datetime64[us, UTC]").astype("int64").to_numpy()


def events_of(frame: pd.DataFrame) -> Iterable[Event]:
    """Watch events from a canonical events frame, in its order."""
    ratings = frame["rating"].astype("float64").to_numpy()
    seconds = frame["watch_seconds"].astype("float64").to_numpy()
    for user, movie, at, rating, watched in zip(frame["user_id"].to_numpy(), frame["movie_id"].to_numpy(),
                                                _micros(frame[TIMESTAMP_FIELD]), ratings, seconds):
        yield Event(int(user), int(movie), int(at), None if np.isnan(rating) else float(rating),
                    None if np.isnan(watched) else float(watched))


def state_tables(data: Canonical) -> dict[str, pd.DataFrame]:
    """The two state views' offline tables: each key's state after each of its events, at the event's time."""
    movies = catalogue(data.movies)
    users = data.users.set_index("user_id")
    signup = dict(zip(users.index, _micros(users["signup_timestamp"])))
    user_states: dict[int, UserState] = {}
    pair_states: dict[tuple[int, int], PairState] = {}
    user_rows, pair_rows = [], []
    for event in events_of(data.events):
        age = users.at[event.user_id, "age"]
        user = user_states.get(event.user_id) or UserState(age=None if pd.isna(age) else int(age),
                                                           signup_us=int(signup[event.user_id]))
        pair = pair_states.get((event.user_id, event.movie_id), PairState())
        user, pair = apply_event(user, pair, event, movies[event.movie_id])
        user_states[event.user_id], pair_states[(event.user_id, event.movie_id)] = user, pair
        user_rows.append({"user_id": event.user_id, "at": event.at_us, **user_state_row(user)})
        pair_rows.append({"user_id": event.user_id, "movie_id": event.movie_id, "at": event.at_us,
                          **pair_state_row(pair)})
    return {USER_STATE_VIEW: _table(user_rows, USER_STATE_VIEW), PAIR_STATE_VIEW: _table(pair_rows, PAIR_STATE_VIEW)}


def _table(rows: list[dict[str, Any]], view: str) -> pd.DataFrame:
    """Rows as the state view's table, typed as it declares: the last state per key and time."""
    return typed_rows(view, pd.DataFrame(rows).drop_duplicates([*join_keys(view), "at"], keep="last"))


def typed_rows(view: str, rows: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Rows ("at": the version time in µs) as a frame with the view's offline columns and dtypes."""
    frame = pd.DataFrame(rows)
    frame[TIMESTAMP_FIELD] = pd.to_datetime(frame.pop("at"), unit="us", utc=True)
    return pd.DataFrame({c: frame[c].astype(t) for c, t in table_dtypes(view).items()}).reset_index(drop=True)
