"""The availability soak (course_lib.soak): its accounting on hand-made samples, then a short real soak with a real
Redis outage against the real API (no timing assertions: the speed goals live in `course verify`)."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import httpx
import pytest
from support import api_profile

from course_lib import ranker, serving, soak
from course_lib.background import RedisServer, start_course_api
from course_lib.config import load_store, resolve_profile
from course_lib.soak import NO_ANSWER, Sample, Window
from course_lib.verify import redis_drill

REDIS = Window("redis", 10.0, 15.0, (503,))
POSTGRES = Window("postgres", 30.0, 36.0, (200,))


def samples_around_an_outage() -> list[Sample]:
    """Requests every 0.5 s for 40 s, 2 ms each, with a known story (times in seconds since the start)."""
    out = []
    for i in range(80):
        sent = i * 0.5
        status = 200
        if 10.0 <= sent < 15.0:
            status = 503  # during the Redis outage
        if sent in (15.0, 16.0):
            status = 503  # failures after it ended, with a success between (15.5): recovered for good at 16.5
        if sent == 27.0:
            status = 500  # one failure in calm water, beyond the recovery horizon (10 s)
        out.append(Sample("recommendations" if i % 2 == 0 else "user_features", sent, sent + 0.002, status))
    out.append(Sample("user_features", 9.999, 10.001, 200))  # in flight when the outage started
    return out


def test_windows_availability_and_recovery_are_counted_from_the_samples() -> None:
    samples = samples_around_an_outage()
    report = soak.summarize(samples, [POSTGRES, REDIS], seconds=40, rate=2)
    # By hand: 81 requests; 10 sent in [10, 15) and the straddler overlap the Redis window, 12 sent in [30, 36)
    # overlap the PostgreSQL one, so 81 - 11 - 12 = 58 are outside; 3 of those failed (15.0, 16.0, 27.0).
    assert report.requests == 81
    assert report.outside_requests == 58 and report.outside_ok == 55
    assert report.availability == pytest.approx(55 / 58)
    assert report.statuses == {"200": 68, "500": 1, "503": 12}
    redis_window, postgres_window = report.windows  # ordered by start, whatever the input order
    assert (redis_window.name, redis_window.requests, redis_window.statuses) == ("redis", 10, {"503": 10})
    assert redis_window.in_flight == {"200": 1} and redis_window.only_expected
    # the first success after the last failure (16.0) was sent at 16.5 and answered at 16.502: 1.502 s after the
    # end (not 0.502: the success at 15.5 was followed by another failure)
    assert redis_window.recovery_s == pytest.approx(1.502)
    assert postgres_window.statuses == {"200": 12} and postgres_window.only_expected
    assert postgres_window.recovery_s == pytest.approx(0.002)  # nothing failed after it
    assert report.latency["recommendations"]["p99_ms"] == pytest.approx(2.0)


def test_a_window_with_a_wrong_status_or_no_recovery_is_reported() -> None:
    samples = [Sample("user_features", 11.0, 11.1, 500), Sample("user_features", 12.0, 17.0, NO_ANSWER),
               Sample("user_features", 16.0, 16.1, 503)]
    report = soak.summarize(samples, [REDIS], seconds=20, rate=1)
    window = report.windows[0]
    assert not window.only_expected and window.statuses == {"no answer": 1, "500": 1}
    assert window.recovery_s is None  # nothing succeeded after the window
    assert report.availability == 0.0  # the one request outside failed


def test_a_200_sent_inside_the_window_counts_only_when_answered_after_the_service_was_back() -> None:
    late = Sample("recommendations", 14.9, 15.2, 200)  # waited for Redis to come back: fine
    early = Sample("recommendations", 11.0, 11.1, 200)  # impossible while Redis was down: not what was expected
    assert soak.acceptable(late, REDIS) and not soak.acceptable(early, REDIS)
    assert soak.summarize([late], [REDIS], 20, 1).windows[0].only_expected
    assert not soak.summarize([late, early], [REDIS], 20, 1).windows[0].only_expected


def test_requests_per_second_are_binned_by_sending_time() -> None:
    counts = soak.per_second(samples_around_an_outage(), seconds=40)
    assert set(counts) == {"200", "500", "503"}
    assert counts["503"].tolist()[10:17] == [2, 2, 2, 2, 2, 1, 1] and counts["503"].sum() == 12
    assert counts["500"].tolist()[27] == 1
    assert sum(int(c.sum()) for c in counts.values()) == 81 and len(counts["200"]) == 40


def test_the_soak_refuses_remote_targets_and_empty_loads() -> None:
    with pytest.raises(ValueError, match="127.0.0.1"):
        soak.run_soak("http://example.com:80", [1], [1], seconds=1)
    with pytest.raises(ValueError, match="positive"):
        soak.run_soak("http://127.0.0.1:9", [1], [1], seconds=0)


@pytest.mark.enterprise
def test_a_short_real_soak_with_a_redis_outage(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The real API on a private redis-server that a drill stops and restarts mid-soak (data kept).

    Its own project on the API tests' offline tables, materialized into the private server, with their model."""
    root = tmp_path_factory.mktemp("soak")
    base = api_profile("enterprise", tmp_path_factory.getbasetemp())  # the `ready` fixture's project
    with RedisServer(workdir=root) as server:
        profile = resolve_profile("enterprise", {**base.env(), "FEAST_PROJECT": "course_test_soak",
                                                 "FEAST_REDIS_PORT": str(server.port), "FEAST_REDIS_DB": "0"})
        store = load_store(profile)
        serving.apply(store, profile)
        serving.materialize(store, profile)
        shutil.copy(base.model_path, profile.model_path)
        shutil.copy(ranker.digest_path(base.model_path), ranker.digest_path(profile.model_path))
        users = [1, 2, 3, 4, 5]
        with start_course_api(profile, Path(root) / "api.log") as api:
            before = httpx.get(f"{api.url}/users/1/features", timeout=30).json()
            report = soak.run_soak(api.url, users, list(range(1, 101)), seconds=12, rate=40,
                                   drills=[redis_drill(server, at_s=4, outage_s=2)])
            after = httpx.get(f"{api.url}/users/1/features", timeout=30).json()
    assert report.requests == len(report.samples) == sum(report.statuses.values()) > 0
    assert {s.status for s in report.samples} <= {200, 503}  # never a 500 nor a hang
    (window,) = report.windows
    assert window.name == "redis" and window.requests > 0 and window.only_expected, window
    assert "503" in window.statuses
    assert not math.isnan(report.availability or math.nan)
    assert after["features"] == before["features"]  # the restart loaded the snapshot: nothing lost


def test_only_requests_sent_while_the_service_was_certainly_down_are_judged() -> None:
    window = Window("redis", 10.0, 16.0, (503,), down_s=10.5, up_s=15.0)  # stopping took 0.5 s, restarting 1 s
    stopping = Sample("user_features", 10.2, 10.3, 200)  # Redis still answered while shutting down
    restarting = Sample("user_features", 15.5, 15.6, 200)  # the new process already listened
    down = Sample("user_features", 12.0, 12.1, 503)
    report = soak.summarize([stopping, down, restarting], [window], 20, 1).windows[0]
    assert report.requests == 1 and report.statuses == {"503": 1} and report.only_expected
    wrong = soak.summarize([Sample("user_features", 12.0, 12.1, 200)], [window], 20, 1).windows[0]
    assert not wrong.only_expected
