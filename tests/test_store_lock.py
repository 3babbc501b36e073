"""One writer per project (issue 19, `course_lib.store_lock`): `course data`, `course materialize`
and `course reset` all take the project's lock (a PostgreSQL advisory lock, or a file lock on
`local`), and a tuned run refuses to move the online store back to an older end unless forced."""
from __future__ import annotations

import fcntl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pandas as pd
import psycopg
import pytest
from support import PROFILE_PARAMS, isolated_profile

from course_lib import materialize, serving
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import Profile, load_store
from course_lib.datasets import synthetic
from course_lib.offline import read_offline
from course_lib.reset import reset_course
from course_lib.serving import MaterializeError, latest_interval
from course_lib.store_lock import LOCK_FILE, StoreBusyError, lock_key
from feature_repo.definitions import VIEWS

DATA = synthetic(seed=5, n_users=40, n_movies=25, n_events=800, days=20)


@contextmanager
def held_elsewhere(profile: Profile) -> Iterator[None]:
    """The project's lock, held the way another process would hold it (not through course_lib)."""
    if profile.name == "local":
        with open(profile.repo_dir / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield
        return
    with psycopg.connect(profile.pg_conninfo(profile.registry_database), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", [lock_key(profile.project)])
        yield


@pytest.fixture(scope="module", params=PROFILE_PARAMS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """A small project, written, applied and materialized."""
    profile = isolated_profile(request.param, tmp_path_factory.mktemp("lock"), project="course_test_lock")
    write_offline(build_feature_tables(DATA), profile)
    store = load_store(profile)
    serving.apply(store, profile)
    serving.materialize(store, profile, end=DATA.watch_events["event_timestamp"].max())
    return profile


def test_every_writing_command_waits_for_nobody_and_changes_nothing_while_the_lock_is_held(world: Profile) -> None:
    before = read_offline(world)
    store = load_store(world)
    intervals = {view: latest_interval(store, view) for view in VIEWS}
    with held_elsewhere(world):
        with pytest.raises(StoreBusyError, match="cannot write the offline tables: another command"):
            write_offline(build_feature_tables(synthetic(seed=6, n_users=10, n_movies=10, n_events=100)), world)
        with pytest.raises(StoreBusyError, match="cannot reset the project"):
            reset_course(world)
        with pytest.raises(StoreBusyError, match="cannot materialize"):
            serving.materialize(store, world, incremental=True)
        assert materialize.materialize_once(store, world).status == "locked"
    for view, table in read_offline(world).items():
        pd.testing.assert_frame_equal(table, before[view])
    store.refresh_registry()
    assert {view: latest_interval(store, view) for view in VIEWS} == intervals
    write_offline(build_feature_tables(DATA), world)  # free again once the holder lets go


def test_the_lock_is_per_project(world: Profile, tmp_path) -> None:
    other = isolated_profile(world.name, tmp_path, project="course_test_lock_other")
    with held_elsewhere(world):
        write_offline(build_feature_tables(DATA), other)


@pytest.mark.parametrize("world", ["local"], indirect=True)
def test_the_cli_says_in_one_line_that_the_project_is_busy(world: Profile) -> None:
    with held_elsewhere(world):
        cli = subprocess.run([sys.executable, "-m", "course_lib", "data", "--profile", world.name,
                              "--users", "20", "--movies", "15", "--events", "300"],
                             env=world.env(), capture_output=True, text=True, timeout=300)
    assert cli.returncode != 0 and "Traceback" not in cli.stderr
    assert "another command (course data, materialize or reset) is writing project" in cli.stdout + cli.stderr


@pytest.mark.enterprise
@pytest.mark.parametrize("world", ["enterprise"], indirect=True)  # tuned = Redis with skip_dedup
def test_a_tuned_run_refuses_an_older_end_unless_forced(world: Profile) -> None:
    tuned = load_store(world, tuned=True)
    last = max(latest_interval(tuned, view)[1] for view in VIEWS)
    user = int(DATA.watch_events["user_id"].iloc[-1])
    online = serving.user_features(tuned, user).values
    with pytest.raises(MaterializeError, match="older than the last materialization end .* pass --force"):
        materialize.materialize_once(tuned, world, incremental=False, end=last - timedelta(days=5))
    assert serving.user_features(tuned, user).values == online, "the online store was not touched"
    forced = materialize.materialize_once(tuned, world, incremental=False, end=last - timedelta(days=5), force=True)
    assert forced.status == "ok"
    materialize.materialize_once(tuned, world, incremental=False, end=last)  # a newer end is always allowed
    assert serving.user_features(tuned, user).values == online
