"""The course's Feast objects, defined once: entities, three feature views and the service.

Only the batch *source* differs between profiles (parquet read by duckdb, parquet read by
Spark, or a PostgreSQL table); `build(profile)` attaches the right one. Fixes to the guide's code:
- `Entity(value_type=Int64)` mixes up two type systems: entities take `ValueType.INT64`
  (and `join_keys`), while `feast.types.Int64` is for `Field`s.
- `source=None` cannot be applied: every batch feature view needs a real source.
- `entity_key_serialization_version: 2` was removed; the profiles render version 3.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.types import Float32, Int64, String

from feature_repo.names import FEATURE_SERVICE, FEATURE_VIEWS, MOVIE_VIEW, PAIR_VIEW, TIMESTAMP_FIELD, USER_VIEW

if TYPE_CHECKING:
    from course_lib.config import Profile


user = Entity(name="user_id", join_keys=["user_id"], value_type=ValueType.INT64,
              description="A viewer of the streaming service")
movie = Entity(name="movie_id", join_keys=["movie_id"], value_type=ValueType.INT64,
               description="A title in the catalogue")

__all__ = ["FEATURE_SERVICE", "FEATURE_VIEWS", "MOVIE_VIEW", "PAIR_VIEW", "RECOMMENDATION_FEATURES", "TIMESTAMP_FIELD",
           "USER_VIEW", "VIEWS", "Definitions", "batch_source", "build", "feature_view", "join_keys", "movie", "user"]

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
    """The entity columns (join keys) of a feature view."""
    return [entity.join_key for entity in VIEWS[view][0]]


@dataclass(frozen=True)
class Definitions:
    """Everything `course apply` registers for one profile."""

    entities: list[Entity]
    sources: list[DataSource]
    feature_views: list[FeatureView]
    feature_services: list[FeatureService]

    def objects(self) -> list[Any]:
        """All objects, in the order Feast applies them."""
        return [*self.entities, *self.sources, *self.feature_views, *self.feature_services]


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
    """One of the three feature views, bound to this profile's source."""
    entities, ttl, schema = VIEWS[view]
    return FeatureView(name=view, entities=entities, ttl=ttl, schema=schema,
                       source=batch_source(view, profile), online=True)


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
    return Definitions(entities=[user, movie], sources=[fv.batch_source for fv in views if fv.batch_source is not None],
                       feature_views=views, feature_services=[service])
