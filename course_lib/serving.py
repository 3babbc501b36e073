"""The plain Feast path (2.7.1 and 2.7.3): registering the definitions, materialization, and
historical and online retrieval.

Every optimized path of 2.7.5 (`caches`, `redis_reader`, `materialize`, `pit`) is tested to
return exactly what these functions return.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any, Literal

import click
import pandas as pd
import pyarrow as pa
from feast import FeatureService, FeatureStore, Project
from feast.diff.property_diff import TransitionType
from feast.diff.registry_diff import RegistryDiff
from feast.protos.feast.core.DataSource_pb2 import DataSource as DataSourceProto
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus
from feast.repo_contents import RepoContents

from course_lib import compat
from course_lib.adapter import PANDAS_DTYPE
from course_lib.config import Profile, resolve_profile
from course_lib.errors import CourseError
from course_lib.messages import say
from course_lib.offline import offline_entity_count, offline_time_range
from course_lib.store_lock import writing
from feature_repo.definitions import MOVIE_VIEW, TIMESTAMP_FIELD, USER_VIEW, VIEWS, Definitions, build, join_keys


def repo_contents(project: str, definitions: Definitions) -> RepoContents:
    """Wrap definitions in the structure Feast's planner expects."""
    return RepoContents(projects=[Project(name=project)], data_sources=definitions.sources,
                        feature_views=definitions.feature_views, on_demand_feature_views=definitions.on_demand_views,
                        stream_feature_views=[], label_views=[], entities=definitions.entities,
                        feature_services=definitions.feature_services, permissions=[])


def _without_meta(value: Any) -> Any:
    """A data source proto minus its created/updated timestamps (a push source's batch source's too);
    other values unchanged."""
    if not isinstance(value, DataSourceProto):
        return value
    copy = DataSourceProto()
    copy.CopyFrom(value)
    copy.ClearField("meta")
    if copy.HasField("batch_source"):
        copy.batch_source.ClearField("meta")
    return copy


def _drop_timestamp_only_updates(diff: RegistryDiff) -> RegistryDiff:
    """Feast reports a view as updated when only its source's registry timestamps differ
    (after a materialization); keep only real property changes."""
    for change in diff.feast_object_diffs:
        if change.transition_type == TransitionType.UPDATE:
            change.feast_object_property_diffs = [
                p for p in change.feast_object_property_diffs
                if _without_meta(p.val_existing) != _without_meta(p.val_declared)]
            if not change.feast_object_property_diffs:
                change.transition_type = TransitionType.UNCHANGED
    return diff


def apply(store: FeatureStore, profile: Profile | str | None = None) -> str:
    """Register the course definitions and return Feast's description of what changed."""
    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)
    definitions = build(resolved)
    registry_diff, _, _ = store.plan(repo_contents(store.project, definitions))
    changes = click.unstyle(_drop_timestamp_only_updates(registry_diff).to_string()).strip()
    store.apply(definitions.objects())
    return changes


def feature_refs(views: Iterable[str] = tuple(VIEWS)) -> list[str]:
    """Every `view:feature` reference of the given feature views."""
    return [f"{view}:{field.name}" for view in views for field in VIEWS[view][2]]


def normalize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Make training frames comparable across offline stores.

    PostgreSQL returns tz-naive `event_timestamp` values (in UTC) and float64/object for
    nullable integers; duckdb returns tz-aware UTC. Here timestamps become UTC-aware,
    features take their declared dtypes, and rows are sorted by time and entity keys.
    """
    out = df.copy()
    ts = pd.to_datetime(out[TIMESTAMP_FIELD])
    out[TIMESTAMP_FIELD] = (ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
                            ).astype("datetime64[ns, UTC]")
    declared = {f.name: PANDAS_DTYPE[f.dtype] for _, _, schema in VIEWS.values() for f in schema}
    for column in out.columns.intersection(list(declared)):
        out[column] = out[column].astype(declared[column])
    keys = [k for k in ("user_id", "movie_id") if k in out.columns]
    for key in keys:
        out[key] = out[key].astype("int64")
    return out.sort_values([TIMESTAMP_FIELD, *keys], kind="stable", ignore_index=True)


def historical_features(store: FeatureStore, entity_df: pd.DataFrame,
                        features: list[str] | FeatureService) -> pd.DataFrame:
    """A point-in-time-correct training frame, normalised with `normalize_frame`."""
    return normalize_frame(store.get_historical_features(entity_df=entity_df, features=features).to_df())


def with_on_demand(store: FeatureStore, frame: pd.DataFrame, views: Iterable[str]) -> pd.DataFrame:
    """A joined frame plus the outputs of the named on-demand views, computed by Feast's own
    transformation (what `get_historical_features` does after its join; the tuned join cannot)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    added = {}
    for name in views:
        view = store.get_on_demand_feature_view(name)
        out = view.transform_arrow(table, full_feature_names=False)
        added.update({f.name: out[f.name].to_pandas().astype("float64") for f in view.features})
    return frame.assign(**added)


# --- materialization --------------------------------------------------------------------

@dataclass(frozen=True)
class MaterializeReport:
    """What one materialization run did, per feature view."""

    start: datetime | None  # None: incremental, each view from its own last end
    end: datetime
    rows: dict[str, int]  # entity keys with offline rows in the materialized window
    intervals: dict[str, tuple[datetime, datetime] | None]  # each view's newest interval after the run

    def lines(self) -> list[str]:
        """Human-readable summary, one line per view."""
        out = []
        for view, rows in self.rows.items():
            interval = self.intervals[view]
            shown = "never" if interval is None else f"{interval[0].isoformat()} -> {interval[1].isoformat()}"
            out.append(f"{view}: {rows} entity rows written; materialized interval {shown}")
        return out


def _utc(value: datetime) -> datetime:
    """A timezone-aware UTC datetime (naive input is taken as UTC)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def latest_intervals(store: FeatureStore, views: Sequence[str]) -> dict[str, tuple[datetime, datetime] | None]:
    """The most recent materialization interval the registry records for each view (one uncached read)."""
    recorded = compat.materialization_intervals(store, views)
    return {view: max(intervals, key=lambda pair: pair[1]) if intervals else None
            for view, intervals in recorded.items()}


def latest_interval(store: FeatureStore, view: str) -> tuple[datetime, datetime] | None:
    """The most recent materialization interval the registry records for a view."""
    return latest_intervals(store, [view])[view]


class MaterializeError(CourseError):
    """A materialization was refused; the message says why and how to proceed."""


def check_end(store: FeatureStore, end: datetime, force: bool = False) -> None:
    """Refuse a tuned run (`skip_dedup`: rows are overwritten, not compared by timestamp) whose `end`
    is older than a view's last recorded end: it would replace newer online values while the
    registry, and so the serving clock, still reports the newer end."""
    if force or not getattr(store.config.online_store, "skip_dedup", False):
        return
    newer = {view: interval[1] for view, interval in latest_intervals(store, list(VIEWS)).items()
             if interval and interval[1] > end}
    if newer:
        view, last = max(newer.items(), key=lambda item: item[1])
        raise MaterializeError(say("serving.end_older", end=end, last=last, view=view))


def materialize(store: FeatureStore, profile: Profile, end: datetime | None = None,
                incremental: bool = False, force: bool = False, lock: bool = True) -> MaterializeReport:
    """Load the latest feature values up to `end` into the online store, under the project's write lock
    (`lock=False`: the caller holds it).

    A full run starts at the oldest offline row (Feast's own incremental default for a
    never-materialized view is `now - ttl`, which would skip most history); an incremental
    run continues each view from the end of its last materialization. A tuned run refuses an
    `end` older than the last one unless `force` (`check_end`).
    """
    if lock:
        with writing(profile, say("serving.lock_what")):
            return materialize(store, profile, end, incremental, force, lock=False)
    end = _utc(end or datetime.now(timezone.utc))
    check_end(store, end, force)
    compat.pin_sqlite_timestamps()
    starts = {view: previous[1] if incremental and previous else None
              for view, previous in latest_intervals(store, list(VIEWS)).items()}
    with contextlib.redirect_stdout(io.StringIO()):  # Feast's own colour log; the report replaces it
        if incremental:
            store.materialize_incremental(end_date=end)
        else:
            oldest = min(offline_time_range(profile, view)[0] for view in VIEWS)
            store.materialize(start_date=oldest - timedelta(seconds=1), end_date=end)
    store.refresh_registry()
    now = datetime.now(timezone.utc)
    rows = {view: offline_entity_count(profile, view, starts[view] or
                                       (now - VIEWS[view][1] if incremental else None), end)
            for view in VIEWS}
    return MaterializeReport(start=None if incremental else oldest, end=end, rows=rows,
                             intervals=latest_intervals(store, list(VIEWS)))


# --- online retrieval -------------------------------------------------------------------

@dataclass(frozen=True)
class EntityFeatures:
    """One entity's online features, their event timestamps, and whether it was found."""

    key: dict[str, int]
    values: dict[str, Any]
    event_timestamps: dict[str, datetime | None]
    status: Literal["found", "not_found"]


EntityRows = list[dict[str, int]]
Rows = list[dict[str, EntityFeatures]]
# fetch(views, entity_rows) -> rows: `online_rows` bound to a store, or a faster drop-in with the same result.
Fetch = Callable[[list[str], EntityRows], Rows]


def _view_features(view: str) -> list[str]:
    """Feature names of one view."""
    return [field.name for field in VIEWS[view][2]]


def online_rows(store: FeatureStore, views: list[str], entity_rows: list[dict[str, int]]
                ) -> list[dict[str, EntityFeatures]]:
    """Online features of several views for each entity row, split per view with statuses."""
    refs = feature_refs(views)
    response = store.get_online_features(features=refs, entity_rows=entity_rows)
    names = list(response.proto.metadata.feature_names.val)
    columns = response.to_dict()
    results = dict(zip(names, response.proto.results))
    out: list[dict[str, EntityFeatures]] = []
    for i, row in enumerate(entity_rows):
        per_view = {}
        for view in views:
            features = _view_features(view)
            # Redis answers a missing key with PRESENT and a zero timestamp; real rows have a time.
            stamps = [results[f].event_timestamps[i].seconds for f in features]
            statuses = [results[f].statuses[i] if s > 0 else FieldStatus.NOT_FOUND
                        for f, s in zip(features, stamps)]
            per_view[view] = EntityFeatures(
                key={k: row[k] for k in join_keys(view)},
                values={f: columns[f][i] for f in features},
                event_timestamps={f: datetime.fromtimestamp(s, timezone.utc) if st == FieldStatus.PRESENT
                                  else None for f, s, st in zip(features, stamps, statuses)},
                status="found" if FieldStatus.PRESENT in statuses else "not_found",
            )
        out.append(per_view)
    return out


def sdk_fetch(store: FeatureStore) -> Fetch:
    """`online_rows` bound to a store: the plain Feast SDK path."""
    return partial(online_rows, store)


def user_features(store: FeatureStore, user_id: int) -> EntityFeatures:
    """Online user profile features for one user."""
    return online_rows(store, [USER_VIEW], [{"user_id": user_id}])[0][USER_VIEW]


def movie_features(store: FeatureStore, movie_id: int) -> EntityFeatures:
    """Online metadata features for one movie."""
    return online_rows(store, [MOVIE_VIEW], [{"movie_id": movie_id}])[0][MOVIE_VIEW]


def candidate_features(store: FeatureStore, user_id: int, movie_ids: list[int]
                       ) -> list[dict[str, EntityFeatures]]:
    """User, movie and (user, movie) interaction features for each candidate movie."""
    rows = [{"user_id": user_id, "movie_id": m} for m in movie_ids]
    return online_rows(store, list(VIEWS), rows)
