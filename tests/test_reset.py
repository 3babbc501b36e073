"""`course reset` removes the course's own registry objects, online rows and offline tables,
and nothing else: foreign data seeded first must survive, on both profiles."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import redis
import yaml
from feast import FeatureStore

from course_lib import cli, datasets
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import Profile, load_store, resolve_profile
from course_lib.offline import read_offline
from course_lib.reset import reset_course
from course_lib.serving import apply, latest_interval, materialize, user_features
from feature_repo.definitions import VIEWS
from feature_repo.names import GENRE_MATCH_VIEW

COURSE = "course_test_rc"
# The foreign project's name ends with the course's: Feast's own Redis deletion scans
# `<prefix>*<project>` and would wipe this project's rows too.
FOREIGN = f"x_{COURSE}"
END = datetime(2025, 2, 1, tzinfo=timezone.utc)
NOTES = pd.DataFrame({"note": ["keep me"]})
UNRELATED_KEY = f"notes:{COURSE}".encode()  # ends with the project name, but is no Feast key


def project_profile(profile: Profile, project: str) -> Profile:
    """The same profile and workdir under another Feast project and offline schema."""
    return resolve_profile(profile.name, {**profile.env(), "FEAST_PROJECT": project,
                                          "FEAST_OFFLINE_SCHEMA": project})


def foreign_store(course: Profile, foreign: Profile) -> FeatureStore:
    """The foreign project's store, sharing the course's registry and online store.

    On `enterprise` the profiles already share the registry database and the Redis db; on
    `local` the foreign project is pointed at the course's registry file and SQLite database.
    """
    if foreign.name == "enterprise":
        return load_store(foreign)
    config = foreign.feature_store_config()
    shared = course.feature_store_config()
    config.update(registry=shared["registry"], online_store=shared["online_store"])
    foreign.repo_dir.mkdir(parents=True, exist_ok=True)
    (foreign.repo_dir / "feature_store.yaml").write_text(yaml.safe_dump(config))
    return FeatureStore(repo_path=str(foreign.repo_dir))


def redis_client(profile: Profile) -> redis.Redis:
    """A client on the profile's Redis db."""
    return redis.Redis(**profile.redis_client_kwargs())


def course_redis_keys(profile: Profile) -> int:
    """Redis keys ending with the course project's name, minus the foreign project's and the unrelated key."""
    with redis_client(profile) as client:
        keys = client.scan_iter(match=f"*{COURSE}".encode(), count=10_000)
        return sum(1 for key in keys if not key.endswith(FOREIGN.encode()) and key != UNRELATED_KEY)


def registry_rows(profile: Profile, project: str) -> dict[str, int]:
    """Rows per SQL registry table that belong to a project (tables without rows left out)."""
    with psycopg.connect(profile.pg_conninfo(profile.registry_database)) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'project_id' "
            "AND table_schema = 'public'")]
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}" WHERE project_id = %s', [project]).fetchone()[0]
                  for t in tables}
    return {table: n for table, n in counts.items() if n}


def pg_tables(profile: Profile) -> set[str]:
    """`schema.table` of every table in the course and foreign schemas."""
    with psycopg.connect(profile.pg_conninfo()) as conn:
        rows = conn.execute("SELECT table_schema, table_name FROM information_schema.tables "
                            "WHERE table_schema IN (%s, %s)", [COURSE, FOREIGN]).fetchall()
    return {f"{schema}.{table}" for schema, table in rows}


def seed_enterprise_extras(profile: Profile) -> None:
    """A learner's own table in the course's schema and an unrelated Redis key in the same db."""
    with psycopg.connect(profile.pg_conninfo()) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{COURSE}"')
        conn.execute(f'DROP TABLE IF EXISTS "{COURSE}".learner_notes')
        conn.execute(f'CREATE TABLE "{COURSE}".learner_notes (note TEXT)')
        conn.execute(f'INSERT INTO "{COURSE}".learner_notes VALUES (%s)', [NOTES["note"][0]])
    with redis_client(profile) as client:
        client.set(UNRELATED_KEY, b"keep me")


def drop_enterprise_leftovers(profile: Profile) -> None:
    """Remove what the test created in the shared services."""
    with redis_client(profile) as client:
        client.delete(UNRELATED_KEY)
    with psycopg.connect(profile.pg_conninfo()) as conn:
        for schema in (COURSE, FOREIGN):
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    """Feature tables of a small synthetic log in January 2025."""
    return build_feature_tables(datasets.synthetic(seed=5, n_users=30, n_movies=15, n_events=600, days=25))


def test_reset_removes_the_course_state_and_nothing_else(profile: Profile, tables, monkeypatch) -> None:
    course, foreign = project_profile(profile, COURSE), project_profile(profile, FOREIGN)
    if profile.name == "enterprise":  # a crashed earlier run may have left state behind
        reset_course(foreign)
        reset_course(course)
        seed_enterprise_extras(course)
    notes_file = course.data_dir / "learner_notes.parquet"
    try:
        stores = {}
        for p, store in ((course, load_store(course)), (foreign, None)):
            write_offline(tables, p)
            stores[p.project] = store or foreign_store(course, foreign)
            apply(stores[p.project], p)
            materialize(stores[p.project], p, end=END)
        NOTES.to_parquet(notes_file)
        user = int(tables["user_profile_features"]["user_id"].iloc[0])
        assert user_features(load_store(course), user).status == "found"
        if profile.name == "enterprise":
            assert course_redis_keys(course) > 0
            assert registry_rows(course, COURSE)

        report = reset_course(course)

        # The course's own state is gone. (Checked first: opening any store for a project makes
        # Feast's SQL registry record a fresh project_uuid for it again.)
        if profile.name == "enterprise":
            assert registry_rows(course, COURSE) == {}
        after = load_store(course)
        assert COURSE not in {p.name for p in after.registry.list_projects(allow_cache=False)}
        assert after.registry.list_feature_views(COURSE, allow_cache=False) == []
        assert sorted(report.registry["feature views"]) == sorted([*VIEWS, GENRE_MATCH_VIEW])  # on-demand too
        assert sorted(report.offline) == sorted(course.offline_location(view) for view in VIEWS)
        if profile.name == "local":
            assert not any(Path(course.offline_location(view)).exists() for view in VIEWS)
        else:
            assert course_redis_keys(course) == 0
            assert pg_tables(course) == {f"{COURSE}.learner_notes", *(f"{FOREIGN}.{view}" for view in VIEWS)}

        # Everything foreign survived.
        other = foreign_store(course, foreign)
        assert sorted(v.name for v in other.list_feature_views()) == sorted(VIEWS)
        assert user_features(other, user).status == "found"
        assert latest_interval(other, "user_profile_features")[1] == END
        assert {v: len(t) for v, t in read_offline(foreign).items()} == {v: len(t) for v, t in tables.items()}
        pd.testing.assert_frame_equal(pd.read_parquet(notes_file), NOTES)
        if profile.name == "enterprise":
            with psycopg.connect(course.pg_conninfo()) as conn:
                assert conn.execute(f'SELECT note FROM "{COURSE}".learner_notes').fetchall() == [("keep me",)]
            with redis_client(course) as client:
                assert client.get(UNRELATED_KEY) == b"keep me"

        # A second reset, through the CLI, finds nothing left to delete.
        for key, value in course.env().items():
            monkeypatch.setenv(key, value)
        assert cli.main(["reset", "--profile", course.name]) == 0
        assert user_features(foreign_store(course, foreign), user).status == "found"
    finally:
        if profile.name == "enterprise":
            reset_course(foreign)
            drop_enterprise_leftovers(course)


def test_reset_report_lines_say_what_was_removed(profile: Profile, tables) -> None:
    """The CLI's summary names the project, the counts per registry kind and the removed tables."""
    course = project_profile(profile, f"{COURSE}_report")
    write_offline(tables, course)
    apply(load_store(course), course)
    try:
        report = reset_course(course)
    finally:
        if profile.name == "enterprise":
            with psycopg.connect(course.pg_conninfo()) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{course.offline_schema}" CASCADE')
    assert report.registry["entities"] == ["__dummy", "movie_id", "user_id"]  # Feast registers __dummy itself
    lines = report.lines()
    assert lines[0] == (f"registry: deleted project '{course.project}' "
                        "(1 feature services, 4 feature views, 5 data sources, 3 entities)")  # + on-demand, pushes
    assert all(course.offline_location(view) in lines[2] for view in VIEWS)
    again = reset_course(course).lines()
    assert again[0] == (f"registry: deleted project '{course.project}' "
                        "(0 feature services, 0 feature views, 0 data sources, 0 entities)")
    assert again[2] == "offline: removed nothing (no course tables)"
