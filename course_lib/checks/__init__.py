"""Automatic checks for the notebook exercises, one module per notebook.

Each check runs the learner's function, computes the right answer independently (from raw
events with plain pandas, from the registry, from the offline tables or with scikit-learn),
and either prints one success line or raises `CheckFailed` saying exactly what differs and
the likely cause. Checks judge behaviour (what the function returns, or what Feast does with
the object it returns), never the source text. Notebooks call them as `checks.<exercise>`.
"""
from __future__ import annotations

from course_lib.checks.common import CheckFailed, keep_going
from course_lib.checks.completion_criteria import availability_outside, recovery_time
from course_lib.checks.data_sources import avg_rating_as_of, pit_join
from course_lib.checks.feast_setup import interaction_view, taste_service
from course_lib.checks.monitoring import pipeline_age, request_count
from course_lib.checks.optimization import latency_percentiles, views_to_invalidate
from course_lib.checks.realtime_features import favorite_genre, merge_watch_times
from course_lib.checks.realtime_serving import candidate_features, ndcg_at_k
from course_lib.checks.scale_out import key_slot, redis_masters

__all__ = ["CheckFailed", "availability_outside", "avg_rating_as_of", "candidate_features", "favorite_genre",
           "interaction_view", "keep_going", "key_slot", "latency_percentiles", "merge_watch_times", "ndcg_at_k",
           "pipeline_age", "pit_join", "redis_masters", "recovery_time", "request_count", "taste_service",
           "views_to_invalidate"]
