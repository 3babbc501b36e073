"""Training/serving skew (notebook 09, `course skew`): what the API served against what training would have seen.

Every logged row (`course_lib.feature_log`) holds the model input of one candidate as served. Its
training counterpart is the ranker service's point-in-time join for the same (user, movie) at the moment
the served values stand for, `features_as_of` (the newest materialization end, at which the API applied
the views' TTLs, exactly as a point-in-time join does at that time), through the same path training uses
(`ranker.historical_frame`: the views, then Feast's on-demand view, then `ranker.design_matrix`).
Per feature the report counts the rows whose values differ (a missing value on one side only is a
difference) and the largest absolute difference. Clean data gives zero; a transformation that serving
computes differently from training is named. Events pushed after the last materialization are newer
online than offline at `features_as_of`, so with real-time ingestion run the report after a
materialization (or expect the pushed users' rows to differ).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from feast import FeatureStore

from course_lib import feature_log, ranker
from course_lib.errors import CourseError
from course_lib.messages import say
from feature_repo.names import TIMESTAMP_FIELD

RTOL, ATOL = 1e-6, 1e-9  # served float32 values come back as float64 on both sides; this only absorbs rounding
REPORT_COLUMNS = ["feature", "rows", "mismatches", "mismatch_share", "max_abs_diff", "example"]
KEYS = ["user_id", "movie_id", feature_log.AS_OF]


class SkewError(CourseError):
    """The skew report cannot be computed; the message says what to do."""


def expected_inputs(store: FeatureStore, log: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The model input training would compute for each logged row, aligned with `log`'s index."""
    entities = log[KEYS].drop_duplicates(ignore_index=True)
    frame = ranker.historical_frame(store, entities.assign(**{TIMESTAMP_FIELD: entities[feature_log.AS_OF]}))
    frame[feature_log.AS_OF] = pd.to_datetime(frame[feature_log.AS_OF], utc=True)
    expected = pd.concat([frame[KEYS].reset_index(drop=True),
                          ranker.design_matrix(frame, features).reset_index(drop=True)], axis=1)
    joined = log[KEYS].merge(expected, on=KEYS, how="left", validate="many_to_one")
    return joined.set_axis(log.index)[features]


def mismatches(served: pd.Series, expected: pd.Series) -> np.ndarray:
    """Rows whose two values differ: beyond rounding, or missing on one side only."""
    a, b = served.to_numpy("float64"), expected.to_numpy("float64")
    both_missing = np.isnan(a) & np.isnan(b)
    return ~(both_missing | np.isclose(a, b, rtol=RTOL, atol=ATOL))


def skew_report(store: FeatureStore, log: pd.DataFrame) -> pd.DataFrame:
    """One REPORT_COLUMNS row per model feature the log holds (the first rows differing give the example)."""
    if log.empty:
        raise SkewError(say("skew.empty_log"))
    features = [c for c in log.columns[len(feature_log.LOG_COLUMNS):] if c in ranker.FEATURES]
    expected = expected_inputs(store, log, features)
    rows = []
    for name in features:
        differ = mismatches(log[name], expected[name])
        gaps = np.abs(log[name].to_numpy("float64") - expected[name].to_numpy("float64"))
        gaps[differ & np.isnan(gaps)] = np.inf  # a value against a missing one
        example = ""
        if differ.any():
            first = log.index[differ][0]
            example = (f"user {log.at[first, 'user_id']}, movie {log.at[first, 'movie_id']}: served "
                       f"{log.at[first, name]}, training {expected.at[first, name]}")
        rows.append({"feature": name, "rows": len(log), "mismatches": int(differ.sum()),
                     "mismatch_share": float(differ.mean()),
                     "max_abs_diff": float(np.nanmax(gaps)) if np.isfinite(gaps).any() else 0.0,
                     "example": example})
    return pd.DataFrame(rows, columns=REPORT_COLUMNS)


def skewed(report: pd.DataFrame) -> list[str]:
    """The features with at least one mismatch."""
    return report.loc[report["mismatches"] > 0, "feature"].tolist()
