"""The API's request and response bodies (2.7.3, 2.7.4), as pydantic models: FastAPI validates requests
against them and documents every field at `/docs`."""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from course_lib.health import Check

MAX_ID = 2**63 - 1  # entity keys are INT64
MAX_CANDIDATES = 1000
MAX_K = 1000

EntityId = Annotated[int, Field(gt=0, le=MAX_ID, strict=True)]
FeatureValue = int | float | str | None


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

    version: str = Field(description="the first 12 hex digits of the model file's SHA-256 (recorded at training)")
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

    request_id: str = Field(description="this response's id: its rows in the served-feature log carry it")
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


class RegistryStateInfo(BaseModel):
    """The API's in-memory registry state (materialization ends, movie near-cache) and its background refresh."""

    last_refresh: datetime | None = Field(description="when the background refresh last succeeded")
    failures: int = Field(description="failed refreshes since then (requests use the last known state meanwhile)")
    last_error: str | None = Field(description="why the last refresh failed")
    features_as_of: datetime = Field(description="the moment a recommendation now stands for (min(now, newest "
                                                 "materialization end) as last refreshed)")


class HealthResponse(BaseModel):
    """`GET /health`: 200 when the online store, registry and offline store work, else 503 naming the failed ones.

    The checks run in the background; `checked_at` says when the reported round started: it saw
    everything that happened before then.
    """

    status: Literal["ok", "unavailable"]
    profile: str
    project: str
    failed: list[str]
    components: dict[str, Check]
    checked_at: datetime
    registry_state: RegistryStateInfo
    model: ModelInfo


class FreshnessEntry(BaseModel):
    """How old one view's pipeline or data is; see `course_lib.freshness.Freshness`."""

    status: Literal["fresh", "stale", "never_materialized"]
    age_seconds: float | None = Field(description="never negative; null when there is nothing to measure")
    threshold_seconds: float
    timestamp: datetime | None = Field(description="materialization end (pipeline) or newest event timestamp (data)")
    source: Literal["registry", "online", "none"]
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


MAX_EVENTS = 400  # events per POST /events request: a full batch (~130 bytes per event) stays under the 64 KB body cap


class WatchEventIn(BaseModel):
    """One watch event as `POST /events` accepts it (NaN and ±Infinity, which Python's JSON parser reads, refused)."""

    model_config = ConfigDict(allow_inf_nan=False)
    user_id: EntityId = Field(description="who watched (positive integer)")
    movie_id: EntityId = Field(description="what was watched (positive integer, in the catalogue)")
    event_timestamp: AwareDatetime = Field(description="when, with a timezone (ISO 8601)")
    rating: float | None = Field(None, ge=0.5, le=5.0, multiple_of=0.5, description="half stars 0.5..5, or null")
    watch_seconds: float | None = Field(None, ge=0, description="seconds watched, or null when unknown")


class EventBatch(BaseModel):
    """`POST /events`' body: up to MAX_EVENTS watch events."""

    events: list[WatchEventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    """What `POST /events` did."""

    accepted: int = Field(description="events applied to the online features")
    duplicates: int = Field(description="retried events already applied (same user, movie and time), skipped")
    users: int = Field(description="distinct users in the batch")
    online_ms: float = Field(description="measured time from the locks taken to the pushes done")
