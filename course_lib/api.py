"""The real-time feature and recommendation API (2.7.3), measured instead of assumed.

The guide's endpoint answered `"feature_retrieval_time_ms": "< 10ms"`, a constant. Here
every timing is `time.perf_counter()` around the work done in that request. The app owns
one `FeatureStore` and one loaded ranker for its whole lifetime (FastAPI lifespan). The
feature and recommendation handlers are `async def`; blocking reads (Feast's SDK, SQLite)
run in worker threads. Scoring 100 candidates with the compiled trees takes a fraction of a
millisecond of CPU, less than handing it to a thread would cost, so it runs on the event loop.

Failure policy:
- start-up fails with an `ApiStartupError` naming the cause and the fix when the registry
  cannot be opened (PostgreSQL unreachable), lacks the feature views, or no model exists;
- an online store that fails at request time gives a 503 JSON body (error, detail, hint);
  user and interaction features are never cached, so the next request after the store comes
  back succeeds;
- invalid input gives a 422 whose `fields` name each offending field.

Reads (2.7.5, `course_lib.optimization`): on a single Redis server, feature reads are one
pipelined HMGET on Feast's own keys (`RawRedisReader`, tested equal to the SDK), awaited with
redis.asyncio; elsewhere they go through the Feast SDK. Recommendations (`course_lib.recommender`)
read movie metadata from a near-cache loaded on first use and reloaded when a materialization
moves the view's interval, make one round trip for the user and its interactions, build the
model input without pandas and score with the trees compiled at `course train` time.

Processes: `serve(workers=N)` runs N uvicorn worker processes; each opens its own store,
Redis connections and model in its own lifespan, and keeps its own /metrics counts.

Monitoring (2.7.4, `course_lib.monitoring`): every request is counted and timed under its
route template and status; handlers record the online read's latency, the entities read
and how many were not found. `GET /metrics` (Prometheus text) and `GET /freshness` measure
freshness from the registry and real online reads; `GET /health` checks the online store,
the registry and the offline store, and answers 503 naming what failed.
"""
from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Literal

import numpy as np
import orjson
import redis
from fastapi import FastAPI, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from feast import FeatureStore
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from course_lib import monitoring, optimization, ranker, recommender, scoring, serving
from course_lib.adapter import join_keys
from course_lib.config import Profile, load_store, resolve_profile
from course_lib.doctor import reason
from course_lib.monitoring import (
    Clock,
    Metrics,
    missing_views,
    ms_since,
    online_store_hint,
    registry_hint,
    registry_location,
)

MAX_ID = 2**63 - 1  # entity keys are INT64
MAX_CANDIDATES = 1000
MAX_K = 1000
ONLINE_STORE_ERRORS = (redis.RedisError, sqlite3.Error)

EntityId = Annotated[int, Field(gt=0, le=MAX_ID, strict=True)]
FeatureValue = int | float | str | None


class ApiStartupError(RuntimeError):
    """The API cannot start; the message says what is missing and how to fix it."""


# --- request and response models ---------------------------------------------------------

class RecommendationRequest(BaseModel):
    """One user and the candidate movies to rank for them."""

    model_config = ConfigDict(extra="forbid")

    user_id: EntityId = Field(description="the user to recommend for (positive integer)")
    movie_ids: list[EntityId] = Field(min_length=1, max_length=MAX_CANDIDATES,
                                      description=f"candidate movies, 1 to {MAX_CANDIDATES} distinct positive ids")
    k: int = Field(10, ge=1, le=MAX_K, strict=True, description="how many recommendations to return")

    @field_validator("movie_ids")
    @classmethod
    def distinct(cls, movie_ids: list[int]) -> list[int]:
        """Reject repeated candidates instead of silently dropping them."""
        repeated = [] if len(set(movie_ids)) == len(movie_ids) else sorted(
            m for m, n in Counter(movie_ids).items() if n > 1)
        if repeated:
            raise ValueError(f"movie_ids must be distinct; repeated: {repeated[:10]}")
        return movie_ids


class EntityFeaturesResponse(BaseModel):
    """One entity's online features as served, with their event timestamps."""

    status: Literal["found", "not_found"]
    features: dict[str, FeatureValue] = Field(description="feature name -> value; null when not found")
    event_timestamps: dict[str, datetime | None]
    feature_retrieval_ms: float = Field(description="measured time of the online read in this request")


class UserFeaturesResponse(EntityFeaturesResponse):
    """`GET /users/{user_id}/features`."""

    user_id: int


class MovieFeaturesResponse(EntityFeaturesResponse):
    """`GET /movies/{movie_id}/features`."""

    movie_id: int


class ModelInfo(BaseModel):
    """The loaded ranker: its training cut-off and held-out metrics."""

    trained_until: datetime
    auc: float
    ndcg: float | None = Field(description="held-out NDCG@ndcg_k; null when no user qualified")
    ndcg_k: int
    popularity_auc: float = Field(description="AUC of the popularity baseline on the same rows")
    held_out_rows: int
    scoring: str = Field(description="what scores requests: the compiled trees (`tl2cgen ...`) or `scikit-learn` "
                                     "when `course train` found no C compiler; the scores are identical")


class Recommendation(BaseModel):
    """One ranked candidate and the model input it was scored on."""

    movie_id: int
    score: float
    movie_status: Literal["found", "not_found"]
    features_used: dict[str, float | None]


class RecommendationResponse(BaseModel):
    """`POST /recommendations`: the top k candidates by score (ties by movie_id)."""

    user_id: int
    user_status: Literal["found", "not_found"]
    recommendations: list[Recommendation]
    features_as_of: datetime = Field(description="values older than their view's TTL at this moment "
                                                 "(newest materialization end, at most now) are treated "
                                                 "as missing, exactly as in training")
    feature_retrieval_ms: float
    scoring_ms: float
    model: ModelInfo


class FieldError(BaseModel):
    """One invalid input field."""

    field: str = Field(description="e.g. `user_id`, `movie_ids[3]`, or `body` for a malformed body")
    location: str = Field(description="path, query or body")
    message: str
    type: str


class ErrorBody(BaseModel):
    """Every error response: what went wrong and how to fix it."""

    error: str
    detail: str
    hint: str
    fields: list[FieldError] = []


class Component(BaseModel):
    """One health check."""

    ok: bool
    detail: str
    latency_ms: float
    hint: str = ""


class HealthResponse(BaseModel):
    """`GET /health`: 200 when the online store, registry and offline store work, else 503 naming the failed ones."""

    status: Literal["ok", "unavailable"]
    profile: str
    project: str
    failed: list[str]
    components: dict[str, Component]
    model: ModelInfo


class FreshnessEntry(BaseModel):
    """How old one view's pipeline or data is; see `course_lib.monitoring.Freshness`."""

    status: Literal["fresh", "stale", "never_materialized"]
    age_seconds: float | None = Field(description="never negative; null when there is nothing to measure")
    threshold_seconds: float
    timestamp: datetime | None = Field(description="materialization end (pipeline) or newest event timestamp (data)")
    source: Literal["registry", "online", "offline", "none"]
    future_end: bool = Field(description="the timestamp lies after now, so the age was clipped to 0")
    detail: str


class ViewFreshness(BaseModel):
    """Pipeline and data freshness of one feature view."""

    pipeline: FreshnessEntry
    data: FreshnessEntry


class FreshnessResponse(BaseModel):
    """`GET /freshness`: every feature view, measured at `checked_at`."""

    checked_at: datetime
    views: dict[str, ViewFreshness]


# --- services -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Services:
    """What the app holds for its lifetime."""

    profile: Profile
    store: FeatureStore
    ranker: ranker.Ranker
    model: ModelInfo
    model_json: orjson.Fragment  # `model`, encoded once for every recommendation body
    read: Callable[[list[str], optimization.EntityRows], Awaitable[optimization.Rows]]  # the fastest exact reader
    recommender: recommender.Recommender


def open_store(profile: Profile) -> FeatureStore:
    """The profile's FeatureStore, checked to list every course feature view."""
    try:
        store = load_store(profile)
        missing = missing_views(store, allow_cache=True)
    except Exception as exc:  # any failure here must stop start-up with a clear message
        raise ApiStartupError(f"API start-up failed: cannot read the feature registry ({registry_location(profile)}): "
                              f"{reason(exc)}. Fix: {registry_hint(profile)}") from exc
    if missing:
        raise ApiStartupError(f"API start-up failed: project {profile.project!r} has no feature views {missing}. "
                              f"Fix: `course apply --profile {profile.name}`, then "
                              f"`course materialize --profile {profile.name}`")
    return store


def model_info(model: ranker.Ranker) -> ModelInfo:
    """The ranker's cut-off and held-out metrics."""
    metrics = model.metrics
    ndcg = metrics["model"][f"ndcg@{ranker.NDCG_AT}"]
    return ModelInfo(trained_until=model.trained_until.to_pydatetime(), auc=metrics["model"]["auc"],
                     ndcg=None if np.isnan(ndcg) else ndcg, ndcg_k=ranker.NDCG_AT,
                     popularity_auc=metrics["popularity"]["auc"], held_out_rows=metrics["rows"],
                     scoring=model.runtime)


def open_services(profile: Profile, now: Clock) -> Services:
    """Open the store and load the ranker, or raise ApiStartupError."""
    store = open_store(profile)
    try:
        model = ranker.load(profile)
        scorer = model.scorer(profile.model_path)
    except (ranker.RankerError, scoring.ScoringError) as exc:
        raise ApiStartupError(f"API start-up failed: {exc}") from exc
    reader: recommender.CandidateRedisReader | None = None
    if optimization.standalone_redis(store):
        reader = recommender.CandidateRedisReader(store)
        fetch, read = reader.online_rows, reader.online_rows_async
    else:  # Feast's SDK, in a worker thread
        fetch = optimization.sdk_fetch(store)
        read = partial(asyncio.to_thread, fetch)
    info = model_info(model)
    return Services(profile=profile, store=store, ranker=model, model=info,
                    model_json=orjson.Fragment(info.model_dump_json()), read=read,
                    recommender=recommender.Recommender(store, profile, model.features, scorer, fetch, reader, now))


# --- handlers ---------------------------------------------------------------------------------

def services_of(request: Request) -> Services:
    """The services the app opened at start-up."""
    return request.app.state.services


def metrics_of(request: Request) -> Metrics:
    """The app's own metrics."""
    return request.app.state.metrics


def observe_entity(metrics: Metrics, feature_service: str, found: serving.EntityFeatures, seconds: float) -> None:
    """Record a single-entity read: its latency, one entity, and whether it was found."""
    metrics.observe_retrieval(feature_service, seconds)
    metrics.observe_entities(feature_service, monitoring.FEATURE_SERVICES[feature_service], 1,
                             int(found.status == "not_found"))


def entity_payload(found: serving.EntityFeatures, elapsed_ms: float) -> dict:
    """Response fields shared by the user and movie feature endpoints."""
    return {**found.key, "status": found.status, "features": found.values,
            "event_timestamps": found.event_timestamps, "feature_retrieval_ms": elapsed_ms}


def observe_candidates(metrics: Metrics, found: recommender.Recommendations) -> None:
    """Record a recommendation read: its latency, the user and the candidate movies, and the misses."""
    metrics.observe_retrieval("recommendation", found.retrieval_ms / 1000)
    metrics.observe_entities("recommendation", "user", 1, int(not found.user_found))
    metrics.observe_entities("recommendation", "movie", len(found.movie_ids), int((~found.movie_found).sum()))


def field_errors(exc: RequestValidationError) -> list[FieldError]:
    """FastAPI's validation errors as named fields (`movie_ids[3]`, `user_id`, `body`)."""
    out = []
    for error in exc.errors():
        location, *path = [str(part) for part in error["loc"]] or ["body"]
        if error["type"] == "json_invalid":
            path = []
        name = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in path).lstrip(".") or location
        out.append(FieldError(field=name, location=location, message=error["msg"], type=error["type"]))
    return out


def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming every invalid field."""
    metrics_of(request).count_error("invalid_request")
    fields = field_errors(exc)
    body = ErrorBody(error="invalid_request", detail="; ".join(f"{f.field}: {f.message}" for f in fields),
                     hint=(f"ids are positive integers; POST /recommendations takes {{user_id, movie_ids "
                           f"(1-{MAX_CANDIDATES} distinct ids), k (1-{MAX_K}, default 10)}}; see /docs"),
                     fields=fields)
    return JSONResponse(body.model_dump(), status_code=422)


def online_store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 when the online store cannot be read; nothing is cached, so the next call retries."""
    metrics_of(request).count_error("online_store_unavailable")
    body = ErrorBody(error="online_store_unavailable", detail=reason(exc),
                     hint=online_store_hint(services_of(request).profile))
    return JSONResponse(body.model_dump(), status_code=503)


# --- app ----------------------------------------------------------------------------------------

ERRORS = {422: {"model": ErrorBody, "description": "invalid ids or body; `fields` names them"},
          503: {"model": ErrorBody, "description": "the online store cannot be reached"}}


async def read_entity(request: Request, view: str, entity_id: int, label: str) -> dict:
    """One entity's online features, timed and recorded in the metrics under `label`."""
    start = time.perf_counter()
    key = join_keys(view)[0]
    found = (await services_of(request).read([view], [{key: entity_id}]))[0][view]
    elapsed_ms = ms_since(start)
    observe_entity(metrics_of(request), label, found, elapsed_ms / 1000)
    return entity_payload(found, elapsed_ms)


def add_routes(app: FastAPI, now: Clock) -> None:
    """Register the feature, recommendation, health and monitoring endpoints."""
    # The hot endpoints are `async def`: a plain `def` endpoint costs FastAPI thread hand-offs per
    # request. Feature reads await redis.asyncio (or the SDK in a worker thread); a recommendation
    # scores in a worker thread, as it is CPU-bound.
    @app.get("/users/{user_id}/features", response_model=UserFeaturesResponse, responses=ERRORS)
    async def get_user_features(request: Request, user_id: Annotated[int, Path(gt=0, le=MAX_ID)]) -> dict:
        """A user's online profile features."""
        return await read_entity(request, optimization.USER_VIEW, user_id, "user_profile")

    @app.get("/movies/{movie_id}/features", response_model=MovieFeaturesResponse, responses=ERRORS)
    async def get_movie_features(request: Request, movie_id: Annotated[int, Path(gt=0, le=MAX_ID)]) -> dict:
        """A movie's online metadata features."""
        return await read_entity(request, optimization.MOVIE_VIEW, movie_id, "movie_metadata")

    # The body is built by `recommender.Recommendations.body` (orjson, no response-model
    # validation per request); `response_model` still documents it, and the tests validate it.
    @app.post("/recommendations", response_model=RecommendationResponse, responses=ERRORS)
    async def post_recommendations(request: Request, body: RecommendationRequest) -> Response:
        """Rank candidate movies for a user with the trained model."""
        services = services_of(request)
        found = await services.recommender.recommend(body.user_id, body.movie_ids, body.k)
        observe_candidates(metrics_of(request), found)
        return Response(found.body(services.model_json), media_type="application/json")

    @app.get("/health", response_model=HealthResponse,
             responses={503: {"model": HealthResponse, "description": "a component failed"}})
    def get_health(request: Request, response: Response) -> HealthResponse:
        """Check the online store (a real read), the registry and the offline store; 503 names what failed."""
        services = services_of(request)
        ok, report = monitoring.health(services.store, services.profile)
        metrics_of(request).record_health(report)
        response.status_code = 200 if ok else 503
        return HealthResponse(**report, model=services.model)

    @app.get("/freshness", response_model=FreshnessResponse,
             responses={503: {"model": ErrorBody, "description": "freshness could not be measured"}})
    def get_freshness(request: Request) -> FreshnessResponse | JSONResponse:
        """Pipeline and data freshness of every feature view, measured now."""
        services, metrics = services_of(request), metrics_of(request)
        try:
            report = monitoring.freshness(services.store, services.profile, now)
        except Exception as exc:  # noqa: BLE001 - reported as a 503 naming the cause
            metrics.count_error("freshness_check")
            body = ErrorBody(error="freshness_unavailable", detail=reason(exc),
                             hint="freshness needs the registry, the offline store and the online store; "
                                  "GET /health names the one that failed and how to fix it")
            return JSONResponse(body.model_dump(), status_code=503)
        metrics.record_freshness(report)
        return FreshnessResponse(**report.as_dict())

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"}})
    def get_metrics(request: Request) -> Response:
        """Prometheus metrics; each scrape also runs the health checks and measures freshness."""
        services, metrics = services_of(request), metrics_of(request)
        monitoring.refresh(metrics, services.store, services.profile, now)
        content, content_type = metrics.render()
        return Response(content=content, media_type=content_type)


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/users/{user_id}/features`), or `unmatched`."""
    return getattr(scope.get("route"), "path", "unmatched")


class RequestMetrics:
    """ASGI middleware: count and time every request under its route template and status code.

    Plain ASGI rather than `@app.middleware("http")`, whose per-request task and stream
    plumbing cost more than a Redis read.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, noting the response status and the elapsed time."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            self.metrics.count_error("internal")
            status = 500
            raise
        finally:
            self.metrics.observe_request(route_template(scope), status, time.perf_counter() - start)


def create_app(profile: Profile | str | None = None, now: Clock = monitoring.utc_now) -> FastAPI:
    """The API for a profile; the store and the ranker are opened when the app starts.

    `now` is the clock freshness is measured against (tests inject one).
    """
    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Open the services once for the app's lifetime, close them at shutdown."""
        app.state.services = open_services(resolved, now)
        yield
        await app.state.services.recommender.aclose()
        await app.state.services.store.close()

    app = FastAPI(title="Movie recommendation feature API",
                  description=f"Online features and ranked recommendations (profile `{resolved.name}`, "
                              f"project `{resolved.project}`). Every timing is measured per request.",
                  version="1.0", lifespan=lifespan)
    app.state.metrics = Metrics()
    app.add_exception_handler(RequestValidationError, invalid_request)
    for error_type in ONLINE_STORE_ERRORS:
        app.add_exception_handler(error_type, online_store_unavailable)
    add_routes(app, now)
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    return app


def serve(profile: Profile | str | None = None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the API under uvicorn until interrupted, in `workers` processes.

    Several workers are spawned (not forked) by uvicorn: each imports the app afresh and opens
    its own store, registry and Redis connections in its lifespan, so no connection is shared
    between processes. The profile reaches them through the environment; start-up is checked
    once here first, so a broken set-up fails with its message instead of workers restarting.
    """
    import uvicorn

    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    # No access log: /metrics counts every request by route and status, and a log line per
    # request took about a tenth of the server's CPU under load (measured with py-spy).
    if workers == 1:
        uvicorn.run(create_app(profile), host=host, port=port, access_log=False)
        return
    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)
    services = open_services(resolved, monitoring.utc_now)
    asyncio.run(services.store.close())
    os.environ.update({**resolved.settings, "COURSE_PROFILE": resolved.name})
    uvicorn.run("course_lib.api:create_app", factory=True, host=host, port=port, workers=workers, access_log=False)
