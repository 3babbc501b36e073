"""Monitoring against real stores, both profiles: freshness from the registry and online reads,
health checks that name the failed component, and metrics parsed with the Prometheus parser.

Isolated project `course_test_mon`. The clock is injected (never slept on). Outages use a
redis-server of the test's own and a TCP forwarder in front of the shared PostgreSQL that
the test stops and restarts; the shared services are never stopped.
"""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import redis
from feast import FeatureStore
from prometheus_client.parser import text_string_to_metric_families
from support import PROFILE_PARAMS, FakeClock, isolated_env, parsed, value

from course_lib import datasets, serving
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.background import RedisServer, free_port
from course_lib.config import ConfigError, Profile, load_store, resolve_profile
from course_lib.freshness import FRESHNESS_KINDS, FreshnessReport, OfflineSamples, freshness, newest_offline, utc_now
from course_lib.health import HEALTH_COMPONENTS, health, probe
from course_lib.monitoring import (
    FAMILIES,
    METRIC_NAMES,
    Metrics,
    histogram_quantile,
    parse_metrics,
    refresh,
    sample_values,
)
from course_lib.offline import MissingOfflineData, read_offline
from course_lib.outage import Forwarder
from course_lib.redis_format import project_keys
from feature_repo.definitions import FEATURE_VIEWS, VIEWS, join_keys

MON_PROJECT = "course_test_mon"
T_END = pd.Timestamp("2025-01-11 07:13:00", tz="UTC").to_pydatetime()  # inside the data's 20 days
PIPELINE_STALE_S = 3600.0  # the COURSE_PIPELINE_STALE_S default
def mon_env(workdir: Path, project: str = MON_PROJECT, **overrides: str) -> dict[str, str]:
    """Environment of an isolated monitoring test project (offline schema course_test_mon)."""
    return {**isolated_env(str(workdir)), "FEAST_PROJECT": project, "FEAST_OFFLINE_SCHEMA": MON_PROJECT,
            **overrides}


def fresh_store(profile: Profile) -> FeatureStore:
    """A store for the profile with the project's online rows from earlier runs removed (Redis db 15).

    The registry project is kept: in Feast 0.67 `delete_project` on a SQL registry leaves
    `feature_view_version_history` rows behind and the next apply fails on them. Every run
    materializes to the same T_END, so earlier intervals never end later.
    """
    if profile.name == "enterprise":
        client = redis.Redis(**profile.redis_client_kwargs())
        for key in project_keys(client, profile.project):
            client.delete(key)
    return load_store(profile)


@pytest.fixture(scope="module", params=PROFILE_PARAMS)
def materialized(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Profile, FeatureStore]:
    """Each profile with a small synthetic log materialized up to T_END."""
    profile = resolve_profile(request.param, mon_env(tmp_path_factory.mktemp(f"mon-{request.param}")))
    write_offline(build_feature_tables(datasets.synthetic(seed=5, n_users=80, n_movies=40, n_events=2000,
                                                          days=20)), profile)
    store = fresh_store(profile)
    serving.apply(store, profile)
    serving.materialize(store, profile, end=T_END)
    return profile, store


# --- freshness --------------------------------------------------------------------------

@pytest.mark.parametrize("profile_name", PROFILE_PARAMS)
def test_never_materialized_views_report_never_materialized(profile_name: str, tmp_path: Path) -> None:
    profile = resolve_profile(profile_name, mon_env(tmp_path, "course_test_mon_empty"))
    store = fresh_store(profile)
    serving.apply(store, profile)
    report = freshness(store, profile)
    assert {(e.feature_view, e.kind) for e in report.entries} == {(v, k) for v in FEATURE_VIEWS
                                                                  for k in FRESHNESS_KINDS}
    for e in report.entries:
        assert e.status == "never_materialized" and e.age_seconds is None and e.timestamp is None, e
    metrics = Metrics()
    metrics.record_freshness(report)
    samples = parsed(metrics)
    assert "course_pipeline_freshness_seconds" not in samples  # no age is invented
    for view in FEATURE_VIEWS:
        assert value(samples, "course_freshness_status", feature_view=view, kind="pipeline",
                     status="never_materialized") == 1


def test_pipeline_freshness_is_now_minus_the_registrys_materialization_end(materialized) -> None:
    profile, store = materialized
    for view in FEATURE_VIEWS:  # Feast's own record of the run, read independently
        assert store.get_feature_view(view).most_recent_end_time == T_END
    before = utc_now()
    report = freshness(store, profile)
    after = utc_now()
    assert before <= report.checked_at <= after
    for view in FEATURE_VIEWS:
        entry = report.get(view, "pipeline")
        assert entry.timestamp == T_END and entry.source == "registry" and not entry.future_end
        assert (before - T_END).total_seconds() <= entry.age_seconds <= (after - T_END).total_seconds()


def test_pipeline_status_flips_to_stale_when_the_clock_passes_the_threshold(materialized) -> None:
    profile, store = materialized
    clock = FakeClock(T_END + timedelta(seconds=PIPELINE_STALE_S - 1))
    for expected_age, expected_status in ((PIPELINE_STALE_S - 1, "fresh"), (PIPELINE_STALE_S + 1, "stale")):
        clock.now = T_END + timedelta(seconds=expected_age)
        report = freshness(store, profile, now=clock)
        assert report.checked_at == clock.now
        for view in FEATURE_VIEWS:
            entry = report.get(view, "pipeline")
            assert (entry.age_seconds, entry.status, entry.threshold_seconds) == (
                expected_age, expected_status, PIPELINE_STALE_S)


def test_pipeline_threshold_comes_from_config(materialized) -> None:
    profile, store = materialized
    strict = resolve_profile(profile.name, {**profile.env(), "COURSE_PIPELINE_STALE_S": "60"})
    entry = freshness(store, strict, now=FakeClock(T_END + timedelta(seconds=61))).get(FEATURE_VIEWS[0], "pipeline")
    assert (entry.threshold_seconds, entry.status) == (60.0, "stale")
    for bad in ("soon", "0", "-5"):  # refused when the profile is resolved, not when freshness is first measured
        with pytest.raises(ConfigError, match=f"COURSE_PIPELINE_STALE_S='{bad}' is invalid"):
            resolve_profile(profile.name, {**profile.env(), "COURSE_PIPELINE_STALE_S": bad})


def test_a_future_materialization_end_gives_age_zero_never_negative(materialized) -> None:
    profile, store = materialized
    report = freshness(store, profile, now=FakeClock(T_END - timedelta(hours=2)))
    metrics = Metrics()
    metrics.record_freshness(report)
    samples = parsed(metrics)
    for view in FEATURE_VIEWS:
        entry = report.get(view, "pipeline")
        assert (entry.age_seconds, entry.future_end, entry.status) == (0.0, True, "fresh"), entry
        assert value(samples, "course_pipeline_freshness_seconds", feature_view=view) == 0.0
    ages = [s.value for name in ("course_pipeline_freshness_seconds", "course_data_freshness_seconds")
            for s in samples[name]]
    assert ages and min(ages) >= 0


def offline_newest_at_or_before(profile: Profile, view: str, end: datetime) -> pd.Timestamp:
    """The newest offline event timestamp <= end, read straight from the offline table."""
    table = read_offline(profile, [view])[view]
    stamps = pd.to_datetime(table["event_timestamp"], utc=True)
    assert stamps.max() > end, "the test's end must lie inside the data, or '<= end' is not exercised"
    return stamps[stamps <= end].max()


@pytest.mark.parametrize("limit", [5, 60, 100_000])  # 100_000: more than there are entities, so the scan widens
def test_newest_offline_entities_equal_a_group_by_over_the_whole_table(materialized, limit: int) -> None:
    profile, _ = materialized
    for view in FEATURE_VIEWS:
        keys = join_keys(view)
        table = read_offline(profile, [view])[view]
        table = table.assign(ts=pd.to_datetime(table["event_timestamp"], utc=True))
        recent = table[table["ts"] <= T_END]
        newest = recent.groupby(keys)["ts"].max().reset_index().sort_values(
            ["ts", *keys], ascending=[False, *[True] * len(keys)])
        expected = [dict(zip(keys, map(int, row))) for row in newest[keys].head(limit).itertuples(index=False)]
        rows, at = newest_offline(profile, view, T_END, limit)
        assert rows == expected and at == recent["ts"].max(), view


NO_OFFLINE_TABLE = (MissingOfflineData, psycopg.errors.UndefinedTable)  # local, enterprise


def test_offline_samples_are_read_again_only_when_the_end_moves(materialized, tmp_path: Path) -> None:
    """The observer's memo: the same end answers from memory, a moved end queries the offline store again."""
    profile, _ = materialized
    view = FEATURE_VIEWS[0]
    samples = OfflineSamples()
    assert samples(profile, view, T_END) == newest_offline(profile, view, T_END)
    empty = resolve_profile(profile.name, mon_env(tmp_path, FEAST_OFFLINE_SCHEMA="course_test_mon_empty"))
    with pytest.raises(NO_OFFLINE_TABLE):  # nothing written there: the query itself fails
        newest_offline(empty, view, T_END)
    assert samples(empty, view, T_END) == newest_offline(profile, view, T_END)  # kept: no query
    with pytest.raises(NO_OFFLINE_TABLE):  # the end moved: queried again, and it fails there
        samples(empty, view, T_END - timedelta(hours=1))


def test_data_freshness_is_now_minus_the_newest_online_event_timestamp(materialized) -> None:
    profile, store = materialized
    clock = FakeClock(T_END + timedelta(minutes=10))
    report = freshness(store, profile, now=clock)
    for view in FEATURE_VIEWS:
        entry = report.get(view, "data")
        expected = offline_newest_at_or_before(profile, view, T_END)
        assert entry.source == "online", entry
        # online event timestamps carry whole seconds
        assert entry.timestamp == expected.floor("s").to_pydatetime(), (view, entry.timestamp, expected)
        assert entry.age_seconds == (clock.now - entry.timestamp).total_seconds()
        assert entry.threshold_seconds == VIEWS[view][1].total_seconds() and entry.status == "fresh"


def test_data_freshness_goes_stale_after_the_views_ttl(materialized) -> None:
    profile, store = materialized
    newest = freshness(store, profile).get("user_movie_interaction_features", "data").timestamp
    report = freshness(store, profile, now=FakeClock(newest + timedelta(days=1, seconds=1)))
    assert report.get("user_movie_interaction_features", "data").status == "stale"  # TTL 1 day
    assert report.get("user_profile_features", "data").status == "fresh"  # TTL 7 days


def test_freshness_gauges_match_the_report(materialized) -> None:
    profile, store = materialized
    report = freshness(store, profile, now=FakeClock(T_END + timedelta(days=2)))
    metrics = Metrics()
    metrics.record_freshness(report)
    samples = parsed(metrics)
    for e in report.entries:
        name = f"course_{e.kind}_freshness_seconds"
        labels = {"feature_view": e.feature_view} | ({"source": e.source} if e.kind == "data" else {})
        assert value(samples, name, **labels) == e.age_seconds
        assert value(samples, "course_freshness_threshold_seconds", feature_view=e.feature_view,
                     kind=e.kind) == e.threshold_seconds
        assert [value(samples, "course_freshness_status", feature_view=e.feature_view, kind=e.kind, status=s)
                for s in ("fresh", "stale", "never_materialized")] == [
            float(e.status == s) for s in ("fresh", "stale", "never_materialized")]
    as_json = report.as_dict()
    assert as_json["views"]["user_profile_features"]["pipeline"]["timestamp"] == T_END.isoformat()


# --- metrics ----------------------------------------------------------------------------

def test_metric_names_are_exactly_the_exported_families() -> None:
    families = {f.name: f.type for f in text_string_to_metric_families(Metrics().render()[0].decode())}
    expected = {spec.name.removesuffix("_total"): spec.kind for spec in FAMILIES}
    assert families == expected
    assert all(name.startswith("course_") for name in METRIC_NAMES)


def test_each_metrics_object_counts_on_its_own() -> None:
    first, second = Metrics(), Metrics()
    for _ in range(3):
        first.observe_request("/users/{user_id}/features", 200, 0.002)
    second.observe_request("/users/{user_id}/features", 200, 0.002)
    a, b = parsed(first), parsed(second)
    labels = {"endpoint": "/users/{user_id}/features", "status": "200"}
    assert value(a, "course_requests_total", **labels) == 3 and value(b, "course_requests_total", **labels) == 1


def test_histograms_bucket_observations_cumulatively() -> None:
    metrics = Metrics()
    for seconds in (0.0004, 0.003, 0.003, 7.0):
        metrics.observe_retrieval("recommendation", seconds)
    metrics.observe_entities("recommendation", "movie", requested=30, not_found=2)
    samples = parsed(metrics)
    labels = {"feature_service": "recommendation", "entity_type": "user_movie"}
    def bucket(le):
        return value(samples, "course_feature_retrieval_seconds_bucket", le=le, **labels)
    assert (bucket("0.0005"), bucket("0.0025"), bucket("0.005"), bucket("5.0"), bucket("+Inf")) == (1, 1, 3, 3, 4)
    assert value(samples, "course_feature_retrieval_seconds_count", **labels) == 4
    assert value(samples, "course_feature_retrieval_seconds_sum", **labels) == pytest.approx(7.0064)
    assert value(samples, "course_entities_per_request_sum", feature_service="recommendation",
                 entity_type="movie") == 30
    assert value(samples, "course_entities_not_found_total", entity_type="movie") == 2
    with pytest.raises(ValueError, match="unknown feature_service"):
        metrics.observe_entities("recommendation", "actor", requested=1, not_found=0)


def test_parsed_histograms_give_promql_quantiles() -> None:
    metrics = Metrics()
    for seconds in (0.0004, 0.003, 0.003, 7.0):
        metrics.observe_request("/recommendations", 200, seconds)
    frame = parse_metrics(metrics.render()[0].decode())
    buckets = sample_values(frame, "course_request_duration_seconds_bucket", ["endpoint", "le"])["/recommendations"]
    cumulative = buckets.rename(index=float).sort_index()
    assert cumulative.iloc[-1] == 4 and list(cumulative.index[-2:]) == [5.0, float("inf")]
    assert histogram_quantile(0.25, cumulative) == pytest.approx(0.0005)  # inside the first bucket
    assert histogram_quantile(0.5, cumulative) == pytest.approx(0.00375)  # 0.0025 + 0.0025 * (2 - 1) / (3 - 1)
    assert histogram_quantile(0.99, cumulative) == 5.0  # falls in +Inf: the highest finite bound
    assert sample_values(frame, "course_requests_total", ["endpoint", "status"]).to_dict() == {
        ("/recommendations", "200"): 4.0}


# --- health -----------------------------------------------------------------------------

def test_a_probe_times_its_check_and_reports_its_failure() -> None:
    slow = probe("slow", lambda: time.sleep(0.02) or "done", fix="unused")
    assert (slow.name, slow.ok, slow.detail, slow.fix) == ("slow", True, "done", "") and slow.latency_ms >= 20
    broken = probe("broken", lambda: str(1 / 0), fix="repair it")
    assert (broken.ok, broken.detail, broken.fix) == (False, "ZeroDivisionError: division by zero", "repair it")
    assert broken.latency_ms is not None and 0 <= broken.latency_ms < slow.latency_ms


def test_health_checks_every_component_for_real(materialized) -> None:
    profile, store = materialized
    ok, report = health(store, profile)
    assert ok and report["status"] == "ok" and report["failed"] == [], report
    components = report["components"]
    assert tuple(components) == HEALTH_COMPONENTS
    assert all(c["ok"] for c in components.values())
    assert "lists all 3 course feature views" in components["registry"]["detail"]
    assert components["online_store"]["detail"] == "read user_id=1: found"
    metrics = Metrics()
    assert refresh(metrics, store, profile).healthy
    samples = parsed(metrics)
    assert [value(samples, "course_component_up", component=c) for c in components] == [1, 1, 1]
    assert value(samples, "course_errors_total", kind="freshness_check") is None


def test_health_names_missing_definitions_with_the_apply_fix(tmp_path: Path) -> None:
    profile = resolve_profile("local", mon_env(tmp_path, "course_test_mon_void"))
    ok, report = health(load_store(profile), profile)
    assert not ok and set(report["failed"]) == {"registry", "online_store", "offline_store"}, report
    components = report["components"]
    assert "course apply --profile local" in components["registry"]["fix"]
    assert "course apply --profile local" in components["online_store"]["fix"]
    assert "course data --profile local" in components["offline_store"]["fix"]


@pytest.mark.parametrize("materialized", ["local"], indirect=True)
def test_local_health_fails_on_a_missing_parquet_table_and_recovers(materialized) -> None:
    profile, store = materialized
    table = Path(profile.offline_location("movie_metadata_features"))
    aside = table.with_name(table.name + ".aside")
    table.rename(aside)
    try:
        ok, report = health(store, profile)
    finally:
        aside.rename(table)
    assert not ok and report["failed"] == ["offline_store"], report
    assert "movie_metadata_features.parquet" in report["components"]["offline_store"]["detail"]
    assert health(store, profile)[0]


def test_late_rows_leave_the_data_stale_after_an_incremental_run_until_a_backfill(tmp_path: Path) -> None:
    """Notebook 04's story on an injected clock: rows that arrive late (event times before the last
    run's end) are skipped by an incremental run, so the pipeline is fresh while the interaction
    data stays stale; a backfill of the window (`store.materialize(start, end)`) makes it fresh."""
    profile = resolve_profile("local", mon_env(tmp_path, project="course_test_late"))
    log = datasets.synthetic(seed=5, n_users=80, n_movies=40, n_events=2000, days=20)
    cut, view = T_END - timedelta(days=2), "user_movie_interaction_features"
    def until(moment: datetime) -> datasets.Dataset:
        """The log as it stood at `moment`."""
        return dataclasses.replace(log, watch_events=log.watch_events[log.watch_events["event_timestamp"] < moment])

    write_offline(build_feature_tables(until(cut)), profile)  # the upstream stopped two days before the run
    store = load_store(profile)
    serving.apply(store, profile)
    clock = FakeClock(T_END + timedelta(minutes=1))

    def status(end: datetime) -> tuple[str, str, str]:
        """Pipeline status, data status and data source of the interaction view, a minute after `end`."""
        clock.now = end + timedelta(minutes=1)
        report = freshness(store, profile, now=clock)
        return report.get(view, "pipeline").status, report.get(view, "data").status, report.get(view, "data").source

    serving.materialize(store, profile, end=T_END)
    assert status(T_END) == ("fresh", "stale", "online")  # ran, but with nothing new to carry
    write_offline(build_feature_tables(until(T_END)), profile)  # the two missing days arrive, late
    later = T_END + timedelta(hours=1)
    serving.materialize(store, profile, end=later, incremental=True)
    assert status(later)[:2] == ("fresh", "stale")  # the newest offline pairs have nothing new online
    store.materialize(start_date=cut, end_date=later)
    assert status(later) == ("fresh", "fresh", "online")


@pytest.mark.enterprise
@pytest.mark.parametrize("materialized", ["enterprise"], indirect=True)
def test_redis_outage_fails_the_online_store_and_recovers(materialized) -> None:
    base, _ = materialized
    server = RedisServer().start()
    try:
        profile = resolve_profile("enterprise", {**base.env(), "FEAST_REDIS_PORT": str(server.port),
                                                 "FEAST_REDIS_DB": "0"})
        store = load_store(profile)  # same registry and project, its own (empty) Redis
        assert health(store, profile)[0]
        server.stop()
        ok, report = health(store, profile)
        assert not ok and report["failed"] == ["online_store"], report
        assert f"127.0.0.1:{server.port}" in report["components"]["online_store"]["fix"]
        metrics = Metrics()
        assert not refresh(metrics, store, profile).healthy
        samples = parsed(metrics)
        assert value(samples, "course_component_up", component="online_store") == 0
        assert value(samples, "course_errors_total", kind="freshness_check") == 1
        server.start()
        assert health(store, profile)[0] and refresh(metrics, store, profile).freshness is not None
        assert value(parsed(metrics), "course_component_up", component="online_store") == 1
        # Registry says materialized, this Redis holds nothing: the online data is stale, not as fresh
        # as the offline rows it lacks.
        entry = freshness(store, profile, now=FakeClock(T_END)).get("user_profile_features", "data")
        assert (entry.status, entry.source, entry.age_seconds) == ("stale", "none", None), entry
        newest = offline_newest_at_or_before(profile, "user_profile_features", T_END)
        assert f"{newest:%Y-%m-%d %H:%M} UTC" in entry.detail
    finally:
        server.stop()


@pytest.mark.enterprise
@pytest.mark.parametrize("materialized", ["enterprise"], indirect=True)
def test_postgres_outage_fails_registry_and_offline_store_and_recovers(materialized) -> None:
    base, _ = materialized
    forwarder = Forwarder(base.settings.pg_port).start()
    try:
        profile = resolve_profile("enterprise", {**base.env(), "FEAST_PG_PORT": str(forwarder.port)})
        store = load_store(profile)
        assert health(store, profile)[0]
        forwarder.refuse()  # nothing listens on the profile's PostgreSQL port any more
        ok, report = health(store, profile)
        assert not ok and report["failed"] == ["registry", "offline_store"], report
        for name in report["failed"]:
            component = report["components"][name]
            assert f"port {forwarder.port}" in component["detail"] and "FEAST_PG_PORT" in component["fix"]
        # Serving keeps working from the registry cache while PostgreSQL is down.
        assert report["components"]["online_store"]["ok"]
        forwarder.pass_through()
        assert health(store, profile)[0]
    finally:
        forwarder.stop()


@pytest.mark.enterprise
@pytest.mark.parametrize("materialized", ["enterprise"], indirect=True)
def test_a_store_that_never_reached_postgres_blames_the_registry(materialized, tmp_path: Path) -> None:
    base, _ = materialized
    profile = resolve_profile("enterprise", {**base.env(), "FEAST_PG_PORT": str(free_port())})
    ok, report = health(load_store(profile), profile)
    assert not ok and set(report["failed"]) == {"registry", "offline_store", "online_store"}, report
    online = report["components"]["online_store"]
    assert "registry" in online["detail"] and "FEAST_PG_PORT" in online["fix"], online
    ok, report = health(load_store(base), base)  # pointed back at the real port
    assert ok, report


def test_freshness_report_json_has_every_view_and_kind(materialized) -> None:
    profile, store = materialized
    report: FreshnessReport = freshness(store, profile)
    views = report.as_dict()["views"]
    assert set(views) == set(FEATURE_VIEWS) and all(set(v) == {"pipeline", "data"} for v in views.values())
