"""On-demand feature views: Feast computes favorite_genre_match at training and at serving, and the
request path's own matrix holds exactly the value Feast's training frame holds.

The training side is Feast's `get_historical_features` with the ranker service (the on-demand view
included); the serving side is Feast's `get_online_features` with the same service and the course's
fast matrix (`candidate_matrix`), which derives the match without pandas.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support import PROFILE_PARAMS, SERVE_AT, serving_sample

from course_lib import ranker
from course_lib.candidate_matrix import VIEW_COLUMNS, MatrixLayout, ViewBlock
from course_lib.serving import candidate_features, feature_refs, historical_features, materialize, with_on_demand
from feature_repo.definitions import (
    MOVIE_VIEW,
    PAIR_VIEW,
    USER_VIEW,
    VIEWS,
    genre_match_udf,
    hours_since_last_watch_udf,
)
from feature_repo.names import (
    GENRE_MATCH,
    GENRE_MATCH_VIEW,
    HOURS_SINCE_LAST_WATCH,
    RANKER_SERVICE,
    REQUEST_TIME,
    TRACKED_GENRES,
)

RANKER_REFS = [*feature_refs(), f"{GENRE_MATCH_VIEW}:{GENRE_MATCH}"]  # the ranker service's references


def served(ranker_dataset, ranker_stores, name: str):
    """The store materialized up to SERVE_AT, the sample pairs, and Feast's training frame at SERVE_AT
    (the ranker service's references: its views and the on-demand view)."""
    profile, store = ranker_stores(name)
    materialize(store, profile, end=SERVE_AT.to_pydatetime())
    pairs = serving_sample(ranker_dataset)
    offline = historical_features(store, pairs.assign(event_timestamp=SERVE_AT), RANKER_REFS)
    return store, pairs, offline.sort_values(["user_id", "movie_id"], ignore_index=True)


def test_the_ranker_service_holds_every_model_input() -> None:
    """The service the ranker trains on: every view feature and the on-demand view."""
    from course_lib.config import resolve_profile
    from feature_repo.definitions import build_realtime

    service = next(s for s in build_realtime(resolve_profile("local")).feature_services if s.name == RANKER_SERVICE)
    refs = {f"{p.name}:{f.name}" for p in service.feature_view_projections for f in p.features}
    assert refs == set(RANKER_REFS)
    assert set(ranker.FEATURES) <= {ref.split(":")[1] for ref in refs}


@pytest.mark.parametrize("profile_name", PROFILE_PARAMS)
def test_training_and_serving_compute_the_on_demand_view_identically(ranker_dataset, ranker_stores,
                                                                      profile_name) -> None:
    store, pairs, offline = served(ranker_dataset, ranker_stores, profile_name)
    expected = offline[GENRE_MATCH].to_numpy(dtype="float64", na_value=np.nan)
    known = ~np.isnan(expected)
    assert known.sum() >= 20 and (expected[known] == 1).any() and (expected[known] == 0).any() and (~known).any()

    # The course's own training frame (tuned join + Feast's transformation) holds the same column.
    joined = historical_features(store, pairs.assign(event_timestamp=SERVE_AT), feature_refs())
    tuned = with_on_demand(store, joined.sort_values(["user_id", "movie_id"], ignore_index=True), [GENRE_MATCH_VIEW])
    np.testing.assert_array_equal(tuned[GENRE_MATCH].to_numpy(dtype="float64", na_value=np.nan), expected)

    # The request path's matrix, built from online rows without pandas, bit for bit.
    layout = MatrixLayout.of(ranker.FEATURES)
    column = ranker.FEATURES.index(GENRE_MATCH)
    got = np.empty(len(pairs))
    for user, rows in pairs.groupby("user_id").indices.items():
        online = candidate_features(store, int(user), pairs["movie_id"].to_numpy()[rows].tolist())
        blocks = [ViewBlock.from_entities(VIEW_COLUMNS[view], [row[view] for row in online])
                  for view in (USER_VIEW, MOVIE_VIEW, PAIR_VIEW)]
        got[rows] = layout.matrix(blocks[0].take(np.array([0])), blocks[1], blocks[2],
                                  SERVE_AT.to_pydatetime())[:, column]
    np.testing.assert_array_equal(got.view(np.uint64), expected.view(np.uint64))

    # Feast's online read of the same service computes it too: equal wherever the user's row is
    # inside its TTL (online reads ignore TTLs; training and the matrix apply them).
    response = store.get_online_features(features=RANKER_REFS, entity_rows=pairs.to_dict("records")).to_df()
    online = response[GENRE_MATCH].to_numpy(dtype="float64", na_value=np.nan)
    fresh = offline["favorite_genre"].notna().to_numpy()
    np.testing.assert_array_equal(online[fresh], expected[fresh])
    assert fresh.sum() >= 20


def test_the_fallback_for_frames_without_the_view_is_feast_s_own_function() -> None:
    """`ranker.favorite_genre_match` applies the view's function: NaN for unknown, flags otherwise."""
    frame = pd.DataFrame({"favorite_genre": pd.array(["Drama", "Sci-Fi", None, "comedy"], dtype="string"),
                          **{f"genre_{g}": pd.array([1, 1, 1, None], dtype="Int64")
                             for g in ("action", "comedy", "drama", "horror", "romance")}})
    got = ranker.favorite_genre_match(frame).to_numpy()
    np.testing.assert_array_equal(got, [1.0, np.nan, np.nan, np.nan])
    assert genre_match_udf({"favorite_genre": ["Horror"], **{f"genre_{g}": [0] for g in
                                                              ("action", "comedy", "drama", "horror", "romance")}}) \
        == {GENRE_MATCH: [0.0]}
    assert len(VIEWS) == 3


def test_the_functions_constants_match_the_names() -> None:
    """Feast runs the functions from their source text, so they spell their constants inline."""
    assert list(genre_match_udf({"favorite_genre": [], **{f"genre_{g}": [] for g in TRACKED_GENRES}})) == [GENRE_MATCH]
    for genre in TRACKED_GENRES:
        flags = {f"genre_{g}": [int(g == genre)] for g in TRACKED_GENRES}
        assert genre_match_udf({"favorite_genre": [genre.title()], **flags}) == {GENRE_MATCH: [1.0]}
    hours = hours_since_last_watch_udf({"last_watch_us": [0, None], REQUEST_TIME: [7_200_000_000, 1]})
    assert list(hours) == [HOURS_SINCE_LAST_WATCH] and hours[HOURS_SINCE_LAST_WATCH][0] == 2.0
    assert np.isnan(hours[HOURS_SINCE_LAST_WATCH][1])
