"""Registering definitions, materialization and feature retrieval (2.7.1 and 2.7.3)."""
from __future__ import annotations

from typing import Iterable

import click
import pandas as pd
from feast import FeatureService, FeatureStore, Project
from feast.repo_contents import RepoContents

from course_lib.adapter import PANDAS_DTYPE
from course_lib.config import Profile, resolve_profile
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS, Definitions, build


def repo_contents(project: str, definitions: Definitions) -> RepoContents:
    """Wrap definitions in the structure Feast's planner expects."""
    return RepoContents(projects=[Project(name=project)], data_sources=definitions.sources,
                        feature_views=definitions.feature_views, on_demand_feature_views=[],
                        stream_feature_views=[], label_views=[], entities=definitions.entities,
                        feature_services=definitions.feature_services, permissions=[])


def apply(store: FeatureStore, profile: Profile | str | None = None) -> str:
    """Register the course definitions and return Feast's description of what changed."""
    resolved = profile if isinstance(profile, Profile) else resolve_profile(profile)
    definitions = build(resolved)
    registry_diff, _, _ = store.plan(repo_contents(store.project, definitions))
    changes = click.unstyle(registry_diff.to_string()).strip()
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
