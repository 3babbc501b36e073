"""The API as a real uvicorn process on a free loopback port, called over HTTP, both profiles."""
from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from support import API_PROJECT, api_profile, isolated_profile, known_ids

from course_lib import serving
from course_lib.background import START_S, BackgroundServer, free_port, launch, start_course_api
from course_lib.cli import main
from course_lib.config import Profile, load_store


def start_server(profile: Profile, log: Path) -> BackgroundServer:
    """Run `course_lib.api.serve` in a fresh interpreter (not yet waited for)."""
    port = free_port()
    code = f"from course_lib.api import serve; serve({profile.name!r}, host='127.0.0.1', port={port})"
    return launch([sys.executable, "-c", code], profile, port, log)


@pytest.fixture(scope="module")
def server(ready: Profile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    """The API serving the profile over HTTP; stopped at the end if a test did not stop it."""
    with start_server(ready, tmp_path_factory.mktemp(f"serve_{ready.name}") / "uvicorn.log") as running:
        yield running.wait_ready("/health")


def test_health_over_http(server: BackgroundServer, ready: Profile) -> None:
    body = httpx.get(f"{server.url}/health", timeout=30).json()
    assert body["status"] == "ok" and body["profile"] == ready.name and body["failed"] == [], body


def test_features_over_http_equal_the_serving_layer(server: BackgroundServer, ready: Profile) -> None:
    user, movies = known_ids()
    store = load_store(ready)
    user_body = httpx.get(f"{server.url}/users/{user}/features", timeout=30).json()
    movie_body = httpx.get(f"{server.url}/movies/{movies[0]}/features", timeout=30).json()
    assert user_body["status"] == "found" and user_body["features"] == serving.user_features(store, user).values
    assert movie_body["status"] == "found" and movie_body["features"] == serving.movie_features(store, movies[0]).values


def test_recommendations_over_http(server: BackgroundServer) -> None:
    user, movies = known_ids()
    response = httpx.post(f"{server.url}/recommendations", json={"user_id": user, "movie_ids": movies, "k": 7},
                          timeout=30)
    body = response.json()
    assert response.status_code == 200, body
    ranked = [(-r["score"], r["movie_id"]) for r in body["recommendations"]]
    assert len(ranked) == 7 and ranked == sorted(ranked) and {m for _, m in ranked} <= set(movies)
    assert body["model"]["auc"] > 0


def test_invalid_input_over_http_names_the_field(server: BackgroundServer) -> None:
    response = httpx.post(f"{server.url}/recommendations", json={"user_id": 1, "movie_ids": [], "k": 0}, timeout=30)
    body = response.json()
    assert response.status_code == 422 and {f["field"] for f in body["fields"]} == {"movie_ids", "k"}, body


def test_openapi_over_http(server: BackgroundServer) -> None:
    paths = httpx.get(f"{server.url}/openapi.json", timeout=30).json()["paths"]
    assert {"/users/{user_id}/features", "/movies/{movie_id}/features", "/recommendations", "/health"} <= set(paths)


def test_sigterm_stops_the_server_cleanly(server: BackgroundServer) -> None:
    """Runs last for each profile: the lifespan shutdown completes. uvicorn re-raises the
    captured SIGTERM after its graceful shutdown, so the exit status is -SIGTERM, not 0."""
    assert server.stop() == -signal.SIGTERM, server.output()
    assert "Application shutdown complete" in server.output() and "Traceback" not in server.output()


@pytest.mark.enterprise
def test_unreachable_postgres_stops_the_process_with_a_clear_message(tmp_path: Path) -> None:
    port = free_port()
    profile = isolated_profile("enterprise", tmp_path, project=API_PROJECT, FEAST_PG_PORT=str(port))
    with start_server(profile, tmp_path / "uvicorn.log") as failed:
        code = failed.process.wait(timeout=START_S)
    output = failed.output()
    assert code != 0, output
    assert "API start-up failed" in output and f"127.0.0.1:{port}" in output and "FEAST_PG_PORT" in output, output


@pytest.mark.enterprise
def test_two_workers_start_cleanly_against_the_sql_registry(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`course serve --workers 2`: both processes open their own store (SQL registry) and Redis
    connections, both finish start-up, and requests on fresh connections all succeed."""
    profile = api_profile("enterprise", Path(tmp_path_factory.getbasetemp()))  # the `ready` fixture's project
    log = tmp_path_factory.mktemp("serve_2_workers") / "uvicorn.log"
    with start_course_api(profile, log, workers=2) as server:
        workers = [" ".join(p.cmdline()) for p in psutil.Process(server.process.pid).children(recursive=True)
                   if p.status() != psutil.STATUS_ZOMBIE]
        user, movies = known_ids()
        bodies = [httpx.post(f"{server.url}/recommendations", json={"user_id": user, "movie_ids": movies, "k": 3},
                             timeout=30) for _ in range(20)]  # a new connection each: the kernel spreads them
        assert all(b.status_code == 200 for b in bodies), [b.text for b in bodies if b.status_code != 200]
        assert len({tuple(r["movie_id"] for r in b.json()["recommendations"]) for b in bodies}) == 1
        server.stop()
    output = server.output()
    assert sum("spawn_main" in command for command in workers) == 2, workers
    assert output.count("Application startup complete.") == 2 and "Traceback" not in output, output
    assert output.count("Application shutdown complete.") == 2, output


def test_zero_workers_is_one_line_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--profile", "local", "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == "course: configuration error: --workers must be at least 1, got 0"
