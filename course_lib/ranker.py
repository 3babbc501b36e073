"""A learned ranker trained on point-in-time-correct features (2.7.3).

The guide scored candidates with hand-picked weights, where the user term was the same
for every candidate and so could not change the order. Here a gradient-boosted model
learns P(rating >= 4) from the feature views. Each training row is a rated watch event,
with features as of one microsecond *before* the event (interaction rows include their
own event, so querying at the event time would leak its rating). Evaluation holds out
the last part of the time range and compares the model with a popularity baseline.
The same `design_matrix` builds the model input at training and at serving time.
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from feast import FeatureStore
from feast.types import String
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import ndcg_score, roc_auc_score
from threadpoolctl import ThreadpoolController

from course_lib import datasets, scoring
from course_lib.adapter import table_dtypes
from course_lib.config import Profile, load_store
from course_lib.errors import CourseError
from course_lib.files import write_private
from course_lib.messages import say
from course_lib.pit import historical_features_tuned
from course_lib.serving import EntityFeatures, candidate_features, feature_refs, with_on_demand
from feature_repo.definitions import TIMESTAMP_FIELD, VIEWS, genre_match_udf, join_keys
from feature_repo.names import GENRE_MATCH, GENRE_MATCH_VIEW, TRACKED_GENRES

# Every view feature that is a number; favorite_genre (text) only enters through a derived feature.
VIEW_FEATURES: list[str] = [f.name for _, _, schema in VIEWS.values() for f in schema if f.dtype != String]
DERIVED_FEATURES: list[str] = [GENRE_MATCH]  # on-demand view outputs
FEATURES: list[str] = VIEW_FEATURES + DERIVED_FEATURES
POSITIVE_RATING = 4.0  # label = rating >= this
BEFORE_EVENT = pd.Timedelta(microseconds=1)  # features are read this long before the event they predict
NDCG_AT = 10
MODEL_PARAMS: dict[str, Any] = {"max_iter": 200, "learning_rate": 0.05, "early_stopping": False,
                                "random_state": 0}
# OpenMP threads for fitting and scoring. On busy shared cores, HistGradientBoosting's threads
# spin and training slows several-fold; one thread is predictable, and a request scores few rows.
MODEL_THREADS = 1


@cache
def _threadpools() -> ThreadpoolController:
    """The process's thread pools, inspected once (each inspection reads /proc/self/maps: ~7 ms)."""
    return ThreadpoolController()


def openmp_threads() -> Any:
    """A context limiting OpenMP to MODEL_THREADS threads."""
    return _threadpools().limit(limits=MODEL_THREADS, user_api="openmp")


class RankerError(CourseError):
    """The ranker cannot be trained, evaluated or loaded; the message says how to fix it."""


# --- model input ------------------------------------------------------------------------

def favorite_genre_match(frame: pd.DataFrame) -> pd.Series:
    """The on-demand view's favorite_genre_match for a frame that lacks it: Feast's own function
    (`definitions.genre_match_udf`), applied to the frame's columns; NaN where unknown."""
    columns = ["favorite_genre", *(f"genre_{genre}" for genre in TRACKED_GENRES)]
    inputs = {c: frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in columns}
    return pd.Series(genre_match_udf(inputs)[GENRE_MATCH], index=frame.index, dtype="float64")


def design_matrix(frame: pd.DataFrame, features: Sequence[str] = tuple(FEATURES)) -> pd.DataFrame:
    """The model input: exactly `features` (FEATURES, or for an evaluation FEATURES plus on-demand
    outputs the frame holds) as float64, NaN where missing (training and serving alike)."""
    # favorite_genre only feeds the genre match: a frame holding the match (a served-feature log) needs no genre
    missing = [c for c in [*VIEW_FEATURES, *([] if GENRE_MATCH in frame.columns else ["favorite_genre"])]
               if c not in frame.columns]
    if missing:
        raise RankerError(say("ranker.frame_lacks_features", missing=missing))
    columns = {c: frame[c].to_numpy(dtype="float64", na_value=np.nan) for c in VIEW_FEATURES}
    # Computed by Feast's on-demand view when the frame comes from the ranker service.
    match = frame[GENRE_MATCH] if GENRE_MATCH in frame.columns else favorite_genre_match(frame)
    columns[GENRE_MATCH] = match.to_numpy(dtype="float64", na_value=np.nan)
    for name in set(features) - set(columns):
        if name not in frame.columns:
            raise RankerError(say("ranker.frame_lacks_on_demand", name=name))
        columns[name] = frame[name].to_numpy(dtype="float64", na_value=np.nan)
    return pd.DataFrame(columns, index=frame.index)[list(features)]


def training_entities(dataset: datasets.Dataset) -> pd.DataFrame:
    """One row per rated watch event, timed just before it, with label = rating >= 4."""
    events = dataset.watch_events
    rated = events[events["rating"].notna()]
    return pd.DataFrame({
        "user_id": rated["user_id"].astype("int64"),
        "movie_id": rated["movie_id"].astype("int64"),
        TIMESTAMP_FIELD: rated[TIMESTAMP_FIELD] - BEFORE_EVENT,
        "label": (rated["rating"] >= POSITIVE_RATING).astype("int64"),
    }).reset_index(drop=True)


def historical_frame(store: FeatureStore, entities: pd.DataFrame) -> pd.DataFrame:
    """The ranker service's features for entity rows (user_id, movie_id, event_timestamp; other columns kept),
    point-in-time correct: every view feature, then the on-demand views computed by Feast on the joined rows."""
    # On PostgreSQL the tuned join (tested identical to Feast's): Feast's own SQL is quadratic there.
    frame = historical_features_tuned(store, entities, feature_refs())
    return with_on_demand(store, frame, [GENRE_MATCH_VIEW])


def training_frame(store: FeatureStore, dataset: datasets.Dataset) -> pd.DataFrame:
    """`historical_frame` of each training entity (a rated watch, just before it), label kept."""
    frame = historical_frame(store, training_entities(dataset))
    return frame.assign(label=frame["label"].astype("int64"))


def _within_ttl(found: EntityFeatures, ttl: timedelta, now: datetime | None) -> dict[str, Any]:
    """One view's online values, each kept only if written at most `ttl` before `now` (None: all kept)."""
    def fresh(written: datetime | None) -> bool:
        return now is None or (written is not None and now - written <= ttl)

    return {name: value if fresh(found.event_timestamps[name]) else None for name, value in found.values.items()}


def candidate_frame(rows: list[dict[str, EntityFeatures]], now: datetime | None = None) -> pd.DataFrame:
    """`serving.candidate_features` output as a frame with a training frame's key and feature columns.

    Online reads ignore the views' TTLs while point-in-time joins apply them. Pass a UTC-aware
    `now` (for a replayed log, the materialization end) to drop values older than their view's
    TTL, so the model sees missing values exactly where a training frame would.
    """
    records = []
    for row in rows:
        record: dict[str, Any] = {}
        for view, found in row.items():
            record.update({**found.key, **_within_ttl(found, VIEWS[view][1], now)})
        records.append(record)
    dtypes = {c: t for view in VIEWS for c, t in table_dtypes(view).items() if c != TIMESTAMP_FIELD}
    keys = {k for view in VIEWS for k in join_keys(view)}
    columns = sorted(dtypes, key=lambda c: c not in keys)  # entity keys first, as in a training frame
    return pd.DataFrame({c: pd.Series([r.get(c) for r in records], dtype=dtypes[c]) for c in columns})


def online_frame(store: FeatureStore, pairs: pd.DataFrame, now: datetime | None) -> pd.DataFrame:
    """`candidate_frame` for (user_id, movie_id) pairs read online, one request per user, in pair order."""
    rows = [row for user, group in pairs.groupby("user_id", sort=True)
            for row in candidate_features(store, int(user), group["movie_id"].tolist())]
    return candidate_frame(rows, now=now)


# --- model --------------------------------------------------------------------------------

@dataclass
class Ranker:
    """A fitted model, the FEATURES it reads, its training cut-off, held-out metrics and compiled trees."""

    model: Any
    features: list[str]
    trained_until: pd.Timestamp
    metrics: dict[str, Any]
    compiled: scoring.CompiledModel | None = None  # set by train_and_save when a C compiler is installed
    data_until: pd.Timestamp | None = None  # the newest row it was trained or evaluated on (the drift baseline's time)

    def inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input columns for a frame with the view feature columns."""
        return design_matrix(frame, self.features)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """P(rating >= 4) for each row of a frame with the view feature columns."""
        return self.score_inputs(self.inputs(frame))

    def score_inputs(self, inputs: pd.DataFrame) -> np.ndarray:
        """P(rating >= 4) for each row of `inputs()` output."""
        if inputs.empty:
            return np.empty(0)
        with openmp_threads():
            return self.model.predict_proba(inputs)[:, 1]

    @property
    def runtime(self) -> str:
        """What scores requests: the compiled trees, or scikit-learn when none were compiled."""
        return self.compiled.runtime if self.compiled else scoring.SKLEARN_RUNTIME

    def scorer(self, model_path: Path) -> scoring.Scorer:
        """A float64 matrix in `features` order -> P(rating >= 4): the compiled trees if any (identical scores)."""
        if self.compiled:
            return scoring.CompiledScorer(self.compiled, scoring.library_folder(model_path))
        return lambda inputs: self.score_inputs(pd.DataFrame(inputs, columns=self.features))


def mean_ndcg(users: pd.Series, labels: np.ndarray, scores: np.ndarray, k: int = NDCG_AT) -> float:
    """NDCG@k of each user's rows ranked by score (ties averaged), over users with >= 2 rows
    and a positive; NaN when no user qualifies."""
    table = pd.DataFrame({"user": np.asarray(users), "label": labels, "score": scores})
    values = [ndcg_score([group["label"]], [group["score"]], k=k)
              for _, group in table.groupby("user") if len(group) >= 2 and group["label"].any()]
    return float(np.mean(values)) if values else float("nan")


def evaluate(ranker: Ranker, test: pd.DataFrame) -> dict[str, Any]:
    """AUC and NDCG@10 of the model and of the popularity baseline on held-out rows."""
    labels = test["label"].to_numpy(dtype="int64")
    if len(np.unique(labels)) < 2:
        raise RankerError(say("ranker.test_one_label", count=len(test)))
    popularity = design_matrix(test)["popularity"].fillna(0.0).to_numpy()
    metrics: dict[str, Any] = {}
    for name, scores in (("model", ranker.score(test)), ("popularity", popularity)):
        metrics[name] = {"auc": float(roc_auc_score(labels, scores)),
                         f"ndcg@{NDCG_AT}": mean_ndcg(test["user_id"], labels, scores)}
    return {**metrics, "rows": len(test), "split": ranker.trained_until.isoformat()}


def train(frame: pd.DataFrame, test_fraction: float = 0.2, features: Sequence[str] = tuple(FEATURES)) -> Ranker:
    """Fit on all but the last `test_fraction` of the time range and evaluate on that last part;
    `features` other than FEATURES are for evaluations (the request path serves FEATURES)."""
    if not 0 < test_fraction < 1:
        raise RankerError(say("ranker.test_fraction", test_fraction=test_fraction))
    times = frame[TIMESTAMP_FIELD]
    split = times.min() + (times.max() - times.min()) * (1 - test_fraction)
    ranker = fit(frame[times < split], split, features)
    ranker.data_until = times.max()
    ranker.metrics = evaluate(ranker, frame[times >= split])
    return ranker


def fit(rows: pd.DataFrame, split: pd.Timestamp, features: Sequence[str] = tuple(FEATURES)) -> Ranker:
    """The model fitted on labelled rows (all before `split`, its training cut-off), not yet evaluated."""
    if rows["label"].nunique() < 2:
        raise RankerError(say("ranker.train_one_label", count=len(rows), split=split))
    inputs = design_matrix(rows, features)
    # A feature the source never fills (MovieLens has no watch times) is left out: it carries
    # no signal, and HistGradientBoosting fails on an all-NaN column.
    used = [c for c in features if inputs[c].notna().any()]
    with openmp_threads():
        model = HistGradientBoostingClassifier(**MODEL_PARAMS).fit(inputs[used], rows["label"])
    return Ranker(model=model, features=used, trained_until=split, metrics={}, data_until=rows[TIMESTAMP_FIELD].max())


# --- persistence --------------------------------------------------------------------------

def digest_path(model_path: Path) -> Path:
    """Where the model file's SHA-256, recorded when it was saved, lives."""
    return model_path.with_name(model_path.name + ".sha256")


def save(ranker: Ranker, profile: Profile) -> Path:
    """Write the ranker to the profile's model path (0600) and its SHA-256 beside it (`load` checks it)."""
    target = profile.model_path
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    joblib.dump(ranker, buffer)
    data = buffer.getvalue()
    write_private(digest_path(target), hashlib.sha256(data).hexdigest().encode())
    write_private(target, data)
    return target


def version(profile: Profile) -> str:
    """The saved ranker's version: the first 12 hex digits of the SHA-256 recorded beside it at training."""
    return digest_path(profile.model_path).read_text().strip()[:12]


def load(profile: Profile) -> Ranker:
    """The profile's saved ranker, verified against the hash recorded at training before it is unpickled,
    or a RankerError saying to run `course train`."""
    path = profile.model_path
    retrain = say("ranker.retrain", profile=profile.name)
    if not path.is_file():
        raise RankerError(say("ranker.not_trained", path=path, retrain=retrain))
    data, recorded = path.read_bytes(), digest_path(path)
    if not recorded.is_file() or recorded.read_text().strip() != hashlib.sha256(data).hexdigest():
        raise RankerError(say("ranker.checksum", path=path, recorded=recorded.name, retrain=retrain))
    ranker = joblib.load(io.BytesIO(data))
    if not isinstance(ranker, Ranker) or not set(ranker.features) <= set(FEATURES):
        raise RankerError(say("ranker.features_changed", path=path, profile=profile.name))
    return ranker


def train_and_save(profile: Profile, until: pd.Timestamp | None = None) -> Ranker:
    """Train on the profile's saved dataset (its events before `until`, if given) and feature store, compile the
    trees (if a C compiler is installed), then save the ranker: the compiled trees travel inside the model file."""
    dataset = datasets.load(profile.raw_dir)
    if until is not None:
        events = dataset.watch_events
        dataset = replace(dataset, watch_events=events[events[TIMESTAMP_FIELD] < until].reset_index(drop=True))
    ranker = train(training_frame(load_store(profile), dataset))
    ranker.compiled = scoring.compile_model(ranker.model)
    save(ranker, profile)
    return ranker
