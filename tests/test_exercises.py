"""Exercises: the learner notebooks in exercises/ are current, every section notebook has its
exercises, and each check passes on the notebook's own solution and fails, with a helpful
message, on the learner's stub, on an empty answer and on typical wrong answers."""
from __future__ import annotations

import ast
import binascii
import math
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from feast import FeatureService, FeatureView, Field, FileSource
from feast.types import Float32

from course_lib import checks, datasets, skew
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import REPO_ROOT, Profile, load_store, resolve_profile
from course_lib.exercises import BEGIN, Exercise, exercises, notebook_number, write_exercises
from course_lib.reset import reset_course
from course_lib.serving import apply, materialize
from feature_repo import definitions

NOTEBOOKS = REPO_ROOT / "notebooks"
LEARNER = REPO_ROOT / "exercises"
# Section notebooks (2.7.1 onwards); 00 only checks the set-up.
SECTIONS = [path for path in sorted(NOTEBOOKS.glob("*.ipynb")) if int(notebook_number(path)) >= 1]
MIN_EXERCISES = 2
EXERCISES: list[Exercise] = [exercise for path in SECTIONS for exercise in exercises(path)]
PROJECT = "course_test_exercises"


# --- the generated learner notebooks -----------------------------------------------------

def test_learner_notebooks_are_up_to_date(tmp_path: Path) -> None:
    """exercises/ holds exactly what `make exercises` writes now, byte for byte."""
    write_exercises(NOTEBOOKS, tmp_path)
    fresh = {path.name: path.read_bytes() for path in tmp_path.glob("*.ipynb")}
    committed = {path.name: path.read_bytes() for path in LEARNER.glob("*.ipynb")}
    assert sorted(committed) == sorted(fresh), "exercises/ has other notebooks than notebooks/: run `make exercises`"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    assert not stale, f"exercises/ is out of date for {stale}: run `make exercises` and commit the result"


def test_generation_is_reproducible(tmp_path: Path) -> None:
    """Two runs give identical bytes, with no outputs, execution counts, timestamps or solutions."""
    write_exercises(NOTEBOOKS, tmp_path / "a")
    write_exercises(NOTEBOOKS, tmp_path / "b")
    for path in sorted((tmp_path / "a").glob("*.ipynb")):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
        notebook = nbformat.read(path, as_version=4)
        assert set(notebook.metadata) <= {"kernelspec", "language_info"}
        for cell in notebook.cells:
            assert "execution" not in cell.metadata
            assert BEGIN not in cell.source
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None


@pytest.mark.parametrize("path", SECTIONS, ids=lambda path: path.name)
def test_section_notebook_has_exercises(path: Path) -> None:
    """Each section notebook has at least two exercises."""
    found = exercises(path)
    assert len(found) >= MIN_EXERCISES, f"{path.name} has {len(found)} exercises; write at least {MIN_EXERCISES}"


# --- notebook structure of each exercise ---------------------------------------------------

def check_call(exercise: Exercise) -> ast.Call:
    """The `checks.<name>(answer, ...)` call of an exercise's check cell."""
    calls = [node for node in ast.walk(ast.parse(exercise.check)) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
             and node.func.value.id == "checks"]
    assert len(calls) == 1, f"exercise {exercise.label}: the next code cell must call one course_lib.checks function"
    return calls[0]


def answer_name(exercise: Exercise) -> str:
    """The name of the learner's function, as the check cell passes it."""
    first = check_call(exercise).args[0]
    assert isinstance(first, ast.Name), f"exercise {exercise.label}: pass the learner's function to the check by name"
    return first.id


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.label)
def test_exercise_cell_layout(exercise: Exercise) -> None:
    """A markdown cell names the exercise, the stub only defines, and the check is a course_lib.checks function."""
    cells = nbformat.read(NOTEBOOKS / exercise.notebook, as_version=4).cells
    task = [cell for cell in cells[:exercise.cell] if cell.cell_type == "markdown"][-1]
    assert f"Exercise {exercise.label}" in task.source
    assert callable(getattr(checks, check_call(exercise).func.attr, None))
    namespace = notebook_namespace(exercise.notebook, {})
    exec(compile(exercise.stub, exercise.label, "exec"), namespace)  # defining must not run the stub
    assert callable(namespace[answer_name(exercise)])
    assert "NotImplementedError" in exercise.stub and BEGIN not in exercise.stub


# --- checks against the solution, the stub, an empty and a wrong answer ----------------------

def notebook_imports(notebook: str) -> str:
    """Every top-level import statement of a notebook's code cells."""
    statements = []
    for cell in nbformat.read(NOTEBOOKS / notebook, as_version=4).cells:
        if cell.cell_type == "code":
            statements += [ast.unparse(node) for node in ast.parse(cell.source).body
                           if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(statements)


def notebook_namespace(notebook: str, context: dict) -> dict:
    """Globals for running a notebook's exercise and check cells: its imports plus the test's context."""
    namespace: dict = {"__name__": "__notebook__"}
    exec(notebook_imports(notebook), namespace)
    namespace.update(context)
    return namespace


def run_check(exercise: Exercise, context: dict, answer) -> None:
    """Run the exercise's check cell with `answer` as the learner's function."""
    namespace = notebook_namespace(exercise.notebook, context)
    namespace[answer_name(exercise)] = answer
    exec(compile(exercise.check, f"check {exercise.label}", "exec"), namespace)


def defined(exercise: Exercise, source: str, context: dict):
    """The learner function that an exercise cell's source defines."""
    namespace = notebook_namespace(exercise.notebook, context)
    exec(compile(source, exercise.label, "exec"), namespace)
    return namespace[answer_name(exercise)]


@pytest.fixture(scope="module")
def context(profile: Profile) -> dict:
    """The notebook variables the check cells use, on a small synthetic log, materialized online."""
    course = resolve_profile(profile.name, {**profile.env(), "FEAST_PROJECT": PROJECT,
                                            "FEAST_OFFLINE_SCHEMA": PROJECT})
    reset_course(course)  # start clean: no online rows from an earlier run
    dataset = datasets.synthetic(seed=11, n_users=120, n_movies=60, n_events=4000, days=45)
    tables = build_feature_tables(dataset)
    write_offline(tables, course)
    store = load_store(course)
    apply(store, course)
    events = dataset.watch_events
    materialize(store, course, end=(events["event_timestamp"].max() + pd.Timedelta(seconds=1)).to_pydatetime())
    busiest = events.groupby("user_id").size().sort_values(ascending=False, kind="stable").index[0]
    return {"store": store, "profile": course, "events": events, "tables": tables, "user_id": int(busiest),
            "PROJECT": PROJECT}


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.label)
def test_check_passes_on_the_solution(exercise: Exercise, context: dict, capsys) -> None:
    run_check(exercise, context, defined(exercise, exercise.solution, context))
    assert capsys.readouterr().out.startswith("✓ ")


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.label)
def test_check_fails_on_the_stub(exercise: Exercise, context: dict) -> None:
    with pytest.raises(checks.CheckFailed, match="not written yet.*Replace the `# YOUR CODE HERE` stub"):
        run_check(exercise, context, defined(exercise, exercise.stub, context))


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.label)
def test_check_fails_on_an_empty_answer(exercise: Exercise, context: dict) -> None:
    with pytest.raises(checks.CheckFailed):
        run_check(exercise, context, lambda *args: None)


# Typical wrong answers per learner function, each with a phrase its check's message must contain.

def _interactions(source, ttl=timedelta(days=1), entities=None, schema=None, **overrides):
    """A user_movie_interaction_features view with some property changed."""
    return FeatureView(name="user_movie_interaction_features", ttl=ttl,
                       entities=entities or [definitions.user, definitions.movie],
                       schema=schema or definitions.VIEWS["user_movie_interaction_features"][2],
                       source=source, **overrides)


def _retyped(name: str, dtype) -> list[Field]:
    """The interaction schema with one field's dtype changed."""
    return [Field(name=f.name, dtype=dtype if f.name == name else f.dtype)
            for f in definitions.VIEWS["user_movie_interaction_features"][2]]



def _calm_share(samples, windows, sent_only=False):
    """Share of 200s among requests outside the windows (sent_only: judged by sending time alone)."""
    def inside(s, w):
        return w.start_s <= s.sent_s < w.end_s if sent_only else s.sent_s < w.end_s and s.done_s > w.start_s
    calm = [s for s in samples if not any(inside(s, w) for w in windows)]
    return sum(s.status == 200 for s in calm) / len(calm)


def _recovered(samples, end, until, moment):
    """`moment` (sent_s or done_s) of the first 200 sent after the last failure in [end, until)."""
    after = [s for s in samples if end <= s.sent_s < until]
    last = max((s.sent_s for s in after if s.status != 200), default=float("-inf"))
    return min(getattr(s, moment) for s in after if s.status == 200 and s.sent_s > last)

GENRES = [f"genre_{g}" for g in ("action", "comedy", "drama", "horror", "romance")]


def _label(log, ratings, horizon, start="features_as_of", at_start=False, at_end=True, keep="first", positive=4.0):
    """Exercise 9.1's join with one thing changed: the window's start column, whether its start or end counts,
    which rating of a candidate is kept (False: all), and the rating a label needs."""
    joined = log.merge(ratings, on=["user_id", "movie_id"])
    after = joined["event_timestamp"] - joined[start]
    inside = joined[((after >= pd.Timedelta(0)) if at_start else (after > pd.Timedelta(0)))
                    & ((after <= horizon) if at_end else (after < horizon))].sort_values("event_timestamp")
    first = inside.drop_duplicates(["__request_id", "movie_id"], keep=keep) if keep else inside
    return first.assign(label=(first["rating"] >= positive).astype(int))


def _merge(entity_df, table, **options):
    """merge_asof on user_id and time with the original row order restored."""
    left = entity_df.reset_index(drop=True).reset_index(names="row").sort_values("event_timestamp")
    joined = pd.merge_asof(left, table.sort_values("event_timestamp"), on="event_timestamp", by="user_id", **options)
    return joined.sort_values("row").drop(columns="row").reset_index(drop=True)


def _service(store):
    """The registered movie_recommendation_service."""
    return store.get_feature_service("movie_recommendation_service")


def _online(store, rows, features=None):
    """The service's features (or `features`) for some entity rows, read online in one call; no user_id column."""
    online = store.get_online_features(features=features or _service(store), entity_rows=rows).to_df()
    return online.drop(columns="user_id", errors="ignore")


def _historical(store, entity_df, features=None):
    """The service's (or `features`') point-in-time training frame for entity_df, in entity_df's order."""
    numbered = entity_df.reset_index(drop=True).assign(entity_row=np.arange(len(entity_df)))
    frame = store.get_historical_features(entity_df=numbered, features=features or _service(store)).to_df()
    return frame.sort_values("entity_row").drop(columns="entity_row").reset_index(drop=True)


def _online_training(store, entity_df):
    """entity_df with the service's online (today's) values beside each row."""
    online = _online(store, entity_df[["user_id", "movie_id"]].to_dict("records")).drop(columns="movie_id")
    return pd.concat([entity_df.reset_index(drop=True), online], axis=1)


def _ratings(events: pd.DataFrame, user: int, at: pd.Timestamp, strict: bool = False) -> pd.Series:
    """One user's ratings before `at` (strict) or at or before it."""
    times = events["event_timestamp"]
    return events.loc[(events["user_id"] == user) & ((times < at) if strict else (times <= at)), "rating"]


def _pairs(user: int, movies: list[int]) -> list[dict[str, int]]:
    """Entity rows of one user with each movie."""
    return [{"user_id": user, "movie_id": movie} for movie in movies]


def _dcg(gains, k: int) -> float:
    """DCG@k with log2(i + 1) discounts."""
    top = np.asarray(gains, dtype=float)[:k]
    return float((top / np.log2(np.arange(2, len(top) + 2))).sum())


def _ranked(relevance, scores) -> np.ndarray:
    """Relevances in descending score order."""
    return np.asarray(relevance, dtype=float)[np.argsort(scores)[::-1]]


def _first_discount_zero(ranked: np.ndarray) -> float:
    """DCG with log2(i) discounts for 1-based i: the top item is divided by log2(1) = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sum(ranked / np.log2(np.arange(1, len(ranked) + 1))))


def _intervals(store, pick=max) -> dict:
    """Each feature view's newest (or, with pick=min, oldest) materialization interval."""
    return {view.name: pick(view.materialization_intervals, key=lambda pair: pair[1])
            for view in store.list_feature_views()}


def _incremental(store, end, pick=max) -> dict:
    """Materialize incrementally to `end`, then each view's newest (or picked) interval."""
    store.materialize_incremental(end_date=end)
    return _intervals(store, pick)


MOVIE_REFS = ["movie_metadata_features:vote_average", "movie_metadata_features:popularity"]


def _movie_reads(store, movie_ids) -> dict:
    """vote_average and popularity of some movies in one online read: movie_id -> values."""
    read = store.get_online_features(features=MOVIE_REFS, entity_rows=[{"movie_id": m} for m in movie_ids]).to_dict()
    return {m: {name: read[name][i] for name in ("vote_average", "popularity")} for i, m in enumerate(movie_ids)}


def _cached(store, movie_ids, cache, read=_movie_reads, write=True, read_cached=False, order=list):
    """Cache-aside with one part changed: how it reads, whether it writes, what it reads, the row order."""
    missing = [m for m in movie_ids if read_cached or m not in cache]
    fresh = read(store, missing) if missing else {}
    if write:
        cache.update(fresh)
    return pd.DataFrame([{"movie_id": m, **{**cache, **fresh}[m]} for m in order(movie_ids)])


def _crc(data: bytes, modulo: int = 16384) -> int:
    """CRC16/XMODEM of some bytes, modulo a slot count."""
    return binascii.crc_hqx(data, 0) % modulo


def _tagged(key: bytes, first_close: bool = True, braces: bool = False, empty_counts: bool = False) -> bytes:
    """The bytes a slot function hashes: a hash tag found by the given rule, or else the whole key."""
    start = key.find(b"{")
    end = key.find(b"}", start + 1) if first_close else key.rfind(b"}")
    if start < 0 or end <= start or (end == start + 1 and not empty_counts):
        return key
    return key[start:end + 1] if braces else key[start + 1:end]


def _masters(qps, entities, inputs, a, utilization=True, fill=True, per_request=True, gib=2**30, up=math.ceil,
             combine=max, minimum=3):
    """Redis masters by the capacity rules, with any of them changed."""
    reads = up(qps * (inputs.keys_per_request if per_request else 1)
               / (inputs.key_reads_per_s * (a.target_utilization if utilization else 1)))
    memory = up(entities * inputs.bytes_per_key / (a.shard_memory_gib * gib * (a.memory_fill if fill else 1)))
    return max(combine(reads, memory), minimum)


WRONG_ANSWERS: dict[str, list[tuple[str, object, str]]] = {
    "interaction_view": [
        ("7-day TTL", lambda source: _interactions(source, ttl=timedelta(days=7)), "your view's ttl is 7 days"),
        ("1-hour TTL", lambda source: _interactions(source, ttl=timedelta(hours=1)), "your view's ttl is 1 hour"),
        ("user entity only", lambda source: _interactions(source, entities=[definitions.user]), "needs both"),
        ("Float32 watch_count", lambda source: _interactions(source, schema=_retyped("watch_count", Float32)),
         "watch_count is declared Float32"),
        ("a field missing", lambda source: _interactions(
            source, schema=definitions.VIEWS["user_movie_interaction_features"][2][:-1]),
         "last_watched_days_ago (Int64) is missing"),
        ("its own source", lambda source: _interactions(
            FileSource(name="mine", path="interactions.parquet", timestamp_field="event_timestamp")),
         "does not read the `source` argument"),
    ],
    "taste_service": [
        ("whole user view", lambda views: FeatureService(name="user_taste_service", features=[
            views["user_profile_features"], views["movie_metadata_features"][GENRES]]), "Not asked for"),
        ("genre flags missing", lambda views: FeatureService(name="user_taste_service", features=[
            views["user_profile_features"][["avg_rating", "favorite_genre"]]]), "Missing: ['genre_action'"),
        ("wrong name", lambda views: FeatureService(name="taste", features=[
            views["user_profile_features"][["avg_rating", "favorite_genre"]]]), "call it 'user_taste_service'"),
        ("a view, not a service", lambda views: views["user_profile_features"], "must return a feast.FeatureService"),
    ],
    "avg_rating_as_of": [
        ("future events", lambda events, user, at: events.loc[events["user_id"] == user, "rating"].mean(),
         "did you include events after the timestamp?"),
        ("strict <", lambda events, user, at: _ratings(events, user, at, strict=True).mean(),
         "keep event_timestamp <= as_of, not <"),
        ("unrated as 0", lambda events, user, at: _ratings(events, user, at).fillna(0).mean(),
         "must be skipped, not counted as 0"),
        ("all users", lambda events, user, at: events.loc[events["event_timestamp"] <= at, "rating"].mean(),
         "did you filter on user_id?"),
        ("a Series", lambda events, user, at: events.loc[events["user_id"] == user, "rating"],
         "return one number"),
    ],
    "pit_join": [
        ("no TTL", lambda entity_df, table, ttl: _merge(entity_df, table, direction="backward"),
         "older than the view's TTL (7 days)"),
        ("looks forward", lambda entity_df, table, ttl: _merge(entity_df, table, direction="forward", tolerance=ttl),
         "direction='backward'"),
        ("exact time excluded", lambda entity_df, table, ttl: _merge(entity_df, table, tolerance=ttl,
                                                                     allow_exact_matches=False),
         "exactly at the row's time counts"),
        ("inner join", lambda entity_df, table, ttl: _merge(entity_df, table, tolerance=ttl).dropna(subset=["age"]),
         "keep every entity row"),
        ("time order kept", lambda entity_df, table, ttl: pd.merge_asof(
            entity_df.sort_values("event_timestamp"), table.sort_values("event_timestamp"), on="event_timestamp",
            by="user_id", tolerance=ttl), "keep entity_df's row order"),
    ],
    "candidate_features": [
        ("no user_id", lambda store, user, movies: _online(store, [{"movie_id": m} for m in movies]),
         "every row needs user_id and movie_id"),
        ("reversed", lambda store, user, movies: _online(store, _pairs(user, movies[::-1])),
         "keep the candidates' order"),
        ("unknown movies dropped", lambda store, user, movies: _online(store, _pairs(user, movies)).dropna(
            subset=["vote_average"]), "one row per candidate, unknown ones included"),
        ("another user", lambda store, user, movies: _online(store, _pairs(user + 1, movies)),
         "did you send user_id="),
        ("a features list", lambda store, user, movies: _online(store, _pairs(user, movies),
                                                                definitions.RECOMMENDATION_FEATURES),
         "ask through the feature service: features=store.get_feature_service('movie_recommendation_service')"),
        ("one call per candidate", lambda store, user, movies: pd.DataFrame(
            [_online(store, _pairs(user, [m])).iloc[0] for m in movies]),
         "use one get_online_features call for all candidates"),
    ],
    "training_set": [
        ("online features", _online_training, "online values are today's"),
        ("time order", lambda store, entity_df: _historical(store, entity_df).sort_values(
            "event_timestamp", ignore_index=True), "Feast does not keep entity_df's order"),
        ("part of the service", lambda store, entity_df: _historical(
            store, entity_df, definitions.RECOMMENDATION_FEATURES[:3]), "Missing columns ['vote_average'"),
        ("a features list", lambda store, entity_df: _historical(store, entity_df, definitions.RECOMMENDATION_FEATURES),
         "ask through the feature service"),
        ("timestamps replaced by now", lambda store, entity_df: _historical(
            store, entity_df.assign(event_timestamp=pd.Timestamp.now(tz="UTC"))), "leakage"),
        ("joined at the data's end", lambda store, entity_df: _historical(
            store, entity_df.assign(event_timestamp=entity_df["event_timestamp"].max())).assign(
            event_timestamp=entity_df["event_timestamp"].to_numpy()), "after the row's event_timestamp"),
    ],
    "ndcg_at_k": [
        ("DCG, not normalized", lambda rel, scores, k: _dcg(_ranked(rel, scores), k), "divide by the ideal DCG@k"),
        ("lowest score first", lambda rel, scores, k: _dcg(_ranked(rel, scores)[::-1], k) / _dcg(sorted(rel)[::-1], k),
         "rank by score from highest to lowest"),
        ("k ignored", lambda rel, scores, k: _dcg(_ranked(rel, scores), len(rel)) / _dcg(sorted(rel)[::-1], len(rel)),
         "only the top k positions count"),
        ("exponential gain", lambda rel, scores, k: _dcg(2 ** _ranked(rel, scores) - 1, k)
         / _dcg(2 ** np.sort(rel)[::-1] - 1, k), "not 2**rel - 1"),
        ("ideal of the top k only", lambda rel, scores, k: _dcg(_ranked(rel, scores), k)
         / _dcg(np.sort(_ranked(rel, scores)[:k])[::-1], k), "ranks *all* candidates"),
        ("log2(i) discount", lambda rel, scores, k: _first_discount_zero(_ranked(rel, scores)[:k]),
         "a finite number is expected"),
    ],
    "availability_outside": [
        ("a percentage", lambda samples, windows: 100 * _calm_share(samples, windows), "not a percentage"),
        ("windows ignored", lambda samples, windows: sum(s.status == 200 for s in samples) / len(samples),
         "in flight during an outage window"),
        ("sent inside only", lambda samples, windows: _calm_share(samples, windows, sent_only=True),
         "still running when it started"),
        ("a string", lambda samples, windows: str(_calm_share(samples, windows)), "return one number"),
    ],
    "recovery_time": [
        ("first success", lambda samples, end, until: min(s.done_s for s in samples
                                                          if s.sent_s >= end and s.status == 200) - end,
         "the first success is not enough"),
        ("sending time", lambda samples, end, until: _recovered(samples, end, until, "sent_s") - end,
         "not when the request was sent"),
        ("a string", lambda samples, end, until: str(_recovered(samples, end, until, "done_s") - end),
         "return seconds as a number"),
    ],
    "request_count": [
        ("status 200 only", lambda text, endpoint: checks.monitoring._requests(text, endpoint, "200"), "not only 200"),
        ("every endpoint", lambda text, endpoint: checks.monitoring._requests(text, None), "whose endpoint label is"),
        ("None when absent", lambda text, endpoint: checks.monitoring._requests(text, endpoint) or None,
         "its count is 0"),
        ("a string", lambda text, endpoint: str(checks.monitoring._requests(text, endpoint)), "return one number"),
    ],
    "catch_up": [
        ("fixed start", lambda store, end: (store.materialize(start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
                                                              end_date=end), _intervals(store))[1],
         "each run must start where the last one ended"),
        ("oldest interval", lambda store, end: _incremental(store, end, min), "return the newest one"),
        ("not materialized", lambda store, end: _intervals(store), "nothing was materialized"),
        ("a timedelta", lambda store, end: {view: b - a for view, (a, b) in _incremental(store, end).items()},
         "not its length"),
        ("strings", lambda store, end: {view: (str(a), str(b)) for view, (a, b) in _incremental(store, end).items()},
         "not strings"),
    ],
    "views_to_invalidate": [
        ("forward moves only", lambda previous, current: {
            view for view, end in current.items() if end is not None and (previous.get(view) is None or
                                                                           end > previous[view])}, "a move backwards"),
        ("first materialization ignored", lambda previous, current: {
            view for view, end in previous.items() if end is not None and end != current.get(view)},
         "a first materialization"),
        ("shared views only", lambda previous, current: {
            view for view in previous.keys() & current.keys() if previous[view] != current[view]},
         "present in only one poll"),
        ("the unchanged ones", lambda previous, current: {
            view for view in previous if previous[view] == current.get(view)}, "did *not* change"),
    ],
    "cached_movie_features": [
        ("no caching", lambda store, movies, cache: _cached(store, movies, {}), "the cache is still empty"),
        ("cache never written", lambda store, movies, cache: _cached(store, movies, cache, write=False),
         "the cache is still empty"),
        ("cached ids read again", lambda store, movies, cache: _cached(store, movies, cache, read_cached=True),
         "cached ids read again"),
        ("one call per movie", lambda store, movies, cache: _cached(
            store, movies, cache, read=lambda s, ids: {m: _movie_reads(s, [m])[m] for m in ids}),
         "use one call for all missing ids"),
        ("order lost", lambda store, movies, cache: _cached(store, movies, cache, order=sorted),
         "keep the requested order"),
    ],
    "key_slot": [
        ("hash tags ignored", lambda key: _crc(key), "hash only the bytes between the first '{'"),
        ("braces hashed", lambda key: _crc(_tagged(key, braces=True)), "without the braces"),
        ("last closing brace", lambda key: _crc(_tagged(key, first_close=False)), "not at the last '}'"),
        ("empty tag counts", lambda key: _crc(_tagged(key, empty_counts=True)), "an empty tag '{}' does not count"),
        ("no modulo", lambda key: binascii.crc_hqx(_tagged(key), 0), "take the CRC modulo 16384:"),
        ("modulo 16383", lambda key: _crc(_tagged(key), 16383), "not 16383"),
        ("CRC32", lambda key: zlib.crc32(_tagged(key)) % 16384, "not CRC32"),
        ("a string", lambda key: str(_crc(_tagged(key))), "return the slot as an int"),
    ],
    "merge_watch_times": [
        ("in order only", lambda latest, previous, at: (at, latest) if latest is None or at > latest
         else (latest, previous), "an older watch can still become the previous"),
        ("old latest dropped", lambda latest, previous, at: (at, previous) if latest is None or at > latest
         else (latest, max(previous or at, at)), "a newer watch makes the old latest the previous one"),
        ("a list", lambda latest, previous, at: [at, latest], "return a tuple (latest, previous)"),
    ],
    "favorite_genre": [
        ("ties to the last", lambda counts: max(counts, key=lambda g: (counts[g], g)) if counts else None,
         "ties go to the alphabetically first genre"),
        ("least watched", lambda counts: min(counts, key=lambda g: (counts[g], g)) if counts else None,
         "pick the genre with the highest count"),
        ("empty string", lambda counts: min(counts, key=lambda g: (-counts[g], g)) if counts else "",
         "return None"),
    ],
    "label_log": [
        ("__log_timestamp", lambda log, r, h: _label(log, r, h, start="__log_timestamp"), "not at __log_timestamp"),
        ("the served moment included", lambda log, r, h: _label(log, r, h, at_start=True), "strictly after"),
        ("every rating kept", lambda log, r, h: _label(log, r, h, keep=False), "the first rating"),
        ("the last rating", lambda log, r, h: _label(log, r, h, keep="last"), "the first rating"),
        ("the end excluded", lambda log, r, h: _label(log, r, h, at_end=False), "its end included"),
        ("rating above 4", lambda log, r, h: _label(log, r, h, positive=4.5), "rating is >= 4"),
        ("a day, always", lambda log, r, h: _label(log, r, pd.Timedelta(days=1)), "use the horizon you are given"),
        ("a list", lambda log, r, h: _label(log, r, h).to_dict("records"), "return a DataFrame"),
    ],
    "count_mismatches": [
        ("NaN != NaN", lambda served, expected: int((served != expected).sum()), "missing on both sides"),
        ("isclose alone", lambda served, expected: int((~np.isclose(served, expected, rtol=skew.RTOL,
                                                                    atol=skew.ATOL)).sum()), "missing on both sides"),
        ("one side missing ignored", lambda served, expected: int((~np.isclose(
            served, expected, rtol=skew.RTOL, atol=skew.ATOL) & served.notna() & expected.notna()).sum()),
         "against a missing one"),
        ("exact equality", lambda served, expected: int((~((served == expected) | (served.isna() & expected.isna())))
                                                        .sum()), "np.isclose, not =="),
        ("numpy's tolerances", lambda served, expected: int((~np.isclose(served, expected, equal_nan=True)).sum()),
         "skew.RTOL"),
        ("a share", lambda served, expected: float((~np.isclose(served, expected, rtol=skew.RTOL, atol=skew.ATOL,
                                                               equal_nan=True)).mean()), "(an int)"),
    ],
    "redis_masters": [
        ("utilization ignored", lambda *case: _masters(*case, utilization=False), "at the target utilization"),
        ("all memory for data", lambda *case: _masters(*case, fill=False), "only memory_fill"),
        ("GB, not GiB", lambda *case: _masters(*case, gib=10**9), "not 10**9"),
        ("one hash per request", lambda *case: _masters(*case, per_request=False), "entity hashes, not one"),
        ("no minimum", lambda *case: _masters(*case, minimum=0), "at least 3 masters"),
        ("reads only", lambda *case: _masters(*case, combine=lambda r, m: r), "the data must fit too"),
        ("memory only", lambda *case: _masters(*case, combine=lambda r, m: m), "the reads must be served"),
        ("sum of both", lambda *case: _masters(*case, combine=lambda r, m: r + m), "not their sum"),
        ("replicas counted", lambda *case: (1 + case[3].replicas_per_shard) * _masters(*case), "count masters only"),
        ("not rounded", lambda *case: _masters(*case, up=lambda x: x), "round each need up"),
        ("rounded down", lambda *case: _masters(*case, up=math.floor), "masters = max(⌈"),
        ("a string", lambda *case: str(_masters(*case)), "return a whole number"),
    ],
}
WRONG = [(exercise, *wrong) for exercise in EXERCISES for wrong in WRONG_ANSWERS.get(answer_name(exercise), [])]


def test_every_exercise_has_wrong_answers() -> None:
    """New exercises (04, 05, ...) must come with typical wrong answers their checks reject."""
    missing = sorted({answer_name(e) for e in EXERCISES} - set(WRONG_ANSWERS))
    assert not missing, f"add typical wrong answers for {missing} to WRONG_ANSWERS in tests/test_exercises.py"


@pytest.mark.parametrize(("exercise", "mistake", "answer", "phrase"), WRONG,
                         ids=[f"{e.label}-{mistake}" for e, mistake, _, _ in WRONG])
def test_check_explains_a_wrong_answer(exercise: Exercise, mistake: str, answer, phrase: str, context: dict) -> None:
    with pytest.raises(checks.CheckFailed) as failure:
        run_check(exercise, context, answer)
    assert phrase in str(failure.value)
