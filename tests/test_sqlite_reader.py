"""`sqlite_reader.SqliteReader` returns exactly what Feast's SDK returns on a real materialized SQLite store.

Differential: every comparison is with `serving.online_rows` (Feast's `get_online_features`) on
the same store and rows, and the Feast internals behind `course_lib.compat` (table name, event time
decoding) are checked against what Feast itself stores and reports.
"""
from __future__ import annotations

import functools
import shutil
import sqlite3
from contextlib import closing
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import cast

import pytest
from feast import FeatureStore
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from support import isolated_profile

from course_lib import compat, datasets
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import ConfigError, Profile, load_store
from course_lib.reset import reset_online
from course_lib.serving import apply, materialize, online_rows
from course_lib.sqlite_reader import SqliteReader, entity_keys
from feature_repo.definitions import MOVIE_VIEW, TIMESTAMP_FIELD, USER_VIEW, VIEWS

PROJECT = "course_test_sqlite_reader"
MISSING = 987_654_321


@functools.cache
def dataset() -> datasets.Dataset:
    """A small log: most (user, movie) pairs were never watched."""
    return datasets.synthetic(seed=8, n_users=40, n_movies=25, n_events=500, days=20)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory):
    """A local-profile store in its own project, materialized over the whole log."""
    profile = isolated_profile("local", tmp_path_factory.mktemp("sqlite-reader"), project=PROJECT)
    write_offline(build_feature_tables(dataset()), profile)
    store = load_store(profile)
    apply(store, profile)
    reset_online(store, profile)
    materialize(store, profile, end=dataset().watch_events[TIMESTAMP_FIELD].max().to_pydatetime())
    return profile, store


def users() -> list[int]:
    return [int(u) for u in dataset().users["user_id"]]


def movies() -> list[int]:
    return [int(m) for m in dataset().movies["movie_id"]]


def test_every_entity_and_pair_reads_as_the_sdk_reads_it(local) -> None:
    _, store = local
    reader = SqliteReader(store)
    rows = [{"user_id": u, "movie_id": m} for u in [*users()[:12], MISSING] for m in [*movies(), MISSING]]
    rows += rows[:7]  # repeated entities
    got, expected = reader.online_rows(list(VIEWS), rows), online_rows(store, list(VIEWS), rows)
    assert got == expected
    statuses = [row[view].status for row in expected for view in VIEWS]
    assert "found" in statuses and "not_found" in statuses, "the sample must hold both"
    for view, entity_rows in ((USER_VIEW, [{"user_id": u} for u in [*users(), MISSING]]),
                              (MOVIE_VIEW, [{"movie_id": m} for m in [MISSING, *movies()]])):
        assert reader.online_rows([view], entity_rows) == online_rows(store, [view], entity_rows)


def test_partial_and_epoch_rows_read_as_the_sdk_reads_them(local, tmp_path) -> None:
    """A row missing a feature, and a row whose event time is the epoch (the SDK says not found)."""
    profile, _ = local
    own = isolated_profile("local", tmp_path, project=PROJECT)
    shutil.copytree(profile.data_dir, own.data_dir)  # registry and online store: a copy to change
    own_store = load_store(own)
    table = compat.sqlite_table(PROJECT, USER_VIEW)
    first, second = users()[:2]
    with sqlite3.connect(compat.sqlite_path(own_store)) as db:
        assert db.execute(f'DELETE FROM "{table}" WHERE entity_key = ? AND feature_name = ?',
                          [key({"user_id": first}), "age"]).rowcount == 1
        assert db.execute(f'UPDATE "{table}" SET event_ts = 0 WHERE entity_key = ?',
                          [key({"user_id": second})]).rowcount == len(VIEWS[USER_VIEW][2])
    rows = [{"user_id": first}, {"user_id": second}]
    expected = online_rows(own_store, [USER_VIEW], rows)
    assert SqliteReader(own_store).online_rows([USER_VIEW], rows) == expected
    assert expected[0][USER_VIEW].event_timestamps["age"] is None and expected[1][USER_VIEW].status == "not_found"


def key(row: dict[str, int]) -> bytes:
    """Feast's own serialized entity key."""
    names = sorted(row)
    return serialize_entity_key(EntityKeyProto(join_keys=names, entity_values=[ValueProto(int64_val=row[n])
                                                                               for n in names]), 3)


def test_compat_names_feasts_table_and_decodes_its_event_times(local) -> None:
    _, store = local
    user = users()[0]
    with sqlite3.connect(compat.sqlite_path(store)) as db:
        stored = db.execute(f'SELECT event_ts FROM "{compat.sqlite_table(PROJECT, USER_VIEW)}" WHERE entity_key = ?',
                            [key({"user_id": user})]).fetchall()
    assert stored, "Feast's table name and key bytes"
    expected = online_rows(store, [USER_VIEW], [{"user_id": user}])[0][USER_VIEW].event_timestamps["age"]
    assert datetime.fromtimestamp(compat.sqlite_event_seconds(stored[0][0]), timezone.utc) == expected


def test_a_write_in_progress_never_blocks_a_read(local) -> None:
    """The reader switches the file to WAL: an open write transaction (a materialization) leaves reads answering."""
    _, store = local
    reader = SqliteReader(store)
    assert reader.wal
    rows = [{"user_id": users()[0], "movie_id": movies()[0]}]
    with closing(sqlite3.connect(compat.sqlite_path(store), isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute(f'UPDATE "{compat.sqlite_table(PROJECT, USER_VIEW)}" SET event_ts = 0')
        assert reader.online_rows(list(VIEWS), rows) == online_rows(store, list(VIEWS), rows)
        assert reader.online_rows([USER_VIEW], rows)[0][USER_VIEW].status == "found"  # the committed rows
        writer.execute("ROLLBACK")
    reader.close()


def test_a_file_locked_by_a_writer_is_an_operational_error(local, tmp_path) -> None:
    """A connection holding the file exclusively: no WAL switch, and a read fails (the API's 503) instead of hanging."""
    profile, _ = local
    own = isolated_profile("local", tmp_path, project=PROJECT)
    shutil.copytree(profile.data_dir, own.data_dir)
    own_store = load_store(own)
    with closing(sqlite3.connect(compat.sqlite_path(own_store), isolation_level=None)) as writer:
        writer.execute("PRAGMA journal_mode = DELETE")
        writer.execute("PRAGMA locking_mode = EXCLUSIVE")
        writer.execute("BEGIN EXCLUSIVE")
        writer.execute(f'UPDATE "{compat.sqlite_table(PROJECT, USER_VIEW)}" SET event_ts = event_ts')
        reader = SqliteReader(own_store)
        assert not reader.wal
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            reader.online_rows([USER_VIEW], [{"user_id": users()[0]}])
        writer.execute("ROLLBACK")
    reader.close()


def test_only_the_sqlite_online_store_is_read_raw() -> None:
    redis_store = SimpleNamespace(config=SimpleNamespace(online_store=SimpleNamespace(type="redis")))
    with pytest.raises(ConfigError, match="SQLite online store"):
        SqliteReader(cast(FeatureStore, redis_store))


def test_a_missing_database_file_is_an_operational_error_not_a_new_file(tmp_path) -> None:
    profile: Profile = isolated_profile("local", tmp_path, project=PROJECT)
    store = load_store(profile)
    reader = SqliteReader(store)
    with pytest.raises(sqlite3.OperationalError):
        reader.online_rows([USER_VIEW], [{"user_id": 1}])
    assert not compat.sqlite_path(store).exists()


def test_entity_keys_are_feasts_serialized_keys() -> None:
    """Join keys sorted by name (movie_id before user_id), INT64 values of any size, as Feast serializes them."""
    rows = [{"user_id": 1, "movie_id": 2}, {"user_id": 2**40 + 7, "movie_id": 123_456_789},
            {"user_id": -3, "movie_id": 0}]
    for names in (["user_id", "movie_id"], ["user_id"], ["movie_id"]):
        columns = {n: [row[n] for row in rows] for n in names}
        assert entity_keys(names, columns, len(rows)) == [key({n: row[n] for n in names}) for row in rows]


def iso_adapters(monkeypatch: pytest.MonkeyPatch) -> None:
    """What `import nbformat.sign` (Jupyter's server imports it) does to the whole process."""
    monkeypatch.setitem(sqlite3.adapters, (datetime, sqlite3.PrepareProtocol), lambda value: value.isoformat())


def stored_event_times(store: FeatureStore) -> set[type]:
    """The Python types of every stored `event_ts` of the user view."""
    with closing(sqlite3.connect(compat.sqlite_path(store))) as db:
        return {type(raw) for (raw,) in db.execute(f'SELECT event_ts FROM "{compat.sqlite_table(PROJECT, USER_VIEW)}"')}


@pytest.mark.parametrize("pinned", [True, False], ids=["course", "without-the-pin"])
def test_feasts_event_times_survive_a_package_that_replaces_sqlites_adapters(local, tmp_path, monkeypatch,
                                                                            pinned: bool) -> None:
    """Another package's datetime adapter would make Feast write event times it cannot read back."""
    profile, _ = local
    own = isolated_profile("local", tmp_path, project=PROJECT)
    shutil.copytree(profile.data_dir, own.data_dir)
    own_store = load_store(own)
    reset_online(own_store, own)
    iso_adapters(monkeypatch)
    if not pinned:
        monkeypatch.setattr(compat, "pin_sqlite_timestamps", lambda: None)
    materialize(own_store, own, end=dataset().watch_events[TIMESTAMP_FIELD].max().to_pydatetime())
    if not pinned:  # the failure the pin prevents: ISO text that Feast's own converter cannot parse
        assert stored_event_times(own_store) == {str}
        with pytest.raises(ValueError, match="invalid literal for int"):
            own_store.get_online_features(features=[f"{USER_VIEW}:age"], entity_rows=[{"user_id": users()[0]}])
        return
    assert stored_event_times(own_store) == {int}
    rows = [{"user_id": u} for u in users()]
    assert SqliteReader(own_store).online_rows([USER_VIEW], rows) == online_rows(own_store, [USER_VIEW], rows)
    assert all(row[USER_VIEW].status == "found" for row in online_rows(own_store, [USER_VIEW], rows))
