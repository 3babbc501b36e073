"""The naive feature join notebook 02 warns about, and how much future it leaks (2.7.2)."""
from __future__ import annotations

import pandas as pd

from course_lib import ranker
from feature_repo.definitions import TIMESTAMP_FIELD, join_keys


def latest_value_join(tables: dict[str, pd.DataFrame], entity_df: pd.DataFrame) -> pd.DataFrame:
    """The naive join this course warns about: each entity's *newest* row, whatever its time.

    Adds a `<view>__feature_ts` column per view so the leakage can be measured.
    """
    out = entity_df.copy()
    for view, table in tables.items():
        keys = join_keys(view)
        latest = table.sort_values(TIMESTAMP_FIELD).groupby(keys, as_index=False).last()
        latest = latest.rename(columns={TIMESTAMP_FIELD: f"{view}__feature_ts"})
        out = out.merge(latest, on=keys, how="left")
    return out


def future_value_share(joined: pd.DataFrame) -> dict[str, float]:
    """Per view, the share of rows whose joined value is timestamped after the row's own time."""
    return {column.removesuffix("__feature_ts"): float((joined[column] > joined[TIMESTAMP_FIELD]).mean())
            for column in joined.columns if column.endswith("__feature_ts")}


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with the ranker's label: 1 when the row's `label_rating` is 4 or more."""
    return frame.assign(label=(frame["label_rating"] >= ranker.POSITIVE_RATING).astype("int64"))


def honest_auc(naive: pd.DataFrame, point_in_time: pd.DataFrame, test_fraction: float = 0.2) -> dict[str, float]:
    """Held-out AUC (the last `test_fraction` of the time range) of a model fit on naive features,
    scored on naive rows (a leaky validation) and on point-in-time rows (what serving gives it),
    and of a model fit and scored point-in-time. Both frames need `label_rating`."""
    naive, point_in_time = labelled(naive), labelled(point_in_time)
    leaky, honest = ranker.train(naive, test_fraction), ranker.train(point_in_time, test_fraction)
    test = point_in_time[point_in_time[TIMESTAMP_FIELD] >= leaky.trained_until]
    return {"naive model, naive test rows": leaky.metrics["model"]["auc"],
            "naive model, point-in-time test rows": ranker.evaluate(leaky, test)["model"]["auc"],
            "point-in-time model, point-in-time test rows": honest.metrics["model"]["auc"]}
