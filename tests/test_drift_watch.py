"""Drift in the running API: entity features online against the offline rows at the model's training cut-off."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from course_lib import ranker
from course_lib.api import create_app
from course_lib.config import Profile, load_store
from course_lib.drift_watch import DriftWatch, baseline_time, drift_features, latest_rows, report_now, wait_for_gauge
from course_lib.monitoring import Metrics, parse_metrics, sample_values
from course_lib.serving import EntityFeatures
from feature_repo.definitions import MOVIE_VIEW, USER_VIEW, VIEWS


def test_latest_rows_keep_each_entitys_newest_row_at_the_cut_off() -> None:
    table = pd.DataFrame({"movie_id": [1, 1, 1, 2, 3],
                          "event_timestamp": pd.to_datetime(["2025-01-01", "2025-01-03", "2025-01-09", "2025-01-02",
                                                             "2025-01-08"], utc=True),
                          "popularity": [1.0, 2.0, 9.0, 5.0, 7.0]})
    kept = latest_rows(table, MOVIE_VIEW, datetime(2025, 1, 5, tzinfo=timezone.utc))
    assert kept[["movie_id", "popularity"]].to_dict("records") == [{"movie_id": 1, "popularity": 2.0},
                                                                   {"movie_id": 2, "popularity": 5.0}]


def test_drift_covers_the_user_and_movie_features_only() -> None:
    expected = {f.name for view in (USER_VIEW, MOVIE_VIEW) for f in VIEWS[view][2]}
    assert set(drift_features()) == expected
    assert drift_features()["favorite_genre"] == "categorical" and drift_features()["popularity"] == "numeric"


def flagged(metrics: Metrics) -> dict[str, float]:
    """course_feature_drifted by feature, read from the exposition."""
    frame = parse_metrics(metrics.render()[0].decode())
    return sample_values(frame, "course_feature_drifted", ["feature"]).to_dict()


def scaled(rows: dict[int, EntityFeatures], factor: float, share: float) -> dict[int, EntityFeatures]:
    """The movies with popularity times `factor` for the newest `share` of them (by id): a surge of new titles."""
    ids = sorted(rows)
    new = set(ids[int(len(ids) * (1 - share)):])
    return {m: dataclasses.replace(row, values={**row.values, "popularity": row.values["popularity"] * factor})
            if m in new and row.values.get("popularity") is not None else row for m, row in rows.items()}


@pytest.fixture(scope="module")
def served(ready: Profile) -> Iterator[tuple[Profile, object, dict[int, EntityFeatures]]]:
    """The running API's blocking reads and its movie near-cache's rows, on the prepared project."""
    with TestClient(create_app(ready)) as client:
        services = client.app.state.services  # type: ignore[attr-defined]
        yield ready, services.fetch, dict(services.recommender.movies.rows)


def watch(served: tuple[Profile, object, dict[int, EntityFeatures]], movies: dict[int, EntityFeatures],
          metrics: Metrics) -> DriftWatch:
    """A drift watch over the prepared project's online users and the given movie rows."""
    profile, fetch, _ = served
    return DriftWatch(profile, baseline_time(ranker.load(profile)), fetch, lambda: movies,  # type: ignore[arg-type]
                      metrics)


def test_clean_serving_does_not_drift(served: tuple[Profile, object, dict[int, EntityFeatures]]) -> None:
    metrics = Metrics()
    report = watch(served, served[2], metrics).run().set_index("feature")
    assert set(report.index) == set(drift_features())
    assert report["n_recent"].min() > 50 and report["n_baseline"].min() > 50, report[["n_baseline", "n_recent"]]
    assert not report["drifted"].any(), report[report["drifted"]]
    assert set(flagged(metrics).values()) == {0.0}


def test_a_popularity_surge_of_new_movies_fires_its_gauge(
        served: tuple[Profile, object, dict[int, EntityFeatures]]) -> None:
    metrics = Metrics()
    surge = watch(served, scaled(served[2], 3.0, 0.4), metrics).run().set_index("feature")
    assert surge.loc["popularity", "drifted"] and surge.loc["popularity", "psi"] >= 0.2
    assert surge.index[surge["drifted"]].tolist() == ["popularity"]
    gauges = flagged(metrics)
    assert gauges.pop("popularity") == 1.0 and set(gauges.values()) == {0.0}


def test_a_random_half_of_the_movies_does_not_drift(served: tuple[Profile, object, dict[int, EntityFeatures]]) -> None:
    """A held-out slice of the same distribution: half the movies, chosen at random, stay quiet."""
    rows = served[2]
    keep = np.random.default_rng(3).choice(sorted(rows), len(rows) // 2, replace=False)
    report = watch(served, {int(m): rows[int(m)] for m in keep}, Metrics()).run()
    assert not report.loc[report["feature"].isin([f.name for f in VIEWS[MOVIE_VIEW][2]]), "drifted"].any(), report


def test_the_api_exports_a_drift_report_in_the_background(ready: Profile) -> None:
    profile = Profile(ready.name, ready.settings.model_copy(update={"drift_interval_s": 0.2}))
    with TestClient(create_app(profile)) as client:
        deadline = time.monotonic() + 30
        gauges: dict[str, float] = {}
        while not gauges and time.monotonic() < deadline:
            frame = parse_metrics(client.get("/metrics").text)
            gauges = sample_values(frame, "course_feature_drifted", ["feature"]).to_dict()
            time.sleep(0.1)
    assert set(gauges) == set(drift_features()) and set(gauges.values()) == {0.0}, gauges
    psi = sample_values(frame, "course_feature_drift", ["feature", "statistic"])
    assert set(psi.xs("psi", level="statistic").index) == set(drift_features())


def test_report_now_is_the_report_the_apis_watch_computes(served: tuple[Profile, object, dict[int, EntityFeatures]]
                                                          ) -> None:
    """Outside the API (the Feast SDK's reads, the movies of the offline table) the same report as its watch."""
    profile = served[0]
    api_report = watch(served, served[2], Metrics()).run()
    metrics = Metrics()
    pd.testing.assert_frame_equal(report_now(profile, load_store(profile), metrics), api_report)
    assert set(flagged(metrics)) == set(drift_features())  # exported like the API's


def test_wait_for_gauge_returns_once_the_gauge_holds_or_at_the_timeout(ready: Profile) -> None:
    profile = Profile(ready.name, ready.settings.model_copy(update={"drift_interval_s": 0.2}))
    with TestClient(create_app(profile)) as client:
        quiet = wait_for_gauge(client, "popularity", 0.0)
        started = time.monotonic()
        never = wait_for_gauge(client, "popularity", 1.0, timeout_s=1.0)
        waited = time.monotonic() - started
    assert set(quiet) == set(drift_features()) and set(quiet.values()) == {0.0}, quiet
    assert never["popularity"] == 0.0 and waited >= 1.0  # clean data never drifts: it waited its timeout out
