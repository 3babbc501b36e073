"""Drift statistics on the course's synthetic feature tables, and the gauges that export them.

No store: the adapter's three feature tables (every ranker feature but the on-demand genre match,
plus favorite_genre) are split at random into a baseline and a held-out slice of the same
distribution, which must stay quiet; drift injected into the slice must flag exactly the features
it changed. Statistics are checked against scipy and against hand computations.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from support import parsed, value

from course_lib import datasets, ranker
from course_lib.adapter import build_feature_tables
from course_lib.drift import (
    CATEGORICAL_FEATURES,
    KS_MIN_STATISTIC,
    PSI_DRIFT,
    PSI_EPSILON,
    REPORT_COLUMNS,
    DriftError,
    categorical_drift,
    drift_report,
    numeric_drift,
    psi,
)
from course_lib.monitoring import DRIFT_STATISTICS, Metrics

INJECTED = {"popularity", "avg_rating", "favorite_genre"}
# Far below PSI_DRIFT: the largest held-out PSI measured on these tables is 0.008 (favorite_genre).
QUIET_PSI = 0.05


@functools.cache
def halves() -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per feature table: a random half as the baseline, the other half as a held-out slice."""
    tables = build_feature_tables(datasets.synthetic(seed=7, n_users=600, n_movies=300, n_events=20_000, days=30))
    rng = np.random.default_rng(0)
    out = {}
    for view, table in tables.items():
        in_baseline = rng.random(len(table)) < 0.5
        out[view] = (table[in_baseline].reset_index(drop=True), table[~in_baseline].reset_index(drop=True))
    return out


def drifted_slice(view: str, recent: pd.DataFrame) -> pd.DataFrame:
    """The held-out slice with drift injected: popularity x3, avg_rating +0.5 (about one standard deviation),
    and 40% of the known favourite genres turned into Horror (missing values left missing)."""
    recent = recent.copy()
    if "popularity" in recent:
        recent["popularity"] = recent["popularity"] * 3
    if "avg_rating" in recent:
        recent["avg_rating"] = recent["avg_rating"] + 0.5
        genres = recent["favorite_genre"].copy()
        chosen = genres.notna() & (np.random.default_rng(1).random(len(genres)) < 0.4)
        genres[chosen] = "Horror"
        recent["favorite_genre"] = genres
    return recent


def report(drift: bool) -> pd.DataFrame:
    """One drift report over the three tables, held-out slice as is or with drift injected."""
    parts = [drift_report(baseline, drifted_slice(view, recent) if drift else recent)
             for view, (baseline, recent) in halves().items()]
    return pd.concat(parts, ignore_index=True).set_index("feature")


# --- quiet and drifted ----------------------------------------------------------------------

def test_the_report_covers_the_course_features_the_tables_hold() -> None:
    quiet = report(drift=False)
    assert list(quiet.reset_index().columns) == REPORT_COLUMNS
    expected = (set(ranker.FEATURES) - {"favorite_genre_match"}) | {"favorite_genre"}  # the match is on-demand
    assert set(quiet.index) == expected and CATEGORICAL_FEATURES == ["favorite_genre"]
    assert (quiet.loc["favorite_genre", "kind"], quiet.loc["popularity", "kind"]) == ("categorical", "numeric")
    assert set(DRIFT_STATISTICS.values()) <= set(REPORT_COLUMNS)


def test_a_held_out_slice_of_the_same_distribution_does_not_drift() -> None:
    quiet = report(drift=False)
    assert not quiet["drifted"].any(), quiet[quiet["drifted"]]
    assert quiet["psi"].max() < QUIET_PSI, quiet["psi"].sort_values().tail(3)
    numeric = quiet[quiet["kind"] == "numeric"]
    assert numeric["ks_statistic"].max() < KS_MIN_STATISTIC / 2 and numeric["wasserstein"].max() < 0.1
    assert (numeric["n_recent"] > 1000).all()  # large enough windows for PSI's noise to be small


def test_injected_drift_flags_exactly_the_changed_features() -> None:
    quiet, drifted = report(drift=False), report(drift=True)
    assert set(drifted.index[drifted["drifted"]]) == INJECTED
    for feature in INJECTED:
        assert drifted.loc[feature, "psi"] >= PSI_DRIFT > 10 * quiet.loc[feature, "psi"], feature
    for feature in ("popularity", "avg_rating"):
        assert drifted.loc[feature, "ks_pvalue"] < 1e-100 and drifted.loc[feature, "ks_statistic"] > 0.3
        assert drifted.loc[feature, "wasserstein"] > 0.5  # in baseline standard deviations
    assert drifted.loc["favorite_genre", "cramers_v"] > 0.3
    unchanged = sorted(set(quiet.index) - INJECTED)
    pd.testing.assert_frame_equal(drifted.loc[unchanged], quiet.loc[unchanged])


def test_the_gauges_move_on_drift_and_stay_quiet_otherwise() -> None:
    quiet_report, drift_report_ = report(drift=False), report(drift=True)
    metrics = Metrics()
    metrics.record_drift(quiet_report.reset_index())
    quiet = parsed(metrics)
    metrics.record_drift(drift_report_.reset_index())
    moved = parsed(metrics)
    for feature in quiet_report.index:
        flagged = feature in INJECTED
        assert value(quiet, "course_feature_drifted", feature=feature) == 0
        assert value(moved, "course_feature_drifted", feature=feature) == float(flagged), feature
        before = value(quiet, "course_feature_drift", feature=feature, statistic="psi")
        after = value(moved, "course_feature_drift", feature=feature, statistic="psi")
        assert before == pytest.approx(quiet_report.loc[feature, "psi"]) and before < QUIET_PSI
        assert after == pytest.approx(drift_report_.loc[feature, "psi"])
        assert (after >= PSI_DRIFT) if flagged else (after == before), feature
    for statistic, column in DRIFT_STATISTICS.items():
        assert value(moved, "course_feature_drift", feature="popularity", statistic=statistic) == pytest.approx(
            drift_report_.loc["popularity", column])
    # A categorical feature has a PSI but no KS or Wasserstein series.
    assert value(moved, "course_feature_drift", feature="favorite_genre", statistic="ks") is None
    assert value(moved, "course_feature_drift", feature="favorite_genre", statistic="wasserstein") is None


def test_a_new_report_replaces_the_gauges() -> None:
    metrics = Metrics()
    metrics.record_drift(report(drift=True).reset_index())
    metrics.record_drift(report(drift=False).reset_index().head(2))
    samples = parsed(metrics)
    assert {s.labels["feature"] for s in samples["course_feature_drifted"]} == {"age", "avg_rating"}
    assert value(samples, "course_feature_drifted", feature="popularity") is None


# --- the statistics themselves --------------------------------------------------------------

def test_psi_equals_a_hand_computation() -> None:
    # Baseline 1..10, two quantile bins: the cut is the median 5.5, so (-inf, 5.5] and (5.5, inf).
    recent = [1, 2, 3, 4, 5, 6, 7, 8, 20, 30, 40, 50]  # 5 at or below the cut, 7 above (20..50 beyond the range)
    by_hand = (5 / 12 - 0.5) * math.log((5 / 12) / 0.5) + (7 / 12 - 0.5) * math.log((7 / 12) / 0.5)
    assert numeric_drift(list(range(1, 11)), recent, bins=2)["psi"] == pytest.approx(by_hand, rel=1e-12)
    # Categories a, b and the unseen bucket; the empty bins' shares are floored at PSI_EPSILON.
    shares = [(0.6, 0.5), (0.4, PSI_EPSILON), (PSI_EPSILON, 0.5)]
    by_hand = sum((q - p) * math.log(q / p) for p, q in shares)
    measured = categorical_drift(["a"] * 6 + ["b"] * 4, ["a"] * 5 + ["c", "d"] * 2 + ["c"])
    assert measured["psi"] == pytest.approx(by_hand, rel=1e-12) and measured["unseen_recent"] == 5
    assert psi(np.array([3, 7]), np.array([3, 7])) == 0.0


def test_ks_and_wasserstein_equal_scipys_on_the_values_left_after_missing_ones() -> None:
    rng = np.random.default_rng(3)
    baseline, recent = rng.gamma(2.0, 3.0, 400), rng.gamma(2.5, 3.0, 300)
    with_missing = pd.Series([*recent, np.nan, None, np.inf], dtype="float64")
    measured = numeric_drift(pd.Series(baseline).astype("Float64"), with_missing)
    ks = stats.ks_2samp(baseline, recent, method="asymp")
    assert (measured["ks_statistic"], measured["ks_pvalue"]) == (ks.statistic, ks.pvalue)
    assert measured["wasserstein"] == pytest.approx(stats.wasserstein_distance(baseline, recent) / baseline.std())
    assert (measured["n_baseline"], measured["n_recent"], measured["nan_baseline"], measured["nan_recent"]) == (
        400, 300, 0, 3)


def test_chi_square_equals_a_hand_computation() -> None:
    measured = categorical_drift(["x"] * 30 + ["y"] * 70 + [None] * 4, ["x"] * 50 + ["y"] * 50)
    observed = np.array([[30, 70], [50, 50]])
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0) / observed.sum()
    by_hand = float(((observed - expected) ** 2 / expected).sum())
    assert measured["chi2_statistic"] == pytest.approx(by_hand) and measured["nan_baseline"] == 4
    assert measured["chi2_pvalue"] == pytest.approx(stats.chi2.sf(by_hand, df=1))
    assert measured["cramers_v"] == pytest.approx(math.sqrt(by_hand / 200))
    assert categorical_drift(["x"] * 5, ["x"] * 9)["chi2_pvalue"] == 1.0  # one category: nothing to differ


def test_a_significant_but_trivial_shift_on_a_large_sample_is_not_drift() -> None:
    rng = np.random.default_rng(4)
    baseline, recent = rng.normal(0.0, 1.0, 200_000), rng.normal(0.05, 1.0, 200_000)
    measured = drift_report(pd.DataFrame({"x": baseline}), pd.DataFrame({"x": recent}), {"x": "numeric"}).iloc[0]
    assert measured["ks_pvalue"] < 1e-10  # a p-value alone would flag it
    assert measured["ks_statistic"] < KS_MIN_STATISTIC and measured["psi"] < PSI_DRIFT and not measured["drifted"]


def test_no_values_on_one_side_gives_nan_and_no_flag() -> None:
    baseline = pd.DataFrame({"x": [1.0, 2.0], "g": ["a", "b"]})
    recent = pd.DataFrame({"x": [np.nan, np.nan], "g": [None, None]})
    measured = drift_report(baseline, recent, {"x": "numeric", "g": "categorical"})
    assert measured["psi"].isna().all() and not measured["drifted"].any()
    assert list(measured["nan_recent"]) == [2, 2]


def test_features_that_cannot_be_compared_are_refused() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(DriftError, match=r"missing \['y'\]"):
        drift_report(frame, frame, {"x": "numeric", "y": "numeric"})
    with pytest.raises(DriftError, match="bad kinds"):
        drift_report(frame, frame, {"x": "ordinal"})
    with pytest.raises(DriftError, match="share none of the course's features"):
        drift_report(frame, frame)
