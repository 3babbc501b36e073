"""`POST /events` in process: validation (a 422 naming the field, a bounded batch) and an event
visible through `GET /users/{id}/features` when the request returns."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from support import DATA_END, api_dataset, api_profile

from course_lib import events
from course_lib.api import create_app
from course_lib.api_models import MAX_EVENTS
from course_lib.config import Profile, load_store, resolve_profile
from course_lib.offline import read_offline
from course_lib.outage import Forwarder
from feature_repo.definitions import PAIR_VIEW, TIMESTAMP_FIELD


@pytest.fixture(scope="module")
def client(ready: Profile) -> Iterator[TestClient]:
    """The API with the real-time definitions registered and the state online."""
    events.enable(load_store(ready), ready, api_dataset(), DATA_END)
    with TestClient(create_app(ready)) as test_client:
        yield test_client


def event(**change) -> dict:
    """A valid event, with fields changed."""
    return {"user_id": 1, "movie_id": 1, "event_timestamp": "2025-03-03T10:00:00+00:00", "rating": 4.5,
            "watch_seconds": 1200.0, **change}


BAD = {
    "user 0": ([event(user_id=0)], "events[0].user_id"),
    "naive time": ([event(event_timestamp="2025-03-03T10:00:00")], "events[0].event_timestamp"),
    "rating 7": ([event(), event(rating=7)], "events[1].rating"),
    "rating 4.2": ([event(rating=4.2)], "events[0].rating"),
    "negative watch": ([event(watch_seconds=-1)], "events[0].watch_seconds"),
    "empty batch": ([], "events"),
    "too many": ([event()] * (MAX_EVENTS + 1), "events"),
    "unknown movie": ([event(), event(movie_id=987_654)], "events[1].movie_id"),
}


@pytest.mark.parametrize("case", BAD)
def test_invalid_events_are_a_422_naming_the_field(client: TestClient, case: str) -> None:
    batch, field = BAD[case]
    response = client.post("/events", json={"events": batch})
    body = response.json()
    assert response.status_code == 422, body
    assert field in [f["field"] for f in body["fields"]], body
    assert all(set(f) == {"field", "location", "message", "type"} for f in body["fields"]), body  # FieldError


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["rating", "watch_seconds"])
def test_non_finite_numbers_are_a_422(client: TestClient, field: str, token: str) -> None:
    """Python's JSON parser accepts NaN and Infinity; the API must not store them (they read back as null)."""
    raw = json.dumps({"events": [event(**{field: 0.0})]}).replace(f'"{field}": 0.0', f'"{field}": {token}')
    assert token in raw
    response = client.post("/events", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert [f["field"] for f in response.json()["fields"]] == [f"events[0].{field}"]


def test_an_event_is_visible_online_when_the_request_returns(client: TestClient) -> None:
    user = int(api_dataset().watch_events["user_id"].iloc[0])
    before = client.get(f"/users/{user}/features").json()["features"]["total_movies_watched"]
    fresh = int(api_dataset().movies["movie_id"].max())
    watched = set(api_dataset().watch_events.query("user_id == @user")["movie_id"])
    movie = next(m for m in api_dataset().movies["movie_id"] if m not in watched) if fresh in watched else fresh
    response = client.post("/events", json={"events": [event(user_id=user, movie_id=int(movie))]})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    after = client.get(f"/users/{user}/features").json()["features"]["total_movies_watched"]
    assert after == before + 1
    again = client.post("/events", json={"events": [event(user_id=user, movie_id=int(movie))]}).json()
    assert again["duplicates"] == 1 and again["accepted"] == 0


def test_event_outcomes_and_lag_are_exported(client: TestClient) -> None:
    """Accepted, duplicate and rejected events are counted; each accepted event's lag is observed."""
    def counts() -> dict[str, float]:
        text = client.get("/metrics").text
        return {outcome: sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                             if line.startswith(f'course_events_total{{outcome="{outcome}"}}'))
                for outcome in ("accepted", "duplicate", "rejected")} | {
            "lags": sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("course_event_lag_seconds_count"))}
    before = counts()
    user = int(api_dataset().watch_events["user_id"].iloc[1])
    sent = [event(user_id=user, movie_id=int(api_dataset().movies["movie_id"].iloc[2]),
                  event_timestamp="2025-03-04T10:00:00+00:00")]
    client.post("/events", json={"events": sent})
    client.post("/events", json={"events": sent})
    client.post("/events", json={"events": [event(), event(movie_id=987_654)]})
    after = counts()
    assert after["accepted"] - before["accepted"] == 1 and after["duplicate"] - before["duplicate"] == 1
    assert after["rejected"] - before["rejected"] == 2 and after["lags"] - before["lags"] == 1


def test_events_queued_for_the_offline_store_are_appended_at_shutdown(client: TestClient, ready: Profile) -> None:
    """Fewer rows than an append's batch wait in the queue; the app's shutdown appends them (none lost)."""
    user = int(api_dataset().watch_events["user_id"].iloc[2])
    movie = int(api_dataset().movies["movie_id"].iloc[3])
    at = "2025-03-05T10:00:00+00:00"
    with TestClient(create_app(ready)) as own:
        assert own.post("/events", json={"events": [event(user_id=user, movie_id=movie, event_timestamp=at)]}
                        ).json()["accepted"] == 1
    table = read_offline(ready, [PAIR_VIEW])[PAIR_VIEW]
    rows = table[(table["user_id"] == user) & (table["movie_id"] == movie)
                 & (table[TIMESTAMP_FIELD] == pd.Timestamp(at))]
    assert len(rows) == 1, table.tail()


@pytest.mark.enterprise
@pytest.mark.timeout(120)
def test_a_redis_black_hole_holds_its_events_request_not_the_api(tmp_path_factory: pytest.TempPathFactory) -> None:
    """During a Redis outage `POST /events` waits for the Redis timeout and answers 503 while the event loop
    serves other requests (the ingestor awaits Redis on a single server); the first batch after it is applied.
    (With the ingestor's blocking session on the loop, `/metrics` answered only after the held batch.)"""
    base = api_profile("enterprise", tmp_path_factory.getbasetemp())
    events.enable(load_store(base), base, api_dataset(), DATA_END)
    user = int(api_dataset().watch_events["user_id"].iloc[5])
    with Forwarder(base.settings.redis_port, base.settings.redis_host) as forwarder:
        profile = resolve_profile("enterprise", {**base.env(), "FEAST_REDIS_PORT": str(forwarder.port),
                                                 "FEAST_REDIS_TIMEOUT_S": "5"})
        with TestClient(create_app(profile)) as client, ThreadPoolExecutor(1) as pool:
            day = "2025-03-06T{}:00:00+00:00"
            assert client.post("/events", json={"events": [event(user_id=user, event_timestamp=day.format(10))]}
                               ).json()["accepted"] == 1
            forwarder.black_hole()
            held = pool.submit(client.post, "/events",
                               json={"events": [event(user_id=user, event_timestamp=day.format(11))]})
            time.sleep(0.5)  # the held batch is waiting for Redis
            assert client.get("/metrics").status_code == 200
            assert not held.done(), "the event loop waited for the held batch"
            refused = held.result()
            assert refused.status_code == 503 and refused.json()["error"] == "online_store_unavailable", refused.text
            forwarder.pass_through()
            assert client.post("/events", json={"events": [event(user_id=user, event_timestamp=day.format(12))]}
                               ).json()["accepted"] == 1
