"""The feature / recommendation API in process (FastAPI TestClient), real services, both profiles.

Set-up is the course pipeline on a small synthetic log: dataset -> feature tables ->
offline store -> apply -> materialize -> trained ranker, in an isolated project/schema.
The outage tests run their OWN redis-server on a free port; the shared Redis is never stopped.
"""
from __future__ import annotations

import asyncio
import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from feast import FeatureStore
from support import API_PROJECT, DATA_END, UNKNOWN_ID, api_profile, isolated_profile, known_ids

from course_lib import ranker, serving
from course_lib.api import create_app
from course_lib.api_models import MAX_CANDIDATES, RecommendationResponse
from course_lib.api_services import ApiStartupError
from course_lib.background import RedisServer, free_port
from course_lib.config import Profile, load_store, resolve_profile


@pytest.fixture(scope="module")
def client(ready: Profile) -> Iterator[TestClient]:
    """The API running in process for the profile (lifespan entered)."""
    with TestClient(create_app(ready)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def store(ready: Profile) -> FeatureStore:
    """An independent FeatureStore to compute expected answers."""
    return load_store(ready)


# --- features -------------------------------------------------------------------------------

def test_user_features_equal_the_serving_layer(client: TestClient, store: FeatureStore) -> None:
    user, _ = known_ids()
    body = client.get(f"/users/{user}/features").json()
    expected = serving.user_features(store, user)
    assert body["user_id"] == user and body["status"] == "found"
    assert body["features"] == expected.values
    assert body["event_timestamps"] == {k: v.isoformat().replace("+00:00", "Z")
                                        for k, v in expected.event_timestamps.items()}


def timed(call: Callable[[], httpx.Response]) -> tuple[dict, float]:
    """A request's JSON body and the milliseconds the client waited for it."""
    start = time.perf_counter()
    body = call().json()
    return body, (time.perf_counter() - start) * 1000


def test_timings_are_measured_around_the_work_of_that_request(client: TestClient,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A read made 50 ms slower shows up in that request's figures, which never exceed its wall time."""
    services = client.app.state.services
    read_candidates = services.recommender.read

    async def slow_read(views: list[str], rows: list[dict[str, int]]) -> list:
        await asyncio.sleep(0.05)
        return await services.read(views, rows)

    async def slow_candidates(user_id: int, movie_ids: list[int]) -> tuple:
        await asyncio.sleep(0.05)
        return await read_candidates(user_id, movie_ids)

    user, movies = known_ids()
    body, wall_ms = timed(lambda: client.get(f"/users/{user}/features"))
    assert 0 < body["feature_retrieval_ms"] <= wall_ms
    request = {"user_id": user, "movie_ids": list(movies[:5])}
    body, wall_ms = timed(lambda: client.post("/recommendations", json=request))
    assert body["feature_retrieval_ms"] > 0 and body["scoring_ms"] > 0
    assert body["feature_retrieval_ms"] + body["scoring_ms"] <= wall_ms
    client.app.state.services = dataclasses.replace(services, read=slow_read)
    monkeypatch.setattr(services.recommender, "read", slow_candidates)
    try:
        body, wall_ms = timed(lambda: client.get(f"/users/{user}/features"))
        assert 50 <= body["feature_retrieval_ms"] <= wall_ms
        body, wall_ms = timed(lambda: client.post("/recommendations", json=request))
        assert 50 <= body["feature_retrieval_ms"] and body["feature_retrieval_ms"] + body["scoring_ms"] <= wall_ms
    finally:
        client.app.state.services = services


def test_movie_features_equal_the_serving_layer(client: TestClient, store: FeatureStore) -> None:
    _, movies = known_ids()
    body = client.get(f"/movies/{movies[0]}/features").json()
    expected = serving.movie_features(store, movies[0])
    assert body["movie_id"] == movies[0] and body["status"] == "found"
    assert body["features"] == expected.values and all(v is not None for v in body["event_timestamps"].values())


@pytest.mark.parametrize("kind", ["users", "movies"])
def test_unknown_ids_are_not_found_with_null_features(client: TestClient, kind: str) -> None:
    response = client.get(f"/{kind}/{UNKNOWN_ID}/features")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "not_found", body
    assert body["features"] and all(v is None for v in body["features"].values()), body
    assert all(v is None for v in body["event_timestamps"].values()), body


# --- recommendations ------------------------------------------------------------------------

def expected_scores(ready: Profile, store: FeatureStore, user: int, movies: tuple[int, ...],
                    as_of: datetime) -> dict[int, float]:
    """The saved ranker's score for each candidate, from an independent online read, TTLs applied at as_of."""
    frame = ranker.candidate_frame(serving.candidate_features(store, user, movies), now=as_of)
    return dict(zip(movies, ranker.load(ready).score(frame).tolist()))


def test_recommendations_are_the_rankers_scores_sorted(client: TestClient, ready: Profile,
                                                       store: FeatureStore) -> None:
    user, movies = known_ids()
    candidates = (*reversed(movies), UNKNOWN_ID)
    response = client.post("/recommendations", json={"user_id": user, "movie_ids": candidates,
                                                     "k": len(candidates)})
    body = response.json()
    assert response.status_code == 200, body
    as_of = datetime.fromisoformat(body["features_as_of"])
    assert as_of == DATA_END, "features are scored as of the replayed log's materialization end"
    expected = expected_scores(ready, store, user, candidates, as_of)
    got = [(r["movie_id"], r["score"]) for r in body["recommendations"]]
    assert got == sorted(expected.items(), key=lambda pair: (-pair[1], pair[0]))
    assert body["user_id"] == user and body["user_status"] == "found"
    statuses = {r["movie_id"]: r["movie_status"] for r in body["recommendations"]}
    assert statuses.pop(UNKNOWN_ID) == "not_found" and set(statuses.values()) == {"found"}
    unknown = next(r for r in body["recommendations"] if r["movie_id"] == UNKNOWN_ID)
    assert unknown["features_used"]["vote_average"] is None and unknown["features_used"]["avg_rating"] is not None
    metrics = ranker.load(ready).metrics
    assert body["model"]["auc"] == metrics["model"]["auc"] and body["model"]["held_out_rows"] == metrics["rows"]
    assert body["model"]["scoring"].startswith("tl2cgen"), body["model"]  # compiled at `course train` time
    RecommendationResponse.model_validate(body)  # the orjson body is what the OpenAPI schema documents


@pytest.mark.parametrize("k", [1, 5, 10])
def test_recommendations_return_the_top_k(client: TestClient, k: int) -> None:
    user, movies = known_ids()
    body = client.post("/recommendations", json={"user_id": user, "movie_ids": movies, "k": k}).json()
    everything = client.post("/recommendations", json={"user_id": user, "movie_ids": movies,
                                                       "k": len(movies)}).json()
    assert body["recommendations"] == everything["recommendations"][:k]


def test_k_defaults_to_ten_and_never_exceeds_the_candidates(client: TestClient) -> None:
    user, movies = known_ids()
    assert len(client.post("/recommendations", json={"user_id": user, "movie_ids": movies}).json()
               ["recommendations"]) == 10
    assert len(client.post("/recommendations", json={"user_id": user, "movie_ids": movies[:3], "k": 50}).json()
               ["recommendations"]) == 3


def test_unknown_user_is_scored_on_null_user_features(client: TestClient, ready: Profile,
                                                      store: FeatureStore) -> None:
    _, movies = known_ids()
    body = client.post("/recommendations", json={"user_id": UNKNOWN_ID, "movie_ids": movies[:5]}).json()
    assert body["user_status"] == "not_found", body
    assert all(r["features_used"]["avg_rating"] is None for r in body["recommendations"])
    expected = expected_scores(ready, store, UNKNOWN_ID, movies[:5], DATA_END)
    assert {r["movie_id"]: r["score"] for r in body["recommendations"]} == expected


# --- invalid input --------------------------------------------------------------------------

BAD_REQUESTS = {
    "path user_id 0": ("GET", "/users/0/features", None, "user_id"),
    "path user_id -1": ("GET", "/users/-1/features", None, "user_id"),
    "path user_id abc": ("GET", "/users/abc/features", None, "user_id"),
    "path movie_id 0": ("GET", "/movies/0/features", None, "movie_id"),
    "body user_id 0": ("POST", "/recommendations", {"user_id": 0, "movie_ids": [1]}, "user_id"),
    "body user_id -1": ("POST", "/recommendations", {"user_id": -1, "movie_ids": [1]}, "user_id"),
    "body user_id abc": ("POST", "/recommendations", {"user_id": "abc", "movie_ids": [1]}, "user_id"),
    "missing user_id": ("POST", "/recommendations", {"movie_ids": [1]}, "user_id"),
    "missing movie_ids": ("POST", "/recommendations", {"user_id": 1}, "movie_ids"),
    "empty movie_ids": ("POST", "/recommendations", {"user_id": 1, "movie_ids": []}, "movie_ids"),
    "1001 movie_ids": ("POST", "/recommendations",
                       {"user_id": 1, "movie_ids": list(range(1, MAX_CANDIDATES + 2))}, "movie_ids"),
    "negative movie id": ("POST", "/recommendations", {"user_id": 1, "movie_ids": [1, -2]}, "movie_ids[1]"),
    "repeated movie id": ("POST", "/recommendations", {"user_id": 1, "movie_ids": [4, 4]}, "movie_ids"),
    "k 0": ("POST", "/recommendations", {"user_id": 1, "movie_ids": [1], "k": 0}, "k"),
    "no body": ("POST", "/recommendations", None, "body"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_invalid_input_is_a_422_naming_the_field(client: TestClient, case: str) -> None:
    method, url, payload, field = BAD_REQUESTS[case]
    response = client.request(method, url, json=payload)
    body = response.json()
    assert response.status_code == 422, body
    assert body["error"] == "invalid_request" and field in [f["field"] for f in body["fields"]], body
    assert f"{field}: " in body["detail"] and body["hint"], body


def test_malformed_json_is_a_422_naming_the_body(client: TestClient) -> None:
    response = client.post("/recommendations", content=b'{"user_id": 1,', headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "body", response.text


# --- schema and health ----------------------------------------------------------------------

def test_openapi_documents_every_endpoint_with_models(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    expected = {("/users/{user_id}/features", "get"): "UserFeaturesResponse",
                ("/movies/{movie_id}/features", "get"): "MovieFeaturesResponse",
                ("/recommendations", "post"): "RecommendationResponse",
                ("/health", "get"): "HealthResponse"}
    for (path, method), model in expected.items():
        responses = paths[path][method]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(f"/{model}")
        assert "503" in responses
    assert paths["/recommendations"]["post"]["responses"]["422"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/ErrorBody")


def test_health_is_ok_when_every_component_works(client: TestClient, ready: Profile) -> None:
    response = client.get("/health")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok" and body["failed"] == [], body
    assert body["profile"] == ready.name and body["project"] == API_PROJECT
    assert set(body["components"]) == {"registry", "online_store", "offline_store"}
    assert "lists all 3 course feature views" in body["components"]["registry"]["detail"]


# --- start-up failures ----------------------------------------------------------------------

def start_up(profile: Profile) -> None:
    """Run the app's lifespan once: start-up, then shutdown."""
    with TestClient(create_app(profile)):
        pass


@pytest.mark.enterprise
def test_unreachable_postgres_stops_start_up_with_a_clear_message(tmp_path) -> None:
    port = free_port()
    profile = isolated_profile("enterprise", tmp_path, project=API_PROJECT, FEAST_PG_PORT=str(port))
    with pytest.raises(ApiStartupError) as failure:
        start_up(profile)
    message = str(failure.value)
    assert "feature registry" in message and f"127.0.0.1:{port}" in message and "FEAST_PG_PORT" in message


def test_start_up_needs_applied_views_and_a_trained_model(tmp_path) -> None:
    profile = isolated_profile("local", tmp_path, project="course_test_api_empty")
    with pytest.raises(ApiStartupError, match="no feature views .* `course apply --profile local`"):
        start_up(profile)
    serving.apply(load_store(profile), profile)
    with pytest.raises(ApiStartupError, match="no trained ranker .* `course train --profile local`"):
        start_up(profile)


# --- Redis outage ---------------------------------------------------------------------------

@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, stopped afterwards."""
    with RedisServer() as server:
        yield server


@pytest.mark.enterprise
@pytest.mark.timeout(180)  # a hung request after the outage fails here instead of hanging the run
def test_redis_outage_gives_503_and_the_api_recovers_without_restart(
        own_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    base = api_profile("enterprise", tmp_path_factory.getbasetemp())  # its offline tables and model are reused
    profile = resolve_profile("enterprise", {**base.env(), "FEAST_PROJECT": "course_test_api_outage",
                                             "FEAST_REDIS_PORT": str(own_redis.port), "FEAST_REDIS_DB": "0"})
    store = load_store(profile)
    serving.apply(store, profile)
    serving.materialize(store, profile)
    shutil.copy(base.model_path, profile.model_path)
    shutil.copy(ranker.digest_path(base.model_path), ranker.digest_path(profile.model_path))
    user, movies = known_ids()
    recommend = {"user_id": user, "movie_ids": movies[:5]}

    with TestClient(create_app(profile)) as client:
        before = client.get(f"/users/{user}/features").json()
        assert before["status"] == "found"
        opened = client.app.state.services.store

        own_redis.stop()
        for response in (client.get(f"/users/{user}/features"),
                         client.post("/recommendations", json=recommend)):
            body = response.json()
            assert response.status_code == 503, body
            assert body["error"] == "online_store_unavailable" and "FEAST_REDIS_PORT" in body["hint"], body
            assert str(own_redis.port) not in response.text, "no addresses without COURSE_API_DEBUG"
        client.app.state.observer.observe()  # the background health round, now
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["failed"] == ["online_store"], health.text

        own_redis.start()  # same port, empty: the API must reconnect on its own
        assert client.get(f"/users/{user}/features").json()["status"] == "not_found"
        serving.materialize(store, profile)
        assert client.get(f"/users/{user}/features").json()["features"] == before["features"]
        assert client.post("/recommendations", json=recommend).status_code == 200
        client.app.state.observer.observe()
        assert client.get("/health").status_code == 200
        assert client.app.state.services.store is opened
