"""2.7.5 optimizations return exactly what the plain paths return, on real stores.

Every optimized path (cache, near-cache, raw Redis reads, tuned materialization, tuned and
chunked retrieval) is compared with `course_lib.serving` on the same data, on both profiles.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import psycopg
import pytest
from feast import FeatureView, Field
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.on_demand_feature_view import on_demand_feature_view
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import load_repo_config
from feast.types import Float32, Float64
from prometheus_client import CollectorRegistry, generate_latest
from support import PROFILE_PARAMS, FakeMonotonic, isolated_env

from course_lib import caches, datasets, materialize, pit, redis_format, redis_reader
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.background import free_port
from course_lib.config import PROFILES, TUNED_YAML, ConfigError, Profile, load_store, render, resolve_profile
from course_lib.pit import PG_PIT_SETTINGS
from course_lib.reset import reset_online
from course_lib.serving import (
    apply,
    candidate_features,
    feature_refs,
    historical_features,
    latest_interval,
    online_rows,
)
from course_lib.serving import materialize as materialize_views
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS, join_keys, movie, user

PROJECT = "course_test_opt"


@dataclass(frozen=True)
class Data:
    """The test log, its feature tables, and the two materialization ends."""

    dataset: datasets.Dataset
    tables: dict[str, pd.DataFrame]
    mid: datetime  # the first materialization ends here
    end: datetime  # after every event


@functools.cache
def data() -> Data:
    """Built on first use, not at collection (a run that deselects these tests never builds it)."""
    dataset = datasets.synthetic(seed=11, n_users=60, n_movies=40, n_events=1500, days=30)
    times = dataset.watch_events[TIMESTAMP_FIELD]
    return Data(dataset, build_feature_tables(dataset), (times.min() + pd.Timedelta(days=15)).to_pydatetime(),
                (times.max() + pd.Timedelta(days=1)).to_pydatetime())
ALL_VIEWS = list(VIEWS)


@dataclass
class World:
    """One profile with the test data written offline and materialized up to data().mid."""

    profile: Profile
    store: object


def profile_for(name: str, workdir: str, project: str = PROJECT, **overrides: str) -> Profile:
    """An isolated profile: own project, offline schema, Redis db 15, temp workdir."""
    env = isolated_env(workdir)
    env.update(FEAST_PROJECT=project, FEAST_OFFLINE_SCHEMA=PROJECT, **overrides)
    return resolve_profile(name, env)


def prepared(profile: Profile, tuned: bool = False):
    """Write the offline tables, register the views and empty the project's online rows."""
    write_offline(data().tables, profile)
    store = load_store(profile, tuned=tuned)
    apply(store, profile)
    reset_online(store, profile)
    return store


@pytest.fixture(scope="module", params=PROFILE_PARAMS)
def world(request, tmp_path_factory) -> World:
    profile = profile_for(request.param, str(tmp_path_factory.mktemp(request.param)))
    store = prepared(profile)
    materialize_views(store, profile, end=data().mid)
    return World(profile, store)


def entity_rows(view: str) -> list[dict[str, int]]:
    """Every entity key of a view's offline table."""
    keys = data().tables[view][join_keys(view)].drop_duplicates().sort_values(join_keys(view))
    return [{k: int(v) for k, v in row.items()} for row in keys.to_dict("records")]


def changed_after_mid(view: str) -> list[dict[str, int]]:
    """Entities with offline rows both before and after data().mid: their online values move at data().end."""
    table = data().tables[view]
    before = table[table[TIMESTAMP_FIELD] <= data().mid][join_keys(view)].drop_duplicates()
    after = table[table[TIMESTAMP_FIELD] > data().mid][join_keys(view)].drop_duplicates()
    both = before.merge(after).head(8)
    assert len(both) >= 3, f"the test data must change some {view} rows after data().mid"
    return [{k: int(v) for k, v in row.items()} for row in both.to_dict("records")]


UNKNOWN = 999_999  # an id absent from every table


def request_rows() -> list[dict[str, int]]:
    """(user, movie) rows mixing watched pairs, other pairs and unknown ids."""
    events = data().dataset.watch_events.head(40)
    rows = [{"user_id": int(u), "movie_id": int(m)} for u, m in zip(events["user_id"], events["movie_id"])]
    return rows + [{"user_id": rows[0]["user_id"], "movie_id": UNKNOWN}, {"user_id": UNKNOWN, "movie_id": 1}]


# --- Redis format and raw reads -------------------------------------------------------

@pytest.mark.parametrize("view", ALL_VIEWS)
def test_redis_key_and_fields_match_feasts_helpers(view: str) -> None:
    for values in ({"user_id": 1, "movie_id": 2}, {"user_id": 2**40 + 7, "movie_id": 123_456_789}):
        names = join_keys(view)
        proto = EntityKeyProto(join_keys=names, entity_values=[ValueProto(int64_val=values[n]) for n in names])
        key = redis_format.redis_key({n: values[n] for n in names}, "some_project")
        assert key == _redis_key("some_project", proto, 3)
    for field in VIEWS[view][2]:
        assert redis_format.redis_field(view, field.name) == _mmh3(f"{view}:{field.name}")


@pytest.mark.enterprise
@pytest.mark.parametrize("world", ["enterprise"], indirect=True)  # Redis is the enterprise online store
def test_raw_redis_reads_equal_the_sdk_on_real_data(world: World) -> None:
    reader = redis_reader.RawRedisReader(world.store, world.profile)
    rows = request_rows()
    assert reader.online_rows(ALL_VIEWS, rows) == online_rows(world.store, ALL_VIEWS, rows)
    for view in ALL_VIEWS:
        every = entity_rows(view)
        assert reader.online_rows([view], every) == online_rows(world.store, [view], every), view


@pytest.mark.parametrize("world", ["local"], indirect=True)
def test_raw_reader_refuses_a_store_that_is_not_redis(world: World) -> None:
    for reader in (redis_reader.RawRedisReader, redis_reader.CandidateRedisReader):
        with pytest.raises(ConfigError, match="Redis online store"):
            reader(world.store, world.profile)


# --- online feature cache -------------------------------------------------------------

def cache_keys(rows: list[dict[str, int]]) -> set[tuple[str, tuple[int, ...]]]:
    """The distinct (view, entity key) entries a request touches."""
    return {(view, tuple(row[k] for k in join_keys(view))) for row in rows for view in VIEWS}


def test_cached_rows_equal_uncached_and_are_shared_across_requests(world: World) -> None:
    cache = caches.OnlineFeatureCache(world.store, fetch=redis_reader.online_reader(world.store, world.profile))
    first, second = request_rows()[:20], request_rows()[10:]
    assert cache.online_rows(ALL_VIEWS, first) == online_rows(world.store, ALL_VIEWS, first)
    assert (cache.hits, cache.misses) == (0, len(cache_keys(first)))
    assert cache.online_rows(ALL_VIEWS, second) == online_rows(world.store, ALL_VIEWS, second)
    shared = cache_keys(first) & cache_keys(second)
    assert shared and cache.hits == len(shared), "entries of the first request serve the second"
    assert cache.misses == len(cache_keys(first) | cache_keys(second))
    assert cache.online_rows(ALL_VIEWS, second) == online_rows(world.store, ALL_VIEWS, second)
    assert cache.hits == len(shared) + len(cache_keys(second)), "a repeated request is all hits"


def test_cache_is_a_bounded_lru_with_a_ttl(world: World) -> None:
    clock = FakeMonotonic()
    cache = caches.OnlineFeatureCache(world.store, max_entries=3, ttl_s=10, clock=clock, check_every_s=1e9)
    users = [{"user_id": int(u)} for u in data().dataset.users["user_id"].head(4)]
    view = ["user_profile_features"]
    for row in users[:3]:
        cache.online_rows(view, [row])
    cache.online_rows(view, [users[0]])  # users[0] becomes the most recently used
    cache.online_rows(view, [users[3]])  # evicts users[1], the least recently used
    assert (len(cache), cache.evictions, cache.hits) == (3, 1, 1)
    cache.online_rows(view, [users[1]])
    assert cache.misses == 5, "an evicted entry is fetched again"
    clock.advance(11)
    assert cache.online_rows(view, [users[0]]) == online_rows(world.store, view, [users[0]])
    assert cache.misses == 6 and cache.hits == 1, "an expired entry is fetched again"


def test_cache_counts_are_prometheus_counters_in_the_given_registry(world: World) -> None:
    registry = CollectorRegistry()
    cache = caches.OnlineFeatureCache(world.store, registry=registry)
    rows = [{"user_id": int(u)} for u in data().dataset.users["user_id"].head(3)]
    cache.online_rows(["user_profile_features"], rows)
    cache.online_rows(["user_profile_features"], rows[:2])
    text = generate_latest(registry).decode()
    assert 'course_feature_cache_hits_total{view="user_profile_features"} 2.0' in text
    assert 'course_feature_cache_misses_total{view="user_profile_features"} 3.0' in text
    assert "course_feature_cache_evictions_total" in text and "course_feature_cache_invalidations_total" in text
    fresh = caches.OnlineFeatureCache(world.store)  # its own private registry, starting from zero
    assert (fresh.hits, fresh.misses) == (0, 0)
    assert "course_feature_cache_hits_total{" not in generate_latest(fresh.registry).decode()


# --- caches follow a materialization --------------------------------------------------

@dataclass
class Moved:
    """Caches filled at the data().mid materialization, then the online store moved on to data().end."""

    cache: caches.OnlineFeatureCache
    near: caches.MovieNearCache
    cache_clock: FakeMonotonic
    near_clock: FakeMonotonic
    users: list[dict[str, int]]
    movies: list[int]
    users_before: list
    movies_before: list


@pytest.fixture(scope="module")
def moved(world: World) -> Moved:
    cache_clock, near_clock = FakeMonotonic(), FakeMonotonic()
    cache = caches.OnlineFeatureCache(world.store, ttl_s=1e9, check_every_s=30, clock=cache_clock)
    near = caches.MovieNearCache(world.store, world.profile, check_every_s=30, clock=near_clock, batch_size=7)
    users = changed_after_mid("user_profile_features")
    movies = [row["movie_id"] for row in changed_after_mid("movie_metadata_features")]
    users_before = cache.online_rows(["user_profile_features"], users)
    movies_before = near.get_many(movies)
    materialize_views(world.store, world.profile, end=data().end, incremental=True)
    return Moved(cache, near, cache_clock, near_clock, users, movies, users_before, movies_before)


def test_materialization_changed_the_online_values(world: World, moved: Moved) -> None:
    now = online_rows(world.store, ["user_profile_features"], moved.users)
    assert now != moved.users_before
    assert latest_interval(world.store, "user_profile_features")[1] == data().end


def test_cache_drops_a_views_entries_when_its_interval_moves_not_on_ttl(world: World, moved: Moved) -> None:
    view = ["user_profile_features"]
    assert moved.cache.online_rows(view, moved.users) == moved.users_before, "no poll is due yet"
    moved.cache_clock.advance(30)
    assert moved.cache.online_rows(view, moved.users) == online_rows(world.store, view, moved.users)
    assert moved.cache.invalidations >= len(moved.users)


def test_movie_near_cache_reloads_when_its_interval_moves(world: World, moved: Moved) -> None:
    assert moved.near.get_many(moved.movies) == moved.movies_before and moved.near.loads == 1
    moved.near_clock.advance(30)
    expected = [row["movie_metadata_features"] for row in
                online_rows(world.store, ["movie_metadata_features"], [{"movie_id": m} for m in moved.movies])]
    assert moved.near.get_many(moved.movies) == expected != moved.movies_before
    assert moved.near.loads == 2


# --- near-cache and the optimized recommendation read ---------------------------------

def test_movie_near_cache_holds_every_movie_as_the_online_store_has_it(world: World) -> None:
    near = caches.MovieNearCache(world.store, world.profile, batch_size=9)
    movies = [row["movie_id"] for row in entity_rows("movie_metadata_features")]
    assert len(near) == len(movies)
    expected = online_rows(world.store, ["movie_metadata_features"], [{"movie_id": m} for m in movies + [UNKNOWN]])
    assert near.get_many(movies + [UNKNOWN]) == [row["movie_metadata_features"] for row in expected]


def test_recommendation_features_equal_candidate_features(world: World) -> None:
    optimized = caches.RecommendationFeatures(world.store, world.profile)
    catalogue = [int(m) for m in data().dataset.movies["movie_id"]]
    movies = [*catalogue, UNKNOWN, catalogue[0]]
    for user_id in [int(u) for u in data().dataset.watch_events["user_id"].head(5)] + [UNKNOWN]:
        assert optimized.recommendation_features(user_id, movies) == candidate_features(world.store, user_id, movies)


# --- materialization automation -------------------------------------------------------

def test_a_second_materialization_reports_locked_instead_of_running(world: World) -> None:
    before = {view: latest_interval(world.store, view) for view in VIEWS}
    with materialize.exclusive_lock(world.profile) as first:
        assert first
        outcome = materialize.materialize_once(world.store, world.profile)
    assert (outcome.status, outcome.attempts, outcome.report) == ("locked", 0, None)
    assert {view: latest_interval(world.store, view) for view in VIEWS} == before, "nothing ran"


@pytest.mark.parametrize("world", ["local"], indirect=True)  # the lock file works the same on every profile
def test_the_cli_reports_locked_while_another_process_holds_the_lock(world: World) -> None:
    with materialize.exclusive_lock(world.profile):
        cli = subprocess.run([sys.executable, "-m", "course_lib", "materialize", "--profile", world.profile.name,
                              "--incremental"], check=False, env={**os.environ, **world.profile.env()},
                             capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "materialize locked" in cli.stdout, cli.stdout + cli.stderr
    with materialize.exclusive_lock(world.profile) as free:
        assert free, "the lock is released when its holder leaves"


@pytest.mark.enterprise
def test_transient_failures_are_retried_with_backoff(tmp_path) -> None:
    unused = str(free_port())  # nothing listens there (a fixed port such as 1 may be taken on a shared machine)
    profile = profile_for("enterprise", str(tmp_path), project="course_test_opt_down", FEAST_REDIS_PORT=unused)
    write_offline(data().tables, profile)
    store = load_store(profile)
    apply(store, profile)
    delays: list[float] = []
    outcome = materialize.materialize_once(store, profile, retry=materialize.RetryPolicy(attempts=3, first_delay_s=0.5),
                                   sleep=delays.append)
    assert (outcome.status, outcome.attempts, delays) == ("failed", 3, [0.5, 1.0])
    assert "ConnectionError" in outcome.error and "course doctor" in outcome.error


def test_scheduled_runs_start_with_a_full_load_then_continue_incrementally(tmp_path) -> None:
    profile = profile_for("local", str(tmp_path), project="course_test_opt_every")
    store = prepared(profile)
    clock, sleeps = FakeMonotonic(), []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    outcomes = materialize.materialize_every(store, profile, timedelta(minutes=5), runs=2, sleep=sleep, clock=clock)
    assert [o.status for o in outcomes] == ["ok", "ok"] and sleeps == [300.0]
    assert outcomes[0].report.start is not None, "the first run loads all history, not only the last TTL"
    assert outcomes[1].report.start is None, "later runs are incremental"
    first_row = data().tables["user_movie_interaction_features"][TIMESTAMP_FIELD].min()
    assert latest_interval(store, "user_movie_interaction_features")[1] > first_row


@pytest.mark.parametrize(("text", "expected"), [("5m", timedelta(minutes=5)), ("90", timedelta(seconds=90)),
                                            ("1.5h", timedelta(minutes=90)), ("2d", timedelta(days=2))])
def test_parse_every(text: str, expected: timedelta) -> None:
    assert materialize.parse_every(text) == expected


@pytest.mark.parametrize("text", ["", "0s", "5 minutes", "-3m"])
def test_parse_every_rejects_bad_intervals(text: str) -> None:
    with pytest.raises(ConfigError, match="e.g. 5m"):
        materialize.parse_every(text)


# --- tuned materialization ------------------------------------------------------------

@pytest.mark.parametrize("name", PROFILES)
def test_tuned_config_is_valid_for_feast_and_tunes_what_it_claims(name: str, tmp_path) -> None:
    folder = render(profile_for(name, str(tmp_path)), tuned=True)
    config = load_repo_config(folder, folder / TUNED_YAML)
    assert config.materialization_config.pull_latest_features is True
    assert config.materialization_config.online_write_batch_size > 0
    if name == "enterprise":
        assert config.online_store.skip_dedup is True
        assert isinstance(config.batch_engine, materialize.ParallelLocalComputeEngineConfig)
        assert config.batch_engine.workers == len(VIEWS)


def test_default_and_tuned_runs_write_identical_online_values(world: World, tmp_path) -> None:
    name = world.profile.name
    stores = {}
    for label, tuned in (("default", False), ("tuned", True)):
        profile = profile_for(name, str(tmp_path / label), project=f"{PROJECT}_{label}")
        stores[label] = prepared(profile, tuned=tuned)
        materialize_views(stores[label], profile, end=data().end)
    for view in VIEWS:
        rows = entity_rows(view)
        default = online_rows(stores["default"], [view], rows)
        assert all(row[view].status == "found" for row in default), view
        assert online_rows(stores["tuned"], [view], rows) == default, view


# --- point-in-time retrieval at scale -------------------------------------------------

def entity_frame(n: int) -> pd.DataFrame:
    """n rows one minute after sampled watch events, plus a label column."""
    events = data().dataset.watch_events.sample(n, random_state=4, replace=n > len(data().dataset.watch_events))
    return pd.DataFrame({"user_id": events["user_id"].to_numpy(), "movie_id": events["movie_id"].to_numpy(),
                         TIMESTAMP_FIELD: (events[TIMESTAMP_FIELD] + pd.Timedelta(minutes=1)).to_numpy(),
                         "label": events["rating"].fillna(0).to_numpy() >= 4})


def test_chunked_retrieval_equals_one_call(world: World) -> None:
    frame = entity_frame(900)
    whole = historical_features(world.store, frame, feature_refs())
    chunked = pit.historical_features_chunked(world.store, frame, feature_refs(), chunk_rows=250)
    pd.testing.assert_frame_equal(chunked, whole)


def offline_tables(profile: Profile) -> set[str]:
    """Tables in the profile's offline schema."""
    with psycopg.connect(profile.pg_conninfo()) as conn:
        return {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s",
                                           [profile.offline_schema])}


def session_settings(profile: Profile) -> dict[str, str]:
    """The tuned planner settings as a new session sees them."""
    with psycopg.connect(profile.pg_conninfo()) as conn:
        return {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in PG_PIT_SETTINGS}


@pytest.mark.enterprise
@pytest.mark.parametrize("world", ["enterprise"], indirect=True)  # the tuned path is PostgreSQL's
def test_tuned_postgres_retrieval_equals_untuned_and_cleans_up(world: World) -> None:
    frame = entity_frame(3000)
    tables, settings = offline_tables(world.profile), session_settings(world.profile)
    tuned = pit.historical_features_tuned(world.store, frame, feature_refs())
    pd.testing.assert_frame_equal(tuned, historical_features(world.store, frame, feature_refs()))
    chunked = pit.historical_features_chunked(load_store(world.profile, tuned=True), frame, feature_refs(),
                                              chunk_rows=1000, retrieve=pit.historical_features_tuned)
    pd.testing.assert_frame_equal(chunked, tuned)
    service = world.store.get_feature_service("movie_recommendation_service")
    pd.testing.assert_frame_equal(pit.historical_features_tuned(world.store, frame, service),
                                  historical_features(world.store, frame, service))
    assert offline_tables(world.profile) == tables, "the uploaded entity tables were dropped"
    assert session_settings(world.profile) == settings, "the planner settings stayed inside their transaction"


def assert_same_rows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Equal frames up to the order of rows that `normalize_frame` leaves tied (same time and keys)."""
    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.sort_values(list(frame.columns), kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(ordered(left), ordered(right))


# A feature per view that the offline tables never leave null: null in a result means "no row found".
PRESENT = {"user_profile_features": "total_movies_watched", "movie_metadata_features": "vote_count",
           "user_movie_interaction_features": "watch_count"}
MICROSECOND = pd.Timedelta(microseconds=1)
# edge -> (rows of the view's table it starts from, their time's offset given the view's TTL, found)
EDGES = {"at_snapshot": ("sampled", lambda ttl: pd.Timedelta(0), True),
         "at_ttl": ("last", lambda ttl: ttl, True),
         "past_ttl": ("last", lambda ttl: ttl + MICROSECOND, False),
         "before_first": ("first", lambda ttl: -MICROSECOND, False),
         # Feast's upload truncates to microseconds: this row lands before the first snapshot, not on it
         "1ns_before_first": ("first", lambda ttl: -pd.Timedelta(nanoseconds=1), False)}


def edge_rows(view: str) -> pd.DataFrame:
    """Entity rows at a view's point-in-time edges, built from its offline table; `case` names the edge.

    The TTL edges start from each key's last row, so no newer row can answer them.
    """
    table = data().tables[view].sort_values(TIMESTAMP_FIELD, kind="stable")
    keys, ttl = join_keys(view), VIEWS[view][1]
    starts = {"sampled": table.sample(5, random_state=3), "first": table.groupby(keys).head(1).head(5),
              "last": table.groupby(keys).tail(1).head(5)}
    other_keys = {"user_id": int(data().tables["user_profile_features"]["user_id"].iloc[0]),
                  "movie_id": int(data().tables["movie_metadata_features"]["movie_id"].iloc[0])}
    parts = [starts[start][keys].assign(**{k: v for k, v in other_keys.items() if k not in keys},
                                        **{TIMESTAMP_FIELD: starts[start][TIMESTAMP_FIELD] + offset(ttl)},
                                        case=f"{view}:{edge}")
             for edge, (start, offset, _) in EDGES.items()]
    return pd.concat(parts, ignore_index=True)


@pytest.mark.enterprise
@pytest.mark.parametrize("world", ["enterprise"], indirect=True)
def test_tuned_retrieval_equals_feast_at_the_point_in_time_edges(world: World) -> None:
    first = data().dataset.watch_events[TIMESTAMP_FIELD].min()
    unknown = pd.DataFrame({"user_id": [UNKNOWN], "movie_id": [UNKNOWN], TIMESTAMP_FIELD: [first],
                            "case": "unknown"})
    frame = pd.concat([*(edge_rows(view) for view in VIEWS), unknown], ignore_index=True)
    cycle = frame.index % 3  # extra columns come back as Feast returns them: empty text, nulls, CSV quoting
    frame = frame[["user_id", "movie_id", TIMESTAMP_FIELD, "case"]].assign(
        note=pd.Series(["", None, 'a,"b'], dtype=object)[cycle].to_numpy(),
        weight=pd.Series([0.5, None, 1.25], dtype="float32")[cycle].to_numpy())
    tuned = pit.historical_features_tuned(world.store, frame, feature_refs())
    assert_same_rows(tuned, historical_features(world.store, frame, feature_refs()))
    for view, present in PRESENT.items():  # the edges are really hit: found rows carry their source's values
        keys, features, table = join_keys(view), [f.name for f in VIEWS[view][2]], data().tables[view]
        assert table[present].notna().all()
        for edge, (_, offset, found) in EDGES.items():
            rows = tuned[tuned["case"] == f"{view}:{edge}"].reset_index(drop=True)
            assert rows[present].notna().tolist() == [found] * 5, (view, edge)
            if found:
                source_ts = rows[TIMESTAMP_FIELD] - offset(VIEWS[view][1])
                source = rows[keys].assign(**{TIMESTAMP_FIELD: source_ts}).merge(table, how="left")
                pd.testing.assert_frame_equal(rows[features], source[features])
    assert tuned.loc[tuned["case"] == "unknown", list(PRESENT.values())].isna().all(axis=None)


# Hand-made sources for what the course tables never hold (ties, created timestamps, colliding ids).
T0 = pd.Timestamp("2025-01-10", tz="UTC")
HOUR = pd.Timedelta(hours=1)
TIE_ROWS = [  # (user_id, event_timestamp, created, score)
    (1, T0, T0, 1.0), (1, T0, T0 + HOUR, 2.0),  # tied at T0: a created timestamp breaks the tie
    (1, T0 + HOUR, None, 3.0),  # newer, but without a created timestamp
    (2, T0, T0, 4.0), (2, T0, T0, 5.0),  # tied on both: the entity row comes back twice
    (3, T0, None, 6.0),
]
PAIR_ROWS = [(1, 23, T0, 1.0), (12, 3, T0 - HOUR, 2.0)]  # (user_id, movie_id, event_timestamp, score)


def pit_objects(schema: str) -> list:
    """Views over the hand-made tables: a table source, a query source with a created column, two keys, an ODFV."""
    score, ttl = [Field(name="score", dtype=Float32)], timedelta(days=1)
    ties = f"{schema}.pit_ties"
    latest = FeatureView(name="pit_latest", entities=[user], ttl=ttl, schema=score, source=PostgreSQLSource(
        name="pit_latest_source", table=ties, timestamp_field=TIMESTAMP_FIELD))
    created = FeatureView(name="pit_created", entities=[user], ttl=ttl, schema=score, source=PostgreSQLSource(
        name="pit_created_source", query=f"SELECT * FROM {ties}", timestamp_field=TIMESTAMP_FIELD,
        created_timestamp_column="created"))
    pairs = FeatureView(name="pit_pairs", entities=[user, movie], ttl=ttl, schema=score, source=PostgreSQLSource(
        name="pit_pairs_source", table=f"{schema}.pit_pairs", timestamp_field=TIMESTAMP_FIELD))

    @on_demand_feature_view(sources=[latest], schema=[Field(name="double_score", dtype=Float64)])
    def pit_double(inputs: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"double_score": inputs["score"] * 2})

    return [user, movie, latest, created, pairs, pit_double]


@pytest.fixture(scope="module")
def pit_store(tmp_path_factory):
    """An enterprise project over the hand-made tables (no unique index: ties are possible)."""
    profile = profile_for("enterprise", str(tmp_path_factory.mktemp("pit")), project="course_test_opt_pit")
    schema = profile.offline_schema
    with psycopg.connect(profile.pg_conninfo()) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        cur.execute(f"DROP TABLE IF EXISTS {schema}.pit_ties, {schema}.pit_pairs")
        cur.execute(f"CREATE TABLE {schema}.pit_ties (user_id BIGINT, {TIMESTAMP_FIELD} TIMESTAMPTZ, "
                    "created TIMESTAMPTZ, score REAL)")
        cur.executemany(f"INSERT INTO {schema}.pit_ties VALUES (%s, %s, %s, %s)", TIE_ROWS)
        cur.execute(f"CREATE TABLE {schema}.pit_pairs (user_id BIGINT, movie_id BIGINT, "
                    f"{TIMESTAMP_FIELD} TIMESTAMPTZ, score REAL)")
        cur.executemany(f"INSERT INTO {schema}.pit_pairs VALUES (%s, %s, %s, %s)", PAIR_ROWS)
    store = load_store(profile)
    with warnings.catch_warnings():  # Feast calls every on-demand feature view experimental
        warnings.simplefilter("ignore", RuntimeWarning)
        store.apply(pit_objects(schema))
    return store


def scores(frame: pd.DataFrame) -> dict[tuple[int, pd.Timestamp], list[float]]:
    """(user_id, time) -> the scores of its result rows, sorted; 0.0 marks a row without one."""
    return {(int(u), ts): sorted(group["score"].fillna(0).tolist())
            for (u, ts), group in frame.groupby(["user_id", TIMESTAMP_FIELD])}


@pytest.mark.enterprise
@pytest.mark.parametrize(("view", "at_t0", "later"), [
    ("pit_latest", {1: [1.0, 2.0], 2: [4.0, 5.0], 3: [6.0]}, {1: [3.0], 2: [4.0, 5.0], 3: [6.0]}),
    ("pit_created", {1: [2.0], 2: [4.0, 5.0], 3: [0.0]}, {1: [2.0], 2: [4.0, 5.0], 3: [0.0]}),
])
def test_tuned_retrieval_keeps_feasts_ties_and_created_timestamps(pit_store, view: str, at_t0: dict,
                                                                  later: dict) -> None:
    times = [T0, T0 + 2 * HOUR, T0 - MICROSECOND]
    frame = pd.DataFrame([(u, t) for t in times for u in (1, 2, 3, UNKNOWN)], columns=["user_id", TIMESTAMP_FIELD])
    tuned = pit.historical_features_tuned(pit_store, frame, [f"{view}:score"])
    assert_same_rows(tuned, historical_features(pit_store, frame, [f"{view}:score"]))
    expected = {**{(u, T0): s for u, s in at_t0.items()}, **{(u, T0 + 2 * HOUR): s for u, s in later.items()},
                **{(u, t): [0.0] for u in (1, 2, 3) for t in times[2:]}, **{(UNKNOWN, t): [0.0] for t in times}}
    assert scores(tuned) == expected


@pytest.mark.enterprise
def test_tuned_retrieval_keeps_each_rows_keys_apart_where_feast_mixes_them(pit_store) -> None:
    pairs = pd.DataFrame({"user_id": [1, 12], "movie_id": [23, 3], TIMESTAMP_FIELD: [T0 + HOUR] * 2})
    tuned = pit.historical_features_tuned(pit_store, pairs, ["pit_pairs:score"])
    assert tuned[["user_id", "score"]].values.tolist() == [[1, 1.0], [12, 2.0]]
    # Feast 0.67's row ids concatenate keys and time unseparated ("1"+"23" == "12"+"3"), so it hands
    # (12, 3) the row of (1, 23); the tuned path deliberately differs here.
    assert historical_features(pit_store, pairs, ["pit_pairs:score"])["score"].tolist() == [1.0, 1.0]


@pytest.mark.enterprise
def test_tuned_retrieval_refuses_what_it_does_not_compute(pit_store) -> None:
    frame = pd.DataFrame({"user_id": [1], TIMESTAMP_FIELD: [T0]})
    with pytest.raises(pit.RetrievalError, match="movie_id"):
        pit.historical_features_tuned(pit_store, frame, ["pit_pairs:score"])
    with pytest.raises(pit.RetrievalError, match="on-demand feature views"):
        pit.historical_features_tuned(pit_store, frame, ["pit_double:double_score"])
    with pytest.raises(pit.RetrievalError, match="rename"):
        pit.historical_features_tuned(pit_store, frame.assign(score=1.0), ["pit_latest:score"])
