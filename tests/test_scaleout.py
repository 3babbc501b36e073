"""The `scaleout` profile (Redis Cluster online store, Spark offline store and compute engine)
gives the same answers as `local` and `enterprise`, and survives losing a master.

Needs PostgreSQL and the Redis Cluster of `make services-cluster` (`make test` starts it), plus
Java. The module builds one small synthetic dataset into all three profiles; its single
SparkSession (Spark's JVM start-up is the main cost) is shared by every test and stopped at the
end. The fault test starts, stops and restarts masters of a private cluster on free ports; the
shared cluster is never touched.
"""
from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
import yaml
from fastapi.testclient import TestClient
from feast import FeatureStore
from feast.repo_config import load_repo_config
from redis.crc import key_slot
from support import isolated_env

from course_lib import capacity, cluster, datasets, doctor, placement, ranker, scaleout, serving
from course_lib.adapter import build_feature_tables
from course_lib.api import create_app
from course_lib.background import free_port
from course_lib.config import (
    ALL_PROFILES,
    ENV_DEFAULTS,
    REPO_ROOT,
    SCALEOUT,
    ConfigError,
    Profile,
    render,
    resolve_profile,
)
from course_lib.doctor import run_checks
from course_lib.redis_format import redis_key
from course_lib.reset import reset_online
from feature_repo.definitions import VIEWS

pytestmark = [pytest.mark.scaleout, pytest.mark.enterprise]

PROJECT = "course_test_scaleout"
FAULT_PROJECT = "course_test_scaleout_fault"
END = datetime(2025, 3, 1, tzinfo=timezone.utc)  # after every event: materialize exactly the same window
SAMPLES = 80
CLUSTER_COMPOSE = REPO_ROOT / "docker" / "docker-compose.cluster.yml"
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")


@dataclass
class World:
    """The dataset, its feature tables, every profile's store, and their training frames."""

    env: dict[str, str]
    dataset: datasets.Dataset
    tables: dict[str, pd.DataFrame]
    profiles: dict[str, Profile]
    stores: dict[str, FeatureStore]
    frames: dict[str, pd.DataFrame]


def sample_entities(ds: datasets.Dataset, seed: int = 1) -> pd.DataFrame:
    """Rows up to two days after real watch events (inside and past the one-day interaction TTL)."""
    picked = ds.watch_events.sample(SAMPLES, random_state=seed).reset_index(drop=True)
    after = pd.to_timedelta(np.random.default_rng(seed).integers(1, 48 * 3600, SAMPLES), unit="s")
    return pd.DataFrame({"user_id": picked["user_id"], "movie_id": picked["movie_id"],
                         "event_timestamp": picked["event_timestamp"] + after})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One dataset written, applied and retrieved on every profile; Spark stopped afterwards."""
    env = {**isolated_env(str(tmp_path_factory.mktemp("scaleout"))), "FEAST_PROJECT": PROJECT,
           "FEAST_OFFLINE_SCHEMA": PROJECT}
    dataset = datasets.synthetic(seed=5, n_users=120, n_movies=60, n_events=3000, days=30)
    tables = build_feature_tables(dataset)
    entity_df = sample_entities(dataset)
    profiles = {name: resolve_profile(name, env) for name in ALL_PROFILES}
    stores, frames = {}, {}
    try:
        for name, profile in profiles.items():
            stores[name] = scaleout.prepare_store(profile, tables)
            frames[name] = serving.historical_features(stores[name], entity_df.copy(), serving.feature_refs())
        yield World(env, dataset, tables, profiles, stores, frames)
    finally:
        scaleout.stop_spark()


@pytest.fixture(scope="module")
def materialized(world: World) -> World:
    """Enterprise (in-process engine) and scaleout (Spark engine) materialized over the same window,
    each into an online store emptied of this project first."""
    for name in ("enterprise", SCALEOUT):
        reset_online(world.stores[name], world.profiles[name])
    assert sum(placement.stored_keys_per_node(world.profiles[SCALEOUT]).values()) == 0, "reset left keys behind"
    for name in ("enterprise", SCALEOUT):
        serving.materialize(world.stores[name], world.profiles[name], end=END)
    return world


def same(a: Any, b: Any) -> bool:
    """Null-aware equality, floats to float32 precision."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    return a == b


# --- configuration ---------------------------------------------------------------------------

def test_scaleout_yaml_is_valid_for_feast(tmp_path: Path) -> None:
    profile = resolve_profile(SCALEOUT, isolated_env(str(tmp_path)))
    repo = render(profile)
    config = load_repo_config(repo, repo / "feature_store.yaml")
    assert config.online_store.redis_type == "redis_cluster"
    assert config.online_store.connection_string.startswith(profile.settings.redis_cluster_nodes + ",")
    assert "cluster_error_retry_attempts=0" in config.online_store.connection_string
    assert config.offline_store.type == "spark" and config.batch_engine.type == "spark.engine"
    assert config.offline_store.spark_conf["spark.master"] == profile.settings.spark_master
    assert config.offline_store.spark_conf == config.batch_engine.spark_conf
    assert f"/{profile.registry_database}?" in config.registry.path


def test_bad_cluster_node_list_is_a_config_error(tmp_path: Path) -> None:
    invalid = "FEAST_REDIS_CLUSTER_NODES='7001,7002' is invalid: .*entry '7001' is not host:port"
    with pytest.raises(ConfigError, match=invalid):
        resolve_profile(SCALEOUT, {**isolated_env(str(tmp_path)), "FEAST_REDIS_CLUSTER_NODES": "7001,7002"})


def test_cluster_compose_service_follows_the_profile_settings() -> None:
    text = CLUSTER_COMPOSE.read_text()
    parsed = yaml.safe_load(text)
    service = parsed["services"]["redis-cluster"]
    assert service["profiles"] == ["cluster"] and service["image"] == "redis:7-alpine"
    assert service["healthcheck"]["test"][0] == "CMD-SHELL"
    used = INTERPOLATION.findall(yaml.safe_dump(parsed).replace("$$", ""))
    assert ("FEAST_REDIS_CLUSTER_NODES", ENV_DEFAULTS["FEAST_REDIS_CLUSTER_NODES"]) in used
    assert all(ENV_DEFAULTS.get(name) == default for name, default in used), used
    main = yaml.safe_load((REPO_ROOT / "docker-compose.feast.yml").read_text())
    assert "docker/docker-compose.cluster.yml" in main["include"]


@pytest.mark.parametrize(("text", "major"), [('openjdk version "17.0.15" 2025-04-15', 17),
                                              ('java version "1.8.0_392"', 8), ("no java here", None)])
def test_java_major_version_is_parsed(text: str, major: int | None) -> None:
    assert doctor.java_major(text) == major


def test_capacity_plan_follows_its_formulas() -> None:
    """200 requests/s per replica, 100k hash reads/s per master, 250 B per hash, 41 hashes per request."""
    inputs = capacity.CapacityInputs(replica_rps=200.0, key_reads_per_s=100_000, bytes_per_key=250,
                                     keys_per_request=41, source="given")
    plan = capacity.capacity_plan(inputs, [(1_000, 10_000_000), (20_000, 100_000_000)]).to_dict("records")
    # replicas = ceil(qps / (200 * 0.5)); reads = ceil(qps * 41 / 50k); memory = ceil(n * 250 / (8 GiB * 0.7))
    assert [(r["feature-server replicas"], r["masters for reads"], r["masters for memory"], r["Redis masters"],
             r["Redis nodes incl. replicas"]) for r in plan] == [(10, 1, 1, 3, 6), (200, 17, 5, 17, 34)]


def test_capacity_inputs_read_a_course_bench_document() -> None:
    result = {"profile": "enterprise", "measured_at": "2026-01-01T00:00:00+00:00",
              "online": {"user_x_100": {"raw_redis": {"n": 280, "p50_ms": 1.9, "p99_ms": 3.0, "mean_ms": 2.01}}},
              "http": {"course_api_recommendations": {"n": 400, "p50_ms": 40.0, "p99_ms": 80.0, "rps": 150.0}}}
    inputs = capacity.bench_capacity_inputs(result, bytes_per_key=232.0, name="results.json")
    assert (inputs.replica_rps, inputs.keys_per_request, inputs.bytes_per_key) == (150.0, 201, 232.0)
    assert math.isclose(inputs.key_reads_per_s, 100_000) and "results.json" in inputs.source


# --- equivalence --------------------------------------------------------------------------------

def test_spark_training_frame_equals_duckdb_and_postgres(world: World) -> None:
    spark = world.frames[SCALEOUT]
    for name in ("local", "enterprise"):
        other = world.frames[name]
        assert set(spark.columns) == set(other.columns)
        pd.testing.assert_frame_equal(spark[other.columns], other, check_exact=False, rtol=1e-6)


def test_training_frames_hold_values_and_nulls(world: World) -> None:
    """The frames compared above mean something: every feature has values, and TTL misses occur."""
    frame = world.frames[SCALEOUT]
    features = [ref.split(":")[1] for ref in serving.feature_refs()]
    assert len(frame) == SAMPLES and not [f for f in features if frame[f].isna().all()]
    assert frame["watch_count"].isna().any() and frame["watch_count"].notna().any()


@pytest.mark.parametrize("view", list(VIEWS))
def test_spark_materialization_gives_the_enterprise_online_values(materialized: World, view: str) -> None:
    rows = placement.entity_rows(materialized.tables)[view]
    want = serving.online_rows(materialized.stores["enterprise"], [view], rows)
    got = serving.online_rows(materialized.stores[SCALEOUT], [view], rows)
    assert all(r[view].status == "found" for r in want), "enterprise lost rows: the comparison would be empty"
    mismatches = [(row, w[view], g[view]) for row, w, g in zip(rows, want, got)
                  if g[view].status != w[view].status or g[view].event_timestamps != w[view].event_timestamps
                  or not all(same(g[view].values[f], w[view].values[f]) for f in w[view].values)]
    assert not mismatches, f"{len(mismatches)} of {len(rows)} entities differ, first: {mismatches[:2]}"


def test_every_key_sits_on_the_master_its_slot_names(materialized: World) -> None:
    profile = materialized.profiles[SCALEOUT]
    rows = [row for rows in placement.entity_rows(materialized.tables).values() for row in rows]
    expected = placement.expected_keys_per_node(profile, rows)
    assert placement.stored_keys_per_node(profile) == expected
    assert len(expected) == 3 and all(count > 0 for count in expected.values()), expected


def test_api_serves_the_same_answers_from_the_cluster(materialized: World) -> None:
    """Both APIs load one ranker, trained on the local profile's frame (the three profiles' frames
    are equal, see above; duckdb builds it fastest)."""
    enterprise, scale = materialized.profiles["enterprise"], materialized.profiles[SCALEOUT]
    model = ranker.train(ranker.training_frame(materialized.stores["local"], materialized.dataset))
    for profile in (enterprise, scale):
        ranker.save(model, profile)
    events = materialized.dataset.watch_events
    user = int(events["user_id"].value_counts().index[0])
    movies = [int(m) for m in events["movie_id"].value_counts().index[:20]]
    bodies = {}
    for name, profile in (("enterprise", enterprise), (SCALEOUT, scale)):
        with TestClient(create_app(profile)) as client:
            features = client.get(f"/users/{user}/features")
            recs = client.post("/recommendations", json={"user_id": user, "movie_ids": movies, "k": 5})
            assert features.status_code == 200 and recs.status_code == 200, (features.text, recs.text)
            bodies[name] = (features.json(), recs.json())
    (want_features, want_recs), (got_features, got_recs) = bodies["enterprise"], bodies[SCALEOUT]
    assert got_features["status"] == "found" and got_features["features"] == want_features["features"]
    assert got_recs["user_status"] == "found" and len(got_recs["recommendations"]) == 5
    assert [(r["movie_id"], r["score"], r["features_used"]) for r in got_recs["recommendations"]] == \
        [(r["movie_id"], r["score"], r["features_used"]) for r in want_recs["recommendations"]]


# --- the cluster itself ------------------------------------------------------------------------

def test_doctor_checks_java_the_cluster_and_postgres(world: World) -> None:
    checks = {check.name: check for check in run_checks(world.profiles[SCALEOUT])}
    assert {"java", "redis cluster", "postgres", f"database {world.profiles[SCALEOUT].registry_database}",
            "feast registry"} <= set(checks)
    failed = {name: check.detail for name, check in checks.items() if not check.ok}
    assert not failed, failed
    assert "cluster_state:ok, 3 masters, 16384 slots" in checks["redis cluster"].detail


def test_doctor_names_an_unreachable_cluster_and_the_fix(tmp_path: Path) -> None:
    nodes = ",".join(f"127.0.0.1:{free_port()}" for _ in range(3))
    profile = resolve_profile(SCALEOUT, {**isolated_env(str(tmp_path)), "FEAST_REDIS_CLUSTER_NODES": nodes})
    check = doctor.check_redis_cluster(profile)
    assert not check.ok and nodes.split(",")[0] in check.detail and "make services-cluster" in check.fix


def test_stop_never_kills_a_process_it_did_not_start(tmp_path: Path) -> None:
    """A pid file naming some other process (stale or forged) is left alone."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        own = cluster.LocalCluster([("127.0.0.1", cluster.free_node_port()) for _ in range(3)], tmp_path)
        node = own.nodes[0]
        own.folder(node).mkdir(parents=True)
        own.pidfile(node).write_text(str(other.pid))
        assert own.stop() == [] and other.poll() is None
    finally:
        other.send_signal(signal.SIGTERM)
        other.wait()


@pytest.fixture
def private_cluster(tmp_path: Path) -> Iterator[cluster.LocalCluster]:
    """A 3-master cluster this test starts on free ports and always stops."""
    own = cluster.LocalCluster([("127.0.0.1", cluster.free_node_port()) for _ in range(3)], tmp_path / "nodes")
    try:
        own.start()
        yield own
    finally:
        own.stop()


def read_user(store: FeatureStore, user: int) -> serving.EntityFeatures:
    """One user's online features."""
    return serving.user_features(store, user)


@pytest.mark.timeout(300)  # a read that hangs on the stopped master fails here instead of hanging the run
def test_losing_a_master_fails_only_its_slots_and_a_restart_recovers(
        private_cluster: cluster.LocalCluster, tmp_path: Path) -> None:
    nodes = ",".join(map(cluster.node_name, private_cluster.nodes))
    profile = resolve_profile(SCALEOUT, {**isolated_env(str(tmp_path)), "FEAST_PROJECT": FAULT_PROJECT,
                                         "FEAST_REDIS_CLUSTER_NODES": nodes})
    tables = build_feature_tables(datasets.synthetic(seed=6, n_users=60, n_movies=30, n_events=800, days=10))
    store = scaleout.prepare_store(profile, tables)  # no Spark: the online store is written directly
    latest = tables["user_profile_features"].sort_values("event_timestamp").groupby("user_id").tail(1)
    store.write_to_online_store("user_profile_features", latest)
    owners = placement.masters(profile)
    home = {int(u): placement.owner_of(key_slot(redis_key({"user_id": int(u)}, FAULT_PROJECT)),
                                      owners)
            for u in latest["user_id"]}
    victim = home[min(home)]
    lost = [u for u, name in home.items() if name == victim]
    kept = [u for u, name in home.items() if name != victim]
    assert lost and len(kept) >= 10 and len(set(home.values())) == 3, "the users must span all three masters"
    before = {u: read_user(store, u) for u in (lost[0], *kept[:10])}
    assert all(found.status == "found" for found in before.values())

    host, port = victim.rsplit(":", 1)
    assert private_cluster.stop_node((host, int(port)))
    for user in kept[:10]:
        assert read_user(store, user) == before[user], f"user {user} on a live master changed"
    with pytest.raises(redis.RedisError) as error:
        read_user(store, lost[0])
    assert victim in str(error.value), f"the error should name the lost master {victim}: {error.value!r}"

    private_cluster.start_node((host, int(port)))
    private_cluster.wait_ok()
    assert read_user(store, lost[0]) == before[lost[0]], "the restarted master lost its keys"
    assert all(read_user(store, u) == before[u] for u in kept[:10])
