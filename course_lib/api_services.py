"""What the course API opens at start-up and holds for its lifetime (`api.create_app`'s lifespan).

`open_services` opens the store (checked to list every course view), loads the ranker and its compiled
trees, picks the fastest exact reader for the profile's online store (raw Redis, SQLite's tables, or
Feast's SDK) and builds the registry state and the recommender on them; anything missing stops start-up
with an `ApiStartupError` naming the cause and the fix.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import orjson
from feast import FeatureStore

from course_lib import ranker, recommender, scoring
from course_lib.api_models import ModelInfo
from course_lib.config import Profile, load_store
from course_lib.errors import CourseError, reason
from course_lib.freshness import Clock
from course_lib.health import missing_views, registry_hint, registry_location
from course_lib.messages import language, say
from course_lib.redis_reader import CandidateRedisReader, RawRedisReader, standalone_redis
from course_lib.registry_state import RegistryState
from course_lib.serving import EntityRows, Fetch, Rows, sdk_fetch
from course_lib.sqlite_reader import SqliteReader, is_sqlite


class ApiStartupError(CourseError):
    """The API cannot start; the message says what is missing and how to fix it."""


@dataclass(frozen=True)
class Services:
    """What the app holds for its lifetime."""

    profile: Profile
    store: FeatureStore
    ranker: ranker.Ranker
    model: ModelInfo
    model_json: orjson.Fragment  # `model`, encoded once for every recommendation body
    read: Callable[[list[str], EntityRows], Awaitable[Rows]]  # the fastest exact reader
    fetch: Fetch  # the same reads, blocking (background threads)
    state: RegistryState  # what requests need from the registry, refreshed in the background
    recommender: recommender.Recommender
    reader: RawRedisReader | SqliteReader | None = None  # the raw feature reads' connections, closed at shutdown


def open_store(profile: Profile) -> FeatureStore:
    """The profile's FeatureStore, checked to list every course feature view."""
    try:
        store = load_store(profile, serving=True)
        missing = missing_views(store)
    except Exception as exc:  # any failure here must stop start-up with a clear message
        raise ApiStartupError(say("api_services.registry_unreadable", location=registry_location(profile),
                                  reason=reason(exc), fix=registry_hint(profile, language()))) from exc
    if missing:
        raise ApiStartupError(say("api_services.views_missing", project=profile.project, missing=missing,
                                  profile=profile.name))
    return store


def model_info(model: ranker.Ranker, version: str) -> ModelInfo:
    """The ranker's version, cut-off and held-out metrics."""
    metrics = model.metrics
    ndcg = metrics["model"][f"ndcg@{ranker.NDCG_AT}"]
    return ModelInfo(version=version, trained_until=model.trained_until.to_pydatetime(), auc=metrics["model"]["auc"],
                     ndcg=None if np.isnan(ndcg) else ndcg, ndcg_k=ranker.NDCG_AT,
                     popularity_auc=metrics["popularity"]["auc"], held_out_rows=metrics["rows"],
                     scoring=model.runtime)


def open_services(profile: Profile, now: Clock) -> Services:
    """Open the store and load the ranker, or raise ApiStartupError."""
    store = open_store(profile)
    try:
        model = ranker.load(profile)
        version = ranker.version(profile)
        scorer = model.scorer(profile.model_path)
    except (ranker.RankerError, scoring.ScoringError) as exc:
        raise ApiStartupError(say("api_services.startup_failed", error=exc)) from exc
    fetch: Fetch
    read: Callable[[list[str], EntityRows], Awaitable[Rows]]
    candidates: CandidateRedisReader | SqliteReader | None = None
    reader: RawRedisReader | SqliteReader | None = None
    if standalone_redis(store):
        reader = RawRedisReader(store, profile)
        fetch, read = reader.online_rows, reader.online_rows_async
        candidates = CandidateRedisReader(store, profile)
    elif is_sqlite(store):
        reader = candidates = SqliteReader(store)
        fetch, read = reader.online_rows, reader.online_rows_async
    else:  # Feast's SDK, in a worker thread
        fetch = sdk_fetch(store)

        async def read(views: list[str], entity_rows: EntityRows) -> Rows:
            return await asyncio.to_thread(fetch, views, entity_rows)
    info = model_info(model, version)
    movies = recommender.MovieTable(store, profile, fetch)
    state = RegistryState(store, profile, movies, now)
    return Services(profile=profile, store=store, ranker=model, model=info,
                    model_json=orjson.Fragment(info.model_dump_json()), read=read, fetch=fetch, state=state,
                    recommender=recommender.Recommender(movies, state.serving_moment, model.features, scorer, fetch,
                                                        candidates),
                    reader=reader)
