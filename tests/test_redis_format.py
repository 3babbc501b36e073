"""The bulk Redis writer writes exactly what Feast writes: every key's DUMP bytes are compared
with Feast's own `RedisOnlineStore.online_write_batch`, on edge values and on a whole
materialization through the tuned engine."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis
from feast import FeatureView, Field
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RegistryConfig, RepoConfig
from feast.types import Bool, Int64
from feast.utils import _convert_arrow_to_proto
from google.protobuf.timestamp_pb2 import Timestamp
from support import isolated_env

from course_lib import datasets, proto_values, redis_format
from course_lib import materialize as tuned_materialize
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.background import RedisServer
from course_lib.config import load_store, resolve_profile
from course_lib.reset import reset_online
from course_lib.serving import apply, materialize
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS, feature_view, join_keys, movie, user

PROJECT = "course_test_bulk"
UTC = timezone.utc
# Key and value edges: extreme and negative ids, -0.0, NaN and missing values, empty and multi-byte
# strings with RESP control bytes, timestamps before 1970, with nanoseconds, and at the epoch.
EDGES = pd.DataFrame({
    "user_id": [1, 2**63 - 1, -(2**63), -5, 123],
    "movie_id": [125, 1, 7, 2**40, 0],
    "watch_time_minutes": [0.0, -0.0, np.nan, 1e30, 3.25],
    "completion_rate": [None, 0.5, 1.0, 1e-40, -1.0],
    "user_rating": [4.5, None, np.nan, 0.1, 5.0],
    "watch_count": pd.array([0, -1, None, 2**62, 127], dtype="Int64"),
    "last_watched_days_ago": pd.array([128, 300, 2**31, None, -(2**63)], dtype="Int64"),
    TIMESTAMP_FIELD: pd.to_datetime(["2025-03-01 12:00:00.123456789", "1969-07-20 20:17:40.5", "1970-01-01",
                                     "2025-03-02", "2038-01-19 03:14:08"], utc=True, format="ISO8601"),
})
STRINGS = pd.DataFrame({
    "user_id": [1, 2, 3, 4],
    "age": pd.array([30, None, -1, 0], dtype="Int64"),
    "avg_rating": [3.5, np.nan, None, 2.0],
    "total_movies_watched": pd.array([1, 2, 3, None], dtype="Int64"),
    "favorite_genre": ["Drama", "", None, "드라마 \r\n$3\r\n*"],
    "account_created_days": pd.array([10, 20, 30, 40], dtype="Int64"),
    TIMESTAMP_FIELD: pd.to_datetime(["2025-03-01", "2025-03-01 00:00:01", "2025-03-02", "2025-03-03"], utc=True,
                                    format="ISO8601"),
})


@pytest.fixture
def two_redis() -> Iterator[tuple[redis.Redis, redis.Redis]]:
    """Two private redis-servers: one for Feast's writes, one for the bulk writer's."""
    with RedisServer() as feast_side, RedisServer() as bulk_side:
        yield redis.Redis(port=feast_side.port), redis.Redis(port=bulk_side.port)


def repo_config(port: int) -> RepoConfig:
    """A Feast config whose online store is a Redis server on this port, blind writes (skip_dedup)."""
    return RepoConfig(project=PROJECT, provider="local", entity_key_serialization_version=3,
                      registry=RegistryConfig(path="unused.db"),
                      online_store=RedisOnlineStoreConfig(connection_string=f"127.0.0.1:{port}", skip_dedup=True))


def dumps(client: redis.Redis) -> dict[bytes, bytes]:
    """Every key of a server with its DUMP (the exact stored encoding, field order included)."""
    return {key: client.dump(key) for key in client.scan_iter(count=1000)}


def write_both(view: FeatureView, table: pa.Table, feast_client: redis.Redis, bulk_client: redis.Redis) -> None:
    """The same rows through Feast's online write and through the bulk writer."""
    config = repo_config(feast_client.connection_pool.connection_kwargs["port"])
    key_types = {e.name: e.dtype.to_value_type() for e in view.entity_columns}
    RedisOnlineStore().online_write_batch(config, view, _convert_arrow_to_proto(table, view, key_types), None)
    layout = redis_format.ViewLayout.of(view)
    assert redis_format.send_commands(bulk_client, redis_format.hset_commands(table, layout, PROJECT),
                                      chunk_rows=2) == table.num_rows


def course_view(name: str) -> FeatureView:
    """A course feature view with its join-key columns, as `apply` infers them (the source does not matter)."""
    view = feature_view(name, resolve_profile("local", isolated_env("/tmp/unused")))
    view.entity_columns = [Field(name=entity.join_key, dtype=Int64) for entity in VIEWS[name][0]]
    return view


@pytest.mark.enterprise
@pytest.mark.filterwarnings("ignore:Discarding nonzero nanoseconds")  # Feast's side truncates them, as ours does
@pytest.mark.parametrize(("view", "frame"), [("user_movie_interaction_features", EDGES),
                                             ("user_profile_features", STRINGS)])
def test_bulk_writer_stores_what_feast_stores_on_edge_values(view: str, frame: pd.DataFrame, two_redis) -> None:
    feast_client, bulk_client = two_redis
    write_both(course_view(view), pa.Table.from_pandas(frame, preserve_index=False), feast_client, bulk_client)
    feast_dumps = dumps(feast_client)
    assert len(feast_dumps) == len(frame)
    assert dumps(bulk_client) == feast_dumps


@pytest.mark.enterprise
def test_bulk_writer_stores_what_feast_stores_for_course_tables(two_redis) -> None:
    feast_client, bulk_client = two_redis
    tables = build_feature_tables(datasets.synthetic(seed=3, n_users=40, n_movies=30, n_events=800, days=20))
    for name, table in tables.items():  # every snapshot row, in order: the last write of a key wins on both sides
        write_both(course_view(name), pa.Table.from_pandas(table, preserve_index=False), feast_client, bulk_client)
    feast_dumps = dumps(feast_client)
    keys = sum(len(table[join_keys(name)].drop_duplicates()) for name, table in tables.items())
    assert len(feast_dumps) == keys and dumps(bulk_client) == feast_dumps


def test_unsupported_columns_are_refused_with_their_names() -> None:
    view = FeatureView(name="flags", entities=[user, movie], schema=[Field(name="liked", dtype=Bool)],
                       source=course_view("user_profile_features").batch_source)
    with pytest.raises(redis_format.UnsupportedColumns, match=r"liked \(BOOL"):
        redis_format.ViewLayout.of(view).check(pa.table({"user_id": [1], "movie_id": [2], "liked": [True],
                                                         TIMESTAMP_FIELD: [datetime(2025, 1, 1, tzinfo=UTC)]}))
    layout = redis_format.ViewLayout.of(course_view("user_profile_features"))
    missing_key = pa.Table.from_pandas(STRINGS.assign(user_id=pd.array([1, None, 3, 4], dtype="Int64")))
    with pytest.raises(redis_format.UnsupportedColumns, match=r"user_id \(missing values\)"):
        layout.check(missing_key)
    as_text = pa.Table.from_pandas(STRINGS.assign(age=STRINGS["age"].astype(str)))
    with pytest.raises(redis_format.UnsupportedColumns, match=r"age \(INT64 from string\)"):
        layout.check(as_text)


@pytest.mark.enterprise
def test_tuned_materialization_stores_what_feasts_default_stores(tmp_path, monkeypatch) -> None:
    """A whole materialization, default engine vs the tuned engine, compared key by key on private servers."""
    sent, send = [], redis_format.send_commands
    monkeypatch.setattr(tuned_materialize, "send_commands",  # a spy: the tuned run must take the bulk path
                        lambda client, commands, **kw: sent.append(len(commands)) or send(client, commands, **kw))
    dataset = datasets.synthetic(seed=5, n_users=50, n_movies=30, n_events=1200, days=25)
    end = (dataset.watch_events[TIMESTAMP_FIELD].max() + pd.Timedelta(seconds=1)).to_pydatetime()
    written = {}
    for label, tuned in (("default", False), ("tuned", True)):
        with RedisServer() as server:
            env = {**isolated_env(str(tmp_path / label)), "FEAST_PROJECT": PROJECT, "FEAST_OFFLINE_SCHEMA": PROJECT,
                   "FEAST_REDIS_PORT": str(server.port), "FEAST_REDIS_DB": "0"}
            profile = resolve_profile("enterprise", env)
            write_offline(build_feature_tables(dataset), profile)
            store = load_store(profile, tuned=tuned)
            apply(store, profile)
            reset_online(store, profile)
            materialize(store, profile, end=end)
            written[label] = dumps(redis.Redis(port=server.port))
    keys = sum(len(table[join_keys(name)].drop_duplicates()) for name, table in build_feature_tables(dataset).items())
    assert len(written["default"]) == keys and written["tuned"] == written["default"] and sum(sent) == keys


# --- one value at a time (the event ingestor) ----------------------------------------------------

INT64_EDGES = [0, 1, 127, 128, 4_095, 4_096, 16_383, 16_384, 2**31, 1_733_000_000_123_456, 2**63 - 1,
               -1, -128, -(2**63)]
FLOAT_EDGES = [0.0, -0.0, 0.1, 2.5, -3.75, 1e-45, 3.4e38, 1e39, -1e39, float("inf"), float("-inf"), float("nan"),
               1.0 / 3.0]
STRING_EDGES = ["", "Drama", "Comédie", "🎬" * 40, "x" * 200, '{"Action": 3, "Drama": 1}']
PROTO_FIELD = {proto_values.INT64: "int64_val", proto_values.FLOAT: "float_val",
               proto_values.DOUBLE: "double_val", proto_values.STRING: "string_val"}


def scalar_cases() -> list[tuple[object, object]]:
    """(value type, value) pairs over the edges of every type the event ingestor writes, plus random ones."""
    rng = np.random.default_rng(7)
    ints = INT64_EDGES + [int(v) for v in rng.integers(-(2**63), 2**63 - 1, 300, dtype=np.int64)]
    floats = FLOAT_EDGES + [float(v) for v in rng.normal(0, 1e6, 300)]
    return ([(proto_values.INT64, v) for v in ints] + [(proto_values.FLOAT, v) for v in floats]
            + [(proto_values.DOUBLE, v) for v in floats] + [(proto_values.STRING, v) for v in STRING_EDGES]
            + [(t, None) for t in PROTO_FIELD])


def test_values_are_encoded_byte_for_byte_as_protobuf_encodes_them() -> None:
    """Every value's RESP bulk string holds exactly protobuf's serialization (empty when missing)."""
    wrong = []
    for value_type, value in scalar_cases():
        expected = b"" if value is None else ValueProto(**{PROTO_FIELD[value_type]: value}).SerializeToString()
        if proto_values.value_bulk(value_type)(value) != redis_format.bulk(expected):
            wrong.append((value_type.name, value))
    assert not wrong


def test_values_decode_as_protobuf_decodes_them() -> None:
    """`decode_value` reads back what protobuf wrote, NaN included, and protobuf's other encodings through protobuf."""
    for value_type, value in scalar_cases():
        raw = b"" if value is None else ValueProto(**{PROTO_FIELD[value_type]: value}).SerializeToString()
        proto = ValueProto.FromString(raw)
        kind = proto.WhichOneof("val")
        expected = None if kind is None else getattr(proto, kind)
        got = proto_values.decode_value(raw)
        assert got == expected or (got != got and expected != expected), (value_type, value)  # NaN != NaN
        assert type(got) is type(expected)
    assert proto_values.decode_value(ValueProto(bool_val=True).SerializeToString()) is True
    assert proto_values.decode_value(ValueProto(int32_val=-7).SerializeToString()) == -7


@pytest.mark.parametrize("at_us", [0, 1, 999_999, 1_000_000, 1_733_000_000_123_456, 1_733_000_000_000_000,
                                   -1_500_000])
def test_times_are_encoded_and_read_as_protobuf_timestamps(at_us: int) -> None:
    seconds, rest = divmod(at_us, 1_000_000)
    expected = Timestamp(seconds=seconds, nanos=rest * 1000).SerializeToString()
    assert proto_values.timestamp_bytes(at_us) == expected
    assert proto_values.timestamp_micros(expected) == at_us
