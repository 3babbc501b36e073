"""The naive feature join notebook 02 warns about, and how much future it leaks (2.7.2)."""
from __future__ import annotations

import pandas as pd

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
