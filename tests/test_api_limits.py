"""What a caller can send the API and learn from it (issue 19, `course_lib.request_limits`):
bodies capped before parsing, strict path ids, `ErrorBody` for every 4xx, no hosts, paths or
database names in error bodies or /health, bounded concurrency and Redis pools."""
from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from support import api_profile, known_ids

from course_lib import compat
from course_lib.api import create_app
from course_lib.api_models import ErrorBody
from course_lib.background import free_port, launch
from course_lib.config import Profile, resolve_profile
from course_lib.request_limits import MAX_BODY_BYTES


@pytest.fixture(scope="module")
def client(ready: Profile) -> Iterator[TestClient]:
    """The API in process for the profile (lifespan entered)."""
    with TestClient(create_app(ready)) as test_client:
        yield test_client


def error_of(response: httpx.Response, status: int) -> ErrorBody:
    """The response's `ErrorBody`, after checking its status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return ErrorBody.model_validate_json(response.content)


def big_request() -> bytes:
    """A well-formed recommendation request just over the cap."""
    ids = ",".join(str(10**15 + i) for i in range(MAX_BODY_BYTES // 17 + 1))
    body = f'{{"user_id": 1, "movie_ids": [{ids}]}}'.encode()
    assert len(body) > MAX_BODY_BYTES
    return body


def test_an_oversized_body_is_refused_before_it_is_parsed(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    assert error_of(client.post("/recommendations", content=big_request(), headers=headers), 413).error \
        == "body_too_large"
    garbage = b"{" * (MAX_BODY_BYTES + 1)  # unparsable too: the size decides first
    assert error_of(client.post("/recommendations", content=garbage, headers=headers), 413).error == "body_too_large"
    chunks = (big_request()[i:i + 4096] for i in range(0, len(big_request()), 4096))  # no Content-Length
    assert error_of(client.post("/recommendations", content=chunks, headers=headers), 413).error == "body_too_large"


@pytest.mark.parametrize("content", [
    b'{"user_id": ' + b"9" * 5000 + b', "movie_ids": [1]}',  # beyond Python's int-parsing limit
    b"[" * 30_000 + b"]" * 30_000,  # deeper than the JSON parser's recursion limit, under the size cap
    b'{"user_id": 1, "movie_ids": [1]',  # truncated
    b"\xff\xfe",  # not UTF-8
])
def test_an_unparsable_body_gets_an_error_body(client: TestClient, content: bytes) -> None:
    response = client.post("/recommendations", content=content, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500
    error = error_of(response, response.status_code)
    assert error.error in ("malformed_body", "invalid_request") and "/docs" in error.hint


@pytest.mark.parametrize("headers", [{"content-type": "text/plain"},
                                     {"content-type": "application/x-www-form-urlencoded"}, {}])
def test_a_body_that_is_not_declared_json_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    user, movies = known_ids()
    content = f'{{"user_id": {user}, "movie_ids": [{movies[0]}]}}'.encode()
    assert error_of(client.post("/recommendations", content=content, headers=headers), 422).error == "invalid_request"


@pytest.mark.parametrize("body", [
    {"user_id": 1.0, "movie_ids": [1]}, {"user_id": True, "movie_ids": [1]}, {"user_id": "1", "movie_ids": [1]},
    {"user_id": 1, "movie_ids": [1.5]}, {"user_id": 1, "movie_ids": [False]},
    {"user_id": 1, "movie_ids": [1], "k": True},
    {"user_id": 2**63, "movie_ids": [1]}, {"user_id": 1, "movie_ids": [-(2**70)]}, [1, 2], "text", None,
])
def test_floats_booleans_strings_and_huge_ids_in_a_body_are_422(client: TestClient, body: object) -> None:
    error = error_of(client.post("/recommendations", json=body), 422)
    assert error.error == "invalid_request" and error.fields


@pytest.mark.parametrize("raw_id", ["1.0", "+5", "1_000", " 7", "7 ", "0x10", "１２", "0", "-1", "abc",
                                    str(2**63), "9" * 40, "9" * 5000])
@pytest.mark.parametrize("route", ["users", "movies"])
def test_path_ids_are_digits_within_int64(client: TestClient, route: str, raw_id: str) -> None:
    error = error_of(client.get(f"/{route}/{raw_id}/features"), 422)
    assert error.error == "invalid_request" and error.fields[0].location == "path"


def test_the_largest_int64_id_is_a_valid_path_id(client: TestClient) -> None:
    assert client.get(f"/users/{2**63 - 1}/features").json()["status"] == "not_found"


def test_unknown_routes_and_methods_get_error_bodies(client: TestClient) -> None:
    assert error_of(client.get("/nowhere"), 404).error == "not_found"
    assert error_of(client.delete("/recommendations"), 405).error == "method_not_allowed"


def leaks(text: str, profile: Profile) -> list[str]:
    """Hosts, ports, database names and paths of the profile that appear in `text`."""
    s = profile.settings
    names = [str(s.workdir), str(Path.home()), s.pg_host, s.redis_host, f":{s.redis_port}", f":{s.pg_port}",
             s.offline_db, s.registry_db]
    return [name for name in names if name in text]


def test_health_names_components_without_hosts_paths_or_databases(ready: Profile, client: TestClient) -> None:
    body = client.get("/health")
    assert body.status_code == 200 and leaks(body.text, ready) == []
    debug = resolve_profile(ready.name, {**ready.env(), "COURSE_API_DEBUG": "true"})
    with TestClient(create_app(debug)) as debug_client:  # the same report, unredacted, for an operator
        assert leaks(debug_client.get("/health").text, ready) != []


@pytest.mark.enterprise
def test_a_503_says_what_failed_without_the_redis_address(tmp_path: Path) -> None:
    profile = api_profile("enterprise", tmp_path)
    down = resolve_profile("enterprise", {**profile.env(), "FEAST_REDIS_PORT": str(free_port())})
    with TestClient(create_app(down)) as down_client:
        user, _ = known_ids()
        error = error_of(down_client.get(f"/users/{user}/features"), 503)
        assert error.error == "online_store_unavailable" and "<host>" in error.detail + error.hint
        assert leaks(error.model_dump_json(), down) == []


@pytest.mark.enterprise
@pytest.mark.parametrize("ready", ["enterprise"], indirect=True)
def test_every_redis_pool_is_bounded(ready: Profile, client: TestClient) -> None:
    services = client.app.state.services
    user, movies = known_ids()
    client.get(f"/users/{user}/features")  # opens the reader's async pool
    client.post("/recommendations", json={"user_id": user, "movie_ids": list(movies[:3])})  # the recommender's
    watched = {"user_id": 9_999_999, "movie_id": int(movies[0]), "event_timestamp": "2025-03-06T10:00:00+00:00"}
    assert client.post("/events", json={"events": [watched]}).status_code == 200  # opens the ingestor's pools
    ingestor = client.app.state.ingestor.online
    pools = [compat.online_client(services.store).connection_pool, services.reader._client.connection_pool,
             services.reader._async_client.connection_pool,
             services.recommender._reader._client.current.connection_pool,
             ingestor.client.connection_pool, ingestor.loop_client.current.connection_pool]
    assert [pool.max_connections for pool in pools] == [ready.settings.redis_max_connections] * len(pools)


def test_serve_runs_uvicorn_with_a_concurrency_limit_and_a_shutdown_timeout(ready: Profile, tmp_path: Path) -> None:
    """Two idle connections fill a limit of 2: the third caller gets a 503 at once instead of queueing."""
    port = free_port()
    env_profile = resolve_profile(ready.name, {**ready.env(), "COURSE_API_LIMIT_CONCURRENCY": "2",
                                               "COURSE_API_SHUTDOWN_S": "3"})
    command = [sys.executable, "-m", "course_lib", "serve", "--profile", ready.name, "--port", str(port)]
    with launch(command, env_profile, port, tmp_path / "serve.log").wait_ready("/health") as server:
        assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        try:
            deadline = time.monotonic() + 30
            while (status := httpx.get(f"{server.url}/health", timeout=30).status_code) != 503:
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
        finally:
            for sock in held:
                sock.close()
        assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
