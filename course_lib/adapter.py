"""Canonical watch logs -> the three feature-view tables, point-in-time correct (2.7.2).

Every row carries the `event_timestamp` at which its values became known, and every
aggregate uses only events at or before that timestamp. Entity tables are emitted as
snapshots at day boundaries (UTC): on each day an entity had activity, plus a heartbeat
every `TTL - 1 day` so a point-in-time join always finds a row inside the view's TTL.
Interaction rows are emitted at each watch event and *include* that event: to predict
an event, query features at its timestamp minus a microsecond.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import psycopg
from feast.types import Float32, Float64, Int64, String
from psycopg import sql
from tqdm.auto import tqdm

from course_lib.config import Profile, resolve_profile
from course_lib.errors import CourseError
from course_lib.files import swap_folder
from course_lib.messages import say
from course_lib.store_lock import writing
from feature_repo.definitions import MOVIE_VIEW, PAIR_VIEW, STATE_VIEWS, TIMESTAMP_FIELD, USER_VIEW, VIEWS, join_keys
from feature_repo.names import TRACKED_GENRES

if TYPE_CHECKING:
    from course_lib.datasets import Dataset

DAY = pd.Timedelta(days=1)
SNAPSHOT_EVERY = DAY
POPULARITY_WINDOW = pd.Timedelta(days=7)

# table -> {column: kind}; kinds: id (positive integer), int, float, str, ts (tz-aware)
INPUT_SCHEMA: dict[str, dict[str, str]] = {
    "users": {"user_id": "id", "age": "int", "signup_timestamp": "ts"},
    "movies": {"movie_id": "id", "title": "str", "genres": "str", "release_year": "int", "runtime": "int"},
    "watch_events": {"user_id": "id", "movie_id": "id", TIMESTAMP_FIELD: "ts",
                     "rating": "float", "watch_seconds": "float"},
}
PANDAS_DTYPE: dict[Any, str] = {Int64: "Int64", Float32: "float32", Float64: "float64",
                                String: "string"}  # Feast dtype -> pandas


class AdapterError(CourseError):
    """The input cannot be turned into feature tables; nothing was written."""


@dataclass(frozen=True)
class Canonical:
    """Validated canonical tables, timestamps in UTC."""

    users: pd.DataFrame
    movies: pd.DataFrame
    events: pd.DataFrame


# --- validation -------------------------------------------------------------------------

def _column_problems(table: str, df: pd.DataFrame, assume_timezone: str | None) -> list[str]:
    """Schema and type problems of one canonical table."""
    problems = []
    for column, kind in INPUT_SCHEMA[table].items():
        if column not in df.columns:
            problems.append(say("adapter.missing_column", table=table, column=column,
                                expected=", ".join(INPUT_SCHEMA[table])))
            continue
        series = df[column]
        if kind == "ts":
            if not pd.api.types.is_datetime64_any_dtype(series):
                problems.append(say("adapter.not_timestamps", table=table, column=column, dtype=series.dtype))
            elif series.dt.tz is None and assume_timezone is None:
                problems.append(say("adapter.naive_timestamps", table=table, column=column))
        elif kind in ("id", "int", "float") and not pd.api.types.is_numeric_dtype(series):
            problems.append(say("adapter.not_numbers", table=table, column=column, dtype=series.dtype))
        elif kind in ("int", "float") and (infinite := int(np.isinf(series.astype("float64")).sum())):
            problems.append(say("adapter.infinite_values", table=table, column=column, count=infinite))
        elif kind == "id" and (series.isna().any() or not pd.api.types.is_integer_dtype(series)
                               or (series <= 0).any()):
            problems.append(say("adapter.bad_ids", table=table, column=column))
        elif kind == "str" and not (pd.api.types.is_string_dtype(series) or series.dtype == object):
            problems.append(say("adapter.not_text", table=table, column=column, dtype=series.dtype))
    return problems


def _value_problems(events: pd.DataFrame) -> list[str]:
    """Range and duplicate problems of the watch events."""
    problems = []
    rating = events["rating"]
    bad = rating.notna() & ((rating < 0.5) | (rating > 5.0))
    if bad.any():
        problems.append(say("adapter.rating_range", count=int(bad.sum()), first=rating[bad].iloc[0]))
    negative = events["watch_seconds"] < 0
    if negative.any():
        problems.append(say("adapter.negative_watch_times", count=int(negative.sum())))
    dupes = events.duplicated(["user_id", "movie_id", TIMESTAMP_FIELD])
    if dupes.any():
        first = events.loc[dupes, ["user_id", "movie_id", TIMESTAMP_FIELD]].iloc[0].to_dict()
        problems.append(say("adapter.duplicate_events", count=int(dupes.sum()), first=first))
    return problems


def _to_utc(series: pd.Series, assume_timezone: str | None) -> pd.Series:
    """Timestamps as UTC, localizing naive ones only when a timezone was given."""
    if series.dt.tz is None:
        series = series.dt.tz_localize(assume_timezone)
    return series.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def validate(dataset: Dataset, assume_timezone: str | None = None) -> Canonical:
    """Check the canonical tables and return them with UTC timestamps, or raise AdapterError."""
    tables = {"users": dataset.users, "movies": dataset.movies, "watch_events": dataset.watch_events}
    problems = [p for name, df in tables.items() for p in _column_problems(name, df, assume_timezone)]
    if not problems:
        problems = _value_problems(dataset.watch_events)
    if problems:
        raise AdapterError(say("adapter.invalid_input", problems="\n- ".join(problems)))
    users = dataset.users.assign(signup_timestamp=_to_utc(dataset.users["signup_timestamp"], assume_timezone))
    events = dataset.watch_events.assign(
        **{TIMESTAMP_FIELD: _to_utc(dataset.watch_events[TIMESTAMP_FIELD], assume_timezone)})
    unknown = ~events["movie_id"].isin(dataset.movies["movie_id"]) | ~events["user_id"].isin(users["user_id"])
    if unknown.any():
        raise AdapterError(say("adapter.invalid_input", problems=say("adapter.unknown_ids", count=int(unknown.sum()))))
    events = events.sort_values([TIMESTAMP_FIELD, "user_id", "movie_id"], kind="stable", ignore_index=True)
    return Canonical(users=users, movies=dataset.movies, events=events)


# --- snapshots --------------------------------------------------------------------------

def _ceil_day(ts: pd.Series) -> pd.Series:
    """The first day boundary at or after each timestamp: when a snapshot can include it."""
    return ts.dt.ceil(SNAPSHOT_EVERY)


def snapshot_times(view: str, active: pd.DataFrame, key: str, start: pd.Series) -> pd.DataFrame:
    """(key, event_timestamp) rows: each active day, plus a heartbeat every TTL - 1 day
    from the entity's start until its last active day, so no gap exceeds the TTL."""
    heartbeat = VIEWS[view][1] - SNAPSHOT_EVERY
    first = _ceil_day(start)
    last = active.groupby(key)[TIMESTAMP_FIELD].max().reindex(first.index).fillna(first)
    periods = ((last - first) // heartbeat).clip(lower=0).astype(int) + 1
    base = first.repeat(periods)
    beats = pd.DataFrame({key: base.index.to_numpy(), TIMESTAMP_FIELD: base.to_numpy()})
    beats[TIMESTAMP_FIELD] += beats.groupby(key).cumcount() * heartbeat
    rows = pd.concat([active[[key, TIMESTAMP_FIELD]], beats], ignore_index=True).drop_duplicates()
    return rows.sort_values([TIMESTAMP_FIELD, key], ignore_index=True)


def _asof(rows: pd.DataFrame, state: pd.DataFrame, key: str) -> pd.DataFrame:
    """Attach to each snapshot row the latest cumulative state at or before its time."""
    state = state.sort_values("state_ts", kind="stable")
    merged = pd.merge_asof(rows, state, left_on=TIMESTAMP_FIELD, right_on="state_ts", by=key,
                           direction="backward", allow_exact_matches=True)
    return merged.drop(columns="state_ts")


def _genre_lists(movies: pd.DataFrame) -> pd.DataFrame:
    """(movie_id, genre) pairs from the pipe-separated genres column."""
    pairs = movies[["movie_id", "genres"]].assign(genre=movies["genres"].fillna("").str.split("|"))
    pairs = pairs.explode("genre")
    return pairs[pairs["genre"] != ""][["movie_id", "genre"]]


def _favorite_genre_state(events: pd.DataFrame, movies: pd.DataFrame) -> pd.DataFrame:
    """Per user, after each event: the most-watched genre so far (ties: alphabetical)."""
    pairs = _genre_lists(movies)
    genres = np.sort(pairs["genre"].unique())
    n = len(genres)
    watched = events[["user_id", "movie_id", TIMESTAMP_FIELD]].merge(pairs, on="movie_id")
    watched = watched.sort_values(["user_id", TIMESTAMP_FIELD], kind="stable")
    count = watched.groupby(["user_id", "genre"]).cumcount() + 1
    rank = np.searchsorted(genres, watched["genre"].to_numpy())
    # Each genre's score only grows, so the running max over rows is the max over genres.
    score = count.to_numpy() * n + (n - 1 - rank)
    best = pd.Series(score, index=watched.index).groupby(watched["user_id"]).cummax()
    return pd.DataFrame({"user_id": watched["user_id"], "state_ts": watched[TIMESTAMP_FIELD],
                         "favorite_genre": genres[n - 1 - (best.to_numpy() % n)]})


def user_profile_table(data: Canonical) -> pd.DataFrame:
    """user_profile_features snapshots."""
    events = data.events
    users = data.users.set_index("user_id")
    active = pd.DataFrame({"user_id": events["user_id"], TIMESTAMP_FIELD: _ceil_day(events[TIMESTAMP_FIELD])})
    start = users["signup_timestamp"].clip(lower=events[TIMESTAMP_FIELD].min())
    rows = snapshot_times(USER_VIEW, active, "user_id", start)
    state = pd.DataFrame({
        "user_id": events["user_id"], "state_ts": events[TIMESTAMP_FIELD],
        "rating_sum": events["rating"].fillna(0).groupby(events["user_id"]).cumsum(),
        "rating_n": events["rating"].notna().groupby(events["user_id"]).cumsum(),
        "distinct": (~events.duplicated(["user_id", "movie_id"])).groupby(events["user_id"]).cumsum(),
    })
    table = _asof(rows, state, "user_id")
    table = _asof(table, _favorite_genre_state(events, data.movies), "user_id")
    signup = table["user_id"].map(users["signup_timestamp"])
    return pd.DataFrame({
        "user_id": table["user_id"], TIMESTAMP_FIELD: table[TIMESTAMP_FIELD],
        "age": table["user_id"].map(users["age"]),
        "avg_rating": table["rating_sum"] / table["rating_n"].where(table["rating_n"] > 0),
        "total_movies_watched": table["distinct"].fillna(0),
        "favorite_genre": table["favorite_genre"],
        "account_created_days": (table[TIMESTAMP_FIELD] - signup) // DAY,
    })


def movie_metadata_table(data: Canonical) -> pd.DataFrame:
    """movie_metadata_features snapshots: static metadata plus rating stats as of each time."""
    events = data.events
    movies = data.movies.set_index("movie_id")
    active = pd.DataFrame({"movie_id": events["movie_id"], TIMESTAMP_FIELD: _ceil_day(events[TIMESTAMP_FIELD])})
    start = events.groupby("movie_id")[TIMESTAMP_FIELD].min()
    rows = snapshot_times(MOVIE_VIEW, active, "movie_id", start)
    state = pd.DataFrame({
        "movie_id": events["movie_id"], "state_ts": events[TIMESTAMP_FIELD],
        "rating_sum": events["rating"].fillna(0).groupby(events["movie_id"]).cumsum(),
        "vote_count": events["rating"].notna().groupby(events["movie_id"]).cumsum(),
        "views": events.groupby("movie_id").cumcount() + 1,
    })
    table = _asof(rows, state, "movie_id")
    earlier = rows.assign(**{TIMESTAMP_FIELD: rows[TIMESTAMP_FIELD] - POPULARITY_WINDOW})
    views_before = _asof(earlier, state[["movie_id", "state_ts", "views"]], "movie_id")["views"]
    out = pd.DataFrame({
        "movie_id": table["movie_id"], TIMESTAMP_FIELD: table[TIMESTAMP_FIELD],
        # TMDB's 0-10 scale: twice the mean star rating so far.
        "vote_average": 2 * table["rating_sum"] / table["vote_count"].where(table["vote_count"] > 0),
        "vote_count": table["vote_count"].fillna(0),
        "popularity": table["views"].fillna(0) - views_before.fillna(0).to_numpy(),
        "runtime": table["movie_id"].map(movies["runtime"]),
        "release_year": table["movie_id"].map(movies["release_year"]),
    })
    genre_sets = movies["genres"].fillna("").str.lower().str.split("|")
    for genre in TRACKED_GENRES:
        flag = genre_sets.map(lambda names, g=genre: int(g in names))
        out[f"genre_{genre}"] = table["movie_id"].map(flag)
    return out


def interaction_table(data: Canonical) -> pd.DataFrame:
    """user_movie_interaction_features: one row per watch event, including that event."""
    events = data.events
    runtime = events["movie_id"].map(data.movies.set_index("movie_id")["runtime"]).astype("float64")
    pair = events.groupby(["user_id", "movie_id"])
    previous = pair[TIMESTAMP_FIELD].shift()
    return pd.DataFrame({
        "user_id": events["user_id"], "movie_id": events["movie_id"],
        TIMESTAMP_FIELD: events[TIMESTAMP_FIELD],
        "watch_time_minutes": events["watch_seconds"] / 60,
        "completion_rate": (events["watch_seconds"] / (runtime * 60)).clip(upper=1.0),
        "user_rating": pair["rating"].ffill(),
        "watch_count": pair.cumcount() + 1,
        "last_watched_days_ago": (events[TIMESTAMP_FIELD] - previous) // DAY,
    })


def table_dtypes(view: str) -> dict[str, str]:
    """Column -> pandas dtype of a feature view's offline table, in order."""
    dtypes = dict.fromkeys(join_keys(view), "int64")
    dtypes[TIMESTAMP_FIELD] = "datetime64[ns, UTC]"
    dtypes.update({field.name: PANDAS_DTYPE[field.dtype] for field in {**VIEWS, **STATE_VIEWS}[view][2]})
    return dtypes


def conform(view: str, df: pd.DataFrame) -> pd.DataFrame:
    """Order and type a table's columns exactly as its feature view declares."""
    typed = pd.DataFrame({c: df[c].astype(t) for c, t in table_dtypes(view).items()})
    return typed.sort_values([TIMESTAMP_FIELD, *join_keys(view)], ignore_index=True)


def build_feature_tables(dataset: Dataset, assume_timezone: str | None = None) -> dict[str, pd.DataFrame]:
    """Validate a dataset and build the three feature-view tables, keyed by view name."""
    data = validate(dataset, assume_timezone)
    builders = {
        USER_VIEW: lambda: user_profile_table(data),
        MOVIE_VIEW: lambda: movie_metadata_table(data),
        PAIR_VIEW: lambda: interaction_table(data),
    }
    return {view: conform(view, build()) for view, build in
            tqdm(builders.items(), desc="feature tables", unit="view", leave=False)}


# --- offline writes ---------------------------------------------------------------------

PG_TYPE = {"int64": "BIGINT", "Int64": "BIGINT", "float32": "REAL", "float64": "DOUBLE PRECISION", "string": "TEXT",
           "datetime64[ns, UTC]": "TIMESTAMPTZ"}


def check_tables(tables: dict[str, pd.DataFrame]) -> None:
    """Refuse to write tables that do not match the feature views exactly."""
    problems = []
    for view in VIEWS:
        if view not in tables:
            problems.append(say("adapter.missing_table", view=view))
            continue
        actual = {c: str(t) for c, t in tables[view].dtypes.items()}
        if list(actual.items()) != list(table_dtypes(view).items()):
            problems.append(say("adapter.dtypes_differ", view=view, actual=actual, expected=table_dtypes(view)))
            continue
        key = [*join_keys(view), TIMESTAMP_FIELD]
        repeated = tables[view][tables[view].duplicated(key, keep=False)]
        if len(repeated):
            example = {k: str(v) for k, v in repeated.iloc[0][key].items()}
            problems.append(say("adapter.repeated_keys", view=view, count=len(repeated), key=key, example=example))
    extra = set(tables) - set(VIEWS)
    if extra:
        problems.append(say("adapter.unknown_tables", tables=sorted(extra)))
    if problems:
        raise AdapterError(say("adapter.refused", problems="\n- ".join(problems)))


def write_parquet(tables: dict[str, pd.DataFrame], profile: Profile) -> None:
    """Write every table into the next generation of the profile's parquet folder, then switch to it at once
    (`files.swap_folder`; tables not given are carried over unchanged)."""
    bar = tqdm(total=len(tables), desc="parquet", unit="table", leave=False)

    def write(folder: Path) -> None:
        for view, df in tables.items():
            target = folder / Path(profile.offline_location(view)).name
            target.unlink(missing_ok=True)  # a hard link to the previous generation's file: never written through
            df.to_parquet(target, index=False, **profile.parquet_write_options)
            bar.update()

    with bar:
        swap_folder(profile.offline_dir, write)


def copy_rows(cursor: psycopg.Cursor[Any], table: sql.Identifier, df: pd.DataFrame, chunk_rows: int = 200_000) -> None:
    """Stream a DataFrame into a PostgreSQL table with COPY (CSV, empty = NULL)."""
    columns = sql.SQL(", ").join(map(sql.Identifier, df.columns))
    with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(table, columns)) as copy:
        for start in range(0, len(df), chunk_rows):
            copy.write(df.iloc[start:start + chunk_rows].to_csv(index=False, header=False))


def _write_postgres(tables: dict[str, pd.DataFrame], profile: Profile) -> None:
    """Load every table in one transaction: new tables are swapped in only if all succeed."""

    schema = sql.Identifier(profile.offline_schema)
    with psycopg.connect(profile.pg_conninfo()) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [profile.offline_schema])
        if cur.fetchone() is None:  # a classroom learner owns its schema but may not create schemas
            cur.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        for view, df in tqdm(tables.items(), desc="postgres COPY", unit="table", leave=False):
            columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(PG_TYPE[str(t)]))
                                         for c, t in df.dtypes.items())
            staging, table = profile.offline_table(f"{view}__staging"), profile.offline_table(view)
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging))
            cur.execute(sql.SQL("CREATE TABLE {} ({})").format(staging, columns))
            copy_rows(cur, staging, df)
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
            cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(staging, sql.Identifier(view)))
            # Point-in-time lookups (pit.historical_features_tuned) read the newest row per
            # key at or before a time; the tables hold one row per key and time, so it is unique.
            cur.execute(sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
                sql.Identifier(f"{view}__pit"), table,
                sql.SQL(", ").join(map(sql.Identifier, [*join_keys(view), TIMESTAMP_FIELD]))))
            # Monitoring reads the newest rows first (freshness.newest_offline), without a full-table sort.
            cur.execute(sql.SQL("CREATE INDEX {} ON {} ({})").format(
                sql.Identifier(f"{view}__newest"), table, sql.Identifier(TIMESTAMP_FIELD)))
            cur.execute(sql.SQL("ANALYZE {}").format(table))
        # psycopg commits when the `with` block exits cleanly and rolls back on error.


def write_offline(tables: dict[str, pd.DataFrame], profile: str | Profile | None = None,
                  checked: bool = True) -> dict[str, str]:
    """Write the tables where the profile's sources read them, under the project's write lock; view -> location.

    `checked=False`: tables already typed for their views, not checked against the course views (the state views').
    """
    if checked:
        check_tables(tables)
    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)
    with writing(resolved, say("adapter.lock_what")):
        (write_parquet if resolved.offline_is_parquet else _write_postgres)(tables, resolved)
    return {view: resolved.offline_location(view) for view in tables}
