"""Every Feast and redis-py internal the course relies on, behind one door.

Feast 0.67 has no public API for what the tuned paths need: its online store's own Redis client,
its SQLite online store's file, table names and timestamp decoding, the feature resolution of
`get_historical_features`, the local compute engine's per-view plan, and dropping a project's
online tables. redis-py has no public way to stream pre-encoded
commands. Each use is a small function or class here, nowhere else in the package, and
`tests/test_compat.py` checks on real stores that each still behaves as the course assumes. On
import, the installed versions are checked against the ranges these were written for, so an
upgrade fails with one clear line instead of deep inside a materialization.
"""
from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import redis
import redis.asyncio
from feast import FeatureService, FeatureStore, FeatureView
from feast import utils as feast_utils
from feast.errors import FeatureViewNotFoundException
from feast.infra.common.materialization_job import MaterializationJobStatus, MaterializationTask
from feast.infra.compute_engines.dag.context import ExecutionContext
from feast.infra.compute_engines.local.compute import LocalComputeEngine
from feast.infra.compute_engines.local.feature_builder import LocalFeatureBuilder
from feast.infra.compute_engines.local.job import LocalMaterializationJob
from feast.infra.compute_engines.local.nodes import LocalOutputNode
from feast.infra.online_stores import sqlite as feast_sqlite
from feast.infra.online_stores.helpers import compute_table_id
from feast.infra.online_stores.redis import RedisOnlineStore
from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.infra.registry.base_registry import BaseRegistry
from feast.infra.registry.registry import Registry
from feast.infra.registry.sql import SqlRegistry
from feast.infra.registry.sql import feature_views as sql_feature_views
from feast.protos.feast.core.FeatureView_pb2 import FeatureView as FeatureViewProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type
from feast.value_type import ValueType
from google.protobuf.timestamp_pb2 import Timestamp
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from course_lib.errors import CourseError
from course_lib.messages import say

# The versions the internals below were written and tested against. redis-py 5.3 is the first
# whose ConnectionPool.get_connection() (sync and asyncio) takes no command name; 8 is not released yet.
SUPPORTED = {"feast": SpecifierSet("==0.67.*"), "redis": SpecifierSet(">=5.3,<8")}
RedisClient = redis.Redis | redis.RedisCluster
Interval = tuple[datetime, datetime]


class IncompatibleVersion(CourseError):
    """An installed Feast or redis-py is outside the range `course_lib.compat` was written for."""


def check_versions(installed: dict[str, str] | None = None) -> None:
    """Raise IncompatibleVersion naming each package whose installed version is outside SUPPORTED."""
    versions = installed or {name: metadata.version(name) for name in SUPPORTED}
    wrong = [f"{name} {versions[name]} (needs {SUPPORTED[name]})" for name in SUPPORTED
             if not SUPPORTED[name].contains(Version(versions[name]), prereleases=True)]
    if wrong:
        raise IncompatibleVersion(say("compat.versions", wrong=", ".join(wrong)))


check_versions()


# --- Feast's registry -----------------------------------------------------------------------------

def _view_protos(store: FeatureStore) -> list[FeatureViewProto]:
    """Every batch feature view of the project as stored, read now (no cache), without `FeatureView.from_proto`."""
    registry, project = store.registry, store.project
    if isinstance(registry, SqlRegistry):
        return cast(list[FeatureViewProto], registry._list_objects(
            sql_feature_views, project, FeatureViewProto, FeatureView, "feature_view_proto", proto_only=True))
    if isinstance(registry, Registry):
        stored = registry._get_registry_proto(project=project, allow_cache=False)
        return [view for view in stored.feature_views if view.spec.project == project]
    raise TypeError(f"course_lib.compat reads SQL and file registries, not {type(registry).__name__}")


def feature_view_names(store: FeatureStore) -> set[str]:
    """Names of the project's batch feature views, read now (no cache), without building them."""
    return {view.spec.name for view in _view_protos(store)}


def materialization_intervals(store: FeatureStore, views: Sequence[str]) -> dict[str, list[Interval]]:
    """Each view's recorded materialization intervals (UTC), from one uncached registry read.

    `store.get_feature_view(view).materialization_intervals` builds the whole FeatureView (Feast's
    typeguard-checked `from_proto`): about 12 ms of CPU per view on the 2-core machine, and the API's
    background refresher read three views every second, stalling requests. The protos alone
    carry the intervals. Raises FeatureViewNotFoundException as `get_feature_view` does.
    """
    found = {view.spec.name: view for view in _view_protos(store)}
    out = {}
    for name in views:
        if name not in found:
            raise FeatureViewNotFoundException(name, store.project)
        out[name] = [(interval.start_time.ToDatetime(tzinfo=timezone.utc),
                      interval.end_time.ToDatetime(tzinfo=timezone.utc))
                     for interval in found[name].meta.materialization_intervals]
    return out


# --- Feast's online store ----------------------------------------------------------------------

def online_client(store: FeatureStore) -> RedisClient:
    """The Redis (or Redis Cluster) client Feast's own online store reads and writes with."""
    online_store = cast(RedisOnlineStore, store._get_provider().online_store)
    return online_store._get_client(store.config.online_store)


async def close_online_clients(store: FeatureStore) -> None:
    """Close the Redis clients Feast's online store opened: in Feast 0.67, `FeatureStore.close()` reaches
    `RedisOnlineStore.close`, the base class's no-op, so its connections stayed open (the API's shutdown)."""
    online_store = store._get_provider().online_store
    if not isinstance(online_store, RedisOnlineStore):
        return
    client, online_store._client = online_store._client, None
    if client is not None:
        client.close()
    async_client, online_store._client_async = online_store._client_async, None
    if async_client is not None:
        await async_client.aclose()


def context_online_client(context: ExecutionContext) -> RedisClient:
    """The same client, as a materialization plan's execution context holds it."""
    return cast(RedisOnlineStore, context.online_store)._get_client(context.repo_config.online_store)


def sqlite_path(store: FeatureStore) -> Path:
    """The file of the store's SQLite online store, as Feast resolves it (relative to the repo folder)."""
    return Path(SqliteOnlineStore._get_db_path(store.config))


def sqlite_table(project: str, view: str) -> str:
    """Feast's SQLite online table of an unversioned feature view: `<project>_<view>`."""
    return compute_table_id(project, SimpleNamespace(name=view), enable_versioning=False)


def pin_sqlite_timestamps() -> None:
    """Put back Feast's process-wide sqlite3 datetime adapter (epoch seconds) and `timestamp` converter.

    Feast's SQLite online store registers them when it is imported; any package imported later may
    replace them for the whole process (`nbformat.sign`, which Jupyter's server imports, writes ISO
    text; pandas' SQLite writer reads `timestamp` columns as ISO text). Feast would then write event
    times it cannot read back ("invalid literal for int()"). Cheap; called before the course writes.
    """
    sqlite3.register_adapter(datetime, feast_sqlite.adapt_datetime_epoch)
    sqlite3.register_converter("timestamp", feast_sqlite.convert_timestamp)


def sqlite_event_seconds(raw: int | bytes | str) -> int:
    """Whole seconds of an SQLite row's `event_ts` as Feast's online read reports them.

    Feast stores `int(naive_utc.timestamp())` (its adapter reads the naive time as local time), reads it
    back with `datetime.fromtimestamp` (local, naive), labels that UTC and converts it to a Timestamp.
    """
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromtimestamp(int(raw)).replace(tzinfo=timezone.utc))
    return stamp.seconds


def python_value(raw: bytes, value_type: ValueType) -> Any:
    """A serialized ValueProto as Feast's online response gives it (`OnlineResponse.to_dict`; None when unset)."""
    return feast_value_type_to_python_type(ValueProto.FromString(raw), value_type)


def drop_online_tables(store: FeatureStore, views: Sequence[FeatureView]) -> None:
    """Drop the online tables of these views in the store's project (SQLite and other table stores)."""
    store._get_provider().update_infra(store.project, tables_to_delete=views, tables_to_keep=[],
                                       entities_to_delete=[], entities_to_keep=[], partial=False)


# --- Feast's feature resolution ----------------------------------------------------------------

def resolve_features(store: FeatureStore, features: list[str] | FeatureService
                     ) -> tuple[list[str], list[FeatureView], list[Any]]:
    """(feature refs, feature views in request order, on-demand views) as `FeatureStore.get_historical_features`
    resolves them; invalid refs raise as they do there. With on-demand views, no views are grouped."""
    registry, project = store.registry, store.project
    refs = feast_utils._get_features(registry, project, features, allow_cache=True)
    views, on_demand = feast_utils._get_feature_views_to_use(registry, project, features)
    if on_demand:
        return refs, [], list(on_demand)
    grouped, _ = feast_utils._group_feature_refs(refs, views, [])
    feast_utils._validate_feature_refs(refs)
    return refs, [cast(FeatureView, view) for view, _ in grouped], []


# --- Feast's local compute engine ---------------------------------------------------------------

class PlanBuilder(LocalFeatureBuilder):
    """Feast's local materialization plan (read, filter, dedup, write) with a replaceable output node."""

    output_node: type[LocalOutputNode] = LocalOutputNode

    def build_output_nodes(self, view: FeatureView, input_node: LocalOutputNode) -> LocalOutputNode:
        """The plan's last node, of class `output_node`."""
        node = self.output_node("output", cast(Any, self.dag_root.view), inputs=[input_node])
        self.nodes.append(node)
        return node


class ComputeEngine(LocalComputeEngine):
    """Feast's local compute engine, materializing each task with the plan of `plan_builder`."""

    plan_builder: type[LocalFeatureBuilder] = LocalFeatureBuilder

    def materialize_task(self, registry: BaseRegistry, task: MaterializationTask) -> LocalMaterializationJob:
        """Feast's per-view materialization (`_materialize_one`), with `plan_builder`'s plan."""
        job_id = f"{task.feature_view.name}-{task.start_time}-{task.end_time}"
        context = self.get_execution_context(registry, task)
        try:
            self.plan_builder(registry, task, backend=self._get_backend(context)).build().execute(context)
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.SUCCEEDED)
        except Exception as exc:  # noqa: BLE001 - reported in the job, as Feast's engine does
            return LocalMaterializationJob(job_id=job_id, status=MaterializationJobStatus.ERROR, error=exc)

    def _materialize_one(self, registry: BaseRegistry, task: MaterializationTask,
                         **kwargs: Any) -> LocalMaterializationJob:
        """Feast's hook for one view: `materialize_task`."""
        return self.materialize_task(registry, task)


# --- redis-py's connections ------------------------------------------------------------------------

@contextmanager
def raw_connection(client: redis.Redis) -> Iterator[Any]:
    """One pooled connection of a client, for `send_packed_command` / `read_response`; a connection
    left with unread replies (any error) is disconnected before it goes back to the pool."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        yield connection
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


@asynccontextmanager
async def async_raw_connection(client: redis.asyncio.Redis) -> AsyncIterator[Any]:
    """`raw_connection` for redis.asyncio: one pooled connection, disconnected on any error before it goes back."""
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        yield connection
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)
