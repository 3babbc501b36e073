"""Classroom mode (issue 19, `course_lib.classroom`): two learners on one PostgreSQL and one Redis,
each running the course pipeline as their own role and Redis user, cannot read or write each
other's offline tables, registry rows or online rows; the shared superuser login can (the control)."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from psycopg import sql
from support import isolated_env

from course_lib import classroom, serving
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import ConfigError, Profile, load_store, resolve_profile
from course_lib.datasets import synthetic
from feature_repo.definitions import USER_VIEW

pytestmark = pytest.mark.enterprise
A, B = "course_test_cla", "course_test_clb"
DATA = synthetic(seed=8, n_users=30, n_movies=20, n_events=500, days=15)


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Profile]:
    """The instructor's profile; the classroom is removed again afterwards."""
    profile = resolve_profile("enterprise", isolated_env(tmp_path_factory.mktemp("admin")))
    classroom.drop(profile)  # whatever an interrupted run left
    yield profile
    classroom.drop(profile)


@pytest.fixture(scope="module")
def learners(admin: Profile, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Profile]:
    """Both learners created, each with the course pipeline run as themselves."""
    out = {}
    for learner in classroom.create(admin, [A, B]):
        env = {**os.environ, **learner.settings(admin), "COURSE_WORKDIR": str(tmp_path_factory.mktemp(learner.name)),
               "FEAST_REDIS_DB": admin.env()["FEAST_REDIS_DB"]}
        profile = resolve_profile("enterprise", env)
        write_offline(build_feature_tables(DATA), profile)
        store = load_store(profile)
        serving.apply(store, profile)
        serving.materialize(store, profile, end=DATA.watch_events["event_timestamp"].max())
        out[learner.name] = profile
    return out


def online_key(admin: Profile, project: str) -> bytes:
    """One of a project's Redis keys, found by the instructor."""
    client = redis.Redis(**admin.redis_client_kwargs())
    return next(key for key in client.scan_iter(count=1000) if key.endswith(project.encode()))


def leaks(reader: Profile, other: str, other_key: bytes) -> list[str]:
    """What `reader` can do to learner `other`'s data (empty: fully isolated)."""
    found = []
    table = sql.Identifier(other, USER_VIEW)
    with psycopg.connect(reader.pg_conninfo(), autocommit=True) as conn:
        for what, statement in (("read", sql.SQL("SELECT count(*) FROM {}").format(table)),
                                ("wrote", sql.SQL("DELETE FROM {}").format(table))):
            try:
                conn.execute(statement)
                found.append(f"{what} the offline table")
            except psycopg.errors.InsufficientPrivilege:
                pass
    with psycopg.connect(reader.pg_conninfo(reader.registry_database), autocommit=True) as conn:
        if conn.execute("SELECT count(*) FROM feature_views WHERE project_id = %s", [other]).fetchone()[0]:
            found.append("read registry rows")
        if conn.execute("UPDATE feature_views SET user_metadata = user_metadata WHERE project_id = %s",
                        [other]).rowcount:
            found.append("wrote registry rows")
        try:
            conn.execute("INSERT INTO feast_metadata VALUES (%s, 'planted', 'x', 0)", [other])
            conn.execute("DELETE FROM feast_metadata WHERE project_id = %s AND metadata_key = 'planted'", [other])
            found.append("inserted registry rows")
        except psycopg.errors.InsufficientPrivilege:
            pass
    client = redis.Redis(**reader.redis_client_kwargs())
    for what, call in (("read", lambda: client.hgetall(other_key)), ("wrote", lambda: client.expire(other_key, 10**6))):
        try:
            call()
            found.append(f"{what} online rows")
        except redis.exceptions.NoPermissionError:
            pass
    return found


def test_learners_run_the_course_and_cannot_touch_each_others_data(admin: Profile,
                                                                  learners: dict[str, Profile]) -> None:
    for reader, other in ((A, B), (B, A)):
        assert leaks(learners[reader], other, online_key(admin, other)) == []
    for name in (A, B):  # asked without running them: FLUSHDB would empty everyone's online store
        for command in (["FLUSHDB"], ["KEYS", "*"], ["CONFIG", "GET", "*"]):
            verdict = redis.Redis(**admin.redis_client_kwargs()).execute_command("ACL", "DRYRUN", name, *command)
            assert verdict != b"OK" and b"no permissions" in verdict, (name, command, verdict)
    store = load_store(learners[A])
    assert [p.name for p in store.registry.list_projects(allow_cache=False)] == [A], "only its own project is visible"


def test_without_the_roles_the_shared_login_reaches_everything(admin: Profile, learners: dict[str, Profile]) -> None:
    """The control: the same checks as the shared superuser and default Redis user find every leak."""
    shared = resolve_profile("enterprise", {**admin.env(), "FEAST_PROJECT": A, "FEAST_OFFLINE_SCHEMA": A})
    assert leaks(shared, B, online_key(admin, B)) == [
        "read the offline table", "wrote the offline table", "read registry rows", "wrote registry rows",
        "inserted registry rows", "read online rows", "wrote online rows"]


def test_names_that_end_with_another_are_refused() -> None:
    with pytest.raises(ConfigError, match="none may end with another"):
        classroom.check_names(["ann", "joann"])
    with pytest.raises(ConfigError, match="FEAST_PROJECT='Ann' is invalid"):
        classroom.check_names(["Ann"])


def test_drop_removes_exactly_what_create_made(admin: Profile, learners: dict[str, Profile], tmp_path: Path) -> None:
    cli = subprocess.run([sys.executable, "-m", "course_lib", "classroom", "--profile", "enterprise", "--drop"],
                         env=admin.env(), capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and f"removed learners: {A}, {B}" in cli.stdout, cli.stdout + cli.stderr
    with psycopg.connect(admin.pg_conninfo(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname IN (%s, %s)", [A, B]).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname IN (%s, %s)", [A, B]).fetchone() == (0,)
    assert set(redis.Redis(**admin.redis_client_kwargs()).acl_users()) & {A, B} == set()
    assert classroom.created(admin) == []
