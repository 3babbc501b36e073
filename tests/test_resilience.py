"""Serving survives PostgreSQL trouble (issue 12) and observability stays cheap (issue 19), on the real services.

The API talks to PostgreSQL through a `course_lib.outage.Forwarder`, which the tests switch to
refuse (a stopped server) or black hole (a hung one). Feature and recommendation requests must go
on answering 200 from the last known registry state, /health must answer within 1 s and name the
registry and the offline store, and everything must recover when the outage ends. The time bounds
are the generous ones the issue asks for, never speed goals.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import redis
from fastapi.testclient import TestClient
from feast import FeatureStore
from prometheus_client.parser import text_string_to_metric_families
from support import DATA_END, api_dataset, api_profile, isolated_profile, known_ids, wait_until

from course_lib import serving
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.api import create_app
from course_lib.caches import MovieNearCache
from course_lib.config import Profile, load_store, resolve_profile
from course_lib.outage import Forwarder, Mode
from course_lib.registry_state import RegistryState
from course_lib.reset import reset_online
from feature_repo.definitions import FEATURE_VIEWS, MOVIE_VIEW

pytestmark = [pytest.mark.enterprise, pytest.mark.timeout(300)]

# Fast background work, so outages show (and end) within a few rounds.
FAST = {"COURSE_REGISTRY_REFRESH_S": "0.2", "COURSE_MONITOR_INTERVAL_S": "0.2", "COURSE_HEALTH_TIMEOUT_S": "0.5",
        "FEAST_PG_CONNECT_TIMEOUT_S": "2"}
HEALTH_BOUND_S = 1.0  # /health and /metrics answer within this, whatever PostgreSQL does (the bound)
REQUEST_BOUND_S = 2.0  # feature and recommendation requests: generous; a hang is what this catches
SETTLE_S = 20.0  # how long an outage (or its end) may take to show in /health: a few rounds and timeouts
PER_REQUEST_FIELDS = ("feature_retrieval_ms", "scoring_ms", "request_id")  # differ on every answer


def bounded(call: Callable[[], httpx.Response], bound_s: float) -> httpx.Response:
    """Make a request in a thread; fail if it takes longer than `bound_s` (or hangs)."""
    pool = ThreadPoolExecutor(1)
    try:
        start = time.perf_counter()
        response = pool.submit(call).result(timeout=bound_s + 30)  # a hung call fails here, not the whole run
        elapsed = time.perf_counter() - start
    finally:
        pool.shutdown(wait=False)
    assert elapsed <= bound_s, f"answered in {elapsed:.2f} s, more than {bound_s} s: {response.text[:300]}"
    return response


def answer_of(body: dict) -> dict:
    """A recommendation body minus its measured timings and its request id."""
    return {key: value for key, value in body.items() if key not in PER_REQUEST_FIELDS}


def component_up(client: TestClient) -> dict[str, float]:
    """The `course_component_up` gauges of a /metrics scrape, which must answer within the bound."""
    text = bounded(lambda: client.get("/metrics"), HEALTH_BOUND_S).text
    return {sample.labels["component"]: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == "course_component_up"}


@pytest.fixture
def forwarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Forwarder, Profile]]:
    """The API tests' enterprise project, reached through a forwarder in front of PostgreSQL."""
    base = api_profile("enterprise", tmp_path_factory.getbasetemp())
    with Forwarder(base.settings.pg_port, base.settings.pg_host) as forwarder:
        yield forwarder, resolve_profile("enterprise", {**base.env(), **FAST, "FEAST_PG_PORT": str(forwarder.port)})


@pytest.mark.parametrize("mode", [Mode.REFUSE, Mode.BLACK_HOLE])
def test_every_endpoint_answers_through_a_postgres_outage_and_recovers(forwarded, mode: Mode) -> None:
    forwarder, profile = forwarded
    user, movies = known_ids()
    recommend = {"user_id": user, "movie_ids": [*movies[:12], 987_654_321], "k": 5}
    with TestClient(create_app(profile)) as client:
        assert bounded(lambda: client.get("/health"), HEALTH_BOUND_S).status_code == 200
        features = client.get(f"/users/{user}/features").json()
        movie = client.get(f"/movies/{movies[0]}/features").json()
        with forwarder.outage(mode):
            # The first recommendation of this process comes during the outage: nothing it needs may be
            # read from PostgreSQL now (the old code loaded the movie table here and answered 500).
            during = bounded(lambda: client.post("/recommendations", json=recommend), REQUEST_BOUND_S)
            assert during.status_code == 200, during.text
            assert wait_until(lambda: bounded(lambda: client.get("/health"), HEALTH_BOUND_S).status_code == 503,
                              SETTLE_S), "/health never reported the outage"
            health = bounded(lambda: client.get("/health"), HEALTH_BOUND_S).json()
            assert health["failed"] == ["registry", "offline_store"], health
            assert health["components"]["online_store"]["ok"], health
            for name in health["failed"]:  # refused, or (black hole) the check's deadline or libpq's connect_timeout
                assert any(word in health["components"][name]["detail"] for word in
                           ("refused", "no answer within 0.5 s", "timeout")), health
            assert component_up(client) == {"online_store": 1, "registry": 0, "offline_store": 0}
            for _ in range(3):  # a few rounds of the background refresh fail meanwhile
                user_now = bounded(lambda: client.get(f"/users/{user}/features"), REQUEST_BOUND_S)
                movie_now = bounded(lambda: client.get(f"/movies/{movies[0]}/features"), REQUEST_BOUND_S)
                again = bounded(lambda: client.post("/recommendations", json=recommend), REQUEST_BOUND_S)
                assert (user_now.status_code, movie_now.status_code, again.status_code) == (200, 200, 200)
                assert user_now.json()["features"] == features["features"]
                assert movie_now.json()["features"] == movie["features"]
                assert answer_of(again.json()) == answer_of(during.json())
                freshness = bounded(lambda: client.get("/freshness"), HEALTH_BOUND_S)
                assert freshness.status_code == 503 and freshness.json()["error"] == "freshness_unavailable"
                time.sleep(0.3)
            if mode is Mode.REFUSE:
                state = bounded(lambda: client.get("/health"), HEALTH_BOUND_S).json()["registry_state"]
                assert state["failures"] >= 1 and "OperationalError" in state["last_error"], state
        assert wait_until(lambda: client.get("/health").status_code == 200, SETTLE_S), client.get("/health").text
        assert wait_until(lambda: client.get("/health").json()["registry_state"]["failures"] == 0, SETTLE_S)
        assert client.get("/freshness").status_code == 200
        assert component_up(client) == {"online_store": 1, "registry": 1, "offline_store": 1}
        after = client.post("/recommendations", json=recommend)
        assert after.status_code == 200 and answer_of(after.json()) == answer_of(during.json())


def test_the_api_loads_its_registry_state_at_start_up(forwarded) -> None:
    _, profile = forwarded
    with TestClient(create_app(profile)) as client:
        state = client.app.state.services.state  # type: ignore[attr-defined]
        assert state.newest_end == DATA_END and len(state.movies) == state.movies.loads * len(state.movies) > 0
        assert state.status().last_success is not None and state.status().failures == 0


# --- the movie near-cache: recorded only after a successful reload, with retry (issue 19) -------------

@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> tuple[Profile, FeatureStore]:
    """Its own project, materialized to a month before the data's end (the test moves it to the end)."""
    profile = isolated_profile("enterprise", tmp_path_factory.mktemp("moving"), project="course_test_resilience_nc")
    write_offline(build_feature_tables(api_dataset()), profile)
    store = load_store(profile)
    serving.apply(store, profile)
    reset_online(store, profile)  # the SQL registry outlives test runs: forget earlier intervals
    serving.materialize(store, profile, end=DATA_END - timedelta(days=30))
    return profile, store


class TableLock:
    """An ACCESS EXCLUSIVE lock on offline tables, held in an open transaction as `course data` holds it."""

    def __init__(self, profile: Profile, views: list[str]) -> None:
        self.profile, self.views = profile, views
        self.conn: psycopg.Connection | None = None

    def __enter__(self) -> TableLock:
        self.conn = psycopg.connect(self.profile.pg_conninfo())
        for view in self.views:
            self.conn.execute(f'LOCK TABLE "{self.profile.offline_schema}"."{view}" IN ACCESS EXCLUSIVE MODE')
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.conn is not None
        self.conn.rollback()
        self.conn.close()


def test_a_failed_near_cache_reload_is_retried_until_it_succeeds(moving) -> None:
    profile, store = moving
    near = MovieNearCache(store, profile, check_every_s=0)
    before = dict(near.rows)
    serving.materialize(store, profile, end=DATA_END, incremental=True)  # the movie view's interval moves
    expected = {m: row[MOVIE_VIEW] for m, row in
                zip(before, serving.online_rows(store, [MOVIE_VIEW], [{"movie_id": m} for m in before]))}
    assert expected != before, "the materialization must change some movie rows for this test to mean anything"
    with TableLock(profile, [MOVIE_VIEW]), pytest.raises(psycopg.errors.LockNotAvailable):
        near.refresh_if_moved()  # the reload's offline read gives up after lock_timeout
    assert near.loads == 1 and dict(near.rows) == before
    assert near.refresh_if_moved(), "the move must still be pending after the failed reload"
    assert near.loads == 2 and dict(near.rows) == expected
    assert not near.refresh_if_moved() and near.loads == 2  # recorded now


def test_registry_state_keeps_serving_and_retries_a_failed_movie_reload(moving) -> None:
    profile, store = moving
    near = MovieNearCache(store, profile, check_every_s=None)
    state = RegistryState(store, profile, near)
    state.refresh()
    assert near.loads == 1
    before = state.newest_end
    moved_to = serving.latest_interval(store, MOVIE_VIEW)[1] + timedelta(days=1)
    serving.materialize(store, profile, end=moved_to, incremental=True)
    with TableLock(profile, [MOVIE_VIEW]), pytest.raises(psycopg.errors.LockNotAvailable):
        state.refresh()
    # the end moves only with the movies: a response never pairs the new end with the old movie rows
    assert state.newest_end == before != moved_to
    assert near.loads == 1
    state.refresh()
    assert near.loads == 2 and state.newest_end == moved_to
    state.refresh()
    assert near.loads == 2


# --- cheap observability while `course data` holds the offline tables locked (issue 19) ---------------

def test_metrics_health_and_freshness_answer_while_the_offline_tables_are_locked(tmp_path_factory) -> None:
    """The API starts while the tables are locked: its freshness rounds, which have no offline sample
    yet (freshness.OfflineSamples keeps one per materialization end), give up on the lock instead of
    waiting for it, and every endpoint keeps answering."""
    base = api_profile("enterprise", tmp_path_factory.getbasetemp())
    profile = resolve_profile("enterprise", {**base.env(), **FAST})
    lock = TableLock(profile, list(FEATURE_VIEWS)).__enter__()
    try:
        with TestClient(create_app(profile)) as client:

            def freshness_errors() -> float:
                text = bounded(lambda: client.get("/metrics"), HEALTH_BOUND_S).text
                return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                           if s.name == "course_errors_total" and s.labels.get("kind") == "freshness_check")

            deadline = time.monotonic() + 3  # several background rounds, each with its lock timeout
            while time.monotonic() < deadline:
                assert bounded(lambda: client.get("/health"), HEALTH_BOUND_S).status_code == 200
                assert bounded(lambda: client.get("/freshness"), HEALTH_BOUND_S).status_code in (200, 503)
                freshness_errors()
            assert wait_until(lambda: freshness_errors() > 0, SETTLE_S)
            assert "LockNotAvailable" in client.get("/freshness").json()["detail"]
            lock.__exit__()
            assert wait_until(lambda: client.get("/freshness").status_code == 200, SETTLE_S)
    finally:
        if lock.conn is not None and not lock.conn.closed:
            lock.__exit__()


# --- connection settings and error bodies ----------------------------------------------------------

def test_every_postgres_connection_has_timeouts_and_keepalives(tmp_path: Path) -> None:
    profile = isolated_profile("enterprise", tmp_path)
    with psycopg.connect(profile.pg_conninfo(bounded=True)) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
        assert conn.execute("SHOW lock_timeout").fetchone() == ("500ms",)
        parameters = conn.info.get_parameters()
        assert (parameters["tcp_user_timeout"], parameters["keepalives_idle"]) == ("5000", "10"), parameters
    with psycopg.connect(profile.pg_conninfo()) as conn:  # data loads: link options only
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
        assert conn.info.get_parameters()["tcp_user_timeout"] == "5000"
    import sqlalchemy

    # The registry's engine, built as Feast's SqlRegistry builds it from feature_store.yaml.
    registry = load_store(profile).config.registry
    engine = sqlalchemy.create_engine(registry.path, **registry.sqlalchemy_config_kwargs)
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SHOW statement_timeout")).scalar() == "5s"
        assert conn.connection.dbapi_connection.info.get_parameters()["tcp_user_timeout"] == "5000"
    engine.dispose()


def test_a_black_holed_postgres_connection_gives_up_after_connect_timeout(forwarded) -> None:
    forwarder, profile = forwarded
    with forwarder.outage(Mode.BLACK_HOLE):
        start = time.perf_counter()
        with pytest.raises(psycopg.OperationalError, match="timeout"):
            psycopg.connect(profile.pg_conninfo(bounded=True))
        assert time.perf_counter() - start < 10  # FAST sets 2 s; generous


def test_unexpected_errors_are_a_json_500_and_postgres_errors_a_503(forwarded) -> None:
    _, profile = forwarded
    app = create_app(profile)

    @app.get("/test/unexpected")
    def unexpected() -> None:
        raise RuntimeError("a bug with a secret detail")

    @app.get("/test/postgres")
    def postgres() -> None:
        psycopg.connect(profile.pg_conninfo(database="course_test_no_such_database"))

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/test/unexpected")
        assert response.status_code == 500 and response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["error"] == "internal_error" and body["detail"] == "RuntimeError", body
        assert "Traceback" not in response.text and "secret" not in response.text
        response = client.get("/test/postgres")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["error"] == "postgres_unavailable" and "course_test_no_such_database" in body["detail"], body
        assert "FEAST_PG_HOST" in body["hint"]


# --- shutdown ------------------------------------------------------------------------------------

def redis_client_ids(admin: redis.Redis) -> set[int]:
    """The ids of every connection the Redis server holds, except `admin`'s own."""
    own = admin.client_id()
    return {int(client["id"]) for client in admin.client_list()} - {own}


def test_shutdown_closes_every_redis_connection_the_api_opened(tmp_path_factory) -> None:
    base = api_profile("enterprise", tmp_path_factory.getbasetemp())
    profile = resolve_profile("enterprise", {**base.env(), **FAST})
    user, movies = known_ids()
    admin = redis.Redis(**profile.redis_client_kwargs())
    before = redis_client_ids(admin)
    with TestClient(create_app(profile)) as client:
        assert client.get(f"/users/{user}/features").status_code == 200
        body = {"user_id": user, "movie_ids": list(movies)}
        assert client.post("/recommendations", json=body).status_code == 200
        watched = {"user_id": 9_999_999, "movie_id": int(movies[0]), "event_timestamp": "2025-03-06T10:00:00+00:00"}
        assert client.post("/events", json={"events": [watched]}).status_code == 200  # its own loop connections
        opened = redis_client_ids(admin) - before
        assert opened, "the API reads Redis over its own connections"
    left = opened & redis_client_ids(admin)
    assert not left, [str(c) for c in admin.client_list() if int(c["id"]) in left]
    admin.close()
