"""What several test modules share: isolated profiles, the command line run in the test's process, the API
tests' prepared project, the ranker tests' serving moment and sample, and fake clocks (outages are simulated
with `course_lib.outage.Forwarder`). Fixtures built on these live in conftest.py."""
from __future__ import annotations

import functools
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from course_lib import cli, datasets, ranker, serving
from course_lib.adapter import build_feature_tables, write_offline
from course_lib.config import PROFILES, Profile, load_store, resolve_profile
from course_lib.monitoring import Metrics
from course_lib.reset import reset_online

TEST_PROJECT = "course_test"
TEST_REDIS_DB = "15"
TEST_SCHEMA = "course_test"
# The session's own SQL registry database (conftest.py creates it, and drops it at the end). Feast's SQL
# registry re-reads every project of its database after each object it applies or deletes: with the ~35
# projects earlier runs and the learner left in `feast_registry`, those re-reads took 0.25 s each and about
# 220 s of a run. Here only the projects this session registered so far are read.
TEST_REGISTRY_PREFIX = "course_test_registry_"
TEST_REGISTRY_DB = f"{TEST_REGISTRY_PREFIX}{os.getpid()}"
# The shared MovieLens copy beside the checkout; tests FAIL (never skip) when it is missing.
MOVIELENS_PATH = Path(os.environ.get("MOVIELENS_PATH",
                                     Path(__file__).resolve().parents[2] / "shared/datasets/ml-latest-small"))
# Each base profile; the enterprise one carries the marker that says it needs Redis and PostgreSQL.
PROFILE_PARAMS = [pytest.param(name, marks=[pytest.mark.enterprise] if name == "enterprise" else [], id=name)
                  for name in PROFILES]


def isolated_env(workdir: str | Path, **overrides: str) -> dict[str, str]:
    """Environment for a test profile that cannot touch the learner's own data."""
    return {**os.environ, "COURSE_WORKDIR": str(workdir), "FEAST_PROJECT": TEST_PROJECT,
            "FEAST_REDIS_DB": TEST_REDIS_DB, "FEAST_OFFLINE_SCHEMA": TEST_SCHEMA, "FEAST_REGISTRY_DB": TEST_REGISTRY_DB,
            **overrides}


def isolated_profile(name: str, workdir: str | Path, project: str = TEST_PROJECT, schema: str | None = None,
                     **overrides: str) -> Profile:
    """A profile in its own Feast project and offline schema (the project's name unless given), temp workdir."""
    return resolve_profile(name, isolated_env(workdir, FEAST_PROJECT=project, FEAST_OFFLINE_SCHEMA=schema or project,
                                              **overrides))


# --- the command line, in this process --------------------------------------------------------------

def course_in_process(capfd: pytest.CaptureFixture[str] | None, env: Mapping[str, str],
                      *args: str) -> subprocess.CompletedProcess[str]:
    """`course ARGS` as `cli.main(ARGS)` with exactly `env` as os.environ: its exit code and what it wrote to
    file descriptors 1 and 2 (argparse's usage errors exit through SystemExit, as in the real process).

    The same code as a `course` process without the interpreter's start and Feast's imports (several
    seconds each). An exception escaping `main` fails the test where the process would print a traceback.
    What only a real process shows (its exit status, a traceback at exit, a thread that keeps it alive)
    stays with the tests that run `python -m course_lib`. Without `capfd` (a module-scoped fixture) the
    output is left to pytest's capture (shown when the test fails) and returned empty."""
    saved = dict(os.environ)
    if capfd is not None:
        capfd.readouterr()
    os.environ.clear()
    os.environ.update(env)
    try:
        code = cli.main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    out, err = capfd.readouterr() if capfd is not None else ("", "")
    return subprocess.CompletedProcess(["course", *args], code, out, err)


# --- the API tests' project: data online, a trained ranker ------------------------------------------

API_PROJECT = "course_test_api"
DATA_END = datetime(2025, 3, 2, tzinfo=timezone.utc)  # the day api_dataset() ends
UNKNOWN_ID = 987_654_321


@functools.cache
def api_dataset() -> datasets.Dataset:
    """The small synthetic log every API test serves."""
    return datasets.synthetic(seed=11, n_users=300, n_movies=120, n_events=12_000, days=60)


def prepare_api_project(profile: Profile) -> None:
    """Run the course pipeline for one profile and train its ranker (written last)."""
    dataset = api_dataset()
    dataset.save(profile.raw_dir)
    write_offline(build_feature_tables(dataset), profile)
    store = load_store(profile)
    serving.apply(store, profile)
    reset_online(store, profile)  # the SQL registry outlives test runs: forget earlier intervals
    serving.materialize(store, profile, end=DATA_END)  # the replayed log's present
    ranker.train_and_save(profile)


def api_profile(name: str, root: Path, **overrides: str) -> Profile:
    """The API tests' profile under `root`, prepared once (the saved model, written last, marks it done)."""
    profile = isolated_profile(name, root / "api", project=API_PROJECT, **overrides)
    if not profile.model_path.is_file():
        prepare_api_project(profile)
    return profile


@functools.cache
def known_ids() -> tuple[int, tuple[int, ...]]:
    """The most active user and the 30 most watched movies of the API data."""
    events = api_dataset().watch_events
    user = int(events["user_id"].value_counts().index[0])
    return user, tuple(int(m) for m in events["movie_id"].value_counts().index[:30])


# --- the ranker tests' data: a fixed log served at a fixed moment ------------------------------------

RANK_PROJECT = "course_test_rank"
# Half a second past a whole second: no whole-second event sits exactly on a TTL boundary.
SERVE_AT = pd.Timestamp("2025-03-01 18:30:00.5", tz="UTC")


def serving_sample(dataset: datasets.Dataset) -> pd.DataFrame:
    """(user_id, movie_id) pairs around SERVE_AT: watches in the two days before it (inside and
    outside the one-day interaction TTL), watches in the day after it, and random pairs."""
    events, rng = dataset.watch_events, np.random.default_rng(7)
    times = events["event_timestamp"]
    recent = events[(times > SERVE_AT - pd.Timedelta(days=2)) & (times <= SERVE_AT)].sample(60, random_state=1)
    later = events[(times > SERVE_AT) & (times <= SERVE_AT + pd.Timedelta(days=1))].sample(20, random_state=2)
    random_pairs = pd.DataFrame({"user_id": rng.choice(dataset.users["user_id"], 20),
                                 "movie_id": rng.choice(dataset.movies["movie_id"], 20)})
    pairs = pd.concat([recent[["user_id", "movie_id"]], later[["user_id", "movie_id"]], random_pairs])
    return pairs.drop_duplicates().sort_values(["user_id", "movie_id"], ignore_index=True)


# --- Prometheus samples ---------------------------------------------------------------------------

def value(samples: dict[str, list], name: str, **labels: str) -> float | None:
    """The value of the one sample with these labels, or None when it is absent."""
    hits = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) <= 1, f"{name}{labels} matched {len(hits)} samples"
    return hits[0] if hits else None


# --- clocks ----------------------------------------------------------------------------------------

class FakeClock:
    """A wall clock (UTC datetimes) the test sets by hand: `clock.now = ...`."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


class FakeMonotonic:
    """A monotonic clock (float seconds) the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    """Poll `condition` until it holds or `timeout_s` passes (a generous bound, never a speed goal); whether it held."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def parsed(metrics: Metrics) -> dict[str, list]:
    """Sample name -> samples, from the text exposition parsed by Prometheus' own parser."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(metrics.render()[0].decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out
