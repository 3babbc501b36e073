"""Bad input gets a clear error, and the stored offline tables stay exactly as they were."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from course_lib import adapter, datasets, offline
from course_lib.adapter import AdapterError, build_feature_tables, write_offline
from course_lib.config import Profile


@pytest.fixture(scope="module")
def dataset() -> datasets.Dataset:
    """A small valid dataset."""
    return datasets.synthetic(seed=11, n_users=60, n_movies=40, n_events=1500, days=20)


@pytest.fixture
def stored(profile: Profile, dataset):
    """Valid tables written to the profile, and a function that fingerprints what is stored."""
    write_offline(build_feature_tables(dataset), profile)
    return lambda: fingerprint(profile)


def fingerprint(profile: Profile) -> dict[str, str]:
    """A content hash of every stored offline table (and of the folder listing, locally)."""
    if profile.name == "local":
        folder = Path(profile.offline_location("user_profile_features")).parent
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
                if p.suffix != ".db"}
    with psycopg.connect(profile.pg_conninfo()) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
            (profile.offline_schema,))]
        return {t: conn.execute(f'SELECT count(*) || md5(string_agg(x::text, \',\' ORDER BY x::text)) '
                                f'FROM "{profile.offline_schema}"."{t}" x').fetchone()[0] for t in tables}


def with_events(ds: datasets.Dataset, events: pd.DataFrame) -> datasets.Dataset:
    """The dataset with replaced watch events."""
    return replace(ds, watch_events=events)


def bad_inputs(ds: datasets.Dataset) -> dict[str, tuple[datasets.Dataset, str]]:
    """Each broken variant of the dataset, with a phrase its error must contain."""
    ev = ds.watch_events
    ratings = ev["rating"].copy()
    ratings.iloc[3] = 7.0
    seconds = ev["watch_seconds"].copy()
    seconds.iloc[5] = -30.0
    return {
        "missing column": (with_events(ds, ev.drop(columns=["rating"])), "missing column 'rating'"),
        "mistyped column": (with_events(ds, ev.assign(rating=ev["rating"].astype(str))), "expected numbers"),
        "naive timestamps": (with_events(ds, ev.assign(event_timestamp=ev["event_timestamp"].dt.tz_localize(None))),
                             "timezone-naive"),
        "rating out of range": (with_events(ds, ev.assign(rating=ratings)), "outside 0.5..5.0"),
        "negative watch time": (with_events(ds, ev.assign(watch_seconds=seconds)), "negative watch times"),
        "duplicate events": (with_events(ds, pd.concat([ev, ev.iloc[[7]]], ignore_index=True)),
                             "duplicate events"),
        "unknown movie": (with_events(ds, ev.assign(movie_id=ev["movie_id"] + 10_000)), "missing from users/movies"),
    }


@pytest.mark.parametrize("case", ["missing column", "mistyped column", "naive timestamps", "rating out of range",
                                  "negative watch time", "duplicate events", "unknown movie"])
def test_bad_input_is_rejected_and_nothing_changes(case, dataset, stored, profile):
    """The error names the problem, and the stored tables are byte-for-byte unchanged."""
    before = stored()
    broken, phrase = bad_inputs(dataset)[case]
    with pytest.raises(AdapterError) as error:
        write_offline(build_feature_tables(broken), profile)
    assert phrase in str(error.value)
    assert "nothing was written" in str(error.value)
    assert stored() == before


def test_naive_timestamps_are_accepted_when_localized_explicitly(dataset):
    """assume_timezone='UTC' gives the same tables as tz-aware input."""
    ev = dataset.watch_events
    naive = with_events(dataset, ev.assign(event_timestamp=ev["event_timestamp"].dt.tz_localize(None)))
    naive = replace(naive, users=naive.users.assign(
        signup_timestamp=naive.users["signup_timestamp"].dt.tz_localize(None)))
    got = build_feature_tables(naive, assume_timezone="UTC")
    want = build_feature_tables(dataset)
    for view in want:
        pd.testing.assert_frame_equal(got[view], want[view])


def test_wrong_table_schema_is_refused(dataset, stored, profile):
    """write_offline refuses tables that do not match the feature views."""
    before = stored()
    tables = build_feature_tables(dataset)
    tables["user_profile_features"] = tables["user_profile_features"].drop(columns=["age"])
    with pytest.raises(AdapterError, match="user_profile_features: columns/dtypes"):
        write_offline(tables, profile)
    assert stored() == before


def test_repeated_entity_and_time_is_refused(dataset, stored, profile):
    """Two rows for one entity at one time are ambiguous in a point-in-time join: refused, nothing written."""
    before = stored()
    tables = build_feature_tables(dataset)
    movies = tables["movie_metadata_features"]
    tables["movie_metadata_features"] = pd.concat([movies, movies.iloc[[3]]], ignore_index=True)
    shared = r"movie_metadata_features: 2 rows share their \['movie_id', 'event_timestamp'\]"
    with pytest.raises(AdapterError, match=shared):
        write_offline(tables, profile)
    assert stored() == before


def test_failure_mid_write_leaves_old_tables(dataset, stored, profile, monkeypatch):
    """A crash after the first table leaves every table as it was (rename / transaction)."""
    before = stored()
    tables = build_feature_tables(replace(dataset, watch_events=dataset.watch_events.iloc[:500]))
    calls = {"n": 0}
    real_parquet, real_copy = pd.DataFrame.to_parquet, adapter.copy_rows

    def fail_second(real):
        def wrapped(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("disk full (simulated)")
            return real(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail_second(real_parquet))
    monkeypatch.setattr(adapter, "copy_rows", fail_second(real_copy))
    with pytest.raises(OSError, match="simulated"):
        write_offline(tables, profile)
    assert stored() == before


def test_written_tables_read_back_identically(dataset, profile):
    """What the offline store holds equals the built tables, value for value."""
    tables = build_feature_tables(dataset)
    write_offline(tables, profile)
    for view, got in offline.read_offline(profile).items():
        want = tables[view]
        got = adapter.conform(view, got.assign(event_timestamp=pd.to_datetime(got["event_timestamp"], utc=True)))
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6)
        assert np.all(got.columns == want.columns)
