"""A recommendation request's model input as one float64 matrix, built without pandas (2.7.3, 2.7.5).

`ranker.design_matrix` builds the model input from a DataFrame: right for training, where a
frame holds hundreds of thousands of rows, but at serving time its dozens of Series and
DataFrame constructions cost more than reading the features. Here each feature view's rows
become a `ViewBlock` (numbers in a float64 array, event times in microseconds, text apart),
read either from Feast's Redis replies directly or from `serving.EntityFeatures`, and
`model_matrix` writes the blocks into a preallocated matrix in the model's column order:
missing values are NaN, values older than their view's TTL at the serving moment are missing
(as `ranker.candidate_frame` drops them), and `favorite_genre_match` is derived as
`ranker.favorite_genre_match` derives it. `tests/test_candidate_matrix.py` checks the matrix
equals `design_matrix` of a training frame bit for bit.
"""
from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import cast

import numpy as np
from feast import ValueType
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.type_map import feast_value_type_to_python_type

from course_lib.messages import say
from course_lib.proto_values import VALUE_TAG, read_int64
from course_lib.ranker import FEATURES, RankerError
from course_lib.redis_format import event_seconds
from course_lib.redis_reader import Reply
from course_lib.serving import EntityFeatures
from feature_repo.definitions import MOVIE_VIEW, VIEWS
from feature_repo.names import TRACKED_GENRES

FAVORITE, MATCH = "favorite_genre", "favorite_genre_match"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)
FLOAT_TAG = VALUE_TAG[ValueType.FLOAT]


def micros(moment: datetime) -> int:
    """Microseconds since the epoch of a timezone-aware datetime, exactly."""
    return (moment - EPOCH) // MICROSECOND


# --- decoding Feast's Redis values ------------------------------------------------------------

def _proto_value(raw: bytes, value_type: ValueType) -> object:
    """A serialized ValueProto as Feast's online read returns it (None when unset)."""
    return feast_value_type_to_python_type(ValueProto.FromString(raw), value_type)


def _float(raw: bytes) -> object:
    """A FLOAT value: tag and four little-endian bytes, else Feast's own decoding."""
    if len(raw) == 5 and raw[0] == FLOAT_TAG:
        return struct.unpack_from("<f", raw, 1)[0]
    return _proto_value(raw, ValueType.FLOAT)


def _int64(raw: bytes) -> object:
    """An INT64 value: tag and a varint (negatives in ten bytes, two's complement), else Feast's decoding."""
    value = read_int64(raw)
    return _proto_value(raw, ValueType.INT64) if value is None else value


DECODERS: dict[ValueType, Callable[[bytes], object]] = {
    ValueType.FLOAT: _float, ValueType.INT64: _int64,
    ValueType.STRING: lambda raw: _proto_value(raw, ValueType.STRING),
}


# --- one feature view's rows ------------------------------------------------------------------

@dataclass(frozen=True)
class ViewColumns:
    """A feature view's features in Redis field order, split into numbers (block columns) and text."""

    view: str
    names: tuple[str, ...]
    types: tuple[ValueType, ...]
    numeric: tuple[int, ...]  # positions in `names` of the number features, in block column order
    float32: tuple[int, ...]  # block columns declared Float32: rounded to float32 as the training frame's dtype
    text: tuple[int, ...]  # positions in `names` of the text features
    ttl_us: int

    @classmethod
    def of(cls, view: str) -> ViewColumns:
        """The columns of one course feature view."""
        _, ttl, schema = VIEWS[view]
        types = tuple(f.dtype.to_value_type() for f in schema)
        numeric = tuple(i for i, t in enumerate(types) if t != ValueType.STRING)
        return cls(view=view, names=tuple(f.name for f in schema), types=types, numeric=numeric,
                   float32=tuple(j for j, i in enumerate(numeric) if types[i] == ValueType.FLOAT),
                   text=tuple(i for i, t in enumerate(types) if t == ValueType.STRING), ttl_us=ttl // MICROSECOND)

    def block_column(self, name: str) -> int:
        """The block column of a number feature."""
        return self.numeric.index(self.names.index(name))


VIEW_COLUMNS = {view: ViewColumns.of(view) for view in VIEWS}


@dataclass(frozen=True)
class ViewBlock:
    """Rows of one feature view as served: values before TTLs, event times, and whether each row was found."""

    columns: ViewColumns
    values: np.ndarray  # float64 [rows, number features]; NaN where the online store holds no value
    stamps: np.ndarray  # int64 [rows]: event time in microseconds (0 where not found)
    found: np.ndarray  # bool [rows]
    text: dict[str, list[str | None]] = field(default_factory=dict)  # text feature -> value per row

    def __len__(self) -> int:
        """Number of rows."""
        return len(self.found)

    @classmethod
    def empty(cls, columns: ViewColumns, rows: int) -> ViewBlock:
        """`rows` rows, none found."""
        return cls(columns=columns, values=np.full((rows, len(columns.numeric)), np.nan),
                   stamps=np.zeros(rows, dtype=np.int64), found=np.zeros(rows, dtype=bool),
                   text={columns.names[i]: [None] * rows for i in columns.text})

    @classmethod
    def from_replies(cls, columns: ViewColumns, replies: Sequence[Reply]) -> ViewBlock:
        """Rows from Feast's Redis hashes: one HMGET reply per row (the view's fields, then `_ts:<view>`)."""
        block = cls.empty(columns, len(replies))
        decoders = [DECODERS[columns.types[i]] for i in columns.numeric]
        for row, reply in enumerate(replies):
            seconds = event_seconds(reply[-1])
            if seconds is None:  # most candidate pairs were never watched
                continue
            block.found[row], block.stamps[row] = True, seconds * 1_000_000
            for column, (position, decode) in enumerate(zip(columns.numeric, decoders)):
                raw = reply[position]
                if raw:
                    value = decode(raw)
                    block.values[row, column] = np.nan if value is None else value
            for position in columns.text:
                raw = reply[position]
                text = _proto_value(raw, ValueType.STRING) if raw else None
                block.text[columns.names[position]][row] = cast("str | None", text)
        block.round_float32()
        return block

    @classmethod
    def from_entities(cls, columns: ViewColumns, rows: Sequence[EntityFeatures]) -> ViewBlock:
        """Rows from `serving.online_rows` (any online store)."""
        block = cls.empty(columns, len(rows))
        for row, found in enumerate(rows):
            stamp = next((s for s in found.event_timestamps.values() if s is not None), None)
            if stamp is None:
                continue
            block.found[row], block.stamps[row] = True, micros(stamp)
            for column, position in enumerate(columns.numeric):
                value = found.values[columns.names[position]]
                block.values[row, column] = np.nan if value is None else value
            for position in columns.text:
                name = columns.names[position]
                block.text[name][row] = found.values[name]
        block.round_float32()
        return block

    def round_float32(self) -> None:
        """Float32 features hold float32 values, as the training frame's declared dtype holds them."""
        for column in self.columns.float32:
            self.values[:, column] = self.values[:, column].astype(np.float32)

    def take(self, rows: np.ndarray) -> ViewBlock:
        """The given rows (an index array), in that order."""
        return ViewBlock(columns=self.columns, values=self.values[rows], stamps=self.stamps[rows],
                         found=self.found[rows], text={k: [v[i] for i in rows] for k, v in self.text.items()})

    def replace(self, rows: Sequence[int], other: ViewBlock) -> None:
        """Overwrite the given rows with `other`'s rows, in order."""
        self.values[rows], self.stamps[rows], self.found[rows] = other.values, other.stamps, other.found
        for name, values in other.text.items():
            for row, value in zip(rows, values):
                self.text[name][row] = value

    def current(self, as_of_us: int) -> np.ndarray:
        """Whether each row's values count at `as_of_us`: found, and written at most the view's TTL before it."""
        return self.found & (as_of_us - self.stamps <= self.columns.ttl_us)


# --- the model input --------------------------------------------------------------------------

@dataclass(frozen=True)
class MatrixLayout:
    """Where each view's number features go in the model's columns, and how the derived feature is built."""

    features: tuple[str, ...]
    sources: dict[str, np.ndarray]  # view -> block columns the model reads
    targets: dict[str, np.ndarray]  # view -> their model columns
    match: int | None  # model column of favorite_genre_match, None when the model does not read it
    genres: dict[str, int]  # tracked genre -> block column of genre_<genre> in the movie view

    @classmethod
    def of(cls, features: Sequence[str]) -> MatrixLayout:
        """The layout for a model reading `features` (a subset of `ranker.FEATURES`)."""
        unknown = sorted(set(features) - set(FEATURES))
        if unknown:
            raise RankerError(say("candidate_matrix.unknown_features", unknown=unknown))
        sources: dict[str, np.ndarray] = {}
        targets: dict[str, np.ndarray] = {}
        for view, columns in VIEW_COLUMNS.items():
            used = [(j, features.index(columns.names[i])) for j, i in enumerate(columns.numeric)
                    if columns.names[i] in features]
            sources[view] = np.array([j for j, _ in used], dtype=np.intp)
            targets[view] = np.array([t for _, t in used], dtype=np.intp)
        movies = VIEW_COLUMNS[MOVIE_VIEW]
        return cls(features=tuple(features), sources=sources, targets=targets,
                   match=features.index(MATCH) if MATCH in features else None,
                   genres={genre: movies.block_column(f"genre_{genre}") for genre in TRACKED_GENRES})

    def matrix(self, user: ViewBlock, movies: ViewBlock, pairs: ViewBlock, as_of: datetime) -> np.ndarray:
        """The model input for one user (one row) and each candidate (a movie row and a pair row), as of `as_of`."""
        as_of_us = micros(as_of)
        out = np.empty((len(movies), len(self.features)))
        current = {}
        for block in (user, movies, pairs):
            view = block.columns.view
            current[view] = np.where(block.current(as_of_us)[:, None], block.values, np.nan)
            out[:, self.targets[view]] = current[view][:, self.sources[view]]
        if self.match is not None:
            favorite = user.text[FAVORITE][0] if user.current(as_of_us)[0] else None
            genre = favorite.lower() if isinstance(favorite, str) else None
            out[:, self.match] = current[MOVIE_VIEW][:, self.genres[genre]] if genre in self.genres else np.nan
        return out
