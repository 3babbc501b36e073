"""The API's monitoring wiring, in process, both profiles: /metrics parsed with Prometheus' own
parser moves by exactly the requests sent; /freshness follows an injected clock; /health is
503 naming the failed component and recovers (own redis-server). The health and freshness rounds
the app runs in the background are run on demand here (`observe`); PostgreSQL outages are in
test_resilience.py."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from support import UNKNOWN_ID, FakeClock, api_profile, known_ids, value

from course_lib import serving
from course_lib.api import create_app
from course_lib.background import RedisServer
from course_lib.config import Profile, load_store, resolve_profile
from course_lib.health import HEALTH_COMPONENTS
from feature_repo.definitions import FEATURE_VIEWS

USERS = "/users/{user_id}/features"
MOVIES = "/movies/{movie_id}/features"
RECOMMEND = "/recommendations"


@pytest.fixture(scope="module")
def clock(ready: Profile) -> FakeClock:
    """The app's clock, starting at the registry's materialization end."""
    return FakeClock(serving.latest_interval(load_store(ready), FEATURE_VIEWS[0])[1])


@pytest.fixture(scope="module")
def client(ready: Profile, clock: FakeClock) -> Iterator[TestClient]:
    """The API in process, measuring freshness against the injected clock."""
    with TestClient(create_app(ready, now=clock)) as test_client:
        yield test_client


def scrape(client: TestClient) -> dict[str, list]:
    """GET /metrics, parsed with the Prometheus parser: sample name -> samples."""
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain"), response.text
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def observe(client: TestClient) -> None:
    """Run one round of the app's background health and freshness measurement now."""
    client.app.state.observer.observe()  # type: ignore[attr-defined]


def count(samples: dict[str, list], name: str, **labels: str) -> float:
    """A counter-like sample's value, 0 when the series does not exist yet."""
    return value(samples, name, **labels) or 0.0


def test_counters_move_by_exactly_the_requests_sent(client: TestClient) -> None:
    user, movies = known_ids()
    before = scrape(client)
    sent = {(USERS, "200"): 5, (MOVIES, "200"): 4, (RECOMMEND, "200"): 3, (RECOMMEND, "422"): 2,
            ("unmatched", "404"): 1, ("/metrics", "200"): 1}  # the first scrape shows in the second
    for _ in range(3):
        assert client.get(f"/users/{user}/features").status_code == 200
    for _ in range(2):
        assert client.get(f"/users/{UNKNOWN_ID}/features").json()["status"] == "not_found"
    for movie in (*movies[:3], UNKNOWN_ID):
        assert client.get(f"/movies/{movie}/features").status_code == 200
    candidates = [*movies[:9], UNKNOWN_ID]
    for _ in range(3):
        assert client.post(RECOMMEND, json={"user_id": user, "movie_ids": candidates}).status_code == 200
    for bad in ({"user_id": 0, "movie_ids": [1]}, {"user_id": 1, "movie_ids": []}):
        assert client.post(RECOMMEND, json=bad).status_code == 422
    assert client.get("/no/such/route").status_code == 404
    after = scrape(client)

    for (endpoint, status), n in sent.items():
        labels = {"endpoint": endpoint, "status": status}
        assert count(after, "course_requests_total", **labels) - count(before, "course_requests_total", **labels) == n
        assert (count(after, "course_request_duration_seconds_count", **labels)
                - count(before, "course_request_duration_seconds_count", **labels)) == n
    def delta(name, **labels):
        return count(after, name, **labels) - count(before, name, **labels)
    assert delta("course_feature_retrieval_seconds_count", feature_service="user_profile", entity_type="user") == 5
    assert delta("course_feature_retrieval_seconds_count", feature_service="movie_metadata", entity_type="movie") == 4
    assert delta("course_feature_retrieval_seconds_count", feature_service="recommendation",
                 entity_type="user_movie") == 3
    assert delta("course_entities_per_request_count", feature_service="recommendation", entity_type="movie") == 3
    assert delta("course_entities_per_request_sum", feature_service="recommendation", entity_type="movie") == 30
    assert delta("course_entities_not_found_total", entity_type="user") == 2
    assert delta("course_entities_not_found_total", entity_type="movie") == 1 + 3  # one per recommendation
    assert delta("course_errors_total", kind="invalid_request") == 2
    endpoints = {s.labels["endpoint"] for s in after["course_requests_total"]}
    assert not any(str(user) in e or str(UNKNOWN_ID) in e for e in endpoints), endpoints


def test_scrapes_report_health_and_freshness_gauges(client: TestClient, ready: Profile, clock: FakeClock) -> None:
    clock.now = serving.latest_interval(load_store(ready), FEATURE_VIEWS[0])[1] + timedelta(seconds=90)
    observe(client)
    samples = scrape(client)
    assert [value(samples, "course_component_up", component=c) for c in HEALTH_COMPONENTS] == [1, 1, 1]
    for view in FEATURE_VIEWS:
        assert value(samples, "course_pipeline_freshness_seconds", feature_view=view) == 90
        assert value(samples, "course_freshness_status", feature_view=view, kind="pipeline", status="fresh") == 1


def test_freshness_endpoint_follows_the_clock_and_never_goes_negative(client: TestClient, ready: Profile,
                                                                      clock: FakeClock) -> None:
    end = serving.latest_interval(load_store(ready), FEATURE_VIEWS[0])[1]
    expectations = [(timedelta(seconds=30), 30.0, "fresh", False),
                    (timedelta(hours=1, seconds=1), 3601.0, "stale", False),
                    (timedelta(hours=-2), 0.0, "fresh", True)]
    for offset, age, status, future in expectations:
        clock.now = end + offset
        observe(client)
        body = client.get("/freshness").json()
        assert body["checked_at"].replace("Z", "+00:00") == clock.now.isoformat()
        for view in FEATURE_VIEWS:
            pipeline = body["views"][view]["pipeline"]
            assert (pipeline["age_seconds"], pipeline["status"], pipeline["future_end"]) == (age, status, future), view
            data = body["views"][view]["data"]
            assert data["source"] == "online" and data["age_seconds"] >= 0, data


def test_health_checks_all_three_components(client: TestClient, ready: Profile) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and tuple(body["components"]) == HEALTH_COMPONENTS, body
    assert body["components"]["offline_store"]["ok"] and body["model"]["auc"] > 0


@pytest.mark.enterprise
@pytest.mark.timeout(180)  # a hung request during the outage fails here instead of hanging the run
def test_redis_outage_is_a_503_naming_the_online_store_and_recovers(tmp_path_factory) -> None:
    base = api_profile("enterprise", tmp_path_factory.getbasetemp())
    with RedisServer() as redis_server:
        profile = resolve_profile("enterprise", {**base.env(), "FEAST_REDIS_PORT": str(redis_server.port),
                                                 "FEAST_REDIS_DB": "0"})  # same registry and model, empty Redis
        user, _ = known_ids()
        with TestClient(create_app(profile)) as client:
            assert client.get("/health").status_code == 200
            redis_server.stop()
            for _ in range(2):
                assert client.get(f"/users/{user}/features").status_code == 503
            observe(client)
            health = client.get("/health")
            assert health.status_code == 503 and health.json()["failed"] == ["online_store"], health.text
            fix = health.json()["components"]["online_store"]["fix"]
            assert "FEAST_REDIS_PORT" in fix and "127.0.0.1" not in fix
            samples = scrape(client)
            assert value(samples, "course_component_up", component="online_store") == 0
            assert value(samples, "course_errors_total", kind="online_store_unavailable") == 2
            assert value(samples, "course_requests_total", endpoint=USERS, status="503") == 2
            assert value(samples, "course_requests_total", endpoint="/health", status="503") == 1

            redis_server.start()
            observe(client)
            assert client.get("/health").status_code == 200
            assert client.get(f"/users/{user}/features").json()["status"] == "not_found"
            assert value(scrape(client), "course_component_up", component="online_store") == 1
