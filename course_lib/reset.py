"""Resetting a learner's project: its online rows, its registry objects and its offline tables, and nothing else.

`reset_online` empties the online store and forgets the materialization intervals (the
definitions are registered again); `reset_course` drops the project whole (`course reset`).
Redis rows are matched to the project exactly (`redis_format.project_keys`), never with
Feast's `<prefix>*<project>` scan, which also hits projects whose names end the same way
(docs/troubleshooting.md #15).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psycopg
from feast import FeatureStore
from psycopg import sql

from course_lib.compat import drop_online_tables, online_client
from course_lib.config import Profile, load_store, resolve_profile
from course_lib.files import remove_folder
from course_lib.messages import say
from course_lib.redis_format import project_keys
from course_lib.store_lock import writing
from feature_repo.definitions import STATE_VIEWS, VIEWS, build


def reset_online(store: FeatureStore, profile: Profile) -> None:
    """Empty the project's online store and forget every materialization interval of the course views.

    Online rows are dropped first, matched exactly to this project (Feast's own deletion scans
    `<prefix>*<project>`, which also hits projects whose names merely end the same way); then the
    views and services are deleted from the registry and registered again. Offline tables and
    other projects are untouched.
    """
    objects = _registered(store)
    _drop_online(store, objects["feature views"])
    for service in objects["feature services"]:
        store.registry.delete_feature_service(service.name, store.project)
    for view in objects["feature views"]:
        store.registry.delete_feature_view(view.name, store.project)
    store.apply(build(profile).objects())


# --- resetting a learner ------------------------------------------------------------------

@dataclass(frozen=True)
class ResetReport:
    """What `reset_course` removed for one profile's Feast project."""

    project: str
    registry: dict[str, list[str]]  # object kind -> names deleted
    online: str
    offline: list[str]  # offline tables removed

    def lines(self) -> list[str]:
        """Human-readable summary, one line per store."""
        counts = ", ".join(f"{len(names)} {kind}" for kind, names in self.registry.items())
        return [f"registry: deleted project {self.project!r} ({counts})", f"online: {self.online}",
                f"offline: removed {', '.join(self.offline) if self.offline else 'nothing (no course tables)'}"]


def _registered(store: FeatureStore) -> dict[str, list[Any]]:
    """Every object the registry holds for the store's project, by kind."""
    registry, project = store.registry, store.project
    views = [*registry.list_feature_views(project, allow_cache=False),
             *registry.list_stream_feature_views(project, allow_cache=False),
             *registry.list_on_demand_feature_views(project, allow_cache=False)]
    return {"feature services": registry.list_feature_services(project, allow_cache=False),
            "feature views": views,
            "data sources": registry.list_data_sources(project, allow_cache=False),
            "entities": registry.list_entities(project, allow_cache=False)}


def _delete_redis_keys(store: FeatureStore) -> int:
    """Delete every Redis key of exactly this project (and nothing else); return how many.

    Feast's own client is used, so a single server and a cluster (all nodes scanned) both work.
    """
    client = online_client(store)
    keys = list(project_keys(client, store.project, store.config.entity_key_serialization_version))
    return sum(cast(int, client.delete(*keys[start:start + 10_000])) for start in range(0, len(keys), 10_000))


def _drop_online(store: FeatureStore, views: list[Any]) -> str:
    """Remove the project's online rows: its Redis keys (exact match), or its tables (SQLite)."""
    if store.config.online_store.type == "redis":
        return f"deleted {_delete_redis_keys(store)} Redis keys of project {store.project!r}"
    # Other online stores name their tables after the project and view, so Feast drops exactly these.
    drop_online_tables(store, views)
    return f"dropped the {store.config.online_store.type} tables of {len(views)} feature views"


TABLES = [*VIEWS, *STATE_VIEWS]  # every offline table the course writes (the state views' from notebook 08)


def _drop_offline(store: FeatureStore, profile: Profile) -> list[str]:
    """Remove the course's offline tables (parquet files or PostgreSQL tables) and nothing else."""
    if store.config.offline_store.type != "postgres":
        files = [path for path in (Path(profile.offline_location(view)) for view in TABLES) if path.exists()]
        for path in files:
            path.unlink()
        folder = profile.offline_dir
        if not (folder.is_dir() and any(folder.iterdir())):  # nothing else in it: the link and every generation
            remove_folder(folder)
        return [str(path) for path in files]
    schema, removed = profile.offline_schema, []
    with psycopg.connect(profile.pg_conninfo()) as conn:
        for table in [name for view in TABLES for name in (view, f"{view}__staging")]:
            name = sql.Identifier(schema, table)
            if conn.execute("SELECT to_regclass(%s)", [name.as_string(conn)]).fetchone() != (None,):
                conn.execute(sql.SQL("DROP TABLE {}").format(name))
                removed.append(f"{schema}.{table}")
    return removed


def reset_course(profile: Profile | str | None = None) -> ResetReport:
    """Drop the course's registry objects, online rows and offline tables for the profile's
    project, and only those: other projects in the same registry database or Redis db, other
    tables in the offline schema, and other files are left alone.

    Never `FeatureStore.teardown()`: on a SQL registry it deletes every project in the database.
    """
    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)
    with writing(resolved, say("reset.lock_what")):
        return _reset(load_store(resolved), resolved)


def _reset(store: FeatureStore, resolved: Profile) -> ResetReport:
    """`reset_course`'s work, under the lock."""
    objects = _registered(store)
    online = _drop_online(store, objects["feature views"])
    for view in objects["feature views"]:  # the SQL registry also drops their version history here
        store.registry.delete_feature_view(view.name, store.project)
    if store.project in {p.name for p in store.registry.list_projects(allow_cache=False)}:
        store.registry.delete_project(store.project)
    return ResetReport(project=store.project, online=online, offline=_drop_offline(store, resolved),
                       registry={kind: sorted(o.name for o in found) for kind, found in objects.items()})
