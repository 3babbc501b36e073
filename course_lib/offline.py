"""Reading the offline store: whole tables, and aggregate queries over them (2.7.2).

The same SQL runs on every profile: duckdb over the parquet files (`local`, `scaleout`) or
PostgreSQL (`enterprise`); `table_expr` names a view's table in either engine (a quoted
identifier: duckdb sees each parquet file as a view created from its path, never a path spliced
into SQL) and `?` placeholders become psycopg's `%s`.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from course_lib.config import Profile, resolve_profile
from course_lib.errors import CourseError
from course_lib.messages import say
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS, join_keys


def read_offline(profile: str | Profile | None = None,
                 views: Iterable[str] = tuple(VIEWS)) -> dict[str, pd.DataFrame]:
    """Read the offline tables back, as written, for inspection and tests."""
    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)
    if resolved.offline_is_parquet:
        return {v: pd.read_parquet(resolved.offline_location(v)) for v in views}
    import psycopg
    from psycopg import sql

    with psycopg.connect(resolved.pg_conninfo()) as conn, conn.cursor() as cur:
        out = {}
        for view in views:
            cur.execute(sql.SQL("SELECT * FROM {}").format(resolved.offline_table(view)))
            out[view] = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or []])
        return out


class MissingOfflineData(CourseError):
    """A view's parquet file is not there yet: `course data` writes it."""


def offline_query(profile: Profile, sql: str, params: list[Any], bounded: bool = False) -> tuple[Any, ...]:
    """Run one aggregate query over the profile's offline tables ({view} placeholders resolved).

    `bounded`: PostgreSQL gives up after the statement and lock timeouts (the API's reads), so a
    table that `course data` holds locked fails fast instead of waiting.
    """
    if profile.offline_is_parquet:  # duckdb reads the same parquet files Spark does
        import duckdb

        with duckdb.connect() as conn:
            for view in VIEWS:  # each parquet file as a view named after it; its path never enters the SQL
                if not Path(path := profile.offline_location(view)).exists():
                    if f'"{view}"' in sql or view in sql.split():
                        raise MissingOfflineData(say("offline.missing", path=path, profile=profile.name))
                    continue
                conn.read_parquet(path).create_view(view)
            (row,) = conn.execute(sql, params).fetchall()  # an aggregate: exactly one row
            return row
    import psycopg

    with psycopg.connect(profile.pg_conninfo(bounded=bounded)) as conn:
        (row,) = conn.execute(sql.replace("?", "%s"), params).fetchall()
        return row


def table_expr(profile: Profile, view: str) -> str:
    """SQL expression reading a view's offline table in the profile's engine."""
    from psycopg import sql

    name = sql.Identifier(view) if profile.offline_is_parquet else profile.offline_table(view)
    return name.as_string(None)


def offline_time_range(profile: Profile, view: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Oldest and newest event_timestamp stored offline for a view."""
    lo, hi = offline_query(profile, f"SELECT min({TIMESTAMP_FIELD}), max({TIMESTAMP_FIELD}) "
                                     f"FROM {table_expr(profile, view)}", [])
    return pd.Timestamp(lo).tz_convert("UTC"), pd.Timestamp(hi).tz_convert("UTC")


def offline_entity_count(profile: Profile, view: str, start: datetime | None, end: datetime) -> int:
    """Distinct entity keys with offline rows in [start, end] (start None: from the beginning)."""
    keys = ", ".join(join_keys(view))
    where, params = f"{TIMESTAMP_FIELD} <= ?", [end]
    if start is not None:
        where, params = f"{TIMESTAMP_FIELD} >= ? AND " + where, [start, end]
    sql = f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {table_expr(profile, view)} WHERE {where}) k"
    return int(offline_query(profile, sql, params)[0])
