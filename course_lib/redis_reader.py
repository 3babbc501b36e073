"""Raw Redis reads (2.7.5): Feast's Redis hashes read with one redis-py pipeline, decoded as the SDK does.

`RawRedisReader.online_rows` returns exactly what `serving.online_rows` returns (tests compare
them on real stores) in one round trip for all views and rows; `online_rows_async` does the same
with redis.asyncio for the API's event loop. `CandidateRedisReader` sends a recommendation's
reads as one packed stream and returns the raw replies (`course_lib.candidate_matrix` decodes
them). The key and field layout is `course_lib.redis_format`.
"""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import redis
import redis.asyncio
import redis.exceptions
from feast import FeatureStore
from feast.infra.online_stores.redis import RedisType
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type

from course_lib.compat import async_raw_connection
from course_lib.config import ConfigError, Profile
from course_lib.messages import say
from course_lib.redis_format import HmgetCommands, check_key_layout, event_seconds, hash_fields, key_builder
from course_lib.serving import EntityFeatures, EntityRows, Fetch, Rows, sdk_fetch
from course_lib.sqlite_reader import SqliteReader, is_sqlite
from feature_repo.definitions import MOVIE_VIEW, PAIR_VIEW, USER_VIEW, VIEWS, join_keys

ViewKey = tuple[str, tuple[int, ...]]  # (view, its join key values)
RowKeys = dict[str, tuple[int, ...]]  # view -> join key values, for one entity row
Reply = Sequence[bytes | None]  # one HMGET reply: each feature's serialized ValueProto, then `_ts:<view>`


def standalone_redis(store: FeatureStore) -> bool:
    """Whether the store's online store is a single Redis server (not a cluster or sentinel)."""
    online = store.config.online_store
    return online.type == "redis" and online.redis_type == RedisType.redis


def check_raw_reads(store: FeatureStore, profile: Profile) -> None:
    """ConfigError unless the course can read the store's Redis hashes itself: one server, v3 INT64 keys,
    the profile's connection settings."""
    config = store.config
    if not standalone_redis(store):
        raise ConfigError(say("redis_reader.not_redis", store=config.online_store.type))
    check_key_layout(store, say("redis_reader.raw_reads"))
    if config.online_store.connection_string != profile.redis_connection_string():
        raise ConfigError(say("redis_reader.other_redis", connection=config.online_store.connection_string,
                              profile=profile.name))


def online_reader(store: FeatureStore, profile: Profile) -> Fetch:
    """The fastest exact online reader for the profile's store: raw Redis pipelines or SQLite queries, else the SDK."""
    if standalone_redis(store):
        return RawRedisReader(store, profile).online_rows
    return SqliteReader(store).online_rows if is_sqlite(store) else sdk_fetch(store)


class RawRedisReader:
    """Reads Feast's Redis hashes directly: one redis-py pipeline for all views and rows.

    Its clients are built from the profile's settings, the same ones its store's connection string
    is rendered from (checked).
    """

    def __init__(self, store: FeatureStore, profile: Profile) -> None:
        check_raw_reads(store, profile)
        self._connection = profile.redis_client_kwargs()
        self._client = redis.Redis(**self._connection)
        self._async_client: redis.asyncio.Redis | None = None
        self._keys = {view: key_builder(tuple(join_keys(view)), store.project) for view in VIEWS}
        self._features = {view: [f.name for f in schema] for view, (_, _, schema) in VIEWS.items()}
        self._types = {view: [f.dtype.to_value_type() for f in schema] for view, (_, _, schema) in VIEWS.items()}
        self._fields = {view: list(hash_fields(view)) for view in VIEWS}

    def _decode(self, view: str, key: dict[str, int], reply: list[bytes | None]) -> EntityFeatures:
        """One HMGET reply as `serving.online_rows` reports it (no `_ts` field: not found)."""
        *values, ts_bytes = reply
        names = self._features[view]
        if not ts_bytes:  # most candidate pairs were never watched: skip the protobuf work
            return EntityFeatures(key=key, values=dict.fromkeys(names), event_timestamps=dict.fromkeys(names),
                                  status="not_found")
        seconds = event_seconds(ts_bytes)  # the whole seconds `serving.online_rows` reports
        when = None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)
        decoded = {}
        for name, value_type, raw in zip(names, self._types[view], values):
            proto = ValueProto()
            if raw:
                proto.ParseFromString(raw)
            decoded[name] = feast_value_type_to_python_type(proto, value_type)
        return EntityFeatures(key=key, values=decoded, event_timestamps=dict.fromkeys(decoded, when),
                              status="found" if when else "not_found")

    def _plan(self, views: list[str], entity_rows: EntityRows) -> tuple[list[RowKeys], list[ViewKey], EntityRows]:
        """Each row's (view -> key tuple), the distinct (view, key tuple)s and their entity dicts."""
        names = {view: join_keys(view) for view in views}
        keys = [{view: tuple(row[k] for k in names[view]) for view in views} for row in entity_rows]
        unique = list(dict.fromkeys((view, key) for row_keys in keys for view, key in row_keys.items()))
        return keys, unique, [dict(zip(names[view], key)) for view, key in unique]

    def _queue(self, pipe: redis.client.Pipeline | redis.asyncio.client.Pipeline, unique: list[ViewKey],
               entities: EntityRows) -> None:
        """One HMGET per distinct entity on the pipeline."""
        for (view, _), entity in zip(unique, entities):
            pipe.hmget(self._keys[view](entity), self._fields[view])  # type: ignore[arg-type] # bytes keys work

    def _rows(self, keys: list[RowKeys], unique: list[ViewKey], entities: EntityRows, replies: list[Any]) -> Rows:
        """The pipeline's replies as `serving.online_rows` returns them."""
        decoded = {(view, key): self._decode(view, entity, reply)
                   for (view, key), entity, reply in zip(unique, entities, replies)}
        return [{view: decoded[(view, key)] for view, key in row_keys.items()} for row_keys in keys]

    def online_rows(self, views: list[str], entity_rows: EntityRows) -> Rows:
        """Same result as `serving.online_rows(store, views, entity_rows)`, in one round trip."""
        keys, unique, entities = self._plan(views, entity_rows)
        with self._client.pipeline(transaction=False) as pipe:
            self._queue(pipe, unique, entities)
            replies = pipe.execute()
        return self._rows(keys, unique, entities, replies)

    async def online_rows_async(self, views: list[str], entity_rows: EntityRows) -> Rows:
        """`online_rows` for an event loop (redis.asyncio, created on first use in the running loop)."""
        if self._async_client is None:
            self._async_client = redis.asyncio.Redis(**self._connection)
        keys, unique, entities = self._plan(views, entity_rows)
        async with self._async_client.pipeline(transaction=False) as pipe:
            self._queue(pipe, unique, entities)
            replies = await pipe.execute()
        return self._rows(keys, unique, entities, replies)

    async def aclose(self) -> None:
        """Close both clients' connections (the app's shutdown)."""
        self._client.close()
        if self._async_client is not None:
            await self._async_client.aclose()


class LoopClient:
    """A redis.asyncio client for the running event loop, made on first use in each loop (its connections
    belong to that loop), with redis-py's per-read timer off: `exchange_within` sets one deadline per exchange."""

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs, self.timeout_s = {**kwargs, "socket_timeout": None}, kwargs["socket_timeout"]
        self.current: redis.asyncio.Redis | None = None  # the client of the loop that used it last
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> redis.asyncio.Redis:
        """The running loop's client."""
        loop = asyncio.get_running_loop()
        if self.current is None or self._loop is not loop:
            self.current, self._loop = redis.asyncio.Redis(**self.kwargs), loop
        return self.current

    async def aclose(self) -> None:
        """Close the running loop's connections (another loop's died with it)."""
        if self.current is not None and self._loop is asyncio.get_running_loop():
            await self.current.aclose()
        self.current = None


async def exchange_within(connection: Any, commands: bytes, count: int, timeout_s: float | None) -> list[Any]:
    """Write packed commands and read their `count` replies under one deadline for the whole exchange
    (redis-py would otherwise arm a timer per reply, which costs more than parsing a hundred replies);
    redis-py's TimeoutError past it."""
    async def exchange() -> list[Any]:
        await connection.send_packed_command(commands, check_health=False)
        return [await connection.read_response() for _ in range(count)]
    try:
        if sys.version_info >= (3, 11):
            async with asyncio.timeout(timeout_s):
                return await exchange()
        return await asyncio.wait_for(exchange(), timeout_s)
    except (TimeoutError, asyncio.TimeoutError) as exc:
        raise redis.exceptions.TimeoutError(f"Timeout reading from {connection.host}:{connection.port}") from exc


class CandidateRedisReader:
    """A recommendation's reads as raw HMGET replies, in one round trip on one pooled connection."""

    def __init__(self, store: FeatureStore, profile: Profile) -> None:
        check_raw_reads(store, profile)
        self._commands = {view: HmgetCommands(view, store.project) for view in VIEWS}
        self._client = LoopClient(profile.redis_client_kwargs())

    async def _replies(self, commands: bytes, count: int) -> list[Reply]:
        """Send packed commands and read their `count` replies (`exchange_within`)."""
        async with async_raw_connection(self._client.get()) as connection:
            return await exchange_within(connection, commands, count, self._client.timeout_s)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    async def candidate_replies(self, user_id: int, movie_ids: Sequence[int], movies: Sequence[int]
                                ) -> tuple[Reply, list[Reply], list[Reply]]:
        """The user's reply, each (user, candidate) pair's, and each of `movies`' (candidates the near-cache lacks)."""
        n = len(movie_ids)
        commands = (self._commands[USER_VIEW].pack({"user_id": [user_id]}, 1)
                    + self._commands[PAIR_VIEW].pack({"user_id": np.full(n, user_id, dtype=np.int64),
                                                      "movie_id": np.asarray(movie_ids, dtype=np.int64)}, n)
                    + self._commands[MOVIE_VIEW].pack({"movie_id": np.asarray(movies, dtype=np.int64)}, len(movies)))
        replies = await self._replies(commands, 1 + n + len(movies))
        return replies[0], replies[1:1 + n], replies[1 + n:]
