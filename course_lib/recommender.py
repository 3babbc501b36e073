"""The recommendation request path of the course API (2.7.3), made lean (2.7.5).

One `POST /recommendations` does, in order:
1. one Redis round trip (`redis_reader.CandidateRedisReader`): the user's and every (user,
   candidate) pair's hash, as HMGET commands packed with numpy, plus any candidate the movie
   near-cache does not hold; on SQLite (`sqlite_reader.SqliteReader`) one indexed query per view
   on Feast's tables, on the event loop, its rows shaped as those replies; on other online
   stores (Redis Cluster), the Feast SDK in a worker thread;
2. the replies straight into `candidate_matrix.ViewBlock`s; movies come from `MovieTable`, a
   numeric copy of `caches.MovieNearCache`;
3. `MatrixLayout.matrix`: the model input, TTLs applied as of the newest materialization end;
4. the compiled trees (`course_lib.scoring`), scores identical to scikit-learn's;
5. the top k, encoded once with orjson into the body `api.RecommendationResponse` documents.

Nothing on that path reads the registry or PostgreSQL: the movie table and the serving moment
come from `registry_state.RegistryState`, which one background thread keeps current, so a
slow or unreachable registry never delays or fails a request. Every object here is per process:
with several uvicorn workers, each opens its own connections in its own lifespan.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import orjson
from feast import FeatureStore

from course_lib.caches import MovieNearCache
from course_lib.candidate_matrix import VIEW_COLUMNS, MatrixLayout, ViewBlock
from course_lib.config import Profile
from course_lib.redis_reader import CandidateRedisReader
from course_lib.scoring import Scorer
from course_lib.serving import EntityFeatures, Fetch
from course_lib.sqlite_reader import SqliteReader
from feature_repo.definitions import MOVIE_VIEW, PAIR_VIEW, USER_VIEW

# --- the movie near-cache as numbers ------------------------------------------------------------

class MovieTable(MovieNearCache):
    """`MovieNearCache` that also keeps every movie as one `ViewBlock`, rebuilt on each (re)load.

    Empty until its owner (`RegistryState`) calls `load()`: candidates not held are read from the online store.
    """

    def __init__(self, store: FeatureStore, profile: Profile, fetch: Fetch) -> None:
        self.snapshot: tuple[dict[int, int], ViewBlock] = ({}, ViewBlock.empty(VIEW_COLUMNS[MOVIE_VIEW], 0))
        super().__init__(store, profile, fetch=fetch, check_every_s=None)

    def load(self) -> int:
        """Reload every movie, then swap in the new index and block (readers see the old or the new pair)."""
        count = super().load()
        rows = self.rows
        self.snapshot = ({movie: i for i, movie in enumerate(rows)},
                         ViewBlock.from_entities(VIEW_COLUMNS[MOVIE_VIEW], list(rows.values())))
        return count

    def candidates(self, movie_ids: Sequence[int]) -> tuple[ViewBlock, list[int]]:
        """The candidates' rows (unknown ones left not found) and the positions of the unknown ones."""
        index, block = self.snapshot
        positions = np.array([index.get(m, -1) for m in movie_ids], dtype=np.intp)
        unknown = np.flatnonzero(positions < 0).tolist()
        rows = block.take(np.maximum(positions, 0)) if len(block) else ViewBlock.empty(block.columns, len(movie_ids))
        if unknown and len(block):
            rows.replace(unknown, ViewBlock.empty(block.columns, len(unknown)))
        return rows, unknown


# --- the request ----------------------------------------------------------------------------------

def ranked(movie_ids: Sequence[int], scores: np.ndarray, k: int) -> list[int]:
    """Positions of the top k scores, highest first, ties broken by the smaller movie_id."""
    order = np.lexsort((np.asarray(movie_ids), -scores))
    return [int(i) for i in order[:k]]


@dataclass(frozen=True)
class Recommendations:
    """One request's result: statuses, the model input and scores, the top positions and the timings."""

    user_id: int
    movie_ids: Sequence[int]
    user_found: bool
    movie_found: np.ndarray
    features: tuple[str, ...]
    inputs: np.ndarray
    scores: np.ndarray
    top: list[int]
    as_of: datetime
    retrieval_ms: float
    scoring_ms: float

    def body(self, model: orjson.Fragment, request_id: str) -> bytes:
        """The JSON body of `api.RecommendationResponse` (missing inputs are NaN, which orjson writes as null)."""
        status, found, scores = ("not_found", "found"), self.movie_found.tolist(), self.scores.tolist()
        recommendations = [{"movie_id": self.movie_ids[i], "score": scores[i], "movie_status": status[found[i]],
                            "features_used": dict(zip(self.features, row))}
                           for i, row in zip(self.top, self.inputs[self.top].tolist())]
        return orjson.dumps({"request_id": request_id, "user_id": self.user_id, "user_status": status[self.user_found],
                             "recommendations": recommendations, "features_as_of": self.as_of,
                             "feature_retrieval_ms": self.retrieval_ms, "scoring_ms": self.scoring_ms,
                             "model": model}, option=orjson.OPT_UTC_Z)


class Recommender:
    """Reads, scores and ranks candidates for one process.

    `movies` and `serving_moment` are kept current by the API's `registry_state.RegistryState`.
    """

    def __init__(self, movies: MovieTable, serving_moment: Callable[[], datetime], features: Sequence[str],
                 scorer: Scorer, fetch: Fetch, reader: CandidateRedisReader | SqliteReader | None) -> None:
        self._movies, self._moment, self._fetch, self._reader = movies, serving_moment, fetch, reader
        self._layout = MatrixLayout.of(features)
        self._score = scorer

    @property
    def movies(self) -> MovieTable:
        """The movie near-cache the recommendations read."""
        return self._movies

    async def aclose(self) -> None:
        """Close the recommendation reads' connections."""
        if self._reader is not None:
            await self._reader.aclose()

    def _sdk_rows(self, user_id: int, movie_ids: Sequence[int], unknown: list[int]
                  ) -> tuple[list[dict[str, EntityFeatures]], list[EntityFeatures]]:
        """User and pair rows through `fetch`, and the unknown movies' rows (blocking: a worker thread)."""
        rows = self._fetch([USER_VIEW, PAIR_VIEW], [{"user_id": user_id, "movie_id": m} for m in movie_ids])
        return rows, self._movies.lookup(unknown) if unknown else []

    async def read(self, user_id: int, movie_ids: Sequence[int]) -> tuple[ViewBlock, ViewBlock, ViewBlock]:
        """The user's, the candidates' movie and the pairs' rows: one Redis round trip, or one SQLite query per view."""
        movies, unknown = self._movies.candidates(movie_ids)
        unknown_ids = [movie_ids[i] for i in unknown]
        if self._reader is not None:
            user_reply, pair_replies, movie_replies = await self._reader.candidate_replies(user_id, movie_ids,
                                                                                           unknown_ids)
            user = ViewBlock.from_replies(VIEW_COLUMNS[USER_VIEW], [user_reply])
            pairs = ViewBlock.from_replies(VIEW_COLUMNS[PAIR_VIEW], pair_replies)
            extra = ViewBlock.from_replies(VIEW_COLUMNS[MOVIE_VIEW], movie_replies)
        else:
            rows, movie_rows = await asyncio.to_thread(self._sdk_rows, user_id, movie_ids, unknown_ids)
            user = ViewBlock.from_entities(VIEW_COLUMNS[USER_VIEW], [rows[0][USER_VIEW]])
            pairs = ViewBlock.from_entities(VIEW_COLUMNS[PAIR_VIEW], [row[PAIR_VIEW] for row in rows])
            extra = ViewBlock.from_entities(VIEW_COLUMNS[MOVIE_VIEW], movie_rows)
        if unknown:
            movies.replace(unknown, extra)
        return user, movies, pairs

    async def recommend(self, user_id: int, movie_ids: Sequence[int], k: int) -> Recommendations:
        """Read every candidate's features, score them, and keep the top k."""
        start = time.perf_counter()
        user, movies, pairs = await self.read(user_id, movie_ids)
        retrieval_ms = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        as_of = self._moment()  # TTLs applied as in training
        inputs = self._layout.matrix(user, movies, pairs, as_of)
        scores = self._score(inputs)
        scoring_ms = (time.perf_counter() - start) * 1000
        return Recommendations(user_id=user_id, movie_ids=movie_ids, user_found=bool(user.found[0]),
                               movie_found=movies.found, features=self._layout.features, inputs=inputs,
                               scores=scores, top=ranked(movie_ids, scores, k), as_of=as_of,
                               retrieval_ms=retrieval_ms, scoring_ms=scoring_ms)
