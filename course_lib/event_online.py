"""Where `events.EventIngestor` reads the aggregate state and writes the pushed rows online (notebook 08).

Two implementations of one interface (`OnlineState`: `batch()` opens a `Session` for one read and its write):
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
  `RedisState.abatch()` is the same session on redis.asyncio for the API's event loop: while a
  batch waits for Redis (or for its timeout, when Redis is down) the loop serves other requests.

Rows are dicts: join keys, "at" (the version time, µs since the epoch) and the view's features.
"""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

import redis
from feast import FeatureStore, ValueType
from google.protobuf.timestamp_pb2 import Timestamp

from course_lib.compat import async_raw_connection, raw_connection
from course_lib.config import Profile
from course_lib.event_state import PairState, UserState, pair_state_of, typed_rows, user_state_of
from course_lib.proto_values import decode_value, timestamp_bytes, timestamp_micros, value_bulk
from course_lib.redis_format import bulk, command, key_builder, redis_field
from course_lib.redis_reader import LoopClient, check_raw_reads, exchange_within, standalone_redis
from feature_repo.definitions import PAIR_VIEW, STATE_VIEWS, USER_VIEW, VIEWS, join_keys
from feature_repo.names import PAIR_STATE_VIEW, USER_STATE_VIEW

Pair = tuple[int, int]
Users = dict[int, tuple[UserState, int]]  # user -> (state, newest row time in µs of its user rows)
Pairs = dict[Pair, tuple[PairState, int]]  # (user, movie) -> (state, newest row time in µs of its pair rows)
Rows = dict[str, list[dict[str, Any]]]  # view -> rows to write
WRITES = {USER_VIEW: USER_STATE_VIEW, PAIR_VIEW: PAIR_STATE_VIEW}  # each pushed view and the state view beside it
KEY_CACHE = 100_000  # Redis keys kept built (users and pairs seen lately); the cache starts again when full


class Conflict(Exception):
    """Another writer changed a key between this batch's read and its write; nothing was written."""


class Session(Protocol):
    """One read of users' and pairs' state and the write that follows it."""

    def read(self, pairs: Sequence[Pair]) -> tuple[Users, Pairs]:
        """Every user's and pair's state, and the newest time of its rows (0: none)."""

    def write(self, rows: Rows) -> None:
        """Write each view's rows online; where the store allows, Conflict if a key read has changed since."""


class OnlineState(Protocol):
    """Reads the state of users and pairs, writes pushed rows."""

    def batch(self) -> contextlib.AbstractContextManager[Session]:
        """A session for one read-apply-write cycle."""

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

    def batch(self) -> contextlib.AbstractContextManager[SdkState]:
        """Itself: the SDK has no conditional write, so only the ingestor's in-process locks order batches (one
        `course serve` worker per online store other than a single Redis server)."""
        return contextlib.nullcontext(self)

    def write(self, rows: Rows) -> None:
        """`write_to_online_store` per view (the registry read from its cache)."""
        for view, view_rows in rows.items():
            if view_rows:
                self.store.write_to_online_store(view, typed_rows(view, view_rows), allow_registry_cache=True)

    def close(self) -> None:
        """Nothing of its own: the store's clients close with the store."""


class RedisState:
    """The ingestor's reads and writes on Feast's Redis hashes directly (a single Redis server; see the module doc).

    A user's rows of every view share one hash (one entity key), as do a pair's: each batch sends one
    packed stream of WATCH and HMGETs, then one of HSETs (a key's two views in one) inside MULTI/EXEC.
    This class builds the commands and reads the replies; `RedisBatch` and `AsyncRedisBatch` send them.
    """

    def __init__(self, store: FeatureStore, profile: Profile) -> None:
        check_raw_reads(store, profile)
        self.client = redis.Redis(**profile.redis_client_kwargs())
        self.loop_client = LoopClient(profile.redis_client_kwargs())
        names = {view: tuple(join_keys(view)) for view in (USER_VIEW, PAIR_VIEW)}
        self.builders = {len(keys): (keys, key_builder(keys, store.project))
                         for keys in names.values()}  # by the number of ids: a user's key, a pair's
        self._keys: dict[tuple[int, ...], bytes] = {}
        reads = {view: [*(redis_field(state, name) for name, _ in view_features(state)),
                        f"_ts:{view}".encode(), f"_ts:{state}".encode()]
                 for view, state in WRITES.items()}  # per entity: its state's fields, then both `_ts` fields
        self.hmget = {view: (b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(fields)), b"".join(map(bulk, fields)))
                      for view, fields in reads.items()}  # each command's head and fields, around the key
        self.written = {view: (bulk(f"_ts:{view}".encode()), [(name, bulk(redis_field(view, name)), value_bulk(t))
                                                              for name, t in view_features(view)])
                        for view in (*WRITES, *WRITES.values())}  # each view's `_ts` field, then its features'

    def key(self, ids: tuple[int, ...]) -> bytes:
        """Feast's Redis key of a user `(user_id,)` or a pair `(user_id, movie_id)`, built once while cached."""
        found = self._keys.get(ids)
        if found is None:
            if len(self._keys) >= KEY_CACHE:
                self._keys.clear()
            names, build = self.builders[len(ids)]
            found = self._keys[ids] = build(dict(zip(names, ids)))
        return found

    @contextlib.contextmanager
    def batch(self) -> Iterator[RedisBatch]:
        """A session on one pooled connection (WATCH is per connection); an error drops the connection
        (`raw_connection`), and its watch with it."""
        with raw_connection(self.client) as connection:
            session = RedisBatch(self, connection)
            yield session
            if session.watching:  # read, nothing written: EXEC did not end the watch
                session.exchange([command(b"UNWATCH")])

    @contextlib.asynccontextmanager
    async def abatch(self) -> AsyncIterator[AsyncRedisBatch]:
        """`batch` on the running event loop (redis.asyncio)."""
        async with async_raw_connection(self.loop_client.get()) as connection:
            session = AsyncRedisBatch(self, connection, self.loop_client.timeout_s)
            yield session
            if session.watching:
                await session.exchange([command(b"UNWATCH")])

    def read_commands(self, pairs: Sequence[Pair]) -> tuple[list[bytes], list[int]]:
        """WATCH on every key the batch reads, then an HMGET per distinct user and per pair; and the users."""
        users = list(dict.fromkeys(u for u, _ in pairs))
        keys = [(USER_VIEW, self.key((u,))) for u in users] + [(PAIR_VIEW, self.key(pair)) for pair in pairs]
        watch = b"*%d\r\n$5\r\nWATCH\r\n" % (1 + len(keys)) + b"".join(bulk(key) for _, key in keys)
        return [watch, *(self.hmget[view][0] + bulk(key) + self.hmget[view][1] for view, key in keys)], users

    def states(self, users: list[int], pairs: Sequence[Pair], replies: list[Any]) -> tuple[Users, Pairs]:
        """The users' and pairs' states from the replies of `read_commands` (WATCH's first)."""
        out_users: Users = {user: reply_state(USER_VIEW, user_state_of, reply)
                            for user, reply in zip(users, replies[1:])}
        out_pairs: Pairs = {pair: reply_state(PAIR_VIEW, pair_state_of, reply)
                            for pair, reply in zip(pairs, replies[1 + len(users):])}
        return out_users, out_pairs

    def _fields(self, view: str, row: dict[str, Any], at: bytes) -> list[bytes]:
        """One row's hash fields and values as RESP bulk strings: `_ts:<view>` and its encoded time `at` first,
        then each feature, as Feast's write orders them."""
        stamp, features = self.written[view]
        out = [stamp, at]
        for name, field, encoded in features:
            out += [field, encoded(row[name])]
        return out

    def write_commands(self, rows: Rows) -> list[bytes]:
        """Every row in one MULTI/EXEC (readers see a batch's users and pairs change together); none if no rows."""
        fields: dict[bytes, list[bytes]] = {}
        times: dict[int, bytes] = {}  # a key's two views share their version time
        for view, view_rows in rows.items():
            pair = view in (PAIR_VIEW, PAIR_STATE_VIEW)
            for row in view_rows:
                ids = (row["user_id"], row["movie_id"]) if pair else (row["user_id"],)
                at = times.get(row["at"]) or times.setdefault(row["at"], bulk(timestamp_bytes(row["at"])))
                fields.setdefault(self.key(ids), []).extend(self._fields(view, row, at))
        if not fields:
            return []
        return [command(b"MULTI"), *(b"*%d\r\n$4\r\nHSET\r\n" % (2 + len(parts)) + bulk(key) + b"".join(parts)
                                     for key, parts in fields.items()), command(b"EXEC")]

    def close(self) -> None:
        """Close its Redis connections (the event loop's are closed by `aclose`)."""
        self.client.close()

    async def aclose(self) -> None:
        """Close the running event loop's Redis connections."""
        await self.loop_client.aclose()


def reply_state(view: str, state_of: Callable[[dict[str, Any]], Any], reply: list[bytes | None]) -> tuple[Any, int]:
    """An HMGET reply of `RedisState.read_commands` as a state and the newest of its two `_ts` times."""
    *values, pushed, stored = reply
    row = {name: decode_value(raw) for (name, _), raw in zip(view_features(WRITES[view]), values)}
    return state_of(row), max(timestamp_micros(pushed), timestamp_micros(stored))


def executed(replies: list[Any]) -> None:
    """Conflict if EXEC was refused (a watched key changed since the read), the first error reply if any."""
    if replies[-1] is None:
        raise Conflict("a key this batch read was written by another process before its write")
    failed = [reply for reply in replies[-1] if isinstance(reply, Exception)]
    if failed:
        raise failed[0]


@dataclass
class RedisBatch:
    """`RedisState`'s session on one connection, blocking."""

    state: RedisState
    connection: Any
    watching: bool = False

    def exchange(self, commands: list[bytes]) -> list[Any]:
        """Send packed commands and read every reply (an error reply raises)."""
        self.connection.send_packed_command([b"".join(commands)], check_health=False)
        return [self.connection.read_response() for _ in commands]

    def read(self, pairs: Sequence[Pair]) -> tuple[Users, Pairs]:
        """One round trip: WATCH every key, then an HMGET per distinct user and per pair."""
        commands, users = self.state.read_commands(pairs)
        self.watching = True
        return self.state.states(users, pairs, self.exchange(commands))

    def write(self, rows: Rows) -> None:
        """One MULTI/EXEC round trip (EXEC ends the watch, whether it ran or not)."""
        commands = self.state.write_commands(rows)
        if commands:
            self.watching = False
            executed(self.exchange(commands))


@dataclass
class AsyncRedisBatch:
    """`RedisState`'s session on one connection of the running event loop: each exchange awaited, under one
    deadline (the Redis timeout)."""

    state: RedisState
    connection: Any
    timeout_s: float | None
    watching: bool = False

    async def exchange(self, commands: list[bytes]) -> list[Any]:
        """Send packed commands and read every reply (an error reply raises; TimeoutError past the deadline)."""
        return await exchange_within(self.connection, b"".join(commands), len(commands), self.timeout_s)

    async def read(self, pairs: Sequence[Pair]) -> tuple[Users, Pairs]:
        """`RedisBatch.read`, awaited."""
        commands, users = self.state.read_commands(pairs)
        self.watching = True
        return self.state.states(users, pairs, await self.exchange(commands))

    async def write(self, rows: Rows) -> None:
        """`RedisBatch.write`, awaited."""
        commands = self.state.write_commands(rows)
        if commands:
            self.watching = False
            executed(await self.exchange(commands))


def online_state(store: FeatureStore, profile: Profile) -> OnlineState:
    """The fastest exact implementation for the store: Feast's Redis hashes directly on a single server
    without key TTLs, else the SDK."""
    if standalone_redis(store) and not store.config.online_store.key_ttl_seconds:
        return RedisState(store, profile)
    return SdkState(store)
