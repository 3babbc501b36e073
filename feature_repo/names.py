"""Names of the course's Feast objects, written once and importable without Feast.

`course doctor` reads them before it knows that Feast imports at all; `definitions` builds the
objects under these names.
"""
from __future__ import annotations

TIMESTAMP_FIELD = "event_timestamp"
USER_VIEW, MOVIE_VIEW, PAIR_VIEW = "user_profile_features", "movie_metadata_features", "user_movie_interaction_features"
FEATURE_VIEWS: tuple[str, ...] = (USER_VIEW, MOVIE_VIEW, PAIR_VIEW)
FEATURE_SERVICE = "movie_recommendation_service"
TRACKED_GENRES = ("action", "comedy", "drama", "horror", "romance")  # the movie view's genre_<name> flags

# Real time (notebook 08): push sources of the two views watch events change, the course's own
# aggregate state behind them, and the on-demand views computed by Feast at read time.
PUSH_SOURCES = {USER_VIEW: f"{USER_VIEW}_push", PAIR_VIEW: f"{PAIR_VIEW}_push"}
USER_STATE_VIEW, PAIR_STATE_VIEW = "user_event_state", "user_movie_event_state"
STATE_PUSH_SOURCES = {USER_STATE_VIEW: f"{USER_STATE_VIEW}_push", PAIR_STATE_VIEW: f"{PAIR_STATE_VIEW}_push"}
GENRE_MATCH_VIEW, GENRE_MATCH = "genre_match_features", "favorite_genre_match"
RECENCY_VIEW, HOURS_SINCE_LAST_WATCH = "watch_recency_features", "hours_since_last_watch"
REQUEST_SOURCE, REQUEST_TIME = "recommendation_request", "request_time_us"  # request time, microseconds since epoch
RANKER_SERVICE = "movie_ranker_service"  # every view feature the ranker reads, with the genre match
REALTIME_SERVICE = "movie_ranker_realtime"  # the ranker service plus the request-time recency
