"""The naive latest-value join of notebook 02 and what it does to a model: the join takes each
entity's newest row, and a model fit on it scores far better on leaky rows than on the
point-in-time rows serving will give it (the point-in-time frame here is pandas' as-of join,
not Feast's, so the test does not lean on the code it compares)."""
from __future__ import annotations

import pandas as pd
import pytest

from course_lib import adapter, datasets, leakage
from feature_repo.definitions import VIEWS, join_keys


@pytest.fixture(scope="module")
def frames() -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Feature tables of a small synthetic log and an entity frame of rated events, just before each."""
    ds = datasets.synthetic(seed=5, n_users=200, n_movies=80, n_events=8000, days=40)
    rated = ds.watch_events.dropna(subset=["rating"]).sample(2500, random_state=1)
    entity_df = pd.DataFrame({"user_id": rated["user_id"].to_numpy(), "movie_id": rated["movie_id"].to_numpy(),
                              "event_timestamp": (rated["event_timestamp"] - pd.Timedelta(microseconds=1)).to_numpy(),
                              "label_rating": rated["rating"].to_numpy()})
    return adapter.build_feature_tables(ds), entity_df


def as_of(tables: dict[str, pd.DataFrame], entity_df: pd.DataFrame) -> pd.DataFrame:
    """Each view's newest row at or before each entity row, within the view's TTL (pandas merge_asof)."""
    out = entity_df.reset_index(names="row").sort_values("event_timestamp")
    for view, table in tables.items():
        out = pd.merge_asof(out, table.sort_values("event_timestamp"), on="event_timestamp", by=join_keys(view),
                            tolerance=pd.Timedelta(VIEWS[view][1]))
    return out.sort_values("row").drop(columns="row").reset_index(drop=True)


def test_the_naive_join_takes_each_entity_newest_row(frames) -> None:
    tables, entity_df = frames
    naive = leakage.latest_value_join(tables, entity_df)
    users = tables["user_profile_features"]
    newest = naive["user_id"].map(users.groupby("user_id")["event_timestamp"].max())
    assert naive["user_profile_features__feature_ts"].equals(newest.rename("user_profile_features__feature_ts"))
    share = leakage.future_value_share(naive)["user_profile_features"]
    assert share == pytest.approx((newest > entity_df["event_timestamp"]).mean())


def test_leaky_validation_flatters_a_model_that_serving_then_fails(frames) -> None:
    """The AUC a leaky validation reports is far above the same model's point-in-time AUC, and a
    model fit point-in-time beats it there: the lesson of notebook 02 holds on another log."""
    tables, entity_df = frames
    auc = leakage.honest_auc(leakage.latest_value_join(tables, entity_df), as_of(tables, entity_df))
    leaky, honest, pit = auc.values()
    assert leaky > honest + 0.15, auc
    assert pit > honest, auc
