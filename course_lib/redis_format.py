"""Feast's Redis online rows, byte for byte: keys, fields, and a column-wise bulk writer (2.7.5).

Feast 0.67 stores each entity of a feature view as one Redis hash:
- key: the entity key serialized with `entity_key_serialization_version: 3` (key count, then each
  join key's name and INT64 value, names sorted), followed by the project name;
- fields: `_ts:<view>` -> a serialized `google.protobuf.Timestamp`, then for each feature the
  first 4 bytes of little-endian mmh3_32("<view>:<feature>") -> a serialized `ValueProto`.

`course_lib.redis_reader` reads that layout (`HmgetCommands` packs a recommendation's reads into
one RESP stream) and `course_lib.materialize`'s bulk writer writes it with the encoders below:
Feast's own materialization converts every value to a protobuf object and every row to a redis-py
command in Python; here whole arrow columns are encoded with
numpy into one RESP stream of `HSET` commands, byte-identical to what redis-py sends for Feast
(tests compare DUMPs of every key against Feast's own writes). `project_keys` finds exactly one
project's keys (docs/troubleshooting.md #15).
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache

import mmh3
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis
from feast import FeatureStore, FeatureView, ValueType
from feast.infra.key_encoding_utils import deserialize_entity_key, serialize_entity_key
from google.protobuf.timestamp_pb2 import Timestamp
from numpy.typing import ArrayLike

from course_lib.compat import raw_connection
from course_lib.config import ConfigError
from course_lib.messages import say
from course_lib.proto_values import CRLF, VALUE_TAG, VARINT_BYTES
from feature_repo.definitions import VIEWS, join_keys

STRING, INT64, FLOAT = ValueType.STRING, ValueType.INT64, ValueType.FLOAT
BATCH_ROWS = 100_000  # rows encoded at once when online_write_batch_size is unset: bounds memory
SEND_ROWS = 20_000  # commands per write on the socket; replies are read while the next chunk is sent


# --- keys and fields ------------------------------------------------------------------

def redis_field(view: str, feature: str) -> bytes:
    """Feast's Redis hash field of a feature: the first 4 bytes of little-endian mmh3_32("view:feature")."""
    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


@cache
def hash_fields(view: str) -> tuple[bytes, ...]:
    """The fields to HMGET for one course view's row: each feature's, in schema order, then `_ts:<view>`."""
    return (*(redis_field(view, f.name) for f in VIEWS[view][2]), f"_ts:{view}".encode())


def event_seconds(raw: bytes | None) -> int | None:
    """Whole seconds of a `_ts` field as Feast's online read reports them (None: not found).

    As Feast: a datetime from float seconds, then back to a Timestamp, of which the whole seconds count.
    """
    if not raw:
        return None
    stamp = Timestamp.FromString(raw)
    stamp.FromDatetime(datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9, tz=timezone.utc))
    return stamp.seconds if stamp.seconds > 0 else None


@cache
def key_prefix(names: tuple[str, ...]) -> bytes:
    """The v3 entity-key prefix for join keys sorted by name: key count, then each name."""
    return struct.pack("<I", len(names)) + b"".join(
        struct.pack("<II", STRING.value, len(n.encode())) + n.encode() for n in names)


@cache
def key_builder(names: tuple[str, ...], project: str) -> Callable[[Mapping[str, int]], bytes]:
    """A function giving Feast's Redis key of an entity with these join keys: v3 serialized INT64 ids
    (keys sorted by name), then the project name."""
    ordered = tuple(sorted(names))
    prefix, suffix = key_prefix(ordered), project.encode()
    pack = struct.Struct("<" + "IIq" * len(ordered)).pack

    def key(row: Mapping[str, int]) -> bytes:
        return prefix + pack(*[part for n in ordered for part in (INT64.value, 8, row[n])]) + suffix
    return key


def check_key_layout(store: FeatureStore, reads: str) -> None:
    """ConfigError unless the store's online keys are the layout the course encodes: v3 keys of INT64 join
    keys of unversioned feature views (`reads`: "raw Redis reads" or "raw SQLite reads", for the message)."""
    config = store.config
    if config.entity_key_serialization_version != 3 or config.registry.enable_online_feature_view_versioning:
        raise ConfigError(say("redis_format.key_version", reads=reads))
    not_int = [e.name for entities, _, _ in VIEWS.values() for e in entities if e.value_type != ValueType.INT64]
    if not_int:
        raise ConfigError(say("redis_format.int64_only", reads=reads, entities=not_int))


def key_template(names: Sequence[str], head: bytes, tail: bytes) -> np.ndarray:
    """One numpy record: `head`, the v3 entity key of INT64 join keys `names` (sorted; values left 0), `tail`.

    `np.repeat` it and set each join key's `value` field to build many keys (or commands) at once.
    """
    ordered = tuple(sorted(names))
    head += key_prefix(ordered)
    template = np.zeros(1, dtype=np.dtype([("head", f"S{len(head)}"),
                                           *[(name, [("type", "<u4"), ("size", "<u4"), ("value", "<i8")])
                                             for name in ordered], ("tail", f"S{len(tail)}")]))
    template["head"], template["tail"] = head, tail
    for name in ordered:
        template[name]["type"], template[name]["size"] = INT64.value, 8
    return template


def filled(template: np.ndarray, keys: Mapping[str, ArrayLike], rows: int) -> np.ndarray:
    """`rows` copies of a `key_template` record with the join key values set (name -> one value per row)."""
    records = np.repeat(template, rows)
    for name, values in keys.items():
        records[name]["value"] = values
    return records


def redis_key(row: Mapping[str, int], project: str) -> bytes:
    """Feast's Redis key of an entity (its join keys -> INT64 ids): v3 serialized keys, then the project name."""
    return key_builder(tuple(row), project)(row)


def is_project_key(key: bytes, project: str, version: int = 3) -> bool:
    """Whether a Redis key is a Feast entity key of exactly this project.

    A key is the serialized entity key followed by the project name, so a scan for
    `*<project>` also matches every project whose name merely ends with this one
    (`my_movie_recommendation`); only a key whose head parses as a whole entity key counts.
    """
    suffix = project.encode()
    if not key.endswith(suffix):
        return False
    entity = key[:-len(suffix)]
    try:
        return serialize_entity_key(deserialize_entity_key(entity, version), version) == entity
    except (ValueError, struct.error):
        return False


def project_keys(client: redis.Redis | redis.RedisCluster, project: str, version: int = 3) -> Iterator[bytes]:
    """Every Feast entity key of exactly this project that the client's server (or cluster) holds."""
    for key in client.scan_iter(match=b"*" + project.encode(), count=10_000):
        if is_project_key(key, project, version):
            yield key


# --- column-wise protobuf encoding ------------------------------------------------------

class UnsupportedColumns(ValueError):
    """A column has a type the bulk writer does not encode; Feast's own path writes it instead."""


def _column(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous arrow array."""
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf varints of int64 values (negatives as 10-byte two's complement): bytes[N, 10], lengths[N]."""
    unsigned = values.astype(np.int64).view(np.uint64)
    shifts = (7 * np.arange(VARINT_BYTES, dtype=np.uint64))[None, :]
    groups = (unsigned[:, None] >> shifts) & np.uint64(0x7F)
    lengths = 1 + ((unsigned[:, None] >> shifts[:, 1:]) != 0).sum(axis=1)
    more = np.arange(VARINT_BYTES)[None, :] < (lengths - 1)[:, None]
    return (groups | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8), lengths


def _tagged(tag: int, matrix: np.ndarray) -> np.ndarray:
    """A byte matrix with one tag byte in front of every row."""
    return np.concatenate([np.full((len(matrix), 1), tag, np.uint8), matrix], axis=1)


def _rows(matrix: np.ndarray, lengths: np.ndarray) -> pa.BinaryArray:
    """Row i of a byte matrix cut to lengths[i] bytes, as an arrow binary array."""
    keep = np.arange(matrix.shape[1])[None, :] < lengths[:, None]
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.BinaryArray.from_buffers(pa.binary(), len(lengths),
                                       [None, pa.py_buffer(offsets), pa.py_buffer(matrix[keep].tobytes())])


def _join(*parts: bytes | pa.Array) -> pa.BinaryArray:
    """Row-wise concatenation of binary arrays and constant bytes."""
    return pc.binary_join_element_wise(*[pa.scalar(p, pa.binary()) if isinstance(p, bytes) else p for p in parts],
                                       pa.scalar(b"", pa.binary()))


def _numbers(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Values as numpy and a validity mask (NaN counts as missing, as in Feast)."""
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    values = column.fill_null(0).to_numpy(zero_copy_only=False)
    if pa.types.is_floating(column.type):
        valid &= ~np.isnan(values)
    return values, valid


def value_protos(column: pa.ChunkedArray | pa.Array, value_type: ValueType) -> pa.BinaryArray:
    """Each row's serialized ValueProto; b"" for a missing value, as `ValueProto().SerializeToString()`."""
    column = _column(column)
    if value_type == FLOAT:
        values, valid = _numbers(column)
        matrix = _tagged(VALUE_TAG[FLOAT], values.astype("<f4").view(np.uint8).reshape(-1, 4))
        return _rows(matrix, np.where(valid, 5, 0))
    if value_type == INT64:
        values, valid = _numbers(column)
        varints, lengths = _varints(np.where(valid, values, 0).astype(np.int64))
        return _rows(_tagged(VALUE_TAG[INT64], varints), np.where(valid, lengths + 1, 0))
    data = column.cast(pa.binary())  # STRING: tag, length varint, UTF-8 bytes
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    varints, lengths = _varints(pc.binary_length(data).fill_null(0).to_numpy(zero_copy_only=False))
    return _join(_rows(_tagged(VALUE_TAG[STRING], varints), np.where(valid, lengths + 1, 0)), data.fill_null(b""))


def timestamp_protos(column: pa.ChunkedArray | pa.Array) -> pa.BinaryArray:
    """Each row's serialized Timestamp, as `Timestamp.FromDatetime` (microseconds kept, zero fields left out)."""
    column = _column(column)
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[column.type.unit]
    ticks = column.cast(pa.int64()).to_numpy()
    micros = ticks * (1_000_000 // per_second) if per_second <= 1_000_000 else ticks // 1_000
    seconds, micros = np.divmod(micros, 1_000_000)
    encoded = []
    for tag, values in ((0x08, seconds), (0x10, micros * 1_000)):
        varints, lengths = _varints(values)
        encoded.append(_rows(_tagged(tag, varints), np.where(values != 0, lengths + 1, 0)))
    return _join(*encoded)


def entity_keys(table: pa.Table | pa.RecordBatch, names: Sequence[str], project: str) -> pa.Array:
    """Each row's Redis key: the v3 entity key of its INT64 join keys, then the project name."""
    rows = filled(key_template(names, b"", project.encode()),
                  {name: _column(table.column(name)).to_numpy() for name in names}, table.num_rows)
    width = rows.dtype.itemsize
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), table.num_rows,
                                                [None, pa.py_buffer(rows.tobytes())]).cast(pa.binary())


# --- HSET commands ----------------------------------------------------------------------

@dataclass(frozen=True)
class ViewLayout:
    """What the writer needs of a feature view: its name, join keys, features and timestamp column."""

    name: str
    join_keys: tuple[str, ...]
    features: tuple[tuple[str, ValueType], ...]
    timestamp_field: str

    @classmethod
    def of(cls, view: FeatureView) -> ViewLayout:
        """The layout of a Feast feature view; UnsupportedColumns unless its keys are INT64."""
        not_int = [e.name for e in view.entity_columns if e.dtype.to_value_type() != INT64]
        if not_int:
            raise UnsupportedColumns(f"join keys {not_int} are not INT64")
        if view.batch_source is None:
            raise UnsupportedColumns(f"feature view {view.name} has no batch source")
        return cls(view.name, tuple(e.name for e in view.entity_columns),
                   tuple((f.name, f.dtype.to_value_type()) for f in view.features), view.batch_source.timestamp_field)

    def check(self, table: pa.Table | pa.RecordBatch) -> None:
        """UnsupportedColumns unless every column of the view has a type the writer encodes exactly."""
        schema = table.schema
        fits = {FLOAT: pa.types.is_floating, INT64: lambda t: pa.types.is_integer(t) or pa.types.is_floating(t),
                STRING: lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)}
        wrong = [f"{name} ({schema.field(name).type})" for name in self.join_keys
                 if not pa.types.is_integer(schema.field(name).type)]
        wrong += [f"{name} ({value_type.name} from {schema.field(name).type})" for name, value_type in self.features
                  if value_type not in fits or not fits[value_type](schema.field(name).type)]
        if not pa.types.is_timestamp(schema.field(self.timestamp_field).type):
            wrong.append(f"{self.timestamp_field} ({schema.field(self.timestamp_field).type})")
        wrong += [f"{name} (missing values)" for name in (*self.join_keys, self.timestamp_field)
                  if table.column(name).null_count]
        if wrong:
            raise UnsupportedColumns(f"columns the bulk writer does not encode: {', '.join(wrong)}")


def bulk(item: bytes) -> bytes:
    """A constant RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(item), item)


def command(*args: bytes) -> bytes:
    """One RESP command, as redis-py packs it (arguments as bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(arg) for arg in args)


def _bulk_column(values: pa.Array) -> list[bytes | pa.Array]:
    """Parts of `$<length>\\r\\n<value>\\r\\n` for every row."""
    return [b"$", pc.cast(pc.binary_length(values), pa.string()).cast(pa.binary()), CRLF, values, CRLF]


def hset_commands(table: pa.Table | pa.RecordBatch, view: ViewLayout, project: str) -> pa.BinaryArray:
    """One RESP `HSET key _ts:<view> ts <field> <value> ...` per row, as redis-py sends it for Feast."""
    view.check(table)
    parts: list[bytes | pa.Array] = [b"*%d\r\n$4\r\nHSET\r\n" % (2 + 2 * (len(view.features) + 1)),
                                     *_bulk_column(entity_keys(table, view.join_keys, project)),
                                     bulk(f"_ts:{view.name}".encode()),
                                     *_bulk_column(timestamp_protos(table.column(view.timestamp_field)))]
    for name, value_type in view.features:
        parts += [bulk(redis_field(view.name, name)), *_bulk_column(value_protos(table.column(name), value_type))]
    return _join(*parts)


def send_commands(client: redis.Redis, commands: pa.BinaryArray, chunk_rows: int = SEND_ROWS) -> int:
    """Send RESP commands on one connection, reading a chunk's replies while the next is in flight; returns the count.

    The first error reply raises (redis-py's ResponseError) and the connection is dropped.
    """
    offsets = np.frombuffer(commands.buffers()[1], dtype=np.int32)[commands.offset:commands.offset + len(commands) + 1]
    data = memoryview(commands.buffers()[2])
    bounds = [*range(0, len(commands), chunk_rows), len(commands)]
    with raw_connection(client) as connection:
        pending = 0
        for start, end in zip(bounds, bounds[1:]):
            connection.send_packed_command([data[offsets[start]:offsets[end]]], check_health=False)
            for _ in range(pending):
                connection.read_response()
            pending = end - start
        for _ in range(pending):
            connection.read_response()
    return len(commands)


# --- HMGET commands ----------------------------------------------------------------------

class HmgetCommands:
    """RESP `HMGET <Feast key> <hash_fields>` commands for many entities of one course view, built with numpy.

    Each command is one fixed-size `key_template` record: the command head and key prefix, each
    join key's serialized INT64, then the project and the fields.
    """

    def __init__(self, view: str, project: str) -> None:
        self.names = tuple(sorted(join_keys(view)))
        fields, suffix = hash_fields(view), project.encode()
        key_length = len(key_prefix(self.names)) + 16 * len(self.names) + len(suffix)
        head = b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n" % (2 + len(fields), key_length)
        self.template = key_template(self.names, head, suffix + CRLF + b"".join(bulk(f) for f in fields))

    def pack(self, keys: Mapping[str, ArrayLike], rows: int) -> bytes:
        """The commands for `rows` entities (join key name -> values)."""
        return filled(self.template, keys, rows).tobytes()
