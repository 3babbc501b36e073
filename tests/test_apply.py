"""`apply` registers exactly the course's objects, and a second apply changes nothing."""
from __future__ import annotations

from datetime import timedelta

import pytest
from feast import FeatureStore, ValueType
from feast.types import Float32, Int64, String

from course_lib.config import Profile, load_store
from course_lib.doctor import format_report, service_checks
from course_lib.serving import apply
from feature_repo.definitions import RECOMMENDATION_FEATURES

# Written out here, independently of feature_repo/definitions.py, so drift there fails this test.
EXPECTED_VIEWS = {
    "user_profile_features": (["user_id"], timedelta(days=7), {
        "age": Int64, "avg_rating": Float32, "total_movies_watched": Int64,
        "favorite_genre": String, "account_created_days": Int64,
    }),
    "movie_metadata_features": (["movie_id"], timedelta(days=30), {
        "vote_average": Float32, "vote_count": Int64, "popularity": Float32, "runtime": Int64,
        "release_year": Int64, "genre_action": Int64, "genre_comedy": Int64, "genre_drama": Int64,
        "genre_horror": Int64, "genre_romance": Int64,
    }),
    "user_movie_interaction_features": (["user_id", "movie_id"], timedelta(days=1), {
        "watch_time_minutes": Float32, "completion_rate": Float32, "user_rating": Float32,
        "watch_count": Int64, "last_watched_days_ago": Int64,
    }),
}


@pytest.fixture(scope="module")
def registered(profile: Profile) -> tuple[list[str], FeatureStore]:
    """Apply twice, then read the registry back through a new FeatureStore."""
    failed = [check for check in service_checks(profile) if not check.ok]
    if failed:
        pytest.fail(f"the {profile.name} profile needs its services:\n{format_report(failed)}")
    store = load_store(profile)
    outputs = [apply(store, profile), apply(store, profile)]
    return outputs, load_store(profile)


def test_second_apply_reports_no_changes(registered: tuple[list[str], FeatureStore]) -> None:
    outputs, _ = registered
    assert outputs[1] == "No changes to registry", f"second apply changed: {outputs[1]}"


def test_entities_are_int64_with_their_join_keys(registered: tuple[list[str], FeatureStore]) -> None:
    _, store = registered
    for name in ("user_id", "movie_id"):
        entity = store.get_entity(name)
        assert (entity.join_key, entity.value_type) == (name, ValueType.INT64)
    assert sorted(e.name for e in store.list_entities()) == ["movie_id", "user_id"]


def test_feature_views_have_the_course_schemas_and_ttls(registered: tuple[list[str], FeatureStore]) -> None:
    _, store = registered
    assert sorted(fv.name for fv in store.list_feature_views()) == sorted(EXPECTED_VIEWS)
    for name, (entities, ttl, schema) in EXPECTED_VIEWS.items():
        view = store.get_feature_view(name)
        assert view.ttl == ttl, name
        assert sorted(view.entities) == sorted(entities), name
        assert {f.name: f.dtype for f in view.features} == schema, name
        assert {f.name: f.dtype for f in view.entity_columns} == dict.fromkeys(entities, Int64), name


def test_service_holds_exactly_the_ten_recommendation_features(
        registered: tuple[list[str], FeatureStore]) -> None:
    _, store = registered
    service = store.get_feature_service("movie_recommendation_service")
    refs = [f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features]
    assert len(refs) == 10
    assert sorted(refs) == sorted(RECOMMENDATION_FEATURES)
    for ref in refs:
        view, feature = ref.split(":")
        assert feature in EXPECTED_VIEWS[view][2], f"{ref} is not a course feature"


def test_apply_after_materialization_reports_no_changes(profile: Profile, tmp_path) -> None:
    """Materializing stamps the stored sources; a fresh process's apply must not call that a change."""
    from course_lib import datasets
    from course_lib.adapter import build_feature_tables, write_offline
    from course_lib.serving import materialize

    write_offline(build_feature_tables(datasets.synthetic(seed=1, n_users=30, n_movies=20, n_events=300)), profile)
    store = load_store(profile)
    apply(store, profile)
    materialize(store, profile)
    assert apply(load_store(profile), profile) == "No changes to registry"
