"""Registering definitions, materialization and feature retrieval (2.7.1 and 2.7.3)."""
from __future__ import annotations

import click
from feast import FeatureStore, Project
from feast.repo_contents import RepoContents

from course_lib.config import Profile, resolve_profile
from feature_repo.definitions import Definitions, build


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
