"""`course_lib.compat` holds every Feast and redis-py internal the course uses: each must still
behave as the course assumes. Differential tests: the course's result next to Feast's own.

The engine pieces (`ComputeEngine`, `PlanBuilder`, `context_online_client`, `raw_connection`) are
also compared with Feast end to end: tests/test_redis_format.py materializes with the tuned engine
and with Feast's default engine and compares every Redis key's DUMP. `async_raw_connection` carries
the recommendation reads that tests/test_candidate_matrix.py compares with the training matrix.
"""
from __future__ import annotations

import asyncio
import functools
import os
from datetime import datetime, timezone

import pytest
import redis
import redis.asyncio
from feast.errors import FeatureViewNotFoundException
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from support import isolated_profile

from course_lib import compat, datasets, redis_format
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import Profile, load_store, resolve_profile
from course_lib.reset import reset_online
from course_lib.serving import apply, feature_refs, materialize
from feature_repo.definitions import RECOMMENDATION_FEATURES, TIMESTAMP_FIELD, VIEWS, build, join_keys


@functools.cache
def dataset() -> datasets.Dataset:
    """The small test log, built on first use."""
    return datasets.synthetic(seed=5, n_users=30, n_movies=20, n_events=600, days=20)
PROJECT = "course_test_compat"


@pytest.fixture(scope="module")
def materialized(profile: Profile, tmp_path_factory: pytest.TempPathFactory):
    """The profile's store in its own project, materialized over the whole test data."""
    own = isolated_profile(profile.name, tmp_path_factory.mktemp(f"compat-{profile.name}"), project=PROJECT)
    tables = build_feature_tables(dataset())
    write_offline(tables, own)
    store = load_store(own)
    apply(store, own)
    reset_online(store, own)
    materialize(store, own, end=dataset().watch_events[TIMESTAMP_FIELD].max().to_pydatetime())
    return own, store, tables


def test_the_version_check_names_every_package_out_of_range() -> None:
    compat.check_versions({"feast": "0.67.3", "redis": "5.3.0"})
    with pytest.raises(compat.IncompatibleVersion, match=r"feast 0\.68\.0 \(needs ==0\.67\.\*\), redis 5\.2\.1"):
        compat.check_versions({"feast": "0.68.0", "redis": "5.2.1"})


@pytest.mark.parametrize("view", list(VIEWS))
def test_redis_keys_and_fields_equal_feasts_helpers(view: str) -> None:
    for values in ({"user_id": 1, "movie_id": 2}, {"user_id": 2**40 + 7, "movie_id": 123_456_789}):
        names = join_keys(view)
        proto = EntityKeyProto(join_keys=names, entity_values=[ValueProto(int64_val=values[n]) for n in names])
        assert redis_format.redis_key({n: values[n] for n in names}, "p") == _redis_key("p", proto, 3)
    for field in VIEWS[view][2]:
        assert redis_format.redis_field(view, field.name) == _mmh3(f"{view}:{field.name}")


def test_a_project_key_is_told_from_a_suffix_projects_key() -> None:
    """Troubleshooting #15: a scan for `*<project>` also matches projects whose names end with it."""
    own, other = redis_format.redis_key({"user_id": 7}, "recs"), redis_format.redis_key({"user_id": 7}, "my_recs")
    assert own.endswith(b"recs") and other.endswith(b"recs")
    assert redis_format.is_project_key(own, "recs") and not redis_format.is_project_key(other, "recs")
    assert redis_format.is_project_key(other, "my_recs")
    assert not redis_format.is_project_key(b"garbage recs", "recs")


def test_the_profiles_redis_settings_are_those_feast_parses_from_its_connection_string() -> None:
    for extra in ({}, {"FEAST_REDIS_PASSWORD": "s3cret", "FEAST_REDIS_DB": "3", "FEAST_REDIS_TIMEOUT_S": "2"}):
        profile = resolve_profile("enterprise", {**os.environ, **extra})
        nodes, params = RedisOnlineStore._parse_connection_string(profile.redis_connection_string())
        parsed = {"host": nodes[0]["host"], "port": int(nodes[0]["port"]), **params}
        assert parsed == profile.redis_client_kwargs()


def test_feature_resolution_is_feasts(materialized) -> None:
    profile, store, _ = materialized
    service = store.get_feature_service("movie_recommendation_service")
    for features, refs in ((feature_refs(), feature_refs()), (service, RECOMMENDATION_FEATURES)):
        got_refs, views, on_demand = compat.resolve_features(store, features)
        assert sorted(got_refs) == sorted(refs) and on_demand == []
        assert {view.name for view in views} == {ref.split(":")[0] for ref in refs}
    with pytest.raises(Exception, match="no_such_feature"):
        compat.resolve_features(store, ["user_profile_features:no_such_feature"])


def test_materialization_intervals_and_view_names_are_what_feasts_registry_objects_say(materialized) -> None:
    """Read from the stored protos (SQL or file registry), they equal Feast's FeatureView objects, uncached."""
    _, store, _ = materialized
    store.materialize(start_date=datetime(2020, 1, 1, tzinfo=timezone.utc),  # a second interval per view
                      end_date=datetime(2020, 1, 2, tzinfo=timezone.utc))
    views = store.list_feature_views(allow_cache=False)
    assert compat.feature_view_names(store) == {view.name for view in views}
    expected = {view.name: [(start.astimezone(timezone.utc), end.astimezone(timezone.utc))
                            for start, end in view.materialization_intervals] for view in views}
    assert all(len(expected[view]) == 2 for view in VIEWS)
    assert compat.materialization_intervals(store, list(VIEWS)) == {view: expected[view] for view in VIEWS}
    with pytest.raises(FeatureViewNotFoundException):
        compat.materialization_intervals(store, ["no_such_view"])


@pytest.mark.enterprise
@pytest.mark.parametrize("profile", ["enterprise"], indirect=True)  # Redis is the enterprise online store
def test_feasts_online_client_holds_exactly_the_materialized_entities(materialized) -> None:
    profile, store, tables = materialized
    client = compat.online_client(store)
    assert isinstance(client, redis.Redis)
    stored = set(redis_format.project_keys(client, store.project))
    expected = {redis_format.redis_key(row, store.project) for view, table in tables.items()
                for row in table[join_keys(view)].drop_duplicates().to_dict("records")}
    assert stored == expected


@pytest.mark.enterprise
def test_a_raw_connection_streams_packed_commands(redis_profile: Profile) -> None:
    client = redis.Redis(**redis_profile.redis_client_kwargs())
    key = f"{PROJECT}:raw".encode()
    with compat.raw_connection(client) as connection:
        connection.send_packed_command([b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(key), key)],
                                       check_health=False)
        assert connection.read_response() in (b"OK", "OK")
    assert client.get(key) == b"1" and client.delete(key) == 1
    with compat.raw_connection(client) as connection:
        connection.send_packed_command([b"*1\r\n$7\r\nNOTACMD\r\n"], check_health=False)
        with pytest.raises(redis.ResponseError):
            connection.read_response()
    assert client.ping()  # the broken connection was dropped, not handed back


@pytest.mark.enterprise
def test_an_async_raw_connection_streams_packed_commands(redis_profile: Profile) -> None:
    """The redis.asyncio twin: replies read in order, a connection with unread replies dropped, not reused."""
    key = f"{PROJECT}:raw_async".encode()
    set_key = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n2\r\n" % (len(key), key)
    get_key = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)

    async def exchange() -> None:
        client = redis.asyncio.Redis(**redis_profile.redis_client_kwargs())
        async with compat.async_raw_connection(client) as connection:
            await connection.send_packed_command(set_key + get_key, check_health=False)
            assert [await connection.read_response() for _ in range(2)] == [b"OK", b"2"]
        used = []

        async def leave_a_reply_unread() -> None:
            async with compat.async_raw_connection(client) as broken:
                used.append(broken)
                await broken.send_packed_command(get_key + get_key, check_health=False)
                await broken.read_response()
                raise RuntimeError("stop")  # the second reply is left unread

        with pytest.raises(RuntimeError, match="stop"):
            await leave_a_reply_unread()
        assert not used[0].is_connected  # dropped before it went back to the pool
        async with compat.async_raw_connection(client) as connection:
            await connection.send_packed_command(b"*1\r\n$4\r\nPING\r\n", check_health=False)
            assert await connection.read_response() in (b"PONG", "PONG")  # not the stale b"2"
        assert await client.delete(key) == 1
        await client.aclose()

    asyncio.run(exchange())


@pytest.mark.parametrize("profile", ["local"], indirect=True)  # SQLite tables; Redis keys go by exact key scans
def test_dropping_online_tables_empties_only_those_views(materialized) -> None:
    profile, store, _ = materialized
    user = int(dataset().users["user_id"].iloc[0])
    views = [v for v in build(profile).feature_views if v.name == "user_profile_features"]
    compat.drop_online_tables(store, views)
    with pytest.raises(Exception, match="no such table"):
        store.get_online_features(features=feature_refs(["user_profile_features"]),
                                  entity_rows=[{"user_id": user}]).to_dict()
    movie = int(dataset().movies["movie_id"].iloc[0])
    found = store.get_online_features(features=feature_refs(["movie_metadata_features"]),
                                      entity_rows=[{"movie_id": movie}]).to_dict()
    assert found["movie_id"] == [movie]
