"""The real-time feature and recommendation API (2.7.3), measured instead of assumed.

The guide's endpoint answered `"feature_retrieval_time_ms": "< 10ms"`, a constant. Here
every timing is `time.perf_counter()` around the work done in that request. The app owns
one `FeatureStore` and one loaded ranker for its whole lifetime (FastAPI lifespan). The
feature and recommendation handlers are `async def`; blocking SDK reads run in worker threads,
SQLite's indexed queries on the loop. Scoring 100 candidates with the compiled trees takes a
fraction of a millisecond of CPU, less than handing it to a thread would cost, so it runs on the
event loop too.

Failure policy:
- start-up fails with an `ApiStartupError` naming the cause and the fix when the registry
  cannot be opened (PostgreSQL unreachable), lacks the feature views, or no model exists;
- an online store that fails at request time gives a 503 JSON body (error, detail, hint);
  user and interaction features are never cached, so the next request after the store comes
  back succeeds;
- PostgreSQL (registry and offline store) is never on the request path: what requests need from
  it is held in memory by `registry_state.RegistryState` and refreshed by a background thread,
  so during an outage or a hang feature and recommendation requests go on answering 200 from the
  last known state; a PostgreSQL error that still reaches a request is a 503 naming it;
- invalid input gives a 422 whose `fields` name each offending field;
- anything unexpected is a JSON 500 `ErrorBody` (the traceback goes to the server's log only).

Reads (2.7.5, `course_lib.redis_reader`, `course_lib.sqlite_reader` and `course_lib.caches`): on a single Redis
server, feature reads are one pipelined HMGET on Feast's own keys (`RawRedisReader`, tested equal to the SDK),
awaited with redis.asyncio; on SQLite (`local`) one indexed query per view on Feast's own tables
(`SqliteReader`, tested equal to the SDK), run on the event loop; on Redis Cluster they go through the
Feast SDK. Recommendations (`course_lib.recommender`) read movie metadata from a near-cache loaded on
first use and reloaded when a materialization moves the view's interval, make one round trip (one
query per view on SQLite) for the user and its interactions, build the model input without pandas and
score with the trees compiled at `course train` time.

Start-up (`course_lib.api_services`): the store, the ranker, the fastest exact reader and the registry state.

Served features and drift (notebook 09): every recommendation response carries a `request_id`; its model
input and scores go to the served-feature log (`course_lib.feature_log`) through a bounded queue, written by
a background thread, so logging never blocks or fails a request. A second background thread
(`course_lib.drift_watch`) compares the user and movie features online with the model's baseline every
COURSE_DRIFT_INTERVAL_S seconds and exports the drift gauges.

Processes: `serve(workers=N)` runs N uvicorn worker processes; each opens its own store,
Redis connections and model in its own lifespan, and keeps its own /metrics counts.

Monitoring (2.7.4, `course_lib.monitoring`): every request is counted and timed under its
route template and status; handlers record the online read's latency, the entities read
and how many were not found. `GET /health` (the online store, the registry and the offline
store; 503 naming what failed), `GET /freshness` and `GET /metrics` answer from memory: a
background thread (`course_lib.observer`) runs the checks and measures freshness every
COURSE_MONITOR_INTERVAL_S seconds, each check with a deadline, so they answer at once even
while PostgreSQL is locked, down or hung.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from course_lib import api_errors, events, feature_log, freshness, monitoring, recommender, request_limits, serving
from course_lib.api_models import (
    ErrorBody,
    EventBatch,
    EventsResponse,
    FreshnessResponse,
    HealthResponse,
    MovieFeaturesResponse,
    RecommendationRequest,
    RecommendationResponse,
    RegistryStateInfo,
    UserFeaturesResponse,
)
from course_lib.api_services import Services, open_services
from course_lib.candidate_matrix import micros
from course_lib.compat import close_online_clients
from course_lib.config import ConfigError, Profile, resolve_profile
from course_lib.drift_watch import DriftWatch, baseline_time
from course_lib.event_state import Event
from course_lib.freshness import Clock
from course_lib.health import ms_since
from course_lib.messages import say
from course_lib.monitoring import Metrics, RequestMetrics
from course_lib.observer import Observer
from course_lib.request_limits import PathId, public
from feature_repo.definitions import MOVIE_VIEW, USER_VIEW, join_keys

INGESTOR_LOCK = threading.Lock()
OFFLINE_FLUSH_ROWS = 2_000  # queued rows that trigger an offline append (a parquet append rewrites the file)


# --- handlers ---------------------------------------------------------------------------------

def ingestor_of(request: Request) -> events.EventIngestor:
    """The app's event ingestor, opened on the first `POST /events` (it loads the movie catalogue)."""
    state = request.app.state
    with INGESTOR_LOCK:
        if getattr(state, "ingestor", None) is None:
            services = services_of(request)
            state.ingestor = events.EventIngestor(services.store, services.profile)
    return state.ingestor


def services_of(request: Request) -> Services:
    """The services the app opened at start-up."""
    return request.app.state.services


def metrics_of(request: Request) -> Metrics:
    """The app's own metrics."""
    return request.app.state.metrics


def observer_of(request: Request) -> Observer:
    """The app's background health and freshness measurements."""
    return request.app.state.observer


def observe_entity(metrics: Metrics, feature_service: str, found: serving.EntityFeatures, seconds: float) -> None:
    """Record a single-entity read: its latency, one entity, and whether it was found."""
    metrics.observe_retrieval(feature_service, seconds)
    metrics.observe_entities(feature_service, monitoring.FEATURE_SERVICES[feature_service], 1,
                             int(found.status == "not_found"))


def entity_payload(found: serving.EntityFeatures, elapsed_ms: float) -> dict[str, Any]:
    """Response fields shared by the user and movie feature endpoints."""
    return {**found.key, "status": found.status, "features": found.values,
            "event_timestamps": found.event_timestamps, "feature_retrieval_ms": elapsed_ms}


def observe_candidates(metrics: Metrics, found: recommender.Recommendations) -> None:
    """Record a recommendation read: its latency, the user and the candidate movies, and the misses."""
    metrics.observe_retrieval("recommendation", found.retrieval_ms / 1000)
    metrics.observe_entities("recommendation", "user", 1, int(not found.user_found))
    metrics.observe_entities("recommendation", "movie", len(found.movie_ids), int((~found.movie_found).sum()))


# --- app ----------------------------------------------------------------------------------------

async def read_entity(request: Request, view: str, entity_id: int, label: str) -> dict[str, Any]:
    """One entity's online features, timed and recorded in the metrics under `label`."""
    start = time.perf_counter()
    key = join_keys(view)[0]
    found = (await services_of(request).read([view], [{key: entity_id}]))[0][view]
    elapsed_ms = ms_since(start)
    observe_entity(metrics_of(request), label, found, elapsed_ms / 1000)
    return entity_payload(found, elapsed_ms)


def add_routes(app: FastAPI) -> None:
    """Register the feature, recommendation, health and monitoring endpoints."""
    # The hot endpoints are `async def`: a plain `def` endpoint costs FastAPI thread hand-offs per
    # request. Feature reads await redis.asyncio (or the SDK in a worker thread); a recommendation
    # scores on the event loop (a fraction of a millisecond with the compiled trees).
    @app.get("/users/{user_id}/features", response_model=UserFeaturesResponse, responses=api_errors.ERRORS)
    async def get_user_features(request: Request, user_id: PathId) -> dict[str, Any]:
        """A user's online profile features."""
        return await read_entity(request, USER_VIEW, user_id, "user_profile")

    @app.get("/movies/{movie_id}/features", response_model=MovieFeaturesResponse, responses=api_errors.ERRORS)
    async def get_movie_features(request: Request, movie_id: PathId) -> dict[str, Any]:
        """A movie's online metadata features."""
        return await read_entity(request, MOVIE_VIEW, movie_id, "movie_metadata")

    # The body is built by `recommender.Recommendations.body` (orjson, no response-model
    # validation per request); `response_model` still documents it, and the tests validate it.
    @app.post("/recommendations", response_model=RecommendationResponse, responses=api_errors.ERRORS)
    async def post_recommendations(request: Request, body: RecommendationRequest) -> Response:
        """Rank candidate movies for a user with the trained model."""
        services = services_of(request)
        found = await services.recommender.recommend(body.user_id, body.movie_ids, body.k)
        observe_candidates(metrics_of(request), found)
        request_id = feature_log.new_request_id()
        logger: feature_log.FeatureLogger | None = request.app.state.feature_log
        if logger is not None:  # a queue put: the write happens in the logger's thread
            logger.log(feature_log.Served(request_id, datetime.now(timezone.utc), services.model.version, found))
        return Response(found.body(services.model_json, request_id), media_type="application/json")

    @app.post("/events", response_model=EventsResponse, responses=api_errors.ERRORS)
    async def post_events(request: Request, body: EventBatch) -> EventsResponse | JSONResponse:
        """Apply watch events to the online features (see course_lib/events.py)."""
        batch = [Event(e.user_id, e.movie_id, micros(e.event_timestamp), e.rating, e.watch_seconds)
                 for e in body.events]
        metrics = metrics_of(request)
        try:
            ingestor = ingestor_of(request)
            done = await (ingestor.ingest_async(batch) if ingestor.on_loop
                          else asyncio.to_thread(ingestor.ingest, batch))
        except events.EventError as exc:
            metrics.count_event_failure(len(batch), rejected=True)
            return api_errors.invalid_event(exc)
        except Exception:
            metrics.count_event_failure(len(batch), rejected=False)
            raise
        online_at = micros(datetime.now(timezone.utc))
        metrics.observe_events(done.accepted, done.duplicates, done.online_ms / 1000,
                               [(online_at - at) / 1e6 for at in done.accepted_us])
        ingestor.flush_when_due(OFFLINE_FLUSH_ROWS)  # the offline append, in batches, in the background
        return EventsResponse(accepted=done.accepted, duplicates=done.duplicates, users=done.users,
                              online_ms=done.online_ms)

    @app.get("/health", response_model=HealthResponse,
             responses={503: {"model": HealthResponse, "description": "a component failed"}})
    async def get_health(request: Request, response: Response) -> HealthResponse:
        """The latest background check of the online store (a real read), the registry and the offline store;
        503 names what failed."""
        services = services_of(request)
        checked_at, observation = observer_of(request).latest
        response.status_code = 200 if observation.healthy else 503
        status = services.state.status()
        state = RegistryStateInfo(last_refresh=status.last_success, failures=status.failures,
                                  last_error=public(status.last_error, services.profile),
                                  features_as_of=services.state.serving_moment())
        return HealthResponse(**public(observation.health, services.profile), checked_at=checked_at,
                              model=services.model, registry_state=state)

    @app.get("/freshness", response_model=FreshnessResponse,
             responses={503: {"model": ErrorBody, "description": "freshness could not be measured"}})
    async def get_freshness(request: Request) -> FreshnessResponse | JSONResponse:
        """Pipeline and data freshness of every feature view, as measured in the background at `checked_at`."""
        checked_at, observation = observer_of(request).latest
        if observation.freshness is None:
            body = ErrorBody(error="freshness_unavailable",
                             detail=public(f"not measured at {checked_at.isoformat()}: {observation.freshness_error}",
                                           services_of(request).profile),
                             hint="freshness needs the registry, the offline store and the online store; "
                                  "GET /health names the one that failed and how to fix it")
            return JSONResponse(body.model_dump(), status_code=503)
        return FreshnessResponse(**observation.freshness.as_dict())

    @app.get("/metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"}})
    async def get_metrics(request: Request) -> Response:
        """Prometheus metrics; the health and freshness gauges hold the latest background measurement."""
        content, content_type = metrics_of(request).render()
        return Response(content=content, media_type=content_type)


def create_app(profile: Profile | str | None = None, now: Clock = freshness.utc_now) -> FastAPI:
    """The API for a profile; the store and the ranker are opened when the app starts.

    `now` is the clock freshness is measured against (tests inject one).
    """
    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Open the services and start the background refreshers for the app's lifetime; stop and close at shutdown."""
        services = app.state.services = await asyncio.to_thread(open_services, resolved, now)
        await asyncio.to_thread(services.state.start)
        app.state.observer = await asyncio.to_thread(Observer(services.store, resolved, app.state.metrics, now).start)
        app.state.feature_log = await asyncio.to_thread(feature_log.open_logger, services.store, resolved,
                                                        app.state.metrics)
        app.state.drift = DriftWatch(resolved, baseline_time(services.ranker), services.fetch,
                                     lambda: services.recommender.movies.rows, app.state.metrics).start()
        yield
        app.state.drift.stop()
        if app.state.feature_log is not None:  # everything queued is written before the store closes
            await asyncio.to_thread(app.state.feature_log.close)
        await asyncio.to_thread(app.state.observer.stop)
        await asyncio.to_thread(services.state.stop)
        await services.recommender.aclose()
        if services.reader is not None:
            await services.reader.aclose()
        if getattr(app.state, "ingestor", None) is not None:  # its last offline append, then its connections
            await app.state.ingestor.aclose()
        await services.store.close()
        await close_online_clients(services.store)

    app = FastAPI(title="Movie recommendation feature API",
                  description=f"Online features and ranked recommendations (profile `{resolved.name}`, "
                              f"project `{resolved.project}`). Every timing is measured per request.",
                  version="1.0", lifespan=lifespan)
    app.state.metrics = Metrics()
    app.state.feature_log = None  # opened in the lifespan (COURSE_FEATURE_LOG)
    api_errors.install(app)
    request_limits.install(app)
    add_routes(app)
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    return app


def serve(profile: Profile | str | None = None, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the API under uvicorn until interrupted, in `workers` processes.

    Several workers are spawned (not forked) by uvicorn: each imports the app afresh and opens
    its own store, registry and Redis connections in its lifespan, so no connection is shared
    between processes. The profile reaches them through the environment.
    """
    import uvicorn

    if workers < 1:
        raise ConfigError(say("api.workers", workers=workers))
    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)
    # Start-up is checked here, before uvicorn: a broken set-up (no registry, no model) fails with
    # its one-line message instead of uvicorn's start-up traceback (or workers restarting).
    services = open_services(resolved, freshness.utc_now)
    asyncio.run(services.store.close())
    # No access log: /metrics counts every request by route and status, and a log line per
    # request took about a tenth of the server's CPU under load (measured with py-spy).
    limits: dict[str, Any] = {"limit_concurrency": resolved.settings.api_limit_concurrency,
                              "timeout_graceful_shutdown": resolved.settings.api_shutdown_s, "access_log": False}
    if workers == 1:
        uvicorn.run(create_app(resolved), host=host, port=port, **limits)
        return
    os.environ.update({**resolved.settings.env(), "COURSE_PROFILE": resolved.name})
    uvicorn.run("course_lib.api:create_app", factory=True, host=host, port=port, workers=workers, **limits)
