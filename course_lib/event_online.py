"""Where `events.EventIngestor` reads the aggregate state and writes the pushed rows online (notebook 08).

Two implementations of one interface (`OnlineState`):
- `SdkState`, for every store: one `get_online_features` read, then `write_to_online_store` per
  view (what Feast's `push` does per view, without its uncached listing of feature services:
  feast-dev/feast #6463);
- `RedisState`, for a single Redis server (the enterprise profile): Feast's own hashes read and
  written directly (`course_lib.redis_format`'s layout) as packed RESP on one connection: `WATCH`
  on every key and an `HMGET` per user and pair in one round trip, then one `HSET` per changed key
  inside `MULTI`/`EXEC` in a second. If another process (a second `course serve` worker) wrote one
  of those keys in between, `EXEC` does nothing and `write` raises `Conflict`; the ingestor reads
  again and retries, so no process overwrites an update it did not see (optimistic concurrency).
  Feast's Redis write skips a row whose time is not newer than the
  stored one; the ingestor's version times always are (one microsecond past the stored row), so
  Feast's write is a plain `HSET` here and this one is the same `HSET`.
  `tests/test_events.py::test_raw_redis_state_reads_and_writes_what_feast_does` compares every
  written hash field with Feast's own write, and the states read with the SDK's.

Rows are dicts: join keys, "at" (the version time, µs since the epoch) and the view's features.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any, Protocol

import redis
from feast import FeatureStore, ValueType
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from google.protobuf.timestamp_pb2 import Timestamp

from course_lib.compat import raw_connection
from course_lib.config import Profile
from course_lib.event_state import PairState, UserState, pair_state_of, typed_rows, user_state_of
from course_lib.redis_format import bulk, command, key_builder, redis_field
from course_lib.redis_reader import check_raw_reads, standalone_redis
from feature_repo.definitions import PAIR_VIEW, STATE_VIEWS, USER_VIEW, VIEWS, join_keys
from feature_repo.names import PAIR_STATE_VIEW, USER_STATE_VIEW

Pair = tuple[int, int]
Users = dict[int, tuple[UserState, int]]  # user -> (state, newest row time in µs of its user rows)
Pairs = dict[Pair, tuple[PairState, int]]  # (user, movie) -> (state, newest row time in µs of its pair rows)
Rows = dict[str, list[dict[str, Any]]]  # view -> rows to write
WRITES = {USER_VIEW: USER_STATE_VIEW, PAIR_VIEW: PAIR_STATE_VIEW}  # each pushed view and the state view beside it
PROTO_FIELD = {ValueType.INT64: "int64_val", ValueType.FLOAT: "float_val", ValueType.DOUBLE: "double_val",
               ValueType.STRING: "string_val"}  # ValueProto's field of each value type the course's views use


class Conflict(Exception):
    """Another writer changed a key between this batch's read and its write; nothing was written."""


class OnlineState(Protocol):
    """Reads the state of users and pairs, writes pushed rows; `batch()` brackets one read and its write."""

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """One read-apply-write cycle: where the store allows, `write` raises Conflict if a read key changed."""

    def read(self, pairs: Sequence[Pair]) -> tuple[Users, Pairs]:
        """Every user's and pair's state, and the newest time of its rows (0: none)."""

    def write(self, rows: Rows) -> None:
        """Write each view's rows online."""

    def close(self) -> None:
        """Close connections of its own."""


def micros(stamp: Timestamp) -> int:
    """A protobuf Timestamp in microseconds (0 when unset)."""
    return stamp.seconds * 1_000_000 + stamp.nanos // 1000


@cache
def view_features(view: str) -> tuple[tuple[str, ValueType], ...]:
    """A pushed or state view's features and their value types, in schema order."""
    return tuple((f.name, f.dtype.to_value_type()) for f in {**VIEWS, **STATE_VIEWS}[view][2])


class SdkState:
    """The ingestor's reads and writes through Feast's SDK (every online store)."""

    def __init__(self, store: FeatureStore) -> None:
        self.store = store
        self.refs = ([f"{USER_STATE_VIEW}:{name}" for name, _ in view_features(USER_STATE_VIEW)]
                     + [f"{PAIR_STATE_VIEW}:{name}" for name, _ in view_features(PAIR_STATE_VIEW)]
                     + [f"{USER_VIEW}:age", f"{PAIR_VIEW}:watch_count"])  # the last two for their row times

    def read(self, pairs: Sequence[Pair]) -> tuple[Users, Pairs]:
        """One `get_online_features` call for every pair and its user."""
        rows = [{"user_id": u, "movie_id": m} for u, m in pairs]
        response = self.store.get_online_features(features=self.refs, entity_rows=rows, full_feature_names=True)
        values = response.to_dict()
        names = list(response.proto.metadata.feature_names.val)
        stamps = {name: result.event_timestamps for name, result in zip(names, response.proto.results)}
        users: Users = {}
        found: Pairs = {}
        for i, (user, movie) in enumerate(pairs):
            user_row = {name: values[f"{USER_STATE_VIEW}__{name}"][i] for name, _ in view_features(USER_STATE_VIEW)}
            pair_row = {name: values[f"{PAIR_STATE_VIEW}__{name}"][i] for name, _ in view_features(PAIR_STATE_VIEW)}
            users[user] = (user_state_of(user_row), max(micros(stamps[f"{USER_VIEW}__age"][i]),
                                                        micros(stamps[f"{USER_STATE_VIEW}__age"][i])))
            found[(user, movie)] = (pair_state_of(pair_row), max(micros(stamps[f"{PAIR_VIEW}__watch_count"][i]),
                                                                 micros(stamps[f"{PAIR_STATE_VIEW}__latest_us"][i])))
        return users, found

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Nothing to bracket: the SDK has no conditional write, so only the ingestor's in-process locks order
        batches (one `course serve` worker per online store other than a single Redis server)."""
        return contextlib.nullcontext()

    def write(self, rows: Rows) -> None:
        """`write_to_online_store` per view (the registry read from its cache)."""
        for view, view_rows in rows.items():
            if view_rows:
                self.store.write_to_online_store(view, typed_rows(view, view_rows), allow_registry_cache=True)

    def close(self) -> None:
        """Nothing of its own: the store's clients close with the store."""


def bulk_encoder(value_type: ValueType) -> Callable[[Any], bytes]:
    """A value of one type as Feast stores it (a serialized ValueProto, empty when missing), as a RESP bulk string."""
    proto_field = PROTO_FIELD[value_type]

    def encoded(value: Any) -> bytes:
        return bulk(b"" if value is None else ValueProto(**{proto_field: value}).SerializeToString())
    return encoded


def decode(raw: bytes | None) -> Any:
    """A stored value as Feast's online read returns it for the state views' types (None: missing)."""
    if not raw:
        return None
    proto = ValueProto.FromString(raw)
    kind = proto.WhichOneof("val")
    return None if kind is None else getattr(proto, kind)


def encode_time(at_us: int) -> bytes:
    """A version time as Feast's `_ts` field (`Timestamp.FromDatetime`: seconds and nanoseconds)."""
    seconds, rest = divmod(at_us, 1_000_000)
    return Timestamp(seconds=seconds, nanos=rest * 1000).SerializeToString()


def decode_time(raw: bytes | None) -> int:
    """A `_ts` field in microseconds (0: no row)."""
    return micros(Timestamp.FromString(raw)) if raw else 0


class RedisState:
    """The ingestor's reads and writes on Feast's Redis hashes directly (a single Redis server; see the module doc).

    A user's rows of every view share one hash (one entity key), as do a pair's: each batch sends one
    packed stream of HMGETs, then one of HSETs (a key's two views in one) inside MULTI/EXEC.
    """

    def __init__(self, store: FeatureStore, profile: Profile) -> None:
        check_raw_reads(store, profile)
        self.client = redis.Redis(**profile.redis_client_kwargs())
        self._local = threading.local()  # the connection a thread's current batch holds
        self.keys = {view: key_builder(tuple(join_keys(view)), store.project) for view in (USER_VIEW, PAIR_VIEW)}
        reads = {view: [*(redis_field(state, name) for name, _ in view_features(state)),
                        f"_ts:{view}".encode(), f"_ts:{state}".encode()]
                 for view, state in WRITES.items()}  # per entity: its state's fields, then both `_ts` fields
        self.hmget = {view: (b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(fields)), b"".join(map(bulk, fields)))
                      for view, fields in reads.items()}  # each command's head and fields, around the key
        self.written = {view: (bulk(f"_ts:{view}".encode()), [(name, bulk(redis_field(view, name)), bulk_encoder(t))
                                                              for name, t in view_features(view)])
                        for view in (*WRITES, *WRITES.values())}  # each view's `_ts` field, then its features'

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold one connection for a read and its write (WATCH is per connection); unwatch if no write came."""
        with raw_connection(self.client) as connection:
            self._local.connection = connection
            try:
                yield
            finally:
                self._local.connection = None
                connection.send_packed_command([command(b"UNWATCH")], check_health=False)
                connection.read_response()

    def _exchange(self, commands: list[bytes]) -> list[Any]:
        """Send packed commands on the batch's connection (or a pooled one) and read every reply (an error
        reply raises)."""
        held = getattr(self._local, "connection", None)
        with contextlib.nullcontext(held) if held is not None else raw_connection(self.client) as connection:
            connection.send_packed_command([b"".join(commands)], check_health=False)
            return [connection.read_response() for _ in commands]

    def watch(self, keys: list[bytes]) -> list[bytes]:
        """The WATCH command on the keys a batch reads (outside a `batch()`, nothing: no write can follow)."""
        if getattr(self._local, "connection", None) is None:
            return []
        return [b"*%d\r\n$5\r\nWATCH\r\n" % (1 + len(keys)) + b"".join(map(bulk, keys))]

    def _hmget(self, view: str, key: bytes) -> bytes:
        """An HMGET of an entity's state fields and both `_ts` fields."""
        head, fields = self.hmget[view]
        return head + bulk(key) + fields

    def _state(self, view: str, reply: list[bytes | None]) -> tuple[dict[str, Any], int]:
        """A state view's feature values and the newest of the two `_ts` times in one reply."""
        *values, pushed, state = reply
        row = {name: decode(raw) for (name, _), raw in zip(view_features(WRITES[view]), values)}
        return row, max(decode_time(pushed), decode_time(state))

    def read(self, pairs: Sequence[Pair]) -> tuple[Users, Pairs]:
        """One round trip: WATCH every key, then an HMGET per distinct user and per pair."""
        users = list(dict.fromkeys(u for u, _ in pairs))
        keys = ([(USER_VIEW, self.keys[USER_VIEW]({"user_id": u})) for u in users]
                + [(PAIR_VIEW, self.keys[PAIR_VIEW]({"user_id": u, "movie_id": m})) for u, m in pairs])
        watch = self.watch([key for _, key in keys])
        replies = self._exchange([*watch, *(self._hmget(view, key) for view, key in keys)])[len(watch):]
        out_users: Users = {}
        for user, reply in zip(users, replies):
            row, at = self._state(USER_VIEW, reply)
            out_users[user] = (user_state_of(row), at)
        out_pairs: Pairs = {}
        for pair, reply in zip(pairs, replies[len(users):]):
            row, at = self._state(PAIR_VIEW, reply)
            out_pairs[pair] = (pair_state_of(row), at)
        return out_users, out_pairs

    def _fields(self, view: str, row: dict[str, Any]) -> list[bytes]:
        """One row's hash fields and values as RESP bulk strings: `_ts:<view>` first, then each feature, as
        Feast's write orders them."""
        stamp, features = self.written[view]
        out = [stamp, bulk(encode_time(row["at"]))]
        for name, field, encoded in features:
            out += [field, encoded(row[name])]
        return out

    def write(self, rows: Rows) -> None:
        """Every row in one MULTI/EXEC: readers see a batch's users and pairs change together."""
        fields: dict[bytes, list[bytes]] = {}
        for view, view_rows in rows.items():
            entity = USER_VIEW if view in (USER_VIEW, USER_STATE_VIEW) else PAIR_VIEW
            for row in view_rows:
                fields.setdefault(self.keys[entity](row), []).extend(self._fields(view, row))
        if not fields:
            return
        hsets = [b"*%d\r\n$4\r\nHSET\r\n" % (2 + len(parts)) + bulk(key) + b"".join(parts)
                 for key, parts in fields.items()]
        replies = self._exchange([command(b"MULTI"), *hsets, command(b"EXEC")])
        if replies[-1] is None:  # EXEC refused: a watched key changed since the read
            raise Conflict("a key this batch read was written by another process before its write")
        failed = [reply for reply in replies[-1] if isinstance(reply, Exception)]
        if failed:
            raise failed[0]

    def close(self) -> None:
        """Close its Redis connections."""
        self.client.close()


def online_state(store: FeatureStore, profile: Profile) -> OnlineState:
    """The fastest exact implementation for the store: Feast's Redis hashes directly on a single server
    without key TTLs, else the SDK."""
    if standalone_redis(store) and not store.config.online_store.key_ttl_seconds:
        return RedisState(store, profile)
    return SdkState(store)
