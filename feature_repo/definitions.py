"""The course's Feast objects, defined once: entities, three feature views, on-demand views and the services.

Only the batch *source* differs between profiles (parquet read by duckdb, parquet read by
Spark, or a PostgreSQL table); `build(profile)` attaches the right one. Fixes to the guide's code:
- `Entity(value_type=Int64)` mixes up two type systems: entities take `ValueType.INT64`
  (and `join_keys`), while `feast.types.Int64` is for `Field`s.
- `source=None` is registered without complaint, then fails at materialization and training
  (notebook 01 shows both): every batch feature view needs a real source.
- `entity_key_serialization_version: 2` was removed; the profiles render version 3.

Real time (notebook 08): the user and interaction views take pushed rows through a `PushSource`
(same batch source, so materialization is unchanged); `favorite_genre_match` is an on-demand view
Feast computes at training and serving alike. `build_realtime(profile)` adds the aggregate state
the event ingestion updates (two views with their own push sources, tables written by
`course_lib.event_state`) and the request-time `hours_since_last_watch`.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import FunctionType
from typing import TYPE_CHECKING, Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, RequestSource, ValueType
from feast.data_source import DataSource
from feast.feature_logging import LoggingConfig
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.infra.offline_stores.file_source import FileLoggingDestination
from feast.on_demand_feature_view import OnDemandFeatureView, on_demand_feature_view
from feast.types import Float32, Float64, Int64, String

from feature_repo.names import (
    FEATURE_SERVICE,
    FEATURE_VIEWS,
    GENRE_MATCH,
    GENRE_MATCH_VIEW,
    HOURS_SINCE_LAST_WATCH,
    MOVIE_VIEW,
    PAIR_STATE_VIEW,
    PAIR_VIEW,
    PUSH_SOURCES,
    RANKER_SERVICE,
    REALTIME_SERVICE,
    RECENCY_VIEW,
    REQUEST_SOURCE,
    REQUEST_TIME,
    STATE_PUSH_SOURCES,
    TIMESTAMP_FIELD,
    TRACKED_GENRES,
    USER_STATE_VIEW,
    USER_VIEW,
)

# Feast 0.67 repeats "On demand feature view is an experimental feature ... does not scale well for offline
# retrieval" on every apply and retrieval that touches an on-demand view (feast/feature_store.py). The course
# states that limit once, with its measured cost, in docs/realtime.md; the repeated warning only buries outputs.
warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature", category=RuntimeWarning)

if TYPE_CHECKING:
    from course_lib.config import Profile


user = Entity(name="user_id", join_keys=["user_id"], value_type=ValueType.INT64,
              description="A viewer of the streaming service")
movie = Entity(name="movie_id", join_keys=["movie_id"], value_type=ValueType.INT64,
               description="A title in the catalogue")

__all__ = ["FEATURE_SERVICE", "FEATURE_VIEWS", "GENRE_MATCH_VIEW", "MOVIE_VIEW", "PAIR_VIEW", "RECOMMENDATION_FEATURES",
           "STATE_VIEWS", "TIMESTAMP_FIELD", "USER_VIEW", "VIEWS", "Definitions", "batch_source", "build",
           "build_realtime", "feature_logging", "feature_view", "genre_match_udf", "hours_since_last_watch_udf",
           "join_keys", "movie", "user"]

# view name -> (entities, TTL, schema). TTL only bounds point-in-time joins, never online reads.
VIEWS: dict[str, tuple[list[Entity], timedelta, list[Field]]] = {
    USER_VIEW: ([user], timedelta(days=7), [
        Field(name="age", dtype=Int64),
        Field(name="avg_rating", dtype=Float32),
        Field(name="total_movies_watched", dtype=Int64),
        Field(name="favorite_genre", dtype=String),
        Field(name="account_created_days", dtype=Int64),
    ]),
    MOVIE_VIEW: ([movie], timedelta(days=30), [
        Field(name="vote_average", dtype=Float32),
        Field(name="vote_count", dtype=Int64),
        Field(name="popularity", dtype=Float32),
        Field(name="runtime", dtype=Int64),
        Field(name="release_year", dtype=Int64),
        Field(name="genre_action", dtype=Int64),
        Field(name="genre_comedy", dtype=Int64),
        Field(name="genre_drama", dtype=Int64),
        Field(name="genre_horror", dtype=Int64),
        Field(name="genre_romance", dtype=Int64),
    ]),
    PAIR_VIEW: ([user, movie], timedelta(days=1), [
        Field(name="watch_time_minutes", dtype=Float32),
        Field(name="completion_rate", dtype=Float32),
        Field(name="user_rating", dtype=Float32),
        Field(name="watch_count", dtype=Int64),
        Field(name="last_watched_days_ago", dtype=Int64),
    ]),
}

# The aggregate state behind the pushed user and interaction rows (`course_lib.event_state`), exact
# under any arrival order: sums and counts, every genre's count, and the times an update depends on
# (microseconds since the epoch). Apart from last_watch_us, the model reads none of it.
STATE_VIEWS: dict[str, tuple[list[Entity], timedelta, list[Field]]] = {
    USER_STATE_VIEW: ([user], timedelta(days=3650), [
        Field(name="age", dtype=Int64),
        Field(name="signup_us", dtype=Int64),
        Field(name="rating_sum", dtype=Float64),
        Field(name="rating_count", dtype=Int64),
        Field(name="movies_watched", dtype=Int64),
        Field(name="genre_counts", dtype=String),  # JSON object genre -> watches, keys sorted
        Field(name="last_watch_us", dtype=Int64),
    ]),
    PAIR_STATE_VIEW: ([user, movie], timedelta(days=3650), [
        Field(name="latest_us", dtype=Int64),
        Field(name="previous_us", dtype=Int64),
        Field(name="rated_us", dtype=Int64),
        Field(name="watch_count", dtype=Int64),
        Field(name="rating", dtype=Float64),  # the rating in force (of the latest rated event)
        Field(name="watch_seconds", dtype=Float64),  # of the latest event
        Field(name="seen", dtype=String),  # JSON list of every event time: retries are recognised
    ]),
}

# The ten features the guide's `movie_recommendation_service` names.
RECOMMENDATION_FEATURES = [
    f"{USER_VIEW}:avg_rating",
    f"{USER_VIEW}:total_movies_watched",
    f"{USER_VIEW}:favorite_genre",
    f"{MOVIE_VIEW}:vote_average",
    f"{MOVIE_VIEW}:popularity",
    f"{MOVIE_VIEW}:genre_action",
    f"{MOVIE_VIEW}:genre_comedy",
    f"{MOVIE_VIEW}:genre_drama",
    f"{MOVIE_VIEW}:genre_horror",
    f"{MOVIE_VIEW}:genre_romance",
]


def join_keys(view: str) -> list[str]:
    """The entity columns (join keys) of a feature view or a state view."""
    return [entity.join_key for entity in {**VIEWS, **STATE_VIEWS}[view][0]]


@dataclass(frozen=True)
class Definitions:
    """Everything `course apply` registers for one profile."""

    entities: list[Entity]
    sources: list[DataSource]
    feature_views: list[FeatureView]
    on_demand_views: list[OnDemandFeatureView]
    feature_services: list[FeatureService]

    def objects(self) -> list[Any]:
        """All objects, in the order Feast applies them."""
        return [*self.entities, *self.sources, *self.feature_views, *self.on_demand_views, *self.feature_services]


def batch_source(view: str, profile: Profile) -> DataSource:
    """The offline source a feature view reads in this profile."""
    name = f"{view}_source"
    location = profile.offline_location(view)
    if profile.name == "local":
        return FileSource(name=name, path=location, timestamp_field=TIMESTAMP_FIELD)
    if profile.offline_is_parquet:  # scaleout: the same parquet layout, read by Spark
        return SparkSource(name=name, path=location, file_format="parquet", timestamp_field=TIMESTAMP_FIELD)
    # Feast splices `schema.table` into its SQL unquoted; the schema is a validated lower-case name
    # (settings.IDENTIFIER), so this is the very table the course creates as a quoted identifier.
    return PostgreSQLSource(name=name, table=location, timestamp_field=TIMESTAMP_FIELD)


def feature_view(view: str, profile: Profile) -> FeatureView:
    """One of the three feature views (or a state view), bound to this profile's source; the views
    watch events change take pushed rows through their push source."""
    entities, ttl, schema = {**VIEWS, **STATE_VIEWS}[view]
    batch = batch_source(view, profile)
    push = {**PUSH_SOURCES, **STATE_PUSH_SOURCES}.get(view)
    source = PushSource(name=push, batch_source=batch) if push else batch
    return FeatureView(name=view, entities=entities, ttl=ttl, schema=schema, source=source, online=True)


# Feast re-creates an on-demand view's function from its source text alone (`udf_string`, run
# without this module's globals), so the two functions below name their constants inline;
# tests/test_on_demand.py checks them against feature_repo.names.

def genre_match_udf(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """favorite_genre_match: 1.0 if the movie has the user's favourite genre, 0.0 if not; NaN when
    unknown (no favourite yet, a favourite outside the tracked genre flags, or no movie row).
    NaN rather than None: Feast infers the output type from a trial run, and None has none."""
    out: list[float] = []
    for row, favorite in enumerate(inputs["favorite_genre"]):
        genre = favorite.lower() if isinstance(favorite, str) else None
        flag = inputs[f"genre_{genre}"][row] if genre in ("action", "comedy", "drama", "horror", "romance") else None
        out.append(float("nan") if flag is None else float(flag))  # a NaN flag stays NaN
    return {"favorite_genre_match": out}


def hours_since_last_watch_udf(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Hours from the user's last watch to the request time; NaN without a watch or a request time."""
    return {"hours_since_last_watch": [
        float("nan") if last is None or now is None else (now - last) / 3_600_000_000
        for last, now in zip(inputs["last_watch_us"], inputs["request_time_us"])]}


def _copy(udf: Callable[..., Any]) -> Callable[..., Any]:
    """A fresh copy of a module-level function: Feast's decorator renames its function's module to
    `__main__` (so dill stores it by value), which would break every later build with the original."""
    return FunctionType(udf.__code__, udf.__globals__, udf.__name__, udf.__defaults__, udf.__closure__)


def genre_match_view(users: FeatureView, movies: FeatureView) -> OnDemandFeatureView:
    """The on-demand view of favorite_genre_match over the user's favourite and the movie's genre flags."""
    flags = [f"genre_{genre}" for genre in TRACKED_GENRES]
    return on_demand_feature_view(
        name=GENRE_MATCH_VIEW, sources=[users[["favorite_genre"]], movies[flags]],
        schema=[Field(name=GENRE_MATCH, dtype=Float64)], mode="python",
        description="Whether the candidate has the user's favourite genre, at read time")(_copy(genre_match_udf))


def recency_view(state: FeatureView) -> OnDemandFeatureView:
    """The on-demand view of hours_since_last_watch: the user's last watch against the request time."""
    request = RequestSource(name=REQUEST_SOURCE, schema=[Field(name=REQUEST_TIME, dtype=Int64)])
    return on_demand_feature_view(
        name=RECENCY_VIEW, sources=[state[["last_watch_us"]], request],
        schema=[Field(name=HOURS_SINCE_LAST_WATCH, dtype=Float64)], mode="python",
        description="Hours since the user's last watch at request time")(_copy(hours_since_last_watch_udf))


def build(profile: Profile) -> Definitions:
    """All course definitions for a profile."""
    views = [feature_view(name, profile) for name in VIEWS]
    by_name = {fv.name: fv for fv in views}
    selected: dict[str, list[str]] = {}
    for ref in RECOMMENDATION_FEATURES:
        view_name, feature = ref.split(":")
        selected.setdefault(view_name, []).append(feature)
    service = FeatureService(
        name=FEATURE_SERVICE,
        features=[by_name[v][names] for v, names in selected.items()],
        description="Features the movie recommender reads: user taste and movie metadata",
    )
    match = genre_match_view(by_name[USER_VIEW], by_name[MOVIE_VIEW])
    return Definitions(entities=[user, movie], sources=_sources(views), feature_views=views,
                       on_demand_views=[match], feature_services=[service])


def _sources(views: list[FeatureView]) -> list[DataSource]:
    """Each view's batch source, then its push source if it has one."""
    return [s for fv in views for s in (fv.batch_source, fv.stream_source) if s is not None]


def feature_logging(profile: Profile) -> LoggingConfig | None:
    """Feast's feature logging of the ranker service where the offline store writes logs (`local`'s DuckDB):
    every response, as parquet in the profile's feature-log folder. None elsewhere: Feast's PostgreSQL and
    Spark offline stores have no `write_logged_features`, so `course_lib.feature_log` writes its own."""
    if profile.name != "local":
        return None
    return LoggingConfig(destination=FileLoggingDestination(path=str(profile.feature_log_dir)), sample_rate=1.0)


def build_realtime(profile: Profile) -> Definitions:
    """The real-time additions (notebook 08): the state views, the request-time on-demand view, the
    ranker's service (every view feature and the genre match: what the ranker reads) and that
    service plus the request-time recency."""
    base = build(profile)
    states = [feature_view(name, profile) for name in STATE_VIEWS]
    recency = recency_view(states[0])
    ranker = FeatureService(name=RANKER_SERVICE, features=[*base.feature_views, *base.on_demand_views],
                            description="The ranker's input: every view feature and the favourite-genre match",
                            logging_config=feature_logging(profile))
    realtime = FeatureService(
        name=REALTIME_SERVICE, features=[*base.feature_views, *base.on_demand_views, recency],
        description="The ranker service's features and the hours since the user's last watch at request time")
    return Definitions(entities=[], sources=_sources(states), feature_views=states,
                       on_demand_views=[recency], feature_services=[ranker, realtime])
