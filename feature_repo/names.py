"""Names of the course's Feast objects, written once and importable without Feast.

`course doctor` reads them before it knows that Feast imports at all; `definitions` builds the
objects under these names.
"""
from __future__ import annotations

TIMESTAMP_FIELD = "event_timestamp"
USER_VIEW, MOVIE_VIEW, PAIR_VIEW = "user_profile_features", "movie_metadata_features", "user_movie_interaction_features"
FEATURE_VIEWS: tuple[str, ...] = (USER_VIEW, MOVIE_VIEW, PAIR_VIEW)
FEATURE_SERVICE = "movie_recommendation_service"
