"""Training on what was served: the label join, and a replayed week of traffic through the real API."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from support import DATA_END, PROFILE_PARAMS, api_dataset, isolated_profile

from course_lib import drift_watch, feature_log, feedback, ranker, serving
from course_lib.api import create_app
from course_lib.background import start_course_api
from course_lib.candidate_matrix import MatrixLayout
from course_lib.config import ALL_PROFILES, resolve_profile
from course_lib.offline import read_offline
from course_lib.skew import skew_report, skewed
from feature_repo.definitions import MOVIE_VIEW, build_realtime
from feature_repo.names import RANKER_SERVICE

T0 = pd.Timestamp("2025-02-01", tz="UTC")


def test_a_logged_row_takes_the_first_rating_within_the_horizon() -> None:
    log = pd.DataFrame({"__request_id": ["a", "a", "a", "b", "b"], "user_id": [1, 1, 1, 2, 2],
                        "movie_id": [10, 11, 12, 10, 13], feature_log.AS_OF: [T0] * 3 + [T0 + timedelta(days=1)] * 2,
                        "popularity": [1.0, 2.0, 3.0, 4.0, 5.0]})
    hour = timedelta(hours=1)
    rated = pd.DataFrame({"user_id": [1, 1, 1, 1, 2, 2, 2],
                          "movie_id": [10, 10, 11, 12, 10, 13, 99],
                          "event_timestamp": [T0 + hour, T0 + 2 * hour,  # the first of two ratings counts
                                              T0 + timedelta(days=1),  # exactly at the horizon: inside
                                              T0,  # at the served moment itself: not after it
                                              T0 + timedelta(days=2, hours=1),  # more than a day after b
                                              T0 + timedelta(days=1, hours=3),
                                              T0 + hour],
                          "rating": [5.0, 1.0, 2.0, 5.0, 5.0, 4.0, 5.0]})
    out = feedback.labelled(log, rated)
    assert out[["__request_id", "movie_id", "label"]].to_dict("records") == [
        {"__request_id": "a", "movie_id": 10, "label": 1}, {"__request_id": "a", "movie_id": 11, "label": 0},
        {"__request_id": "b", "movie_id": 13, "label": 1}]
    assert (out["event_timestamp"] == out[feature_log.AS_OF]).all()
    assert set(ranker.FEATURES) <= set(out.columns)  # features the log lacks are there, missing


# The replay and the surge run on enterprise here (the course's own PostgreSQL log table); notebook 09 runs
# both on local under nbval in `make test` (Feast's file logging), with its own assertions.
ENTERPRISE = [p for p in PROFILE_PARAMS if p.id == "enterprise"]


@pytest.fixture(scope="module", params=ENTERPRISE)
def replayed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The feedback project served as of the start of the data's last five days, then those days replayed
    through `course serve`."""
    base = isolated_profile(request.param, tmp_path_factory.mktemp("feedback"), project="course_test")
    profile, store, days = feedback.prepare_project(base, api_dataset(), days=5)
    with start_course_api(profile, Path(profile.repo_dir) / "api.log") as api:
        responses = feedback.replay(api.url, store, profile, api_dataset(), days, size=30)
        with httpx.Client(base_url=api.url, timeout=30) as client:
            counted = feedback.logged_records(client, responses)
    return profile, store, api_dataset(), responses, days, feature_log.read_log(profile), counted


def test_a_replayed_log_holds_every_response_and_no_skew(replayed) -> None:
    profile, store, _, responses, days, log, counted = replayed
    assert profile.project == "course_test_feedback"  # its own project: the other tests' data is untouched
    assert log["__request_id"].nunique() == responses > 100
    assert counted == {"written": responses, "dropped": 0, "failed": 0}  # the API's own accounting, read while up
    assert sorted(log[feature_log.AS_OF].unique()) == days
    assert days[-1] == pd.Timestamp(DATA_END) - timedelta(days=1) and len(days) == 5
    report = skew_report(store, log)
    assert skewed(report) == [], report


def test_served_and_point_in_time_models_are_scored_on_the_same_responses(replayed) -> None:
    _, store, dataset, _, _, log, _ = replayed
    rows = feedback.labelled(log, feedback.ratings(dataset))
    assert len(rows) > 200 and rows["label"].nunique() == 2
    table = feedback.compare(store, rows, dataset).set_index("model")
    assert list(table.index) == ["served features (the log)", "point-in-time features (course train)",
                                 "popularity baseline"]
    assert table["held_out_rows"].nunique() == 1 and table["held_out_rows"].iloc[0] > 50
    assert table["auc"].between(0, 1).all() and table.loc["served features (the log)", "training_rows"] > 100


def test_logged_records_returns_the_counts_at_the_timeout_when_they_fall_short(replayed) -> None:
    """Asked for more records than were ever served, it waits out its timeout and says what it saw."""
    profile, _, _, _, _, _, _ = replayed
    with TestClient(create_app(profile)) as client:
        asked = feedback.ask(client, {int(api_dataset().users["user_id"].iloc[0]): [1, 2, 3]})
        started = pd.Timestamp.now()
        counted = feedback.logged_records(client, 1_000, timeout_s=1.5)
    assert len(asked) == 1 and counted == {"written": 1, "dropped": 0, "failed": 0}
    assert pd.Timestamp.now() - started >= pd.Timedelta(seconds=1.5)


def test_a_serving_bug_skews_exactly_its_feature_and_ends_with_the_block(replayed) -> None:
    """Runtime served in hours: the report names runtime alone, every served runtime is the clean one over 60,
    and the request path is clean again once the block ends."""
    profile, store, _, _, days, log, _ = replayed
    original = MatrixLayout.matrix
    last_day = log[log[feature_log.AS_OF] == days[-1]]
    again = {int(u): sorted(int(m) for m in rows["movie_id"]) for u, rows in list(last_day.groupby("user_id"))[:5]}
    with feedback.serving_bug("runtime", 1 / 60), TestClient(create_app(profile)) as client:
        assert MatrixLayout.matrix is not original
        ids = feedback.ask(client, again)
    assert MatrixLayout.matrix is original
    broken = feature_log.read_log(profile).loc[lambda f: f["__request_id"].isin(ids)]
    assert broken["__request_id"].nunique() == len(again) == 5
    report = skew_report(store, broken)
    assert skewed(report) == ["runtime"], report
    pairs = broken.merge(last_day, on=["user_id", "movie_id"], suffixes=("", "_clean"))
    assert len(pairs) == len(broken) and pairs["runtime_clean"].notna().any()
    assert np.allclose(pairs["runtime"] * 60, pairs["runtime_clean"], equal_nan=True)


def test_logging_support_names_the_offline_stores_that_write_feature_logs() -> None:
    """Only DuckDB's offline store implements write_logged_features, and only local's ranker service logs
    through Feast: the table agrees with the definitions."""
    table = feedback.logging_support().set_index("profile")
    assert list(table.index) == list(ALL_PROFILES)
    assert table["write_logged_features"].to_dict() == {"local": True, "enterprise": False, "scaleout": False}
    assert table["offline_store"].to_dict() == {"local": "DuckDBOfflineStore", "enterprise": "PostgreSQLOfflineStore",
                                                "scaleout": "SparkOfflineStore"}
    for name in ALL_PROFILES:
        service = {s.name: s for s in build_realtime(resolve_profile(name)).feature_services}[RANKER_SERVICE]
        assert (service.logging_config is not None) == table.at[name, "write_logged_features"], name
        assert table.at[name, "served_feature_log"].startswith("Feast") == (service.logging_config is not None)


@pytest.fixture(scope="module", params=ENTERPRISE)
def surged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A feedback project of its own, online as of the data's last day, before and after a popularity surge."""
    base = isolated_profile(request.param, tmp_path_factory.mktemp("surge"), project="course_test_surge")
    profile, store, days = feedback.prepare_project(base, api_dataset(), days=2)
    before = read_offline(profile, [MOVIE_VIEW])[MOVIE_VIEW]
    at = days[-1] + pd.Timedelta(hours=1)
    rows = feedback.popularity_surge(store, profile, at)
    return profile, store, at, before, rows


def test_a_popularity_surge_writes_new_rows_for_the_newest_movies_and_serves_them(surged) -> None:
    profile, store, at, before, rows = surged
    movies = api_dataset().movies.sort_values(["release_year", "movie_id"], kind="stable")
    newest = movies["movie_id"].tail(round(len(movies) * feedback.SURGE_SHARE)).astype("int64").tolist()
    assert sorted(rows["movie_id"]) == sorted(newest) and (rows["event_timestamp"] == at).all()
    after = read_offline(profile, [MOVIE_VIEW])[MOVIE_VIEW]
    assert len(after) == len(before) + len(rows)  # appended, nothing else rewritten
    latest = drift_watch.latest_rows(before, MOVIE_VIEW, at.to_pydatetime()).set_index("movie_id")
    online = {m: serving.movie_features(store, m).values["popularity"] for m in [newest[0], newest[-1], *movies[
        "movie_id"].head(3).astype("int64")]}
    for movie, value in online.items():
        factor = feedback.SURGE_FACTOR if movie in newest else 1.0
        assert value == pytest.approx(latest.at[movie, "popularity"] * factor, rel=1e-6), movie


def test_a_popularity_surge_is_flagged_as_drift_of_popularity_alone(surged) -> None:
    profile, store, _, _, _ = surged
    report = drift_watch.report_now(profile, store)
    assert report.loc[report["drifted"], "feature"].tolist() == ["popularity"], report
    assert report.set_index("feature").at["popularity", "psi"] >= 0.2
