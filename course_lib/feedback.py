"""Training on what was served (notebook 09): logged model inputs, labelled by the ratings that followed.

A served-feature log (`course_lib.feature_log`) says what the model saw for every candidate of every
response; the label arrives later, when the user rates one of those candidates. `labelled` joins the two:
a logged row gets the first rating its user gave that movie within LABEL_HORIZON after the moment the
served values stand for (`features_as_of`), and rows nobody rated are left out (the log cannot tell
"not shown" from "shown and ignored"). `replay` produces such a log from a dataset's own history, one
day at a time, through the running API; `compare` fits two rankers with the same model and settings and
scores both on the same held-out responses: one on the logged rows (what serving saw), one the way
`course train` does (point-in-time features just before each rating).
The notebook's other helpers: `logging_support` (which Feast offline stores write feature logs),
`logged_records` (the API's log accounting), `serving_bug` (a transformation serving computes differently
from training, on purpose) and `popularity_surge` (new movie rows that drift, written offline and materialized).
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import httpx
import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.feature_logging import REQUEST_ID_FIELD
from feast.infra.offline_stores.offline_store import OfflineStore
from feast.repo_config import OFFLINE_STORE_CLASS_FOR_TYPE
from tqdm.auto import tqdm

from course_lib import datasets, feature_log, ranker, serving
from course_lib.adapter import build_feature_tables, conform, write_offline
from course_lib.candidate_matrix import MatrixLayout
from course_lib.config import ALL_PROFILES, Profile, load_store, own_project_env, resolve_profile
from course_lib.drift_watch import latest_rows
from course_lib.feature_log import AS_OF
from course_lib.monitoring import parse_metrics, sample_values
from course_lib.offline import read_offline
from course_lib.reset import reset_online
from feature_repo.names import MOVIE_VIEW, TIMESTAMP_FIELD

LABEL_HORIZON = pd.Timedelta(days=1)
REPLAY_DAYS = 7  # days a notebook replays: enough labelled responses to fit and compare two rankers
COMPARE_COLUMNS = ["model", "training_rows", "auc", f"ndcg@{ranker.NDCG_AT}"]
SURGE_FACTOR, SURGE_SHARE = 3.0, 0.4  # popularity times 3 for the newest 40% of the movies: drift on purpose


def ratings(dataset: datasets.Dataset) -> pd.DataFrame:
    """The rated watch events: user_id, movie_id, event_timestamp, rating."""
    events = dataset.watch_events
    rated = events[events["rating"].notna()]
    return rated[["user_id", "movie_id", TIMESTAMP_FIELD, "rating"]].reset_index(drop=True)


def labelled(log: pd.DataFrame, rated: pd.DataFrame, horizon: pd.Timedelta = LABEL_HORIZON) -> pd.DataFrame:
    """Logged rows rated within `horizon` after `features_as_of`, with label = rating >= 4 and
    event_timestamp = features_as_of (the moment the served values stand for); the others dropped."""
    joined = log.merge(rated.rename(columns={TIMESTAMP_FIELD: "rated_at"}), on=["user_id", "movie_id"])
    window = (joined["rated_at"] > joined[AS_OF]) & (joined["rated_at"] <= joined[AS_OF] + horizon)
    first = (joined[window].sort_values("rated_at", kind="stable")
             .drop_duplicates([REQUEST_ID_FIELD, "movie_id"], keep="first"))
    out = first.assign(**{TIMESTAMP_FIELD: first[AS_OF],
                          "label": (first["rating"] >= ranker.POSITIVE_RATING).astype("int64")})
    missing = {name: np.nan for name in ranker.FEATURES if name not in out.columns}  # a model may drop some
    return out.assign(**missing).sort_values([TIMESTAMP_FIELD, "user_id", "movie_id"], ignore_index=True)


def prepare_project(profile: Profile, dataset: datasets.Dataset, days: int = REPLAY_DAYS
                    ) -> tuple[Profile, FeatureStore, list[pd.Timestamp]]:
    """The profile in its own Feast project (`<project>_feedback`, so the other notebooks keep theirs): the log
    offline, online as of the start of its last `days` days, a ranker trained on the events before then
    only, and an empty served-feature log; returns it with its store and the day ends to replay."""
    own = resolve_profile(profile.name, own_project_env("feedback", profile.env()))
    dataset.save(own.raw_dir)
    write_offline(build_feature_tables(dataset), own)
    store = load_store(own)
    serving.apply(store, own)
    reset_online(store, own)
    last = dataset.watch_events[TIMESTAMP_FIELD].max().floor("D")
    ends = [last - pd.Timedelta(days=days - 1 - i) for i in range(days)]  # the last one: the log's final day
    serving.materialize(store, own, end=ends[0].to_pydatetime())
    ranker.train_and_save(own, until=ends[0])
    feature_log.clear_log(own)
    return own, store, ends


def candidates_for(day: pd.DataFrame, movies: Sequence[int], size: int, rng: np.random.Generator
                   ) -> dict[int, list[int]]:
    """Per user rating something in `day`: the movies they rate then, filled up to `size` with random others."""
    out = {}
    for user, group in day.groupby("user_id", sort=True):
        rated = list(dict.fromkeys(int(m) for m in group["movie_id"]))[:size]
        others = [int(m) for m in rng.permutation(movies) if m not in set(rated)][:size - len(rated)]
        out[int(user)] = sorted(rated + others)
    return out


def replay(api_url: str, store: FeatureStore, profile: Profile, dataset: datasets.Dataset,
           days: Sequence[pd.Timestamp], size: int = 50, seed: int = 0) -> int:
    """For each day end: materialize up to it, wait until the API serves as of it, then ask for
    recommendations for everyone who rates a movie in the day after, among candidates holding what
    they rate. Returns the number of responses (all logged by the API, if its log is on)."""
    rated, rng = ratings(dataset), np.random.default_rng(seed)
    movies = sorted(int(m) for m in dataset.movies["movie_id"])
    responses = 0
    with httpx.Client(base_url=api_url, timeout=30) as client:
        for end in tqdm(list(days), desc="replayed days", unit="day"):
            serving.materialize(store, profile, end=end.to_pydatetime(), incremental=True)
            after = rated[(rated[TIMESTAMP_FIELD] > end) & (rated[TIMESTAMP_FIELD] <= end + LABEL_HORIZON)]
            asked = candidates_for(after, movies, size, rng)
            wait_until_serving(client, end)
            responses += len(ask(client, asked))
    return responses


def ask(client: httpx.Client, asked: Mapping[int, Sequence[int]], k: int = 10) -> list[str]:
    """`POST /recommendations` for each user among their candidates; the responses' request ids, in order."""
    ids = []
    for user, movie_ids in asked.items():
        response = client.post("/recommendations", json={"user_id": user, "movie_ids": list(movie_ids), "k": k})
        response.raise_for_status()
        ids.append(str(response.json()["request_id"]))
    return ids


def wait_until_serving(client: httpx.Client, end: pd.Timestamp, timeout_s: float = 30.0) -> None:
    """Poll `GET /health` (nothing logged) until the API's recommendations stand as of `end`, after a
    materialization up to `end` returned.

    The API's registry state refreshes in the background; until then a response carries the new online
    values under the old `features_as_of`. And a refresh that ran while the materialization was still
    writing saw some views moved and not others (the movie near-cache not yet reloaded), so the wait is
    for a second refresh that started after the first one seen since the call. The skew report would
    count every response served in between as skew, rightly.
    """
    deadline = time.monotonic() + timeout_s
    called = pd.Timestamp.now(tz="UTC")
    first: pd.Timestamp | None = None
    while time.monotonic() < deadline:
        state = client.get("/health").json()["registry_state"]
        refreshed = pd.Timestamp(state["last_refresh"]) if state["last_refresh"] else None
        if refreshed is not None and refreshed > called:
            first = first or refreshed
            if refreshed > first and pd.Timestamp(state["features_as_of"]) >= end:
                return
        time.sleep(0.05)


def compare(store: FeatureStore, rows: pd.DataFrame, dataset: datasets.Dataset,
            test_fraction: float = 0.3) -> pd.DataFrame:
    """Both rankers scored on the same last `test_fraction` of the labelled responses (by time): fitted on the
    earlier logged rows, and fitted as `course train` does on every rating before the same cut-off."""
    times = rows[TIMESTAMP_FIELD]
    split = times.min() + (times.max() - times.min()) * (1 - test_fraction)
    earlier, held_out = rows[times < split], rows[times >= split]
    history = ranker.training_frame(store, dataset)
    history = history[history[TIMESTAMP_FIELD] < split]
    out = []
    for name, fitted_on in (("served features (the log)", earlier), ("point-in-time features (course train)", history)):
        metrics = ranker.evaluate(ranker.fit(fitted_on, split), held_out)
        out.append({"model": name, "training_rows": len(fitted_on), **scores(metrics["model"])})
    out.append({"model": "popularity baseline", "training_rows": 0, **scores(metrics["popularity"])})
    return pd.DataFrame(out, columns=COMPARE_COLUMNS).assign(held_out_rows=len(held_out))


def scores(metrics: dict[str, float]) -> dict[str, float]:
    """AUC and NDCG of one `ranker.evaluate` entry."""
    return {"auc": metrics["auc"], f"ndcg@{ranker.NDCG_AT}": metrics[f"ndcg@{ranker.NDCG_AT}"]}


# --- the notebook's other helpers -------------------------------------------------------------------

def logging_support() -> pd.DataFrame:
    """Per profile: its Feast offline store, whether that store implements `write_logged_features`, and where
    the course's served-feature log goes (`feature_log.sink_for`)."""
    rows = []
    for name in ALL_PROFILES:
        profile = resolve_profile(name)
        module, _, class_name = OFFLINE_STORE_CLASS_FOR_TYPE[profile.feature_store_config()["offline_store"]["type"]
                                                             ].rpartition(".")
        store_class = getattr(importlib.import_module(module), class_name)
        writes = store_class.write_logged_features is not OfflineStore.write_logged_features
        log = ("Feast: write_logged_features to the ranker service's FileLoggingDestination" if name == "local" else
               "the course's parquet files" if profile.offline_is_parquet else
               f"the course's table <offline schema>.{feature_log.TABLE}")
        rows.append({"profile": name, "offline_store": class_name, "write_logged_features": writes,
                     "served_feature_log": log})
    return pd.DataFrame(rows)


def logged_records(client: httpx.Client, responses: int, timeout_s: float = 30.0) -> dict[str, int]:
    """The API's `course_feature_log_records_total` by outcome (written, dropped, failed) once they account for
    `responses` records (the logger writes every COURSE_FEATURE_LOG_FLUSH_S), or as they are at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        frame = parse_metrics(client.get("/metrics").text)
        counted = sample_values(frame, "course_feature_log_records_total", ["outcome"])
        out = {outcome: int(counted.get(outcome, 0)) for outcome in feature_log.OUTCOMES}
        if sum(out.values()) >= responses or time.monotonic() >= deadline:
            return out
        time.sleep(0.1)


@contextmanager
def serving_bug(feature: str, factor: float) -> Iterator[None]:
    """While open, this process's request path multiplies `feature` in the model input by `factor` (a
    transformation serving computes differently from training, e.g. a unit change); training is untouched."""
    original = MatrixLayout.matrix

    def buggy(self: MatrixLayout, *args: object, **kwargs: object) -> np.ndarray:
        out = original(self, *args, **kwargs)  # type: ignore[arg-type]
        if feature in self.features:
            out[:, self.features.index(feature)] *= factor
        return out

    setattr(MatrixLayout, "matrix", buggy)  # noqa: B010 - mypy refuses assigning to a method
    try:
        yield
    finally:
        setattr(MatrixLayout, "matrix", original)  # noqa: B010


def popularity_surge(store: FeatureStore, profile: Profile, at: pd.Timestamp, factor: float = SURGE_FACTOR,
                     share: float = SURGE_SHARE) -> pd.DataFrame:
    """The newest `share` of the movies (by release year, then id) get a row at `at`, after the last
    materialization: their latest values with popularity times `factor`. Written to the movie view's offline
    table, then materialized (incrementally, to one second after `at`); returns the new rows."""
    table = read_offline(profile, [MOVIE_VIEW])[MOVIE_VIEW]
    latest = latest_rows(table, MOVIE_VIEW, at.to_pydatetime())
    newest = latest.sort_values(["release_year", "movie_id"], kind="stable").tail(round(len(latest) * share))
    rows = conform(MOVIE_VIEW, newest.assign(**{TIMESTAMP_FIELD: at, "popularity": newest["popularity"] * factor}))
    everything = pd.concat([table.assign(**{TIMESTAMP_FIELD: pd.to_datetime(table[TIMESTAMP_FIELD], utc=True)}), rows],
                           ignore_index=True).drop_duplicates(["movie_id", TIMESTAMP_FIELD], keep="last")
    write_offline({MOVIE_VIEW: conform(MOVIE_VIEW, everything)}, profile, checked=False)
    serving.materialize(store, profile, end=(at + pd.Timedelta(seconds=1)).to_pydatetime(), incremental=True)
    return rows
