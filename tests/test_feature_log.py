"""The served-feature log: every recommendation response is recorded whole, off the request path, and
every record is accounted for (written, dropped when the queue is full, failed when the sink raises)."""
from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from support import known_ids

from course_lib import feature_log, ranker
from course_lib.api import create_app
from course_lib.candidate_matrix import MatrixLayout
from course_lib.cli import main
from course_lib.config import Profile, load_store
from course_lib.feature_log import FeatureLogger, Served
from course_lib.monitoring import Metrics, parse_metrics, sample_values
from course_lib.recommender import Recommendations
from course_lib.skew import skew_report, skewed
from feature_repo.definitions import build_realtime
from feature_repo.names import RANKER_SERVICE

FEATURES = ("avg_rating", "popularity")


def found(user_id: int, scores: list[float], inputs: list[list[float]]) -> Recommendations:
    """A response of len(scores) candidates (movies 10, 11, ...)."""
    movies = list(range(10, 10 + len(scores)))
    return Recommendations(user_id=user_id, movie_ids=movies, user_found=True,
                           movie_found=np.ones(len(movies), dtype=bool), features=FEATURES,
                           inputs=np.array(inputs, dtype="float64"), scores=np.array(scores), top=[0],
                           as_of=datetime(2025, 3, 2, tzinfo=timezone.utc), retrieval_ms=1.0, scoring_ms=0.1)


def served(request_id: str, response: Recommendations) -> Served:
    """A response stamped at a fixed moment."""
    return Served(request_id, datetime(2025, 3, 2, 12, tzinfo=timezone.utc), "abc123", response)


def outcomes(metrics: Metrics) -> dict[str, float]:
    """course_feature_log_records_total by outcome, read from the exposition."""
    frame = parse_metrics(metrics.render()[0].decode())
    return sample_values(frame, "course_feature_log_records_total", ["outcome"]).to_dict()


class ListSink:
    """Tables as written, optionally held at a gate (to fill the queue) or failing."""

    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.tables: list[pa.Table] = []  # each call's batch, as the parquet sinks' table
        self.gate, self.fail = gate, fail

    def __call__(self, batch: list[Served]) -> None:
        if self.gate is not None:
            self.gate.wait()
        if self.fail:
            raise OSError("disk full")
        self.tables.append(feature_log.to_table(feature_log.to_columns(batch)))


def test_a_table_holds_every_candidate_with_its_rank_score_and_inputs() -> None:
    columns = feature_log.to_columns([served("r1", found(7, [0.2, 0.9, 0.2], [[1.0, np.nan], [2.0, 5.0], [3.0, 6.0]])),
                                      served("r2", found(8, [0.5], [[4.0, 7.0]]))])
    table = feature_log.to_table(columns).to_pylist()
    assert [(r["__request_id"], r["user_id"], r["movie_id"], r["rank"], r["score"]) for r in table] == [
        ("r1", 7, 10, 2, 0.2), ("r1", 7, 11, 1, 0.9), ("r1", 7, 12, 3, 0.2), ("r2", 8, 10, 1, 0.5)]
    assert [(r["avg_rating"], r["popularity"]) for r in table] == [(1.0, None), (2.0, 5.0), (3.0, 6.0), (4.0, 7.0)]
    assert {r["model_version"] for r in table} == {"abc123"}
    assert table[0]["__log_timestamp"] == datetime(2025, 3, 2, 12, tzinfo=timezone.utc)
    assert table[0]["__log_date"].isoformat() == "2025-03-02"
    assert table[0][feature_log.AS_OF] == datetime(2025, 3, 2, tzinfo=timezone.utc)


@pytest.mark.enterprise
def test_the_binary_copy_is_what_postgresql_reads(redis_profile: Profile) -> None:
    """PostgreSQL parses the hand-built binary COPY into the same values (checked in its own text output and
    bytea functions, not through this module's reader), and read_log gives back one row per candidate."""
    response = served(feature_log.new_request_id(), found(7, [0.25, 0.5], [[1.5, np.nan], [-2.0, 1e300]]))
    sink = feature_log.PostgresSink(redis_profile)
    feature_log.clear_log(redis_profile)
    sink([response])
    sink.close()
    with psycopg.connect(redis_profile.pg_conninfo()) as conn:
        row = conn.execute(sql.SQL(
            "SELECT __request_id, __log_timestamp::text, __log_date::text, features_as_of::text, user_id, "
            "model_version, features, length(movie_ids), get_byte(movie_ids, 8), length(scores), length(inputs) "
            "FROM {}").format(sql.Identifier(redis_profile.offline_schema, feature_log.TABLE))).fetchone()
    assert row == (response.request_id, "2025-03-02 12:00:00+00", "2025-03-02", "2025-03-02 00:00:00+00", 7,
                   "abc123", "avg_rating,popularity", 16, 11, 16, 32)  # movies 10 and 11 as int64: byte 8 is 11
    log = feature_log.read_log(redis_profile)
    assert log[["movie_id", "rank", "score", "avg_rating"]].to_dict("records") == [
        {"movie_id": 11, "rank": 1, "score": 0.5, "avg_rating": -2.0},
        {"movie_id": 10, "rank": 2, "score": 0.25, "avg_rating": 1.5}]
    assert np.isnan(log.set_index("movie_id").at[10, "popularity"]) and log["popularity"].max() == 1e300
    feature_log.clear_log(redis_profile)


def test_close_writes_everything_queued() -> None:
    sink, metrics = ListSink(), Metrics()
    logger = FeatureLogger(sink, metrics, capacity=1_000, flush_s=30.0)  # no timed flush: close() must write
    for i in range(250):
        logger.log(served(f"r{i}", found(i, [0.1, 0.2], [[1.0, 2.0], [3.0, 4.0]])))
    logger.close()
    ids = [r for table in sink.tables for r in table.column("__request_id").to_pylist()]
    assert sorted(set(ids)) == sorted(f"r{i}" for i in range(250)) and len(ids) == 500
    assert logger.counts == {"written": 250, "dropped": 0, "failed": 0}
    assert outcomes(metrics) == {"written": 250.0}


def test_a_full_queue_drops_and_counts_instead_of_blocking() -> None:
    gate = threading.Event()
    sink, metrics = ListSink(gate), Metrics()
    logger = FeatureLogger(sink, metrics, capacity=3, flush_s=0.01)
    logger.log(served("first", found(1, [0.1], [[1.0, 1.0]])))
    deadline = datetime.now().timestamp() + 5
    while logger._queue.qsize() and datetime.now().timestamp() < deadline:  # the writer holds "first" at the gate
        threading.Event().wait(0.01)
    for i in range(10):  # 3 fit in the queue, 7 are dropped at once: log() never waits for the sink
        logger.log(served(f"r{i}", found(1, [0.1], [[1.0, 1.0]])))
    assert logger.counts["dropped"] == 7
    gate.set()
    logger.close()
    assert logger.counts == {"written": 4, "dropped": 7, "failed": 0}
    logger.log(served("late", found(1, [0.1], [[1.0, 1.0]])))  # after close: counted, not lost silently
    assert logger.counts["dropped"] == 8
    assert outcomes(metrics) == {"written": 4.0, "dropped": 8.0}


def test_a_failing_sink_is_counted_and_the_logger_keeps_going() -> None:
    sink = ListSink(fail=True)
    logger = FeatureLogger(sink, Metrics(), capacity=100, flush_s=0.01)
    logger.log(served("a", found(1, [0.1], [[1.0, 1.0]])))
    deadline = datetime.now().timestamp() + 5
    while logger.counts["failed"] == 0 and datetime.now().timestamp() < deadline:
        threading.Event().wait(0.01)
    sink.fail = False
    logger.log(served("b", found(1, [0.1], [[1.0, 1.0]])))
    logger.close()
    assert logger.counts == {"written": 1, "dropped": 0, "failed": 1}
    assert [t.column("__request_id").to_pylist() for t in sink.tables] == [["b"]]


def test_local_logs_through_feasts_file_logging_destination() -> None:
    """The local ranker service carries Feast's LoggingConfig; the other profiles' stores cannot write logs."""
    from course_lib.config import resolve_profile

    for name in ("local", "enterprise", "scaleout"):
        profile = resolve_profile(name)
        service = next(s for s in build_realtime(profile).feature_services if s.name == RANKER_SERVICE)
        if name == "local":
            assert service.logging_config is not None
            assert service.logging_config.destination.path == str(profile.feature_log_dir)
        else:
            assert service.logging_config is None


def serve_and_log(profile: Profile, requests: int = 20) -> tuple[list[dict], pd.DataFrame]:
    """Recommendation responses from a fresh log, and the log after the app's shutdown wrote its queue."""
    feature_log.clear_log(profile)
    user, movies = known_ids()
    bodies = []
    with TestClient(create_app(profile)) as client:
        for i in range(requests):
            response = client.post("/recommendations", json={"user_id": user + (i % 3), "movie_ids": list(movies),
                                                             "k": 5})
            assert response.status_code == 200, response.text
            bodies.append(response.json())
    return bodies, feature_log.read_log(profile)


@pytest.fixture(scope="module")
def logged(ready: Profile) -> tuple[Profile, list[dict], pd.DataFrame]:
    """Twenty recommendation responses and the clean log they left."""
    return ready, *serve_and_log(ready)


def test_every_response_is_logged_with_its_request_id_inputs_and_scores(
        logged: tuple[Profile, list[dict], pd.DataFrame]) -> None:
    profile, bodies, log = logged
    assert sorted(log["__request_id"].unique()) == sorted(b["request_id"] for b in bodies)
    if profile.name == "local":  # written by Feast's write_logged_features: ibis names its files <uuid>-{i}.parquet
        files = [f.name for f in profile.feature_log_dir.iterdir()]
        assert files and all(re.fullmatch(r"[0-9a-f]{32}-\{i\}\.parquet", f) for f in files), files
    assert len(log) == 20 * len(known_ids()[1])  # every candidate, not only the top k
    for body in bodies:
        rows = log[log["__request_id"] == body["request_id"]].set_index("movie_id")
        assert (rows["user_id"] == body["user_id"]).all()
        for position, item in enumerate(body["recommendations"], start=1):
            row = rows.loc[item["movie_id"]]
            assert row["rank"] == position and row["score"] == item["score"]
            for name, value in item["features_used"].items():
                assert (np.isnan(row[name]) if value is None else row[name] == value), (name, value, row[name])
        assert (rows["model_version"] == body["model"]["version"]).all()
        assert (rows[feature_log.AS_OF] == pd.Timestamp(body["features_as_of"])).all()


def test_clean_serving_has_no_skew(logged: tuple[Profile, list[dict], pd.DataFrame]) -> None:
    profile, _, log = logged
    report = skew_report(load_store(profile), log)
    assert set(report["feature"]) == set(ranker.load(profile).features)
    assert skewed(report) == [] and (report["max_abs_diff"] == 0).all(), report
    # the comparison is not vacuous: most logged values are present on both sides
    assert log[list(report["feature"])].notna().to_numpy().mean() > 0.5


def test_a_serving_transformation_bug_is_caught_and_named(ready: Profile, monkeypatch: pytest.MonkeyPatch) -> None:
    """Serving divides popularity by 100 (a unit change training never saw): the report names exactly it."""
    original = MatrixLayout.matrix

    def buggy(self: MatrixLayout, *args: object) -> np.ndarray:
        out = original(self, *args)
        out[:, self.features.index("popularity")] /= 100
        return out

    monkeypatch.setattr(MatrixLayout, "matrix", buggy)
    _, log = serve_and_log(ready, requests=3)
    report = skew_report(load_store(ready), log).set_index("feature")
    assert skewed(report.reset_index()) == ["popularity"], report
    assert report.at["popularity", "mismatch_share"] > 0.5 and report.at["popularity", "max_abs_diff"] > 0


def test_course_skew_exits_0_on_the_clean_log_and_1_naming_a_skewed_feature(
        logged: tuple[Profile, list[dict], pd.DataFrame], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    profile, _, _ = logged
    serve_and_log(profile, requests=3)  # a clean log of its own (another test may have left a broken one)
    for name, value in profile.env().items():
        monkeypatch.setenv(name, value)
    assert main(["skew", "--profile", profile.name, "--json", str(tmp_path / "skew.json")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"no training/serving skew: 20 features of {3 * len(known_ids()[1]):,} logged rows"), last
    assert json.loads((tmp_path / "skew.json").read_text())[0]["mismatches"] == 0
    real = feature_log.read_log
    monkeypatch.setattr(feature_log, "read_log", lambda p: real(p).assign(avg_rating=lambda f: f["avg_rating"] + 0.5))
    assert main(["skew", "--profile", profile.name]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("training/serving skew in avg_rating:")
