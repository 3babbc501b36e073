"""The request path's model input: built without pandas, bit for bit the matrix training builds.

After materializing up to SERVE_AT, a training frame read at SERVE_AT (offline, point in time)
and the serving matrix read online must give the model the same input: exactly the same bits,
NaN where a value is missing or older than its view's TTL. On Redis the matrix comes from the
raw HMGET replies of one packed round trip, on SQLite from one query per view on Feast's tables;
on every store also from Feast's SDK rows.
"""
from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest
import redis
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from support import PROFILE_PARAMS, SERVE_AT, serving_sample

from course_lib import ranker
from course_lib.candidate_matrix import VIEW_COLUMNS, MatrixLayout, ViewBlock, _float, _int64
from course_lib.recommender import MovieTable
from course_lib.redis_format import HmgetCommands, redis_field, redis_key
from course_lib.redis_reader import CandidateRedisReader, RawRedisReader
from course_lib.serving import candidate_features, feature_refs, historical_features, materialize
from course_lib.sqlite_reader import SqliteReader
from feature_repo.definitions import MOVIE_VIEW, PAIR_VIEW, USER_VIEW


def bits(matrix: np.ndarray) -> np.ndarray:
    """A float64 matrix as its raw 64-bit patterns (NaN payloads included)."""
    return np.ascontiguousarray(matrix, dtype=np.float64).view(np.uint64)


@pytest.fixture(scope="module")
def layout() -> MatrixLayout:
    """Every feature the course serves, in the model's column order."""
    return MatrixLayout.of(ranker.FEATURES)


def served(ranker_dataset, ranker_stores, name: str):
    """The profile's store materialized up to SERVE_AT, the sample pairs, and the training matrix at SERVE_AT."""
    profile, store = ranker_stores(name)
    materialize(store, profile, end=SERVE_AT.to_pydatetime())
    pairs = serving_sample(ranker_dataset)
    offline = historical_features(store, pairs.assign(event_timestamp=SERVE_AT), feature_refs())
    offline = offline.sort_values(["user_id", "movie_id"], ignore_index=True)
    assert (offline[["user_id", "movie_id"]] == pairs).all().all()
    return profile, store, pairs, ranker.design_matrix(offline)[ranker.FEATURES].to_numpy()


@pytest.mark.parametrize("profile_name", PROFILE_PARAMS)
def test_serving_matrix_equals_the_training_matrix_bit_for_bit(ranker_dataset, ranker_stores, layout,
                                                                profile_name) -> None:
    profile, store, pairs, expected = served(ranker_dataset, ranker_stores, profile_name)
    got = np.empty_like(expected)
    for user, rows in pairs.groupby("user_id").indices.items():
        movies = pairs["movie_id"].to_numpy()[rows].tolist()
        online = candidate_features(store, int(user), movies)
        blocks = [ViewBlock.from_entities(VIEW_COLUMNS[view], [row[view] for row in online])
                  for view in (USER_VIEW, MOVIE_VIEW, PAIR_VIEW)]
        got[rows] = layout.matrix(blocks[0].take(np.array([0])), blocks[1], blocks[2], SERVE_AT.to_pydatetime())
    np.testing.assert_array_equal(bits(got), bits(expected))
    present = ~np.isnan(expected[:, ranker.FEATURES.index("watch_count")])
    assert present.sum() >= 10 and np.isnan(expected).any(), "sample too thin to show anything"
    # TTLs are applied: a day later every interaction is past its one-day TTL.
    later = layout.matrix(blocks[0].take(np.array([0])), blocks[1], blocks[2],
                          (SERVE_AT + pd.Timedelta(days=1, seconds=1)).to_pydatetime())
    pair_columns = [ranker.FEATURES.index(name) for name in VIEW_COLUMNS[PAIR_VIEW].names]
    assert np.isnan(later[:, pair_columns]).all()


@pytest.mark.enterprise
def test_raw_redis_matrix_equals_the_training_matrix_bit_for_bit(ranker_dataset, ranker_stores, layout) -> None:
    """The fast path: packed HMGETs, replies decoded straight into blocks, movies from the numeric near-cache."""
    profile, store, pairs, expected = served(ranker_dataset, ranker_stores, "enterprise")
    reader = CandidateRedisReader(store, profile)
    table = MovieTable(store, profile, RawRedisReader(store, profile).online_rows)
    table.load()  # the API's RegistryState loads it at start-up
    known = pairs["movie_id"].iloc[0]
    del table.snapshot[0][known]  # one candidate unknown to the near-cache: read in the same round trip
    got = np.empty_like(expected)

    async def read_all() -> None:
        for user, rows in pairs.groupby("user_id").indices.items():
            movie_ids = pairs["movie_id"].to_numpy()[rows].tolist()
            movies, unknown = table.candidates(movie_ids)
            user_reply, pair_replies, movie_replies = await reader.candidate_replies(
                int(user), movie_ids, [movie_ids[i] for i in unknown])
            movies.replace(unknown, ViewBlock.from_replies(VIEW_COLUMNS[MOVIE_VIEW], movie_replies))
            got[rows] = layout.matrix(ViewBlock.from_replies(VIEW_COLUMNS[USER_VIEW], [user_reply]), movies,
                                      ViewBlock.from_replies(VIEW_COLUMNS[PAIR_VIEW], pair_replies),
                                      SERVE_AT.to_pydatetime())
        await reader.aclose()

    asyncio.run(read_all())
    np.testing.assert_array_equal(bits(got), bits(expected))


@pytest.mark.parametrize("profile_name", ["local"])
def test_raw_sqlite_matrix_equals_the_training_matrix_bit_for_bit(ranker_dataset, ranker_stores, layout,
                                                                   profile_name) -> None:
    """The local fast path: one query per view on Feast's SQLite tables, rows shaped as Redis replies."""
    profile, store, pairs, expected = served(ranker_dataset, ranker_stores, profile_name)
    reader = SqliteReader(store)
    table = MovieTable(store, profile, reader.online_rows)
    table.load()
    known = pairs["movie_id"].iloc[0]
    del table.snapshot[0][known]  # one candidate unknown to the near-cache: read with the pairs
    got = np.empty_like(expected)
    for user, rows in pairs.groupby("user_id").indices.items():
        movie_ids = pairs["movie_id"].to_numpy()[rows].tolist()
        movies, unknown = table.candidates(movie_ids)
        user_reply, pair_replies, movie_replies = asyncio.run(
            reader.candidate_replies(int(user), movie_ids, [movie_ids[i] for i in unknown]))
        movies.replace(unknown, ViewBlock.from_replies(VIEW_COLUMNS[MOVIE_VIEW], movie_replies))
        got[rows] = layout.matrix(ViewBlock.from_replies(VIEW_COLUMNS[USER_VIEW], [user_reply]), movies,
                                  ViewBlock.from_replies(VIEW_COLUMNS[PAIR_VIEW], pair_replies),
                                  SERVE_AT.to_pydatetime())
    reader.close()
    np.testing.assert_array_equal(bits(got), bits(expected))


def test_a_model_reading_fewer_features_gets_only_those_columns(layout) -> None:
    """Columns follow the model's own feature list (a feature never filled is left out at training)."""
    features = [f for f in ranker.FEATURES if f not in ("watch_time_minutes", "favorite_genre_match")]
    small = MatrixLayout.of(features)
    assert small.match is None and len(small.features) == len(features)
    blocks = [ViewBlock.empty(VIEW_COLUMNS[view], rows) for view, rows in ((USER_VIEW, 1), (MOVIE_VIEW, 3),
                                                                          (PAIR_VIEW, 3))]
    assert small.matrix(*blocks, SERVE_AT.to_pydatetime()).shape == (3, len(features))
    with pytest.raises(ranker.RankerError, match="user_mood"):
        MatrixLayout.of([*features, "user_mood"])


def test_hmget_commands_are_byte_identical_to_redis_py() -> None:
    """The numpy-packed commands are what redis-py sends for the same HMGETs on Feast's keys."""
    connection = redis.Connection()
    for view, keys in ((PAIR_VIEW, {"user_id": [7, 2**62], "movie_id": [3, 1]}), (USER_VIEW, {"user_id": [5]})):
        fields = [redis_field(view, name) for name in VIEW_COLUMNS[view].names] + [f"_ts:{view}".encode()]
        rows = len(next(iter(keys.values())))
        expected = b"".join(b"".join(connection.pack_command(
            "HMGET", redis_key({k: v[i] for k, v in keys.items()}, "some_project"), *fields))
            for i in range(rows))
        assert HmgetCommands(view, "some_project").pack(keys, rows) == expected


@pytest.mark.parametrize("value", [0, 1, -1, 127, 128, 2**31, -(2**31), 2**63 - 1, -(2**63), 12_345_678_901])
def test_int64_values_decode_as_feast_decodes_them(value: int) -> None:
    raw = ValueProto(int64_val=value).SerializeToString()
    assert _int64(raw) == value
    assert _int64(ValueProto(double_val=2.5).SerializeToString()) == 2.5  # another encoding: Feast's own decoding


@pytest.mark.parametrize("value", [0.0, -0.0, 1.5, 3.7, 1e-40, float("inf")])
def test_float_values_decode_as_feast_decodes_them(value: float) -> None:
    raw = ValueProto(float_val=value).SerializeToString()
    assert _float(raw) == ValueProto.FromString(raw).float_val
