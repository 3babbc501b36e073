"""Automatic checks for the notebook exercises, one module per notebook.

Each check runs the learner's function, computes the right answer independently (from raw
events with plain pandas, from the registry, from the offline tables or with scikit-learn),
and either prints one success line or raises `CheckFailed` saying exactly what differs and
the likely cause. Checks judge behaviour (what the function returns, or what Feast does with
the object it returns), never the source text. Notebooks call them as `checks.<exercise>`.

Every message a learner reads comes from the catalog (course_lib.catalog, one `checks_*` module per checks
module) through `course_lib.messages.say`: in Korean with COURSE_LANG=ko or in the Korean notebooks, else
in English. tests/test_messages.py holds the catalog and the call sites to that.
"""
from __future__ import annotations

from course_lib.checks.common import CheckFailed, keep_going
from course_lib.checks.completion_criteria import availability_outside, recovery_time
from course_lib.checks.data_sources import avg_rating_as_of, pit_join
from course_lib.checks.feast_setup import interaction_view, taste_service
from course_lib.checks.feedback_loop import count_mismatches, label_log
from course_lib.checks.monitoring import catch_up, request_count
from course_lib.checks.optimization import cached_movie_features, views_to_invalidate
from course_lib.checks.realtime_features import favorite_genre, merge_watch_times
from course_lib.checks.realtime_serving import candidate_features, ndcg_at_k, training_set
from course_lib.checks.scale_out import key_slot, redis_masters

__all__ = ["CheckFailed", "availability_outside", "avg_rating_as_of", "cached_movie_features", "candidate_features",
           "catch_up", "count_mismatches", "favorite_genre", "interaction_view", "keep_going", "key_slot", "label_log",
           "merge_watch_times", "ndcg_at_k", "pit_join", "redis_masters", "recovery_time", "request_count",
           "taste_service", "training_set", "views_to_invalidate"]
